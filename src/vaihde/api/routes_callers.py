"""The caller register for operators: GET/PUT /callers/{number} (who calls from this number,
how they want to be greeted and reached) and GET /callers/{number}/contacts (earlier calls).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from vaihde.api.errors import Query, invalid, json_body, not_found
from vaihde.api.routes_common import Route, ctx, iso, require
from vaihde.auth.model import Action
from vaihde.directory import CallerRecord, ContactRecord, digits
from vaihde.directory import store as directory

CALLER_FIELDS = ("name", "organisation", "greet_by_name", "preferred_channel", "email", "notes")
TEXT_LIMITS = {"name": 200, "organisation": 200, "notes": 5000}


def _number(request: web.Request) -> str:
    raw = request.match_info["number"]
    try:
        number = digits(raw)
    except ValueError:
        raise invalid("number", f"{raw!r} is not a phone number (digits, optional +)") from None
    if not 3 <= len(number) <= 32:
        raise invalid("number", f"{raw!r} must have 3-32 digits")
    return number


def caller_json(record: CallerRecord, request: web.Request) -> dict[str, Any]:
    return {
        "number": record.number,
        "name": record.name,
        "organisation": record.organisation,
        "greet_by_name": record.greet_by_name,
        "preferred_channel": record.preferred_channel,
        "email": record.email,
        "notes": record.notes,
        "updated_at": iso(record.updated_at, ctx(request).tz),
    }


def contact_json(record: ContactRecord, request: web.Request) -> dict[str, Any]:
    return {
        "id": record.id,
        "at": iso(record.at, ctx(request).tz),
        "direction": record.direction,
        "path": record.path,
        "employee_id": record.employee_id,
        "outcome": record.outcome,
        "call_id": record.call_id,
        "details": record.details,
    }


async def get_caller(request: web.Request) -> web.Response:
    require(request, Action.USE_CALLERS)
    Query(request, ())
    number = _number(request)
    async with ctx(request).sessions() as session:
        record = await directory.get_caller(session, number)
    if record is None:
        raise not_found(f"nothing is known about {number}", "number")
    return web.json_response(caller_json(record, request))


async def put_caller(request: web.Request) -> web.Response:
    """Create or change what is known about a caller; fields not sent keep their value."""
    require(request, Action.USE_CALLERS)
    number = _number(request)
    Query(request, ())
    body = await json_body(request, CALLER_FIELDS)
    changes: dict[str, Any] = {}
    for name, limit in TEXT_LIMITS.items():
        if body.has(name):
            if body.data[name] is None:
                raise invalid(name, "must be a string (send \"\" to clear it)", "wrong_type")
            changes[name] = body.text(name, max_length=limit)
    if body.has("greet_by_name"):
        if body.data["greet_by_name"] is None:
            raise invalid("greet_by_name", "must be true or false", "wrong_type")
        changes["greet_by_name"] = body.boolean("greet_by_name")
    for name in ("preferred_channel", "email"):
        if body.has(name):  # null clears
            changes[name] = body.text(name, max_length=254)
    if not changes:
        raise invalid("body", f"give at least one of: {', '.join(CALLER_FIELDS)}",
                      "missing_field")
    api = ctx(request)
    async with api.sessions.begin() as session:
        existed = await directory.get_caller(session, number) is not None
        record = await directory.upsert_caller(session, number, now=api.clock(), **changes)
    return web.json_response(caller_json(record, request), status=200 if existed else 201)


async def contacts(request: web.Request) -> web.Response:
    require(request, Action.USE_CALLERS)
    query = Query(request, ("days", "limit"))
    days = query.integer("days", default=30, low=1, high=3650)
    limit = query.integer("limit", default=50, low=1, high=500)
    number = _number(request)
    api = ctx(request)
    async with api.sessions() as session:
        found = await directory.contacts_for(
            session, number, since=api.clock() - timedelta(days=days), limit=limit
        )
    return web.json_response(
        {"number": number, "days": days, "contacts": [contact_json(c, request) for c in found]}
    )


ROUTES: list[Route] = [
    ("GET", "/callers/{number}", get_caller),
    ("PUT", "/callers/{number}", put_caller),
    ("GET", "/callers/{number}/contacts", contacts),
]
