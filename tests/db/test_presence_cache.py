"""PresenceCache on SQLite and PostgreSQL: loads, sees its own writes at once, picks up other
processes' writes through the revision counters, overlays the phone being in use, notifies."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from dbdata import T0  # tests/db is on sys.path (no package)

from vaihde.db import open_database
from vaihde.directory import store as directory
from vaihde.presence import store
from vaihde.presence.cache import PresenceCache
from vaihde.presence.model import State

H = timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


async def set_(db, employee="anna", state="busy", **kw):
    kw.setdefault("source", "manual")
    kw.setdefault("set_by", employee)
    kw.setdefault("now", T0)
    async with db.sessions.begin() as s:
        return await store.set_availability(s, employee, state, **kw)


async def test_load_and_lookup(people):
    await set_(people, state="meeting", until=T0 + H, note_for_callers="Palaverissa")
    await set_(people, "matti", state="vacation", starts_at=T0 + 24 * H, until=T0 + 48 * H)
    clock = Clock()
    cache = PresenceCache(people.sessions, clock=clock)
    await cache.load()
    assert cache.employees == {"anna", "matti", "asa"}
    a = cache.lookup("anna")
    assert a.state is State.MEETING and a.note_for_callers == "Palaverissa"
    assert cache.lookup("matti").next_change == T0 + 24 * H
    assert cache.lookup("matti", T0 + 30 * H).state is State.VACATION
    assert cache.lookup("asa").explanation == "no entries"
    assert cache.lookup("not-yet-synced").state is State.AVAILABLE
    assert set(cache.snapshot()) == {"anna", "matti", "asa"}
    clock.now = T0 + H
    assert cache.lookup("anna").state is State.AVAILABLE


async def test_own_writes_are_visible_immediately(people):
    cache = PresenceCache(people.sessions, clock=lambda: T0)
    await cache.load()
    ps = store.PresenceStore(people.sessions, cache)
    await ps.set_availability("anna", "away", source="phone", set_by="phone", now=T0)
    assert cache.lookup("anna").state is State.AWAY
    entry = cache.lookup("anna").entry_id
    assert entry is not None
    await ps.cancel_entry(entry, actor="anna", now=T0)
    assert cache.lookup("anna").state is State.AVAILABLE


async def test_refresh_picks_up_another_process_writes(people):
    cache = PresenceCache(people.sessions, clock=lambda: T0)
    await cache.load()
    # Another process: its own engine and connections.
    other = open_database(people.url)
    try:
        e = await set_(other, state="sick", set_by="operator1", source="operator")
        assert cache.lookup("anna").state is State.AVAILABLE  # not polled yet
        assert await cache.refresh() == {"anna"}
        assert cache.lookup("anna").state is State.SICK
        assert await cache.refresh() == set()  # nothing new
        async with other.sessions.begin() as s:
            await store.cancel_entry(s, e.id, actor="operator1", now=T0)
        await cache.refresh()
        assert cache.lookup("anna").state is State.AVAILABLE and cache.entries("anna") == []
    finally:
        await other.close()


async def test_directory_changes_reach_the_cache(people):
    from dbdata import DIRECTORY

    cache = PresenceCache(people.sessions, clock=lambda: T0)
    await cache.load()
    await set_(people, "asa", state="busy")
    without_asa = type(DIRECTORY)(employees=DIRECTORY.employees[:2], teams=DIRECTORY.teams[:1])
    async with people.sessions.begin() as s:
        await directory.sync_directory(s, without_asa, now=T0)
    changed = await cache.refresh()
    assert "asa" in changed and cache.employees == {"anna", "matti"}
    assert cache.lookup("asa").state is State.AVAILABLE  # unknown now: no entries
    async with people.sessions.begin() as s:
        await directory.sync_directory(s, DIRECTORY, now=T0)
    await cache.refresh()
    assert cache.lookup("asa").state is State.BUSY  # back, with her entries


async def test_on_call_overlay_and_subscribers(people):
    clock = Clock()
    cache = PresenceCache(people.sessions, clock=clock)
    await cache.load()
    seen = []
    unsubscribe = cache.subscribe(lambda a: seen.append((a.employee_id, a.state)))
    cache.set_on_call("anna", True)
    assert cache.lookup("anna").state is State.ON_CALL
    cache.set_on_call("anna", True)  # no change, no notification
    cache.set_on_call("anna", False)
    assert seen == [("anna", State.ON_CALL), ("anna", State.AVAILABLE)]
    ps = store.PresenceStore(people.sessions, cache)
    await ps.set_availability("matti", "away", until=T0 + H, source="phone", set_by="p", now=T0)
    assert seen[-1] == ("matti", State.AWAY)
    # Time alone changes things: tick() notices when `run` would.
    clock.now = T0 + H
    cache.tick()
    assert seen[-1] == ("matti", State.AVAILABLE)
    unsubscribe()
    cache.set_on_call("anna", True)
    assert seen[-1] == ("matti", State.AVAILABLE)


async def test_a_broken_subscriber_does_not_stop_others(people, caplog):
    cache = PresenceCache(people.sessions, clock=lambda: T0)
    await cache.load()
    seen = []

    def broken(_):
        raise ValueError("console went away")

    cache.subscribe(broken)
    cache.subscribe(lambda a: seen.append(a.state))
    cache.set_on_call("anna", True)
    assert seen == [State.ON_CALL] and "presence subscriber failed" in caplog.text


async def test_run_polls_until_cancelled(people):
    cache = PresenceCache(people.sessions, clock=lambda: T0)
    task = asyncio.create_task(cache.run(poll_interval=0.02))
    try:
        for _ in range(100):
            if cache.loaded:
                break
            await asyncio.sleep(0.01)
        await set_(people, state="meeting", until=T0 + H)
        for _ in range(100):
            if cache.lookup("anna").state is State.MEETING:
                break
            await asyncio.sleep(0.01)
        assert cache.lookup("anna").state is State.MEETING
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


async def test_lookup_is_microseconds(people):
    for hour in range(8):
        await set_(
            people,
            state="meeting",
            starts_at=T0 + hour * H,
            until=T0 + hour * H + H / 2,
            source="operator",
            set_by="op",
        )
    cache = PresenceCache(people.sessions, clock=lambda: T0)
    await cache.load()
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        cache.lookup("anna")
        times.append(time.perf_counter() - start)
    times.sort()
    assert times[int(len(times) * 0.99)] < 0.001


async def test_each_employee_s_times_are_explained_in_their_own_company_s_zone(people):
    """Several companies: the cache explains an employee's availability in the zone of their
    own company (`zone`), not the service's first company's (`tz`)."""
    from zoneinfo import ZoneInfo

    helsinki, new_york = ZoneInfo("Europe/Helsinki"), ZoneInfo("America/New_York")
    await set_(people, state="meeting", until=T0 + H)
    await set_(people, "matti", state="meeting", until=T0 + H)
    cache = PresenceCache(people.sessions, clock=lambda: T0, tz=helsinki,
                          zone=lambda eid: new_york if eid == "matti" else helsinki)
    await cache.load()
    at = (T0 + H).astimezone(new_york).strftime("%Y-%m-%d %H:%M")
    assert f"until {at}" in cache.lookup("matti").explanation
    at = (T0 + H).astimezone(helsinki).strftime("%Y-%m-%d %H:%M")
    assert f"until {at}" in cache.lookup("anna").explanation
    assert cache.zone_of("matti") is new_york and cache.zone_of("anna") is helsinki
