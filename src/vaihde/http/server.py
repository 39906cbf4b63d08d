"""The service's HTTP server: aiohttp behind a thin connection guard that aiohttp lacks.

aiohttp closes idle keep-alive connections (`keepalive_timeout`) and limits body sizes, but it
has no deadline for a request's headers and no limit on open connections: a client trickling
one header byte every few seconds, times a few thousand connections, would take every file
descriptor the process has, and with them the FastAGI server's (callers would reach only the
dialplan's fallback). The guard sits between the socket and aiohttp's protocol:

- at most `max_connections` at once; one more is answered `503` and closed at once;
- a request's line and headers must be complete within `header_timeout_s` of its first byte
  (for a new connection, of the connection itself); otherwise `408` and the connection closes.

A request's headers are complete when aiohttp hands the request to the application (the
guard wraps the server's request handler to notice); its body has its own deadline
(vaihde.http.middleware).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from vaihde.http.settings import HttpSettings

log = logging.getLogger("vaihde.http")

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_SLOW = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)


def _reply(template: bytes, code: str, message: str) -> bytes:
    body = b'{"error":{"code":"%s","message":"%s"}}' % (code.encode(), message.encode())
    return template % (len(body), body)


BUSY = _reply(_BUSY, "busy", "too many open connections; try again in a moment")
SLOW = _reply(_SLOW, "request_timeout", "the request headers did not arrive in time")


class _Guard(asyncio.Protocol):
    """One connection: counts itself, times its requests' headers, and passes every byte on
    to aiohttp's protocol (`inner`), which does the HTTP."""

    def __init__(self, server: GuardedServer) -> None:
        self.server = server
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a request's headers are in; the application has it
        self.timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they behave as one.
        self.transport = cast(asyncio.Transport, transport)
        transport = self.transport
        server = self.server
        if len(server.open) >= server.settings.max_connections:
            server.refused += 1
            if server.refused == 1 or server.refused % 100 == 0:
                log.warning("HTTP connection refused: too many open",
                            extra={"open": len(server.open), "refused": server.refused})
            transport.write(BUSY)
            transport.close()
            return
        server.open.add(self)
        self.inner = server.make_protocol()
        self.inner.connection_made(transport)
        server.by_inner[self.inner] = self
        # The first request's headers count from the connection: a client that connects and
        # says nothing (or very little) is cut off as soon as one that trickles.
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if not self.busy and self.timer is None:
            self._arm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.server.open.discard(self)
        if self.inner is not None:
            self.server.by_inner.pop(self.inner, None)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # --- header deadline ----------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.server.settings.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _too_slow(self) -> None:
        self.timer = None
        if self.busy or self.transport is None or self.transport.is_closing():
            return
        self.server.timed_out += 1
        log.info("HTTP request headers too slow; connection closed",
                 extra={"peer": str(self.transport.get_extra_info("peername")),
                        "deadline_s": self.server.settings.header_timeout_s})
        self.transport.write(SLOW)
        self.transport.close()

    def request_started(self) -> None:
        self.busy = True
        self._disarm()

    def request_finished(self) -> None:
        # The next request's deadline starts with its first byte; until then aiohttp's
        # keep-alive timeout governs the idle connection.
        self.busy = False


class GuardedServer:
    """aiohttp's server for `app`, listening on `settings.host:port` behind the guard."""

    def __init__(self, app: web.Application, settings: HttpSettings) -> None:
        self.settings = settings
        self.runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=settings.keepalive_s,
            # A client that sent a body nobody read is drained this long at most.
            lingering_time=2.0,
        )
        self.open: set[_Guard] = set()
        self.by_inner: dict[Any, _Guard] = {}
        self.refused = 0
        self.timed_out = 0
        self.port = settings.port
        self._server: asyncio.AbstractServer | None = None

    def make_protocol(self) -> asyncio.Protocol:
        server = self.runner.server
        assert server is not None
        return server()

    async def start(self) -> None:
        await self.runner.setup()
        server = self.runner.server
        assert server is not None
        handle: Callable[[Any], Awaitable[web.StreamResponse]] = server.request_handler

        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            guard = self.by_inner.get(request.protocol)
            if guard is not None:
                guard.request_started()
            try:
                return await handle(request)
            finally:
                if guard is not None:
                    guard.request_finished()

        # aiohttp's protocol reads the handler from its server when a connection is made, so
        # this covers every connection.
        server.request_handler = guarded
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Guard(self), self.settings.host, self.settings.port,
            reuse_address=True, backlog=128,
        )
        if self._server.sockets:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        # The runner ends the connections aiohttp knows of (every one the guard let in).
        await self.runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
