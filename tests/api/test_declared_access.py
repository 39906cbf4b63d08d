"""Who may call a route is declared once, on the route: the middleware enforces exactly that
declaration for every route of the API (no credentials: 401; a role the route's action is not
granted: 403, with nothing written), and the OpenAPI document's x-roles say the same."""

from __future__ import annotations

import re

from vaihde.api.app import routes
from vaihde.api.openapi import document
from vaihde.auth.model import GRANTS, Access, Action, Role, roles_allowed

SPEC = document()

USERS = {"anna": Role.EMPLOYEE, "olli": Role.OPERATOR, "root": Role.ADMIN}
PATH_VALUES = {"employee_id": "matti", "team_id": "sales", "number": "0401234567",
               "call_id": "c.1"}  # ids of numbers: "1"


def _url(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES.get(m[1], "1"), path)


def _body(route) -> dict:
    if route.body is None:
        return {}
    if hasattr(route.body, "media"):  # text (the company file)
        return {"data": "", "headers": {"Content-Type": route.body.media[0]}}
    return {"json": {}}


async def test_every_route_refuses_exactly_the_roles_its_declaration_does_not_allow(api):
    declared = [r for r in routes() if r.allow is not Access.PUBLIC]
    assert len(declared) >= 30
    for route in declared:
        url, body = _url(route.path), _body(route)
        anonymous = await api.call(route.method, url, **body)
        assert anonymous.status == (204 if route.allow is Access.OPTIONAL else 401), route.path
        for user, role in USERS.items():
            # Someone else's data (matti's): only the action's own grant counts.
            refused = isinstance(route.allow, Action) and route.allow not in GRANTS[role]
            before = await api.counts()
            reply = await api.call(route.method, url, as_=user, **body)
            assert (reply.status == 403) == refused, (route.method, url, user, reply.text)
            if refused:
                assert reply.error["code"] == "forbidden"
                assert await api.counts() == before


async def test_an_employee_may_do_to_their_own_data_what_the_declaration_says(api):
    own = [r for r in routes() if r.owner is not None]
    assert own, "no route declares whose data it concerns"
    for route in own:
        url = _url(route.path).replace("matti", "anna")
        reply = await api.call(route.method, url, as_="anna", **_body(route))
        assert reply.status != 403, (route.method, url, reply.text)


def test_the_documented_roles_are_the_enforced_ones():
    for route in routes():
        operation = SPEC["paths"][route.path][route.method.lower()]
        if route.allow is Access.PUBLIC:
            assert "x-roles" not in operation and operation["security"] == []
        elif isinstance(route.allow, Action):
            allowed = roles_allowed(route.allow, own=route.owner is not None)
            assert operation["x-roles"] == [r.value for r in allowed], route.path
        else:
            assert operation["x-roles"] == [r.value for r in Role], route.path
