"""The root application's first middleware: the client's real address and scheme behind trusted
reverse proxies, the largest request body, and the deadline for a body to arrive.

It runs before any handler (the API's, the pages', /health), so rate limits, logs and the
`Secure` flag of cookies all see the same client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vaihde.http.forwarded import client_origin
from vaihde.http.settings import HttpSettings

log = logging.getLogger("vaihde.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTimeout(web.HTTPRequestTimeout):
    """The request's body did not arrive in time (the connection is closed as well)."""


def _error(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    response.force_close()
    return response


def _headers(request: web.Request, names: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: request.headers.getall(name, []) for name in names}


def request_limits(settings: HttpSettings) -> Any:
    """The middleware for `settings` (`service.http`)."""
    trusted = settings.trusted_proxies
    names = (("forwarded",) if settings.proxy_header == "forwarded"
             else ("x-forwarded-for", "x-forwarded-proto"))

    def too_slow(request: web.Request) -> None:
        if request.content.is_eof():
            return
        log.info("request body too slow; connection closed",
                 extra={"peer": request.remote, "path": request.path,
                        "deadline_s": settings.body_timeout_s})
        # The handler waiting for the body gets a 408 (which cannot be sent any more), and
        # the connection (with whatever the client still holds back) is closed.
        request.content.set_exception(BodyTimeout(
            text=f"the request body did not arrive within {settings.body_timeout_s} s"))
        transport = request.transport
        if transport is not None:
            transport.close()

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            return _error(413, "too_large",
                          f"the request body is larger than {settings.max_body_bytes} bytes")
        if trusted:
            origin = client_origin(request.remote, _headers(request, names), trusted,
                                   settings.proxy_header)
            if origin.address != request.remote or origin.scheme is not None:
                request = request.clone(remote=origin.address,
                                        scheme=origin.scheme or request.scheme)
        timer = None
        if request.body_exists and not request.content.is_eof():
            loop = asyncio.get_running_loop()
            timer = loop.call_later(settings.body_timeout_s, too_slow, request)
        try:
            return await handler(request)
        finally:
            if timer is not None:
                timer.cancel()

    return limits
