"""JSON errors for the REST API and the input readers that produce them: every failure is
`{"error": {"code": "...", "message": "plain words", "field": "until"}}` with its HTTP status,
never a traceback or an HTML page. Bodies and query strings are read strictly: malformed JSON,
wrong types and unknown fields are 400s that name the field.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from vaihde.directory import DirectoryError
from vaihde.presence.model import PresenceError

log = logging.getLogger("vaihde.api")

MAX_JSON_BODY = 64 * 1024
JSON = "application/json"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
_STATUS_MESSAGES = {
    404: "no such resource",
    405: "this method is not allowed here",
    413: "the request body is too large",
}


class ApiError(Exception):
    """Raised anywhere in a handler; the error middleware turns it into the JSON response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        return error_response(
            self.status, self.code, self.message, self.field, headers=self.headers, **self.extra
        )


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return web.json_response({"error": body}, status=status, headers=headers)


def invalid(field: str | None, message: str, code: str = "invalid") -> ApiError:
    return ApiError(400, code, message, field)


def not_found(message: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", message, field)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def problem_field(problem: str) -> str | None:
    """"field: what is wrong" → field (DirectoryError's problems are written that way)."""
    head, sep, _ = problem.partition(": ")
    return head if sep and " " not in head else None


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except PresenceError as exc:
        if exc.field == "employee":
            return error_response(404, "not_found", exc.message, "employee")
        return error_response(400, "invalid", exc.message, exc.field)
    except DirectoryError as exc:
        field = problem_field(exc.problems[0]) if exc.problems else None
        return error_response(
            400, "invalid", "; ".join(exc.problems), field, problems=list(exc.problems)
        )
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
        log.exception("API request failed", extra={"method": request.method,
                                                   "path": request.path})
        return error_response(500, "internal", "something went wrong on the server; see its log")


# --- reading requests ----------------------------------------------------------------------


def media_type(request: web.Request) -> str:
    return request.content_type.lower()


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, at most `limit` bytes (413 beyond), read from the stream: the root
    application's client_max_size does not apply, so each endpoint sets its own."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Body:
    """A JSON object's fields, read with type checks that name the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data or self.data[name] is None:
            if required:
                raise invalid(name, "is required", "missing_field")
            return None
        return self.data[name]

    def text(
        self, name: str, *, required: bool = False, max_length: int | None = None
    ) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(name, f"must be a string, not {_json_type(value)}", "wrong_type")
        if max_length is not None and len(value) > max_length:
            raise invalid(name, f"is {len(value)} characters long; at most {max_length} allowed")
        return value

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise invalid(name, f"must be true or false, not {_json_type(value)}", "wrong_type")
        return value

    def time(self, name: str, *, required: bool = False) -> datetime | None:
        value = self.text(name, required=required)
        return None if value is None else parse_time(name, value)


def _json_type(value: Any) -> str:
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


def parse_time(field: str, value: str) -> datetime:
    """ISO 8601 with a UTC offset (`Z` or `+03:00`); anything else is a 400 naming `field`."""
    example = "like 2025-06-02T14:00:00+03:00"
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(field, f"{value!r} is not a date and time {example}") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise invalid(field, f"must include a UTC offset ({example}): a time without one is "
                      "ambiguous")
    return at


async def json_body(
    request: web.Request,
    allowed: Collection[str],
    *,
    limit: int = MAX_JSON_BODY,
) -> Body:
    """The request's JSON object; 415 for another content type, 400 for malformed JSON, a
    value that is not an object, or a field not in `allowed` (typos must not pass silently)."""
    if media_type(request) != JSON:
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as {JSON} (Content-Type: {JSON})")
    raw = await read_body(request, limit)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("body", "is not UTF-8 text", "malformed_json") from None
    except json.JSONDecodeError as exc:
        raise invalid(
            "body", f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            "malformed_json",
        ) from None
    if not isinstance(data, dict):
        raise invalid("body", f"must be a JSON object, not {_json_type(data)}", "wrong_type")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise invalid(
            unknown[0],
            f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            "unknown_field",
        )
    return Body(data)


class Query:
    """Query parameters, checked against what the endpoint takes."""

    def __init__(self, request: web.Request, allowed: Collection[str]) -> None:
        self.params = request.query
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            listed = ", ".join(sorted(allowed)) or "none"
            raise invalid(unknown[0], f"unknown query parameter {unknown[0]!r}; allowed: "
                          f"{listed}", "unknown_field")
        for name in self.params:
            if len(self.params.getall(name)) > 1:
                raise invalid(name, "is given more than once")

    def text(self, name: str, *, required: bool = False, max_length: int = 200) -> str | None:
        value = self.params.get(name)
        if value is None:
            if required:
                raise invalid(name, "is required", "missing_field")
            return None
        if len(value) > max_length:
            raise invalid(name, f"is {len(value)} characters long; at most {max_length} allowed")
        return value

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        value = self.params.get(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit() and len(value) <= 9):
            raise invalid(name, f"must be a whole number from {low} to {high}, not {value!r}",
                          "wrong_type")
        number = int(value)
        if not low <= number <= high:
            raise invalid(name, f"must be from {low} to {high}, not {number}")
        return number
