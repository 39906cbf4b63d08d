"""Availability entries in the database: set, supersede, schedule, cancel, calendar sync, history.

Functions take an AsyncSession and work inside the caller's transaction (they flush, never
commit); every change writes its audit rows and bumps the "presence" revision in that same
transaction. Bad input raises PresenceError before anything is written; if a database check fails
later, the caller's `async with sessions.begin()` rolls the whole change back.
`PresenceStore` wraps them for callers that want one transaction per change and a fresh cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec

from pydantic import Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.db import models as m
from vaihde.presence.model import (
    HUMAN_SOURCES,
    MAX_AHEAD,
    MAX_INTERNAL_NOTE,
    MAX_NOTE_FOR_CALLERS,
    MAX_SET_BY,
    Availability,
    Entry,
    PresenceError,
    Source,
    State,
    check_text,
    clean_text,
    describe_entry,
    find_overlap,
    parse_source,
    parse_state,
    require_aware,
    resolve,
    superseded,
    validate_new_entry,
)
from vaihde.records import Record, Time, of_row

if TYPE_CHECKING:
    from vaihde.presence.cache import PresenceCache

MAX_EXTERNAL_ID = 500
P = ParamSpec("P")


class AuditRecord(Record):
    """Who changed an entry, when and how."""

    id: int
    entry_id: int
    employee_id: str = Field(exclude=True)  # the API shows it per employee
    action: Literal["created", "updated", "cancelled"]
    actor: str
    at: Time
    details: dict[str, Any]


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    require_aware("now", now)
    return now


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat() if t is not None else None


def _audit(
    session: AsyncSession,
    row: m.AvailabilityEntry,
    action: str,
    actor: str,
    at: datetime,
    **details: Any,
) -> None:
    session.add(
        m.AvailabilityAudit(
            entry_id=row.id,
            employee_id=row.employee_id,
            action=action,
            actor=actor,
            at=at,
            details=details,
        )
    )


async def _require_employee(session: AsyncSession, employee_id: str) -> None:
    active = (
        await session.execute(select(m.Employee.active).where(m.Employee.id == employee_id))
    ).scalar_one_or_none()
    if active is None:
        raise PresenceError("employee", f"no employee {employee_id!r}")
    if not active:
        raise PresenceError("employee", f"{employee_id!r} is no longer in the directory")


async def _open_rows(
    session: AsyncSession, employee_id: str, now: datetime
) -> list[m.AvailabilityEntry]:
    """Entries that are not cancelled and not over: the ones a new entry can clash with."""
    return list(
        (
            await session.scalars(
                select(m.AvailabilityEntry).where(
                    m.AvailabilityEntry.employee_id == employee_id,
                    m.AvailabilityEntry.cancelled_at.is_(None),
                    or_(m.AvailabilityEntry.until.is_(None), m.AvailabilityEntry.until > now),
                )
            )
        ).all()
    )


async def set_availability(
    session: AsyncSession,
    employee_id: str,
    state: str | State,
    *,
    source: str | Source,
    set_by: str,
    until: datetime | None = None,
    starts_at: datetime | None = None,
    note_for_callers: str = "",
    internal_note: str = "",
    now: datetime | None = None,
) -> Entry:
    """Record a statement about an employee's availability.

    `starts_at=None` means now, "set my status": it cancels the open-ended manual, operator and
    phone entries active now (when the new one is from one of those sources). With an explicit
    `starts_at` the entry is scheduled, and clashing with another scheduled entry from the same
    source is an error that names it.
    """
    at = _now(now)
    validate_new_entry(
        state=state,
        source=source,
        set_by=set_by,
        now=at,
        starts_at=starts_at,
        until=until,
        note_for_callers=note_for_callers,
        internal_note=internal_note,
    )
    state_, source_ = parse_state(state), parse_source(source)
    # First, so that concurrent writers take turns from here (see bump_revision).
    revision = await m.bump_revision(session, m.PRESENCE)
    await _require_employee(session, employee_id)
    open_rows = await _open_rows(session, employee_id, at)
    existing = [of_row(Entry, r) for r in open_rows]
    replaced: list[Entry] = []
    if starts_at is None:
        if source_ in HUMAN_SOURCES:
            replaced = superseded(at, existing)
    else:
        clash = find_overlap(source_, starts_at, until, existing)
        if clash is not None:
            raise PresenceError(
                "starts_at",
                f"overlaps {describe_entry(clash)}; cancel or change that entry first",
            )
    row = m.AvailabilityEntry(
        employee_id=employee_id,
        state=state_.value,
        starts_at=starts_at or at,
        until=until,
        note_for_callers=note_for_callers.strip(),
        internal_note=internal_note.strip(),
        source=source_.value,
        set_by=set_by.strip(),
        created_at=at,
        revision=revision,
    )
    session.add(row)
    await session.flush()
    replaced_ids = {e.id for e in replaced}
    for old in open_rows:
        if old.id in replaced_ids:
            old.cancelled_at = at
            old.cancelled_by = row.set_by
            old.revision = revision
            _audit(session, old, "cancelled", row.set_by, at, reason="superseded", by=row.id)
    _audit(
        session,
        row,
        "created",
        row.set_by,
        at,
        state=row.state,
        source=row.source,
        starts_at=_iso(row.starts_at),
        until=_iso(row.until),
        superseded=sorted(replaced_ids),
    )
    await session.flush()
    return of_row(Entry, row)


async def cancel_entry(
    session: AsyncSession, entry_id: int, *, actor: str, now: datetime | None = None
) -> Entry:
    """Cancel an entry that has not ended yet (it stays in history, marked cancelled)."""
    at = _now(now)
    if not isinstance(actor, str) or not actor.strip():
        raise PresenceError("actor", "must say who cancels")
    check_text("actor", actor, MAX_SET_BY)
    revision = await m.bump_revision(session, m.PRESENCE)
    row = await session.get(m.AvailabilityEntry, entry_id)
    if row is None:
        raise PresenceError("entry", f"no entry #{entry_id}")
    if row.cancelled_at is not None:
        raise PresenceError("entry", f"#{entry_id} was already cancelled by {row.cancelled_by}")
    if row.until is not None and row.until <= at:
        raise PresenceError("entry", f"#{entry_id} has already ended; history is not rewritten")
    row.cancelled_at = at
    row.cancelled_by = actor.strip()
    row.revision = revision
    _audit(session, row, "cancelled", row.cancelled_by, at, reason="cancelled")
    await session.flush()
    return of_row(Entry, row)


async def entries_for(
    session: AsyncSession,
    employee_id: str,
    *,
    start: datetime,
    end: datetime,
    include_cancelled: bool = False,
) -> list[Entry]:
    """Entries that are active at some moment in [start, end), by start time."""
    require_aware("start", start)
    require_aware("end", end)
    e = m.AvailabilityEntry
    query = select(e).where(
        e.employee_id == employee_id,
        e.starts_at < end,
        or_(e.until.is_(None), e.until > start),
    )
    if not include_cancelled:
        query = query.where(e.cancelled_at.is_(None))
    rows = await session.scalars(query.order_by(e.starts_at, e.id))
    return [of_row(Entry, r) for r in rows.all()]


async def history(session: AsyncSession, employee_id: str, *, limit: int = 50) -> list[Entry]:
    """Every statement, cancelled ones included, newest first."""
    e = m.AvailabilityEntry
    rows = await session.scalars(
        select(e)
        .where(e.employee_id == employee_id)
        .order_by(e.created_at.desc(), e.id.desc())
        .limit(limit)
    )
    return [of_row(Entry, r) for r in rows.all()]


async def audit_trail(
    session: AsyncSession, employee_id: str, *, limit: int = 100
) -> list[AuditRecord]:
    """Who changed what for this employee, newest first."""
    a = m.AvailabilityAudit
    rows = await session.scalars(
        select(a)
        .where(a.employee_id == employee_id)
        .order_by(a.at.desc(), a.id.desc())
        .limit(limit)
    )
    return [of_row(AuditRecord, r) for r in rows.all()]


async def get_availability(
    session: AsyncSession,
    employee_id: str,
    *,
    now: datetime | None = None,
    on_call: bool = False,
    tz: tzinfo = UTC,
) -> Availability:
    """Resolve from the database (one query). Hot paths use PresenceCache.lookup instead."""
    at = _now(now)
    rows = await _open_rows(session, employee_id, at)
    return resolve(employee_id, (of_row(Entry, r) for r in rows), now=at, on_call=on_call, tz=tz)


async def active_entries(session: AsyncSession, *, since: datetime) -> list[Entry]:
    """Entries not cancelled that end after `since` (or never): what a cache needs."""
    e = m.AvailabilityEntry
    rows = await session.scalars(
        select(e).where(e.cancelled_at.is_(None), or_(e.until.is_(None), e.until > since))
    )
    return [of_row(Entry, r) for r in rows.all()]


async def changed_entries(session: AsyncSession, *, after_revision: int) -> list[Entry]:
    """Entries written (created, updated, cancelled) after `after_revision`."""
    e = m.AvailabilityEntry
    rows = await session.scalars(select(e).where(e.revision > after_revision))
    return [of_row(Entry, r) for r in rows.all()]


# --- calendar (and other external feeds) ---------------------------------------------------


async def upsert_external(
    session: AsyncSession,
    employee_id: str,
    source: str | Source,
    external_id: str,
    *,
    state: str | State,
    starts_at: datetime,
    until: datetime | None,
    set_by: str,
    note_for_callers: str = "",
    internal_note: str = "",
    now: datetime | None = None,
) -> tuple[Entry, str]:
    """Create or update the entry a feed knows as `external_id` (e.g. calendar UID plus
    recurrence id). Returns the entry and "created", "updated" or "unchanged".

    Notes are cleaned and shortened rather than refused: one long meeting title must not stop a
    whole calendar sync. An entry a person cancelled stays cancelled; one this feed cancelled
    (it had disappeared) comes back.
    """
    at = _now(now)
    state_, source_ = parse_state(state), parse_source(source)
    require_aware("starts_at", starts_at)
    require_aware("until", until)
    if until is not None and until <= starts_at:
        raise PresenceError("until", "must be after the start")
    if starts_at > at + MAX_AHEAD:
        raise PresenceError("starts_at", f"is more than two years ahead ({starts_at:%Y-%m-%d})")
    if not external_id or len(external_id) > MAX_EXTERNAL_ID:
        raise PresenceError("external_id", f"must be 1-{MAX_EXTERNAL_ID} characters")
    if not set_by or not set_by.strip():
        raise PresenceError("set_by", "must say which feed this is")
    check_text("set_by", set_by, MAX_SET_BY)
    values = {
        "state": state_.value,
        "starts_at": starts_at,
        "until": until,
        "note_for_callers": clean_text(note_for_callers, MAX_NOTE_FOR_CALLERS),
        "internal_note": clean_text(internal_note, MAX_INTERNAL_NOTE),
    }

    def find() -> Any:
        e = m.AvailabilityEntry
        return select(e).where(
            e.employee_id == employee_id, e.source == source_.value, e.external_id == external_id
        )

    row = (await session.scalars(find())).one_or_none()
    if row is not None:
        same = all(getattr(row, k) == v for k, v in values.items())
        resurrect = row.cancelled_at is not None and row.cancelled_by == set_by
        if (same and not resurrect) or (row.cancelled_at is not None and not resurrect):
            return of_row(Entry, row), "unchanged"
    revision = await m.bump_revision(session, m.PRESENCE)
    await _require_employee(session, employee_id)
    # Again under the revision lock: another sync of the same feed may have won the race.
    row = (await session.scalars(find().execution_options(populate_existing=True))).one_or_none()
    if row is None:
        row = m.AvailabilityEntry(
            employee_id=employee_id,
            source=source_.value,
            external_id=external_id,
            set_by=set_by,
            created_at=at,
            revision=revision,
            **values,
        )
        session.add(row)
        await session.flush()
        _audit(
            session,
            row,
            "created",
            set_by,
            at,
            state=row.state,
            starts_at=_iso(starts_at),
            until=_iso(until),
            external_id=external_id,
        )
        await session.flush()
        return of_row(Entry, row), "created"
    before = {k: getattr(row, k) for k in values}
    for k, v in values.items():
        setattr(row, k, v)
    restored = row.cancelled_at is not None
    row.cancelled_at = None
    row.cancelled_by = None
    row.revision = revision
    changes = {
        k: [
            _iso(before[k]) if isinstance(before[k], datetime) else before[k],
            _iso(v) if isinstance(v, datetime) else v,
        ]
        for k, v in values.items()
        if before[k] != v
    }
    _audit(session, row, "updated", set_by, at, changes=changes, restored=restored)
    await session.flush()
    return of_row(Entry, row), "updated"


async def cancel_missing_external(
    session: AsyncSession,
    employee_id: str,
    source: str | Source,
    keep_ids: Collection[str],
    *,
    actor: str,
    window: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> list[Entry]:
    """Cancel this feed's entries for the employee that the feed no longer lists.

    Only entries that have not ended are touched (history stays as it was); with `window`, only
    those overlapping it (a feed read for the next 30 days says nothing about later events).
    """
    at = _now(now)
    source_ = parse_source(source)
    if window is not None:
        require_aware("window", window[0])
        require_aware("window", window[1])
    e = m.AvailabilityEntry
    query = select(e).where(
        e.employee_id == employee_id,
        e.source == source_.value,
        e.external_id.is_not(None),
        e.cancelled_at.is_(None),
        or_(e.until.is_(None), e.until > at),
    )
    if window is not None:
        query = query.where(e.starts_at < window[1], or_(e.until.is_(None), e.until > window[0]))
    keep = set(keep_ids)
    stale = [r for r in (await session.scalars(query)).all() if r.external_id not in keep]
    if not stale:
        return []
    revision = await m.bump_revision(session, m.PRESENCE)
    out = []
    for row in stale:
        row.cancelled_at = at
        row.cancelled_by = actor
        row.revision = revision
        _audit(session, row, "cancelled", actor, at, reason="missing from feed")
        out.append(of_row(Entry, row))
    await session.flush()
    return out


# --- one transaction per change ------------------------------------------------------------


def _one_transaction(
    change: Callable[Concatenate[AsyncSession, P], Awaitable[Entry]],
) -> Callable[Concatenate[PresenceStore, P], Awaitable[Entry]]:
    """`change` as a PresenceStore method: its own transaction, then the cache is told."""

    async def run(self: PresenceStore, /, *args: P.args, **kwargs: P.kwargs) -> Entry:
        async with self.sessions.begin() as session:
            entry = await change(session, *args, **kwargs)
        if self.cache is not None:
            await self.cache.invalidate(entry.employee_id)
        return entry

    return run


class PresenceStore:
    """Availability changes for the web, REST and phone code: each call is one transaction, and
    the cache (if given) sees the change before the call returns."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache: PresenceCache | None = None
    ) -> None:
        self.sessions = sessions
        self.cache = cache

    set_availability = _one_transaction(set_availability)
    cancel_entry = _one_transaction(cancel_entry)
