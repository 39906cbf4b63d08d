"""Everyone's availability in memory for routing and the console: `lookup` is a dict access and
`resolve` (microseconds); `run` re-reads what changed whenever the revision counters move — told
at commit by PostgreSQL (a vaihde.db.changes watch) or found by polling them (SQLite).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.db import models as m
from vaihde.db.changes import Watch
from vaihde.db.clock import utcnow as _utcnow
from vaihde.jobs import cancel_all
from vaihde.presence.model import Availability, Entry, resolve
from vaihde.presence.store import active_entries, changed_entries, not_over
from vaihde.records import of_row

log = logging.getLogger("vaihde.presence")

# Entries that ended longer ago than this are of no use to a lookup.
KEEP = timedelta(hours=1)

Subscriber = Callable[[Availability], None]
# How often time's own changes (a meeting that ended) are told to subscribers while re-reads wait
# for a watch: in memory only, no query.
TICK_S = 0.1




class PresenceCache:
    """In-memory availability of active employees, kept fresh from the database.

    `load()` (or the first `refresh()`) fills it; `run()` keeps polling. After a local write call
    `await invalidate(employee_id)` so that the write is visible at once. `set_on_call` feeds the
    phone-in-use overlay (AMI device state). Subscribers get the new Availability whenever what
    `lookup` returns changes (a write, a refresh, the overlay, or a scheduled time passing while
    `run` is running).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, tz: tzinfo = UTC,
                 clock: Callable[[], datetime] = _utcnow,
                 zone: Callable[[str], tzinfo] | None = None) -> None:
        self._sessions = sessions
        self.tz = tz
        # Each employee's own company's zone (several companies), for the explanation's times;
        # None: `tz` for everyone.
        self.zone = zone
        self._clock = clock
        self._entries: dict[str, dict[int, Entry]] = {}
        self._employees: frozenset[str] = frozenset()
        self._on_call: set[str] = set()
        self._presence_rev = -1
        self._directory_rev = -1
        self._subscribers: list[Subscriber] = []
        self._last: dict[str, Availability] = {}  # what subscribers were last told
        self._due: dict[str, datetime] = {}  # when an employee's availability changes by itself
        self.loaded = False

    # --- reading ------------------------------------------------------------------------

    def lookup(self, employee_id: str, now: datetime | None = None) -> Availability:
        """The employee's availability now (synchronous; no I/O). An id the cache does not know
        (not in the directory yet) resolves like an employee without entries: available."""
        entries = self._entries.get(employee_id)
        return resolve(employee_id, entries.values() if entries else (), now=now or self._clock(),
                       on_call=employee_id in self._on_call, tz=self.zone_of(employee_id))

    def zone_of(self, employee_id: str) -> tzinfo:
        """The time zone of the employee's company (the service's first, by default)."""
        return self.zone(employee_id) if self.zone is not None else self.tz

    def snapshot(self, now: datetime | None = None) -> dict[str, Availability]:
        """Every active employee's availability at one instant (for the console)."""
        at = now or self._clock()
        return {eid: self.lookup(eid, at) for eid in sorted(self._employees)}

    @property
    def employees(self) -> frozenset[str]:
        return self._employees

    def entries(self, employee_id: str) -> list[Entry]:
        """The cached entries (not cancelled, not long over), by start time."""
        return sorted(self._entries.get(employee_id, {}).values(), key=lambda e: e.starts_at)

    # --- overlay and subscribers --------------------------------------------------------

    def set_on_call(self, employee_id: str, on_call: bool) -> None:
        if on_call == (employee_id in self._on_call):
            return
        if on_call:
            self._on_call.add(employee_id)
        else:
            self._on_call.discard(employee_id)
        self._notify((employee_id,))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(availability)` on every change; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, employee_ids: Iterable[str]) -> None:
        now = self._clock()
        for eid in employee_ids:
            current = self.lookup(eid, now)
            if current.next_change is not None:
                self._due[eid] = current.next_change
            else:
                self._due.pop(eid, None)
            if self._last.get(eid) == current:
                continue
            self._last[eid] = current
            for callback in list(self._subscribers):
                try:
                    callback(current)
                except Exception:
                    # One broken subscriber must not stop the others or the cache.
                    log.exception("presence subscriber failed", extra={"employee": eid})

    def tick(self, now: datetime | None = None) -> None:
        """Tell subscribers about changes that came by time alone (a meeting ended)."""
        at = now or self._clock()
        due = [eid for eid, t in self._due.items() if t <= at]
        if due:
            self._notify(due)

    # --- loading ------------------------------------------------------------------------

    def _put(self, entry: Entry, horizon: datetime) -> None:
        bucket = self._entries.setdefault(entry.employee_id, {})
        if entry.cancelled_at is not None or (entry.until is not None and entry.until <= horizon):
            bucket.pop(entry.id, None)
        else:
            bucket[entry.id] = entry
        if not bucket:
            del self._entries[entry.employee_id]

    async def _load_employees(self, session: AsyncSession) -> None:
        ids = await session.scalars(select(m.Employee.id).where(m.Employee.active.is_(True)))
        self._employees = frozenset(ids.all())

    async def load(self) -> None:
        """Read everything afresh."""
        now = self._clock()
        async with self._sessions() as session:
            # Counters first: rows committed meanwhile are read now and again next time, never
            # missed.
            revisions = await m.current_revisions(session)
            await self._load_employees(session)
            entries = await active_entries(session, since=now - KEEP)
        before = set(self._entries)
        self._entries = {}
        for entry in entries:
            if entry.employee_id in self._employees:
                self._put(entry, now - KEEP)
        self._presence_rev = revisions[m.PRESENCE]
        self._directory_rev = revisions[m.DIRECTORY]
        self.loaded = True
        self._notify(before | set(self._entries) | set(self._last))

    async def refresh(self) -> set[str]:
        """Reload what changed since the last load or refresh; returns the employees touched."""
        if not self.loaded:
            await self.load()
            return set(self._employees)
        now = self._clock()
        horizon = now - KEEP
        changed: set[str] = set()
        async with self._sessions() as session:
            revisions = await m.current_revisions(session)
            directory_changed = revisions[m.DIRECTORY] != self._directory_rev
            if directory_changed:
                old = self._employees
                await self._load_employees(session)
                changed |= old ^ self._employees
            rows: list[Entry] = []
            if revisions[m.PRESENCE] != self._presence_rev:
                rows = await changed_entries(session, after_revision=self._presence_rev)
            if directory_changed:
                # Reactivated employees: their entries were dropped while they were inactive.
                back = self._employees - set(self._entries)
                if back & changed:
                    rows += await self._entries_of(session, back & changed, horizon)
        for eid in list(self._entries):
            if eid not in self._employees:
                del self._entries[eid]
        for entry in rows:
            if entry.employee_id in self._employees:
                self._put(entry, horizon)
                changed.add(entry.employee_id)
        self._prune(horizon)
        self._presence_rev = revisions[m.PRESENCE]
        self._directory_rev = revisions[m.DIRECTORY]
        if changed:
            self._notify(changed)
        return changed

    async def _entries_of(
        self, session: AsyncSession, employee_ids: Collection[str], horizon: datetime
    ) -> list[Entry]:
        e = m.AvailabilityEntry
        rows = await session.scalars(select(e).where(e.employee_id.in_(employee_ids),
                                                     *not_over(horizon)))
        return [of_row(Entry, r) for r in rows.all()]

    def _prune(self, horizon: datetime) -> None:
        for eid in list(self._entries):
            bucket = self._entries[eid]
            for entry_id in [i for i, e in bucket.items() if e.until and e.until <= horizon]:
                del bucket[entry_id]
            if not bucket:
                del self._entries[eid]

    async def invalidate(self, employee_id: str) -> None:
        """Re-read one employee's entries now (after a write by this process)."""
        now = self._clock()
        async with self._sessions() as session:
            entries = await self._entries_of(session, {employee_id}, now - KEEP)
            if employee_id not in self._employees:
                await self._load_employees(session)
        self._entries.pop(employee_id, None)
        if employee_id in self._employees:
            for entry in entries:
                self._put(entry, now - KEEP)
        self._notify((employee_id,))

    async def run(
        self, poll_interval: float = 1.0, *, watch: Watch | None = None, tick_s: float = TICK_S
    ) -> None:
        """Re-read changes until cancelled: every `poll_interval`, or with a `watch` whenever it
        wakes (a change committed anywhere; it polls by itself while notifications do not
        flow), then time's own changes are told every `tick_s`. A database outage is logged and
        retried; lookups keep answering from what was loaded."""
        if watch is None:
            await self._poll(poll_interval, None)
            return
        ticker = asyncio.get_running_loop().create_task(self._ticks(tick_s))
        try:
            await self._poll(poll_interval, watch)
        finally:
            await cancel_all([ticker])

    async def _ticks(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.tick()

    async def _poll(self, poll_interval: float, watch: Watch | None) -> None:
        failing = False
        while True:
            try:
                await self.refresh()
                if failing:
                    log.info("presence database reachable again")
                failing = False
            except Exception:
                if not failing:
                    log.exception("presence refresh failed; serving cached availability")
                failing = True
            self.tick()
            if watch is None:
                await asyncio.sleep(poll_interval)
            else:
                await watch.wait(poll_interval)
