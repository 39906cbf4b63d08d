"""Availability in the database, on SQLite and PostgreSQL: set, supersede, schedule, cancel,
history and audit rows; calendar upserts; bad input writes nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from dbdata import T0, row_counts  # tests/db is on sys.path (no package)
from sqlalchemy import select, update

from vaihde.db import models as m
from vaihde.presence import store
from vaihde.presence.model import PresenceError, Source, State

H = timedelta(hours=1)
DAYS = timedelta(days=1)


async def set_(db, employee="anna", state="busy", **kw):
    kw.setdefault("source", "manual")
    kw.setdefault("set_by", employee)
    kw.setdefault("now", T0)
    async with db.sessions.begin() as s:
        return await store.set_availability(s, employee, state, **kw)


async def availability(db, employee="anna", now=T0, **kw):
    async with db.sessions() as s:
        return await store.get_availability(s, employee, now=now, **kw)


async def audit(db, employee="anna"):
    async with db.sessions() as s:
        return await store.audit_trail(s, employee)


async def test_set_returns_entry_and_resolves(people):
    e = await set_(people, state="meeting", until=T0 + H, note_for_callers=" Palaverissa ")
    assert e.id > 0 and e.state is State.MEETING and e.source is Source.MANUAL
    assert e.starts_at == T0 == e.created_at and e.until == T0 + H
    assert e.note_for_callers == "Palaverissa"
    assert e.starts_at.tzinfo is not None and e.starts_at.utcoffset() == timedelta(0)
    a = await availability(people, now=T0 + H / 2)
    assert a.state is State.MEETING and a.entry_id == e.id and a.until == T0 + H
    assert (await availability(people, now=T0 + H)).state is State.AVAILABLE
    [created] = await audit(people)
    assert created.action == "created" and created.entry_id == e.id and created.actor == "anna"
    assert created.details["state"] == "meeting"


async def test_times_round_trip_as_utc_whatever_zone_they_came_in(people):
    helsinki = timezone(timedelta(hours=3))
    until = datetime(2025, 6, 2, 15, 30, tzinfo=helsinki)
    await set_(people, state="away", until=until)
    async with people.sessions() as s:
        [stored] = await store.history(s, "anna")
    assert stored.until == until and stored.until.tzinfo is not None
    assert stored.until.utcoffset() == timedelta(0)


async def test_new_status_supersedes_open_ended_human_entries(people):
    lunch = await set_(people, state="away", until=T0 + 2 * H, source="phone", set_by="phone")
    busy = await set_(people, state="busy", now=T0 + H / 4)
    back = await set_(
        people, state="available", now=T0 + H / 2, set_by="operator1", source="operator"
    )
    async with people.sessions() as s:
        rows = {e.id: e for e in await store.history(s, "anna")}
    assert rows[busy.id].cancelled_at == T0 + H / 2 and rows[busy.id].cancelled_by == "operator1"
    assert rows[lunch.id].cancelled_at is None  # bounded: it would resurface if `back` ended
    assert rows[back.id].cancelled_at is None
    trail = await audit(people)
    cancelled = [a for a in trail if a.action == "cancelled"]
    assert [(a.entry_id, a.details["reason"], a.details["by"]) for a in cancelled] == [
        (busy.id, "superseded", back.id)
    ]
    assert next(a for a in trail if a.entry_id == back.id).details["superseded"] == [busy.id]
    assert (await availability(people, now=T0 + H)).entry_id == back.id


async def test_scheduled_entry_does_not_supersede_and_becomes_active_later(people):
    busy = await set_(people, state="busy")
    vacation = await set_(people, state="vacation", starts_at=T0 + 7 * DAYS, until=T0 + 14 * DAYS)
    assert vacation.starts_at == T0 + 7 * DAYS and vacation.created_at == T0
    now = await availability(people)
    assert now.state is State.BUSY and now.next_change == T0 + 7 * DAYS
    later = await availability(people, now=T0 + 8 * DAYS)
    assert later.state is State.VACATION and later.entry_id == vacation.id
    assert (await availability(people, now=T0 + 14 * DAYS)).entry_id == busy.id


async def test_calendar_meeting_overrides_earlier_manual_status_then_human_overrides_it(people):
    await set_(people, state="available")
    async with people.sessions.begin() as s:
        _meeting, action = await store.upsert_external(
            s,
            "anna",
            "calendar",
            "uid-1",
            state="meeting",
            starts_at=T0 + 2 * H,
            until=T0 + 3 * H,
            set_by="calendar:work",
            note_for_callers="Asiakastapaaminen",
            now=T0,
        )
    assert action == "created"
    assert (await availability(people, now=T0 + 2 * H)).state is State.MEETING
    await set_(people, state="available", now=T0 + 2 * H + H / 4)
    a = await availability(people, now=T0 + 2 * H + H / 2)
    assert a.state is State.AVAILABLE and "overrides meeting (calendar" in a.explanation


async def test_overlapping_scheduled_entries_are_refused_naming_the_existing_one(people):
    first = await set_(people, state="vacation", starts_at=T0 + 7 * DAYS, until=T0 + 14 * DAYS)
    before = await row_counts(people)
    with pytest.raises(PresenceError) as err:
        await set_(people, state="vacation", starts_at=T0 + 10 * DAYS, until=T0 + 20 * DAYS)
    assert err.value.field == "starts_at" and f"#{first.id} vacation" in err.value.message
    assert await row_counts(people) == before
    # Another source may overlap (precedence decides), and back-to-back is fine.
    await set_(
        people,
        state="sick",
        starts_at=T0 + 10 * DAYS,
        until=T0 + 11 * DAYS,
        source="operator",
        set_by="op",
    )
    await set_(people, state="vacation", starts_at=T0 + 14 * DAYS, until=T0 + 20 * DAYS)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"state": "lunch"}, "state"),
        ({"until": T0 - H}, "until"),
        ({"until": T0}, "until"),
        ({"starts_at": T0 + 2 * H, "until": T0 + H}, "until"),
        ({"starts_at": T0 + 800 * DAYS}, "starts_at"),
        ({"until": datetime(2025, 6, 2, 12, 0)}, "until"),
        ({"note_for_callers": "x" * 201}, "note_for_callers"),
        ({"internal_note": "a\x1bb"}, "internal_note"),
        ({"source": "email"}, "source"),
        ({"employee": "nobody"}, "employee"),
    ],
)
async def test_bad_input_leaves_the_database_unchanged(people, kwargs, field):
    await set_(people, state="busy")
    before = await row_counts(people)
    with pytest.raises(PresenceError) as err:
        await set_(people, **kwargs)
    assert err.value.field == field
    assert await row_counts(people) == before


async def test_deactivated_employee_cannot_be_given_a_status(people):
    async with people.sessions.begin() as s:
        await s.execute(update(m.Employee).where(m.Employee.id == "matti").values(active=False))
    before = await row_counts(people)
    with pytest.raises(PresenceError, match="no longer in the directory"):
        await set_(people, employee="matti")
    assert await row_counts(people) == before


async def test_failure_after_the_checks_rolls_everything_back(people, monkeypatch):
    busy = await set_(people, state="busy")
    before = await row_counts(people)

    def broken_audit(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_audit", broken_audit)
    with pytest.raises(RuntimeError):
        await set_(people, state="available", now=T0 + H)
    assert await row_counts(people) == before
    async with people.sessions() as s:
        [still] = await store.history(s, "anna")
    assert still.id == busy.id and still.cancelled_at is None


async def test_cancel_entry(people):
    e = await set_(people, state="sick", until=T0 + 2 * DAYS)
    async with people.sessions.begin() as s:
        cancelled = await store.cancel_entry(s, e.id, actor="operator1", now=T0 + H)
    assert cancelled.cancelled_at == T0 + H and cancelled.cancelled_by == "operator1"
    assert (await availability(people, now=T0 + 2 * H)).state is State.AVAILABLE
    assert [a.action for a in await audit(people)] == ["cancelled", "created"]
    before = await row_counts(people)
    for entry_id, message in ((e.id, "already cancelled"), (9999, "no entry")):
        with pytest.raises(PresenceError, match=message):
            async with people.sessions.begin() as s:
                await store.cancel_entry(s, entry_id, actor="x", now=T0 + H)
    ended = await set_(people, state="away", until=T0 + 2 * H)
    with pytest.raises(PresenceError, match="already ended"):
        async with people.sessions.begin() as s:
            await store.cancel_entry(s, ended.id, actor="x", now=T0 + 3 * H)
    assert (await row_counts(people))["availability_audit"] == before["availability_audit"] + 1


async def test_history_and_entries_window(people):
    a = await set_(people, state="busy")
    b = await set_(people, state="vacation", starts_at=T0 + 7 * DAYS, until=T0 + 9 * DAYS)
    c = await set_(people, state="available", now=T0 + H)  # supersedes a
    async with people.sessions() as s:
        assert [e.id for e in await store.history(s, "anna")] == [c.id, b.id, a.id]
        assert [e.id for e in await store.history(s, "anna", limit=1)] == [c.id]
        window = await store.entries_for(s, "anna", start=T0 + 6 * DAYS, end=T0 + 8 * DAYS)
        assert [e.id for e in window] == [c.id, b.id]
        with_cancelled = await store.entries_for(
            s, "anna", start=T0, end=T0 + DAYS, include_cancelled=True
        )
        assert {e.id for e in with_cancelled} == {a.id, c.id}
        assert await store.history(s, "matti") == []


async def test_calendar_upsert_update_unchanged_and_missing(people):
    async def upsert(uid, start, end, note="Palaveri", now=T0):
        async with people.sessions.begin() as s:
            return await store.upsert_external(
                s,
                "anna",
                Source.CALENDAR,
                uid,
                state="meeting",
                starts_at=start,
                until=end,
                set_by="calendar:work",
                note_for_callers=note,
                now=now,
            )

    e1, action = await upsert("uid-1", T0 + H, T0 + 2 * H)
    assert action == "created"
    rev = (await row_counts(people))["revision:presence"]
    same, action = await upsert("uid-1", T0 + H, T0 + 2 * H)
    assert action == "unchanged" and same.id == e1.id
    assert (await row_counts(people))["revision:presence"] == rev  # nothing written
    moved, action = await upsert("uid-1", T0 + 3 * H, T0 + 4 * H)
    assert action == "updated" and moved.id == e1.id and moved.starts_at == T0 + 3 * H
    long_title, _ = await upsert("uid-2", T0 + 5 * H, T0 + 6 * H, note="x\ty " * 100)
    assert len(long_title.note_for_callers) == 200 and "\t" not in long_title.note_for_callers

    async with people.sessions.begin() as s:
        gone = await store.cancel_missing_external(
            s, "anna", "calendar", {"uid-2"}, actor="calendar:work", now=T0
        )
    assert [e.id for e in gone] == [e1.id]
    # It comes back if the feed lists it again...
    back, action = await upsert("uid-1", T0 + 3 * H, T0 + 4 * H)
    assert action == "updated" and back.cancelled_at is None
    # ...but an entry a person cancelled stays cancelled.
    async with people.sessions.begin() as s:
        await store.cancel_entry(s, back.id, actor="anna", now=T0)
    kept, action = await upsert("uid-1", T0 + 3 * H, T0 + 4 * H)
    assert action == "unchanged" and kept.cancelled_by == "anna"
    actions = [a.action for a in reversed(await audit(people))]
    assert actions == ["created", "updated", "created", "cancelled", "updated", "cancelled"]


async def test_cancel_missing_respects_window_and_history(people):
    async with people.sessions.begin() as s:
        _past, _ = await store.upsert_external(
            s,
            "anna",
            "calendar",
            "past",
            state="meeting",
            starts_at=T0 - 3 * H,
            until=T0 - 2 * H,
            set_by="calendar:work",
            now=T0,
        )
        _far, _ = await store.upsert_external(
            s,
            "anna",
            "calendar",
            "far",
            state="meeting",
            starts_at=T0 + 60 * DAYS,
            until=T0 + 60 * DAYS + H,
            set_by="calendar:work",
            now=T0,
        )
    async with people.sessions.begin() as s:
        gone = await store.cancel_missing_external(
            s,
            "anna",
            "calendar",
            set(),
            actor="calendar:work",
            window=(T0, T0 + 30 * DAYS),
            now=T0,
        )
    assert gone == []  # the past one is history, the far one is outside what the feed covered


async def test_external_bad_input(people):
    before = await row_counts(people)
    for kwargs, field in (
        ({"until": T0}, "until"),
        ({"state": "lunch"}, "state"),
        ({"starts_at": datetime(2025, 6, 2, 12)}, "starts_at"),
    ):
        args = {"state": "meeting", "starts_at": T0, "until": T0 + H, "set_by": "calendar:x"}
        args.update(kwargs)
        with pytest.raises(PresenceError) as err:
            async with people.sessions.begin() as s:
                await store.upsert_external(s, "anna", "calendar", "u", now=T0, **args)
        assert err.value.field == field
    with pytest.raises(PresenceError, match="no employee"):
        async with people.sessions.begin() as s:
            await store.upsert_external(
                s,
                "nobody",
                "calendar",
                "u",
                state="meeting",
                starts_at=T0,
                until=T0 + H,
                set_by="calendar:x",
                now=T0,
            )
    assert await row_counts(people) == before


async def test_revision_and_entry_revision_move_together(people):
    e = await set_(people)
    async with people.sessions() as s:
        revs = await m.current_revisions(s)
        row = (await s.scalars(select(m.AvailabilityEntry))).one()
    assert row.id == e.id and row.revision == revs["presence"] >= 1
    async with people.sessions() as s:
        assert [x.id for x in await store.changed_entries(s, after_revision=0)] == [e.id]
        assert await store.changed_entries(s, after_revision=row.revision) == []


async def test_concurrent_overlapping_schedules_one_wins(people):
    """Two writers at once: the revision lock makes the second see the first's entry."""

    async def schedule(by):
        try:
            await set_(
                people, state="vacation", starts_at=T0 + 7 * DAYS, until=T0 + 14 * DAYS, set_by=by
            )
            return "ok"
        except PresenceError:
            return "refused"

    results = await asyncio.gather(*(schedule(f"w{i}") for i in range(4)))
    assert sorted(results) == ["ok", "refused", "refused", "refused"]
    async with people.sessions() as s:
        assert len(await store.history(s, "anna")) == 1


async def test_presence_store_wrapper(people):
    ps = store.PresenceStore(people.sessions)
    e = await ps.set_availability("anna", "away", source="phone", set_by="phone", now=T0)
    async with people.sessions() as s:
        assert (await store.get_availability(s, "anna", now=T0)).entry_id == e.id
    await ps.cancel_entry(e.id, actor="anna", now=T0)
    async with people.sessions() as s:
        assert [x.cancelled_by for x in await store.history(s, "anna")] == ["anna"]
