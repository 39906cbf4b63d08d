"""How a REST API route is declared, once: method, path, who may call it, the models of its path
parameters, query, body and replies, its summary. From that one declaration

* the auth middleware (vaihde.auth.middleware) enforces who may call it,
* the handler gets its input read and validated (`path`, `query`, `body` keyword arguments;
  a mistake is a 400 that names the field, an unknown id in the path a 404), and a model it
  returns becomes the JSON reply,
* the OpenAPI document is generated (vaihde.api.openapi),
* what belongs to a company is checked against the caller's companies (`company=`, a rule of
  vaihde.api.scope: how to find the company of what the route touches).

A feature declares its routes in its own `http.py`:

    routes = Routes("availability")

    @routes.put("/employees/{employee_id}/availability", "Set an employee's availability",
                allow=Action.CHANGE_AVAILABILITY, owner="employee_id", params=EmployeePath,
                body=SetAvailability, ok=(200, "The new entry", EntryChange), errors=(404,))
    async def set_availability(request, path: EmployeePath, body: SetAvailability) -> ...:
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

from vaihde.api import scope
from vaihde.api.context import company_of, ctx, may
from vaihde.api.errors import JSON, MAX_JSON_BODY, ApiError, invalid, json_type
from vaihde.auth.middleware import ROUTE_ATTRIBUTE
from vaihde.auth.model import Access, Action
from vaihde.records import dump_json, fail

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_INT32 = 2**31 - 1  # ids are INTEGER columns on PostgreSQL
Reply = web.StreamResponse | BaseModel
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


# --- the models of a route's input ----------------------------------------------------------


class Body(BaseModel):
    """A JSON request body: unknown fields are refused (typos must not pass silently), and a
    field sent as null counts as not sent unless `nulls` (then null is a value: "clear it")."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    nulls: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if cls.nulls or not isinstance(data, dict):
            return data
        known = {f.alias or name for name, f in cls.model_fields.items()} | set(cls.model_fields)
        return {k: v for k, v in data.items() if v is not None or k not in known}


def _must_be_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise fail("wrong_type", f"must be a string, not {json_type(value)}")
    return value


# For a field of another type (a choice of words) that must still be sent as a string.
MUST_BE_TEXT = BeforeValidator(_must_be_text)


class Query(BaseModel):
    """Query parameters (strings as sent); unknown ones are refused."""

    model_config = ConfigDict(extra="forbid")


class PathParams(BaseModel):
    """Path parameters: one that is not a valid id is a 404 ("no such employee")."""


@dataclass(frozen=True)
class TextBody:
    """A request body that is text (not JSON): the accepted media types and the size limit."""

    media: tuple[str, ...]
    limit: int
    description: str = ""
    what: str = "the body"  # for the 415: "send {what} (Content-Type: ...)"


@dataclass(frozen=True)
class Media:
    """A reply that is not JSON: its media types (an audio file, an event stream)."""

    types: tuple[str, ...]


Replies = tuple[int, str, Any]  # status, what it means, the model (None: no body)


@dataclass
class Route:
    """One route as declared; `handler` is what aiohttp calls."""

    method: str
    path: str
    summary: str
    tag: str
    allow: Action | Access
    ok: tuple[Replies, ...]
    handler: Handler = field(repr=False)
    owner: str | None = None  # the path parameter naming the employee whose data it is
    params: type[PathParams] | None = None
    query: type[Query] | None = None
    body: type[Body] | TextBody | None = None
    body_optional: bool = False  # no body at all is fine too
    body_limit: int = MAX_JSON_BODY
    errors: tuple[int, ...] = ()
    description: str = ""
    # How to find the company of what the route touches (vaihde.api.scope); None: undeclared,
    # which tests/api/test_authwalk.py refuses.
    company: scope.CompanyRule | None = None

    @property
    def authenticated(self) -> bool:
        return self.allow is not Access.PUBLIC

    @property
    def status(self) -> int:
        return self.ok[0][0]


class Routes:
    """The routes of one feature (its OpenAPI tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[Route] = []

    def get(self, path: str, summary: str, **more: Any) -> Callable[[F], F]:
        return self.route("GET", path, summary, **more)

    def post(self, path: str, summary: str, **more: Any) -> Callable[[F], F]:
        return self.route("POST", path, summary, **more)

    def put(self, path: str, summary: str, **more: Any) -> Callable[[F], F]:
        return self.route("PUT", path, summary, **more)

    def delete(self, path: str, summary: str, **more: Any) -> Callable[[F], F]:
        return self.route("DELETE", path, summary, **more)

    def route(self, method: str, path: str, summary: str, *, allow: Action | Access,
              ok: Replies | Sequence[Replies], **more: Any) -> Callable[[F], F]:
        """Declare `fn` as this route; it is returned as it is (aiohttp gets a wrapper)."""
        replies = (ok,) if isinstance(ok[0], int) else tuple(ok)

        def declare(fn: F) -> F:
            async def handler(request: web.Request) -> web.StreamResponse:
                return await _serve(declared, fn, request)

            handler.__name__ = fn.__name__
            declared = Route(method, path, summary, self.tag, allow, replies, handler, **more)
            setattr(handler, ROUTE_ATTRIBUTE, declared)
            self.routes.append(declared)
            return fn

        return declare


# --- serving --------------------------------------------------------------------------------


async def _serve(
    route: Route, fn: Callable[..., Awaitable[Reply]], request: web.Request
) -> web.StreamResponse:
    values: dict[str, Any] = {}
    if route.params is not None:
        values["path"] = _path(route.params, request)
    query = _query(route.query, request)
    if route.query is not None:
        values["query"] = query
    if route.body is not None and (request.can_read_body or not route.body_optional):
        values["body"] = await _body(route, request)
    await scope.check(route.company, request, values)
    reply = await fn(request, **values)
    if isinstance(reply, web.StreamResponse):
        return reply
    return respond(request, reply, route.status)


def respond(request: web.Request, model: BaseModel, status: int = 200) -> web.Response:
    """A model as the JSON reply: times in the company's zone, internal notes only for those
    who may read them, names from the running company."""

    def private(employee_id: str) -> bool:
        return may(request, Action.READ_PRIVATE, employee_id)

    # Names from every company's employees and teams (ids are unique across the service).
    roster = ctx(request).roster
    names = (roster() if roster is not None else None) or company_of(request)
    body = dump_json(model, tz=ctx(request).tz, private=private, company=names)
    return web.Response(body=body, status=status, content_type=JSON)


def _path(model: type[PathParams], request: web.Request) -> PathParams:
    raw = dict(request.match_info)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] in _CODES_OF_OUR_OWN and error["type"] != "not_found":
            raise _api_error(error, model, "body") from None
        noun = name.removesuffix("_id")
        raise ApiError(404, "not_found", f"no {noun} {raw.get(name)!r}", name) from None


def _query(model: type[Query] | None, request: web.Request) -> Query | None:
    params = request.query
    allowed = sorted(model.model_fields) if model is not None else []
    for name in params:
        if name not in allowed:
            raise invalid(name, f"unknown query parameter {name!r}; allowed: "
                          f"{', '.join(allowed) or 'none'}", "unknown_field")
        if len(params.getall(name)) > 1:
            raise invalid(name, "is given more than once")
    if model is None:
        return None
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise _api_error(exc.errors()[0], model, "query") from None


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


async def _body(route: Route, request: web.Request) -> Any:
    kind = route.body
    if isinstance(kind, TextBody):
        if request.content_type.lower() not in kind.media:
            raise ApiError(415, "unsupported_media_type",
                           f"send {kind.what} (Content-Type: {' or '.join(kind.media[:2])})")
        raw = await read_body(request, kind.limit)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid("body", f"is not UTF-8 text ({exc.reason})") from None
    assert kind is not None
    if request.content_type.lower() != JSON:
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as {JSON} (Content-Type: {JSON})")
    raw = await read_body(request, route.body_limit)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("body", "is not UTF-8 text", "malformed_json") from None
    except json.JSONDecodeError as exc:
        raise invalid("body", f"is not valid JSON: {exc.msg} at line {exc.lineno} column "
                      f"{exc.colno}", "malformed_json") from None
    if not isinstance(data, dict):
        raise invalid("body", f"must be a JSON object, not {json_type(data)}", "wrong_type")
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # Unknown fields first: a typo explains whatever else looks wrong.
        errors.sort(key=lambda e: e["type"] != "extra_forbidden")
        raise _api_error(errors[0], kind, "body") from None


# --- pydantic's errors in the API's words ---------------------------------------------------

# Error types raised by our own validators (vaihde.records.fail): their code and words stand.
_CODES_OF_OUR_OWN = frozenset({"invalid", "missing_field", "wrong_type", "unknown_field",
                               "not_found"})
_WRONG_TYPE = {
    "string_type": "a string", "bool_type": "true or false", "int_type": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "dict_type": "an object",
    "model_type": "an object", "model_attributes_type": "an object", "list_type": "an array",
    "tuple_type": "an array",
}


def _api_error(error: ErrorDetails, model: type[BaseModel], where: str) -> ApiError:
    kind = error["type"]
    loc = [str(part) for part in error["loc"]]
    name = ".".join(loc) or "body"
    value = error.get("input")
    context = error.get("ctx") or {}
    if kind in _CODES_OF_OUR_OWN:
        return invalid(context.get("field", name), error["msg"], kind)
    if kind == "missing":
        return invalid(name, "is required", "missing_field")
    if kind == "extra_forbidden":
        allowed = sorted(f.alias or n for n, f in model.model_fields.items())
        return invalid(name, f"unknown field {loc[-1]!r}; allowed: {', '.join(allowed)}",
                       "unknown_field")
    if kind in _WRONG_TYPE:
        return invalid(name, f"must be {_WRONG_TYPE[kind]}, not {json_type(value)}",
                       "wrong_type")
    if kind == "string_too_long":
        return invalid(name, f"is {len(value)} characters long; at most "
                       f"{context.get('max_length')} allowed")
    if kind == "string_too_short":
        return invalid(name, "must not be empty")
    if kind in ("enum", "literal_error"):
        choices = ", ".join(re.findall(r"'([^']*)'", str(context.get("expected", ""))))
        return invalid(name, f"unknown {loc[-1]} {value!r}; use one of: {choices}")
    low, high = _bounds(model, loc[0] if loc else "")
    if kind in ("int_parsing", "int_from_float") and where == "query":
        return invalid(name, f"must be a whole number from {low} to {high}, not {value!r}",
                       "wrong_type")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return invalid(name, f"must be from {low} to {high}, not {value}")
    if kind == "value_error":
        return invalid(name, str(context.get("error", error["msg"])))
    return invalid(name, error["msg"])


def _bounds(model: type[BaseModel], name: str) -> tuple[Any, Any]:
    info = model.model_fields.get(name)
    low = high = None
    for rule in info.metadata if info is not None else ():
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high
