"""The OpenAPI 3.1 description of /api/v1, served at GET /api/v1/openapi.json (no login).
Generated, not written: each operation from its route's declaration (vaihde.api.route: method,
path, who may call it, summary, parameters, body, replies), every schema from the pydantic
models the routes take and answer with. Tests check that it validates, lists exactly the routes
the application has, and that every response in the API tests matches it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from vaihde import __version__
from vaihde.api.route import Media, PathParams, Query, Route, Routes, TextBody
from vaihde.api.scope import NONE
from vaihde.auth.model import Access, Action, Role, roles_allowed
from vaihde.records import TIME_FORMAT, Record

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
REF_PREFIX = REF.format(model="")
TEXT: Schema = TypeAdapter(str).json_schema()
ROLES = [r.value for r in Role]

routes = Routes("meta")


class ErrorDetail(Record):
    sometimes = ("field", "problems")

    code: str = Field(
        description="machine-readable: invalid, missing_field, unknown_field, wrong_type, "
        "malformed_json, invalid_config, not_found, unauthenticated, invalid_token, "
        "session_expired, invalid_credentials, csrf, forbidden, too_many_attempts, "
        "too_many_streams, too_large, unsupported_media_type, method_not_allowed, conflict, "
        "unknown_recipient, unavailable, ami_down, no_outside_line, internal"
    )
    message: str = Field(description="plain words, for people")
    field: str | None = Field(None, description="the input that is wrong")
    problems: list[Any] | None = None


class Error(Record):
    """Every failure: its HTTP status and this body."""

    error: ErrorDetail


ERROR_TEXT = {
    400: "Bad input: the error names the field (unknown fields and query parameters, wrong "
    "types, malformed JSON, invalid times)",
    401: "No working credentials: log in, or send Authorization: Bearer <token>",
    403: "Not allowed for your role, or (with the session cookie) a missing or wrong "
    "X-CSRF-Token",
    404: "Not found",
    409: "Conflicts with the current state (already done, nothing to retry; a console "
    "action on a call whose state does not allow it)",
    413: "The body is too large",
    415: "Wrong Content-Type",
    422: "Refers to something that does not exist (the error names the field)",
    429: "Too many failed logins or logins in progress, or too many open console streams of "
    "your user: wait (Retry-After)",
    503: "Not ready for this: no company configuration loaded yet, Asterisk (AMI) not "
    "connected, or the operator console not running",
}
DESCRIPTION = (
    "The company switchboard's directory, availability, caller register and configuration. "
    "Authenticate with an API token (`vaihde token create`) as `Authorization: Bearer "
    "<token>`, or log in with POST /session (web console: cookie plus X-CSRF-Token on "
    "changes). Roles: employee (read; change own availability, read messages for them), "
    "operator (+ anyone's availability, callers, messages and callbacks), admin (everything). "
    f"Times are {TIME_FORMAT}."
)
TAGS = ("session", "directory", "availability", "callers", "messages", "callbacks", "urgent",
        "console", "config", "meta")


# --- schemas -----------------------------------------------------------------------------------


def _untitled(node: Any) -> Any:
    """pydantic titles every schema and property ("Employee Id"): noise in this document."""
    if isinstance(node, dict):
        return {
            key: ({name: _untitled(s) for name, s in value.items()} if key == "properties"
                  else _untitled(value))
            for key, value in node.items() if key != "title"
        }
    if isinstance(node, list):
        return [_untitled(item) for item in node]
    return node


def _renamed(node: Any, names: dict[str, str]) -> Any:
    """References to components renamed."""
    if isinstance(node, dict):
        out = {key: _renamed(value, names) for key, value in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            out["$ref"] = REF.format(model=names.get(ref[len(REF_PREFIX):], ref[len(REF_PREFIX):]))
        return out
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    return node


def _referenced(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX):])
        for value in node.values():
            found |= _referenced(value)
    elif isinstance(node, list):
        for item in node:
            found |= _referenced(item)
    return found


def _used(roots: Any, components: dict[str, Schema]) -> dict[str, Schema]:
    """The components `roots` (the paths) use, directly or through other components."""
    wanted = _referenced(roots) | {"Error"}
    todo = list(wanted)
    while todo:
        for name in _referenced(components.get(todo.pop(), {})) - wanted:
            wanted.add(name)
            todo.append(name)
    return {name: schema for name, schema in sorted(components.items()) if name in wanted}


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


class _Schemas:
    """components/schemas from every model the routes use, and references to them."""

    def __init__(self, all_routes: list[Route]) -> None:
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Error, "serialization")]
        for route in all_routes:
            if _is_model(route.body):
                wanted.append((route.body, "validation"))  # type: ignore[arg-type]
            wanted += [(model, "serialization") for _, _, model in route.ok if _is_model(model)]
        unique = list(dict.fromkeys(wanted))
        refs, defs = models_json_schema(unique, ref_template=REF)
        found = _used(list(refs.values()), defs.get("$defs", {}))
        # A record may go by another name in the API (CallerRecord is a "Caller"): its title.
        names = {key: schema["title"] for key, schema in found.items()
                 if schema.get("title", key) != key and schema["title"] not in found}
        self.refs = {key: _renamed(ref, names) for key, ref in refs.items()}
        self.components: dict[str, Schema] = {
            names.get(key, key): _untitled(_renamed(schema, names))
            for key, schema in found.items()
        }

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> Schema:
        return dict(self.refs[(model, mode)])

    def inline(self, kind: Any) -> Schema:
        schema = TypeAdapter(kind).json_schema(ref_template=REF)
        return self._merged(schema)

    def fields(self, model: type[PathParams] | type[Query]) -> tuple[dict[str, Schema], set[str]]:
        """A parameters model's properties (and which are required)."""
        schema = self._merged(model.model_json_schema(ref_template=REF))
        return schema.get("properties", {}), set(schema.get("required", ()))

    def _merged(self, schema: Schema) -> Schema:
        for name, found in _untitled(schema.pop("$defs", {})).items():
            self.components.setdefault(name, found)
        cleaned: Schema = _untitled(schema)
        return cleaned


def _json(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


# --- operations --------------------------------------------------------------------------------


def _roles(route: Route) -> list[str] | None:
    if route.allow is Access.PUBLIC:
        return None
    if isinstance(route.allow, Action):
        return [r.value for r in roles_allowed(route.allow, own=route.owner is not None)]
    return ROLES


def _parameters(route: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for where, model in (("path", route.params), ("query", route.query)):
        if model is None:
            continue
        properties, required = schemas.fields(model)
        for name, schema in properties.items():
            schema = dict(schema)
            out.append({"name": name, "in": where, "required": where == "path" or name in required,
                        "description": schema.pop("description", ""), "schema": schema})
    if route.authenticated and route.method != "GET":
        out.append({"$ref": "#/components/parameters/CsrfToken"})
    return out


def _request_body(route: Route, schemas: _Schemas) -> dict[str, Any] | None:
    body = route.body
    if isinstance(body, TextBody):
        return {"required": True, "description": body.description,
                "content": {media: {"schema": TEXT} for media in body.media[:2]}}
    if body is None:
        return None
    return {"required": not route.body_optional, **_json(schemas.ref(body, "validation"))}


def _responses(route: Route, schemas: _Schemas) -> dict[str, Any]:
    """The route's own replies, and the errors: every route can answer 400 (unknown query
    parameters); authenticated ones 401, and changes 403 (CSRF); a role that may not do it
    403; with a body, 413 and 415."""
    out: dict[str, Any] = {}
    for status, text, model in route.ok:
        reply: dict[str, Any] = {"description": text}
        if isinstance(model, Media):
            reply["content"] = {media: {"schema": {**TEXT, "contentMediaType": media}}
                                for media in model.types}
        elif _is_model(model):
            reply.update(_json(schemas.ref(model, "serialization")))
        elif model is not None:
            reply.update(_json(schemas.inline(model)))
        out[str(status)] = reply
    codes = set(route.errors) | {400}
    if route.authenticated:
        codes.add(401)
        if route.method != "GET":
            codes.add(403)
    if isinstance(route.allow, Action) and len(roles_allowed(route.allow)) < len(ROLES):
        codes.add(403)
    if route.body is not None:
        codes |= {413, 415}
    error = schemas.ref(Error, "serialization")
    for code in sorted(codes):
        out[str(code)] = {"description": ERROR_TEXT[code], **_json(error)}
    return out


def operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": _operation_id(route.method, route.path),
        "responses": _responses(route, schemas),
    }
    if route.description:
        out["description"] = route.description
    parameters = _parameters(route, schemas)
    if parameters:
        out["parameters"] = parameters
    body = _request_body(route, schemas)
    if body is not None:
        out["requestBody"] = body
    if not route.authenticated:
        out["security"] = []
    roles = _roles(route)
    if roles is not None:
        out["x-roles"] = roles
    if route.company is not None and route.company is not NONE:
        # Whose data it is: checked against the caller's companies (vaihde.api.scope).
        out["x-company"] = route.company.describe
    return out


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[/_.{}]+", path) if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def document() -> dict[str, Any]:
    from vaihde.api.app import routes as all_routes

    declared = all_routes()
    schemas = _Schemas(declared)
    paths: dict[str, dict[str, Any]] = {}
    for route in declared:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vaihde REST API",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {
            "schemas": _used(paths, schemas.components),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "an API token from `vaihde token create`"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "vaihde_session",
                               "description": "set by POST /session"},
            },
            "parameters": {
                "CsrfToken": {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": False,
                    "description": "the session's csrf_token; required with the session "
                    "cookie, not with a bearer token",
                    "schema": TEXT,
                }
            },
        },
    }


_ENCODED: bytes | None = None


@routes.get("/openapi.json", "This document", allow=Access.PUBLIC, company=NONE,
            ok=(200, "The OpenAPI 3.1 document", dict[str, Any]))
async def serve(request: web.Request) -> web.Response:
    global _ENCODED
    if _ENCODED is None:
        _ENCODED = json.dumps(document(), ensure_ascii=False, indent=1).encode("utf-8")
    return web.Response(body=_ENCODED, content_type="application/json", charset="utf-8")

