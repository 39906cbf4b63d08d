"""Availability over HTTP: read it (from the presence cache), set it now, schedule it, cancel an
entry, read the history. Writes go through vaihde.presence.store in one transaction each and
then refresh the cache, so routing sees the change before the response is sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from vaihde.api.errors import Query, json_body, not_found
from vaihde.api.routes_common import (
    Route,
    audit_json,
    availability_json,
    ctx,
    employee_id_param,
    entry_json,
    int_param,
    may,
    require,
)
from vaihde.auth.model import Action, availability_source
from vaihde.db import models as m
from vaihde.presence import store
from vaihde.presence.model import MAX_AHEAD, MAX_INTERNAL_NOTE, MAX_NOTE_FOR_CALLERS
from vaihde.presence.store import PresenceStore

SET_FIELDS = ("state", "until", "note_for_callers", "internal_note")
SCHEDULE_FIELDS = ("state", "starts_at", "until", "note_for_callers", "internal_note")


async def _require_active(request: web.Request, employee_id: str) -> None:
    """404 unless the employee is in the directory now (the cache knows the active ones)."""
    api = ctx(request)
    if employee_id in api.cache.employees:
        return
    async with api.sessions() as session:
        active = await session.scalar(
            select(m.Employee.active).where(m.Employee.id == employee_id)
        )
    if not active:
        raise not_found(f"no employee {employee_id!r} in the directory", "employee_id")


async def everyone(request: web.Request) -> web.Response:
    require(request, Action.READ_AVAILABILITY)
    Query(request, ())
    api = ctx(request)
    return web.json_response(
        {
            "availability": [
                availability_json(av, api.tz, private=may(request, Action.READ_PRIVATE, eid))
                for eid, av in api.cache.snapshot().items()
            ]
        }
    )


async def get_availability(request: web.Request) -> web.Response:
    require(request, Action.READ_AVAILABILITY)
    Query(request, ())
    employee_id = employee_id_param(request)
    await _require_active(request, employee_id)
    api = ctx(request)
    private = may(request, Action.READ_PRIVATE, employee_id)
    return web.json_response(
        availability_json(api.cache.lookup(employee_id), api.tz, private=private)
    )


async def set_availability(request: web.Request) -> web.Response:
    """Set the employee's status from now (replacing their earlier open-ended one)."""
    return await _store_entry(request, SET_FIELDS, scheduled=False)


async def schedule(request: web.Request) -> web.Response:
    """A scheduled entry (vacation next week, a meeting at 14:00)."""
    return await _store_entry(request, SCHEDULE_FIELDS, scheduled=True)


async def _store_entry(
    request: web.Request, fields: Any, *, scheduled: bool
) -> web.Response:
    employee_id = employee_id_param(request)
    principal = require(request, Action.CHANGE_AVAILABILITY, employee_id)
    Query(request, ())
    body = await json_body(request, fields)
    state = body.text("state", required=True, max_length=40) or ""
    starts_at = body.time("starts_at", required=True) if scheduled else None
    until = body.time("until")
    note = body.text("note_for_callers", max_length=MAX_NOTE_FOR_CALLERS) or ""
    internal = body.text("internal_note", max_length=MAX_INTERNAL_NOTE) or ""
    await _require_active(request, employee_id)
    api = ctx(request)
    entry = await PresenceStore(api.sessions, api.cache).set_availability(
        employee_id,
        state,
        source=availability_source(principal, employee_id),
        set_by=principal.username,
        starts_at=starts_at,
        until=until,
        note_for_callers=note,
        internal_note=internal,
        now=api.clock(),
    )
    return web.json_response(
        {
            "entry": entry_json(entry, api.tz, private=True),
            "availability": availability_json(
                api.cache.lookup(employee_id), api.tz, private=True
            ),
        },
        status=201 if scheduled else 200,  # a scheduled entry is a new resource
    )


async def list_entries(request: web.Request) -> web.Response:
    """Entries active now or starting later, by start time."""
    require(request, Action.READ_AVAILABILITY)
    Query(request, ())
    employee_id = employee_id_param(request)
    await _require_active(request, employee_id)
    api = ctx(request)
    now = api.clock()
    async with api.sessions() as session:
        entries = await store.entries_for(
            session, employee_id, start=now, end=now + MAX_AHEAD + timedelta(days=1)
        )
    private = may(request, Action.READ_PRIVATE, employee_id)
    return web.json_response(
        {"entries": [entry_json(e, api.tz, private=private) for e in entries]}
    )


async def cancel(request: web.Request) -> web.Response:
    """Cancel an entry; it stays in the history, marked cancelled."""
    entry_id = int_param(request, "entry_id", "entry")
    principal = require(request, Action.READ_AVAILABILITY)
    Query(request, ())
    api = ctx(request)
    async with api.sessions.begin() as session:
        # Only the owner column: the store reads the row itself under its revision lock.
        employee_id = await session.scalar(
            select(m.AvailabilityEntry.employee_id).where(m.AvailabilityEntry.id == entry_id)
        )
        if employee_id is None:
            raise not_found(f"no entry #{entry_id}", "entry_id")
        require(request, Action.CHANGE_AVAILABILITY, employee_id)
        entry = await store.cancel_entry(
            session, entry_id, actor=principal.username, now=api.clock()
        )
    await api.cache.invalidate(entry.employee_id)
    return web.json_response(
        {
            "entry": entry_json(entry, api.tz, private=True),
            "availability": availability_json(
                api.cache.lookup(entry.employee_id), api.tz, private=True
            ),
        }
    )


async def history(request: web.Request) -> web.Response:
    """Every statement (cancelled ones too) and the audit trail, newest first."""
    employee_id = employee_id_param(request)
    require(request, Action.READ_PRIVATE, employee_id)
    query = Query(request, ("limit",))
    limit = query.integer("limit", default=50, low=1, high=500)
    api = ctx(request)
    async with api.sessions() as session:
        exists = await session.scalar(select(m.Employee.id).where(m.Employee.id == employee_id))
        if exists is None:
            raise not_found(f"no employee {employee_id!r}", "employee_id")
        entries = await store.history(session, employee_id, limit=limit)
        audit = await store.audit_trail(session, employee_id, limit=limit)
    return web.json_response(
        {
            "entries": [entry_json(e, api.tz, private=True) for e in entries],
            "audit": [audit_json(a, api.tz) for a in audit],
        }
    )


ROUTES: list[Route] = [
    ("GET", "/availability", everyone),
    ("GET", "/employees/{employee_id}/availability", get_availability),
    ("PUT", "/employees/{employee_id}/availability", set_availability),
    ("POST", "/employees/{employee_id}/availability/entries", schedule),
    ("GET", "/employees/{employee_id}/availability/entries", list_entries),
    ("DELETE", "/availability/entries/{entry_id}", cancel),
    ("GET", "/employees/{employee_id}/availability/history", history),
]
