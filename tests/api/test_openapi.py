"""The OpenAPI document: valid OpenAPI 3.1, served without login, and listing exactly the routes
the application has (both ways), with the method and path parameters they take."""

from __future__ import annotations

import json
import re
from datetime import UTC

from openapi_spec_validator import validate

from vaihde.api import ApiContext, make_api
from vaihde.api.openapi import document
from vaihde.directory.search import DirectoryIndex


def _app_routes() -> set[tuple[str, str]]:
    # No database is touched while routes are registered: placeholders are enough.
    ctx = ApiContext(
        sessions=None,  # type: ignore[arg-type]
        cache=None,  # type: ignore[arg-type]
        directory=lambda: DirectoryIndex.build([]),
        company=lambda: None,
        tz=UTC,
    )
    app = make_api(ctx)
    out = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        out.add((route.method, route.resource.canonical))
    return out


def _spec_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document()["paths"].items()
        for method in operations
    }


def test_document_is_valid_openapi_3_1():
    spec = document()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation
    # JSON all the way (what is served).
    assert json.loads(json.dumps(spec)) == spec


def test_every_route_is_in_the_document_and_every_documented_route_exists():
    app, spec = _app_routes(), _spec_routes()
    assert app - spec == set(), "routes missing from the OpenAPI document"
    assert spec - app == set(), "documented routes the application does not have"
    assert len(app) >= 20


def test_path_parameters_are_described_and_operation_ids_unique():
    spec = document()
    ids = []
    for path, operations in spec["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            described = {
                p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"
            }
            assert described == names, (method, path)
            assert {"200", "201", "202", "204"} & set(operation["responses"]), (method, path)
    assert len(ids) == len(set(ids))


async def test_served_without_login_as_json(api):
    reply = await api.call("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.json == json.loads(json.dumps(document()))
    assert reply.headers["Content-Type"].startswith("application/json")
