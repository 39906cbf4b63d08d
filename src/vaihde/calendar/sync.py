"""Plan how stored calendar entries follow a freshly parsed feed: what to create, update and
cancel. Pure: the caller reads the store, fetches, parses, and applies the plan.

Only call plan_sync with the result of a *successful* fetch and parse. When fetch_feed or
parse_busy raises CalendarError, skip the sync and keep every stored entry as it is: a feed
that cannot be read says nothing about what was removed from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from vaihde.calendar.ics import BusyPeriod

__all__ = ["StoredCalendarEntry", "SyncPlan", "plan_sync"]


@dataclass(frozen=True, slots=True)
class StoredCalendarEntry:
    """An active (not cancelled) entry that an earlier sync of the same feed created."""

    entry_id: int
    external_id: str
    starts_at: datetime
    until: datetime
    state: str
    summary_hash: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What to do to the store; cancel holds entry ids."""

    create: tuple[BusyPeriod, ...] = ()
    update: tuple[tuple[int, BusyPeriod], ...] = ()
    cancel: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.create or self.update or self.cancel)


def plan_sync(
    stored: Iterable[StoredCalendarEntry],
    fetched: Iterable[BusyPeriod],
    *,
    now: datetime,
    window: tuple[datetime, datetime] | None = None,
) -> SyncPlan:
    """Compare the feed's active stored entries with what parse_busy found now.

    - new in the feed → create, unless it has already ended;
    - same external_id with other times, state or texts → update, unless both the stored
      and the fetched version have ended (history is kept as it was);
    - gone from the feed → cancel, unless the entry has already ended. With ``window`` (the
      one given to parse_busy) entries outside it are left alone: they were not looked at;
    - a second stored entry for one external_id (from an old bug or a race) → cancel.

    Applying the plan and planning again with the same feed gives an empty plan. Stored
    times without a zone (as some databases return them) are taken as UTC.
    """
    now = _aware(now, "now")
    periods: dict[str, BusyPeriod] = {}
    for period in fetched:
        if period.external_id in periods:
            raise ValueError(f"external_id {period.external_id!r} appears twice in the feed")
        periods[period.external_id] = period

    by_id: dict[str, StoredCalendarEntry] = {}
    cancel: list[int] = []
    for entry in sorted(stored, key=lambda e: e.entry_id):
        entry = _normalised(entry)
        if entry.external_id in by_id:
            if entry.until > now:
                cancel.append(entry.entry_id)
        else:
            by_id[entry.external_id] = entry

    create: list[BusyPeriod] = []
    update: list[tuple[int, BusyPeriod]] = []
    for external_id, period in sorted(periods.items(), key=lambda kv: (kv[1].starts_at, kv[0])):
        entry = by_id.get(external_id)
        if entry is None:
            if period.until > now:
                create.append(period)
        elif _differs(entry, period) and (entry.until > now or period.until > now):
            update.append((entry.entry_id, period))

    lo, hi = (_aware(window[0], "window"), _aware(window[1], "window")) if window else (None, None)
    for external_id, entry in by_id.items():
        if external_id in periods or entry.until <= now:
            continue
        if lo is not None and hi is not None and not (entry.starts_at < hi and entry.until > lo):
            continue
        cancel.append(entry.entry_id)

    return SyncPlan(tuple(create), tuple(update), tuple(sorted(cancel)))


def _differs(entry: StoredCalendarEntry, period: BusyPeriod) -> bool:
    return (entry.starts_at, entry.until, entry.state, entry.summary_hash) != (
        period.starts_at,
        period.until,
        period.state,
        period.summary_hash,
    )


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


def _normalised(entry: StoredCalendarEntry) -> StoredCalendarEntry:
    def utc(value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    return StoredCalendarEntry(
        entry.entry_id,
        entry.external_id,
        utc(entry.starts_at),
        utc(entry.until),
        entry.state,
        entry.summary_hash,
    )
