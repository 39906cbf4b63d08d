"""Availability over HTTP: read it (from the presence cache), set it now, schedule it, cancel an
entry, read the history. Writes go through vaihde.presence.store in one transaction each and
then refresh the cache, so routing sees the change before the response is sent.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from vaihde.api import scope
from vaihde.api.context import ctx, require, who
from vaihde.api.errors import not_found
from vaihde.api.route import Routes
from vaihde.auth.model import Action, availability_source
from vaihde.db import models as m
from vaihde.presence import store
from vaihde.presence.model import MAX_AHEAD, Availability
from vaihde.presence.schemas import (
    AvailabilityList,
    EmployeePath,
    EntryChange,
    EntryList,
    EntryPath,
    History,
    HistoryQuery,
    ScheduleEntry,
    SetAvailability,
)
from vaihde.presence.store import PresenceStore

routes = Routes("availability")
EMPLOYEE = scope.employee("employee_id")  # the employee's company must be the caller's


async def _require_active(request: web.Request, employee_id: str) -> None:
    """404 unless the employee is in the directory now (the cache knows the active ones)."""
    api = ctx(request)
    if employee_id in api.cache.employees:
        return
    async with api.sessions() as session:
        active = await session.scalar(select(m.Employee.active).where(m.Employee.id == employee_id))
    if not active:
        raise not_found(f"no employee {employee_id!r} in the directory", "employee_id")


@routes.get("/availability", "Everyone's availability now", allow=Action.READ_AVAILABILITY,
            ok=(200, "Every active employee (of the caller's companies)", AvailabilityList),
            company=scope.FILTERED)
async def everyone(request: web.Request) -> AvailabilityList:
    mine = await scope.ids_in_scope(request, m.Employee)
    return AvailabilityList(availability=[
        av for av in ctx(request).cache.snapshot().values()
        if mine is None or av.employee_id in mine])


@routes.get("/employees/{employee_id}/availability",
            "An employee's availability now, with the explanation",
            allow=Action.READ_AVAILABILITY, params=EmployeePath, company=EMPLOYEE,
            ok=(200, "Availability", Availability), errors=(404,))
async def get_availability(request: web.Request, path: EmployeePath) -> Availability:
    await _require_active(request, path.employee_id)
    return ctx(request).cache.lookup(path.employee_id)


@routes.put("/employees/{employee_id}/availability", "Set an employee's availability from now",
            allow=Action.CHANGE_AVAILABILITY, owner="employee_id", params=EmployeePath,
            company=EMPLOYEE, body=SetAvailability,
            ok=(200, "The new entry and the resulting availability", EntryChange),
            errors=(404,),
            description="Replaces the employee's earlier open-ended status. Employees may set "
            "only their own (source manual); operators and admins anyone's (source operator).")
async def set_availability(request: web.Request, path: EmployeePath,
                           body: SetAvailability) -> EntryChange:
    return await _store_entry(request, path.employee_id, body)


@routes.post("/employees/{employee_id}/availability/entries",
             "Schedule an entry (a vacation, a meeting)",
             allow=Action.CHANGE_AVAILABILITY, owner="employee_id", params=EmployeePath,
             company=EMPLOYEE, body=ScheduleEntry,
             ok=(201, "The scheduled entry", EntryChange), errors=(404,),
             description="Must not overlap another scheduled entry from the same source.")
async def schedule(request: web.Request, path: EmployeePath, body: ScheduleEntry) -> EntryChange:
    return await _store_entry(request, path.employee_id, body)


async def _store_entry(
    request: web.Request, employee_id: str, body: SetAvailability | ScheduleEntry
) -> EntryChange:
    principal = who(request)  # allowed: the route's declaration says so
    await _require_active(request, employee_id)
    api = ctx(request)
    entry = await PresenceStore(api.sessions, api.cache).set_availability(
        employee_id, body.state, source=availability_source(principal, employee_id),
        set_by=principal.username,
        starts_at=body.starts_at if isinstance(body, ScheduleEntry) else None, until=body.until,
        note_for_callers=body.note_for_callers, internal_note=body.internal_note, now=api.clock())
    return EntryChange(entry=entry, availability=api.cache.lookup(employee_id))


@routes.get("/employees/{employee_id}/availability/entries",
            "Entries active now or starting later", allow=Action.READ_AVAILABILITY,
            params=EmployeePath, company=EMPLOYEE, ok=(200, "Entries by start time", EntryList),
            errors=(404,))
async def list_entries(request: web.Request, path: EmployeePath) -> EntryList:
    await _require_active(request, path.employee_id)
    api = ctx(request)
    now = api.clock()
    async with api.sessions() as session:
        entries = await store.entries_for(session, path.employee_id, start=now,
                                          end=now + MAX_AHEAD + timedelta(days=1))
    return EntryList(entries=entries)


@routes.delete("/availability/entries/{entry_id}", "Cancel an entry (kept in the history)",
               allow=Action.READ_AVAILABILITY, params=EntryPath, company=scope.entry("entry_id"),
               ok=(200, "The cancelled entry", EntryChange), errors=(404,))
async def cancel(request: web.Request, path: EntryPath) -> EntryChange:
    """Cancel an entry; it stays in the history, marked cancelled. Whose it is decides who may:
    the employee themselves, operators and admins."""
    api = ctx(request)
    async with api.sessions.begin() as session:
        # Only the owner column: the store reads the row itself under its revision lock.
        employee_id = await session.scalar(select(m.AvailabilityEntry.employee_id)
                                           .where(m.AvailabilityEntry.id == path.entry_id))
        if employee_id is None:
            raise not_found(f"no entry #{path.entry_id}", "entry_id")
        principal = require(request, Action.CHANGE_AVAILABILITY, employee_id)
        entry = await store.cancel_entry(session, path.entry_id, actor=principal.username,
                                         now=api.clock())
    await api.cache.invalidate(entry.employee_id)
    return EntryChange(entry=entry, availability=api.cache.lookup(entry.employee_id))


@routes.get("/employees/{employee_id}/availability/history",
            "Every entry (cancelled too) and the audit trail, newest first",
            allow=Action.READ_PRIVATE, owner="employee_id", params=EmployeePath, company=EMPLOYEE,
            query=HistoryQuery, ok=(200, "History", History), errors=(404,),
            description="For the employee themselves, operators and admins.")
async def history(request: web.Request, path: EmployeePath, query: HistoryQuery) -> History:
    api = ctx(request)
    async with api.sessions() as session:
        found = select(m.Employee.id).where(m.Employee.id == path.employee_id)
        exists = await session.scalar(found)
        if exists is None:
            raise not_found(f"no employee {path.employee_id!r}", "employee_id")
        entries = await store.history(session, path.employee_id, limit=query.limit)
        audit = await store.audit_trail(session, path.employee_id, limit=query.limit)
    return History(entries=entries, audit=audit)
