"""JSON errors for the REST API: every failure is `{"error": {"code": "...", "message": "plain
words", "field": "until"}}` with its HTTP status, never a traceback or an HTML page. The error
middleware is the one place where errors become responses: any VaihdeError (ApiError, and the
domain's own: PresenceError, DirectoryError, MessageError, the console's Refusal, ...) answers
with its own status, code, field and details; aiohttp's HTTP errors (404, 405, 413) and
crashes (500) are turned into the same shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from vaihde.errors import VaihdeError

log = logging.getLogger("vaihde.api")

MAX_JSON_BODY = 64 * 1024
JSON = "application/json"

_STATUS_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
    429: "too_many_requests",
}
_STATUS_MESSAGES = {404: "no such resource", 405: "this method is not allowed here",
                    413: "the request body is too large"}


class ApiError(VaihdeError):
    """Raised anywhere in a handler; the error middleware turns it into the JSON response."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, *,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message, field=field, code=code, status=status, headers=headers)
        self.details.update(extra)  # e.g. problems: the body's, not VaihdeError's own


def error_response(status: int, code: str, message: str, field: str | None = None, *,
                   headers: Mapping[str, str] | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return web.json_response({"error": body}, status=status, headers=headers)


def invalid(field: str | None, message: str, code: str = "invalid") -> ApiError:
    return ApiError(400, code, message, field)


def not_found(message: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", message, field)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except VaihdeError as exc:
        return web.json_response({"error": exc.body()}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = _STATUS_MESSAGES.get(exc.status) or exc.reason
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, code, message, headers=headers)
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        # The traceback goes to the log, never to the client.
        log.exception("API request failed",
                      extra={"method": request.method, "path": request.path})
        return error_response(500, "internal", "something went wrong on the server; see its log")


def json_type(value: Any) -> str:
    """What a JSON value is, in words ("a string", "an array", "null")."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
