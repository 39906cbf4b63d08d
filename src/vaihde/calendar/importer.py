"""Keeps employees' availability in step with their calendars: fetch each feed on a schedule,
parse it off the event loop, and store its busy periods as `calendar` entries in one transaction.

A feed that cannot be fetched or parsed changes nothing: the previous entries stay as they were
and the error is kept for the operator to see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.calendar.fetch import fetch_feed, mask_source
from vaihde.calendar.ics import CalendarError, parse_calendar
from vaihde.calendar.policy import CalendarPolicy
from vaihde.presence.model import Source
from vaihde.presence.store import cancel_missing_external, upsert_external

log = logging.getLogger("vaihde.calendar")

# Entries of the last day are re-read too, so an event edited while running is updated.
LOOKBACK = timedelta(days=1)
LOOKAHEAD = timedelta(days=60)
SET_BY = "calendar"


@dataclass(slots=True)
class FeedState:
    """What we remember of one employee's feed between syncs."""

    etag: str | None = None
    last_modified: str | None = None
    checked_at: datetime | None = None
    synced_at: datetime | None = None
    error: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncResult:
    employee_id: str
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    not_modified: bool = False
    error: str | None = None


async def sync_calendar(
    sessions: async_sessionmaker[AsyncSession],
    employee_id: str,
    source: str,
    state: FeedState,
    *,
    tz: str,
    policy: CalendarPolicy,
    now: datetime | None = None,
) -> SyncResult:
    """Fetch one employee's feed (if `policy` allows the source) and make their calendar
    entries follow it; a failure keeps the previous entries and is kept in `state`."""
    at = now or datetime.now(UTC)
    state.checked_at = at
    window = (at - LOOKBACK, at + LOOKAHEAD)
    try:
        feed = await fetch_feed(
            source, policy=policy, etag=state.etag, last_modified=state.last_modified
        )
        if feed.not_modified:
            return SyncResult(employee_id, not_modified=True)
        try:
            # Parsing a large feed is CPU work (seconds for thousands of events): off the loop.
            parsed = await asyncio.to_thread(
                parse_calendar, feed.content or b"", window_start=window[0],
                window_end=window[1], tz=tz,
            )
        except CalendarError as exc:
            raise CalendarError(f"{mask_source(source)}: {exc}") from None
    except CalendarError as exc:
        state.error = str(exc)
        log.warning("calendar not synced; previous entries kept",
                    extra={"employee": employee_id, "error": str(exc)})
        return SyncResult(employee_id, error=str(exc))

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    async with sessions() as session, session.begin():
        for period in parsed.periods:
            _, action = await upsert_external(
                session, employee_id, Source.CALENDAR, period.external_id,
                state=period.state, starts_at=period.starts_at, until=period.until,
                set_by=SET_BY, note_for_callers=period.note_for_callers,
                internal_note=period.internal_note, now=at,
            )
            counts[action] += 1
        cancelled = await cancel_missing_external(
            session, employee_id, Source.CALENDAR, [p.external_id for p in parsed.periods],
            actor=SET_BY, window=window, now=at,
        )
    state.etag, state.last_modified = feed.etag, feed.last_modified
    state.synced_at, state.error, state.problems = at, None, parsed.problems
    result = SyncResult(employee_id, counts["created"], counts["updated"], len(cancelled))
    if result.created or result.updated or result.cancelled:
        # "created" would shadow LogRecord.created (KeyError at INFO): say what was created.
        log.info("calendar synced", extra={"employee": employee_id,
                 "source": mask_source(source), "entries_created": result.created,
                 "entries_updated": result.updated, "entries_cancelled": result.cancelled})
    return result


@dataclass
class CalendarScheduler:
    """Syncs every employee's calendar every `interval` seconds, one feed at a time."""

    sessions: async_sessionmaker[AsyncSession]
    feeds: Callable[[], dict[str, str]]  # employee id → source, from every company
    # employee id → the zone of their company: times without a zone in their feed are its.
    tz: Callable[[str], str]
    policy: CalendarPolicy  # checked again at every fetch: the company may predate it
    on_synced: Callable[[str], object] | None = None  # e.g. the presence cache's invalidate
    interval: float = 300.0
    states: dict[str, FeedState] = field(default_factory=dict)

    async def sync_all(self) -> list[SyncResult]:
        results = []
        for employee_id, source in self.feeds().items():
            state = self.states.setdefault(employee_id, FeedState())
            try:
                result = await sync_calendar(
                    self.sessions, employee_id, self.policy.resolve(source), state,
                    tz=self.tz(employee_id), policy=self.policy,
                )
            except Exception as exc:  # a database error for one feed must not stop the others
                log.exception("calendar sync failed", extra={"employee": employee_id})
                state.error = repr(exc)
                continue
            results.append(result)
            if self.on_synced is not None and not result.not_modified and not result.error:
                outcome = self.on_synced(employee_id)
                if asyncio.iscoroutine(outcome):
                    await outcome
        return results

    async def run(self) -> None:
        while True:
            await self.sync_all()
            await asyncio.sleep(self.interval)
