"""The availability precedence rule and entry validation (pure: no database, no clock)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaihde.presence.model import (
    Entry,
    PresenceError,
    Source,
    State,
    find_overlap,
    resolve,
    superseded,
    validate_new_entry,
)

DAY = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


_ids = itertools.count(1)


def entry(
    state: State,
    source: Source,
    *,
    starts: datetime,
    until: datetime | None = None,
    created: datetime | None = None,
    cancelled: datetime | None = None,
    note: str = "",
) -> Entry:
    return Entry(
        id=next(_ids),
        employee_id="anna",
        state=state,
        starts_at=starts,
        until=until,
        note_for_callers=note,
        internal_note="",
        source=source,
        set_by="calendar:work" if source is Source.CALENDAR else "anna",
        created_at=created or starts,
        cancelled_at=cancelled,
    )


# --- precedence ----------------------------------------------------------------------------


def test_no_entries_is_available():
    a = resolve("anna", [], now=at(10))
    assert a.state is State.AVAILABLE and a.source is None and a.entry_id is None
    assert a.explanation == "no entries" and a.next_change is None and a.reachable


def test_human_after_calendar_start_wins():
    # The meeting began at 10:00; at 10:15 Anna says she is available: she came back early.
    meeting = entry(State.MEETING, Source.CALENDAR, starts=at(10), until=at(11), created=at(8))
    back = entry(State.AVAILABLE, Source.MANUAL, starts=at(10, 15))
    a = resolve("anna", [meeting, back], now=at(10, 30))
    assert a.state is State.AVAILABLE and a.entry_id == back.id
    assert "overrides meeting (calendar" in a.explanation
    assert "latest statement wins" in a.explanation


def test_calendar_starting_later_wins_over_earlier_manual():
    available = entry(State.AVAILABLE, Source.MANUAL, starts=at(9))
    meeting = entry(State.MEETING, Source.CALENDAR, starts=at(14), until=at(15), created=at(7))
    before = resolve("anna", [available, meeting], now=at(13, 59))
    assert before.state is State.AVAILABLE and before.next_change == at(14)
    during = resolve("anna", [available, meeting], now=at(14, 30))
    assert during.state is State.MEETING and during.source is Source.CALENDAR
    assert during.until == at(15) and during.next_change == at(15)
    # ...and when the meeting ends, the manual entry is what is left.
    after = resolve("anna", [available, meeting], now=at(15))
    assert after.state is State.AVAILABLE and after.entry_id == available.id


def test_scheduled_vacation_next_week_is_not_active_but_is_next_change():
    vacation = entry(
        State.VACATION, Source.MANUAL, starts=at(0, days=7), until=at(0, days=14), created=at(9)
    )
    a = resolve("anna", [vacation], now=at(10))
    assert a.state is State.AVAILABLE and a.next_change == at(0, days=7)
    on_holiday = resolve("anna", [vacation], now=at(12, days=8))
    assert on_holiday.state is State.VACATION and on_holiday.next_change == at(0, days=14)


def test_until_passing_flips_back():
    lunch = entry(State.AWAY, Source.PHONE, starts=at(11), until=at(11, 30), note="lounaalla")
    during = resolve("anna", [lunch], now=at(11, 29, 0))
    assert during.state is State.AWAY and during.note_for_callers == "lounaalla"
    assert resolve("anna", [lunch], now=at(11, 30)).state is State.AVAILABLE


def test_cancelled_entries_are_ignored():
    sick = entry(State.SICK, Source.OPERATOR, starts=at(8), cancelled=at(9))
    assert resolve("anna", [sick], now=at(10)).state is State.AVAILABLE


@pytest.mark.parametrize(
    ("winner", "loser"),
    [
        (Source.OPERATOR, Source.MANUAL),
        (Source.MANUAL, Source.PHONE),
        (Source.PHONE, Source.CALENDAR),
        (Source.CALENDAR, Source.DEVICE),
        (Source.OPERATOR, Source.CALENDAR),
    ],
)
def test_ties_go_to_the_more_trusted_source(winner, loser):
    a = entry(State.BUSY, winner, starts=at(10))
    b = entry(State.MEETING, loser, starts=at(10))
    for order in ([a, b], [b, a]):
        assert resolve("anna", order, now=at(10, 5)).source is winner


def test_exact_tie_is_decided_by_entry_id_not_by_order():
    a = entry(State.BUSY, Source.MANUAL, starts=at(10))
    b = entry(State.AWAY, Source.MANUAL, starts=at(10))
    assert resolve("anna", [a, b], now=at(10)).entry_id == b.id
    assert resolve("anna", [b, a], now=at(10)).entry_id == b.id


def test_on_call_overlay_turns_available_and_busy_into_on_call():
    a = resolve("anna", [], now=at(10), on_call=True)
    assert a.state is State.ON_CALL and a.on_call and "phone in use" in a.explanation
    busy = entry(State.BUSY, Source.MANUAL, starts=at(9))
    b = resolve("anna", [busy], now=at(10), on_call=True)
    assert b.state is State.ON_CALL and b.entry_id == busy.id
    assert "underlying busy" in b.explanation


def test_on_call_is_only_a_flag_during_absences():
    meeting = entry(State.MEETING, Source.CALENDAR, starts=at(9), until=at(11))
    a = resolve("anna", [meeting], now=at(10), on_call=True)
    assert a.state is State.MEETING and a.on_call and "phone in use" in a.explanation
    assert not a.reachable


def test_explanation_times_in_the_given_zone():
    meeting = entry(State.MEETING, Source.CALENDAR, starts=at(11), until=at(12))
    a = resolve("anna", [meeting], now=at(11, 30), tz=ZoneInfo("Europe/Helsinki"))
    assert "since 2025-06-02 14:00 until 2025-06-02 15:00" in a.explanation
    assert "UTC" not in a.explanation
    assert "11:00 UTC" in resolve("anna", [meeting], now=at(11, 30)).explanation


def test_resolve_is_fast_enough_for_every_lookup():
    import time

    entries = [
        entry(State.MEETING, Source.CALENDAR, starts=at(h), until=at(h, 45), created=at(0))
        for h in range(8, 17)
    ] + [entry(State.AVAILABLE, Source.MANUAL, starts=at(8))]
    start = time.perf_counter()
    for _ in range(2000):
        resolve("anna", entries, now=at(12, 30))
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 200e-6  # ~10 µs in practice; generous for slow CI machines


# --- supersede and overlap ----------------------------------------------------------------


def test_new_status_supersedes_open_ended_human_entries_only():
    busy = entry(State.BUSY, Source.MANUAL, starts=at(8))
    by_operator = entry(State.AWAY, Source.OPERATOR, starts=at(9))
    lunch = entry(State.AWAY, Source.PHONE, starts=at(9), until=at(13))  # bounded: resurfaces
    calendar = entry(State.MEETING, Source.CALENDAR, starts=at(9))
    next_week = entry(State.OFF_WORK, Source.MANUAL, starts=at(0, days=7), created=at(8))
    old = superseded(at(10), [busy, by_operator, lunch, calendar, next_week])
    assert {e.id for e in old} == {busy.id, by_operator.id}


def test_overlapping_scheduled_entries_from_the_same_source_clash():
    vacation = entry(
        State.VACATION, Source.MANUAL, starts=at(0, days=7), until=at(0, days=14), created=at(8)
    )
    clash = find_overlap(Source.MANUAL, at(0, days=10), at(0, days=20), [vacation])
    assert clash == vacation
    # Back to back is fine, another source is fine, an immediate status is never a clash.
    assert find_overlap(Source.MANUAL, at(0, days=14), at(0, days=20), [vacation]) is None
    assert find_overlap(Source.OPERATOR, at(0, days=10), None, [vacation]) is None
    busy_now = entry(State.BUSY, Source.MANUAL, starts=at(8))
    assert find_overlap(Source.MANUAL, at(0, days=10), at(0, days=20), [busy_now]) is None


# --- validation ----------------------------------------------------------------------------


def valid(**overrides):
    args = {"state": "meeting", "source": "manual", "set_by": "anna", "now": at(10)}
    args.update(overrides)
    return validate_new_entry(**args)


def field_of(**overrides) -> str:
    with pytest.raises(PresenceError) as err:
        valid(**overrides)
    assert err.value.message and str(err.value).startswith(err.value.field)
    return err.value.field


def test_valid_entry_passes():
    valid(until=at(11), note_for_callers="Palaverissa 11 asti", internal_note="rivi 1\nrivi 2")
    valid(starts_at=at(0, days=7), until=at(0, days=14), state=State.VACATION)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"state": "lunch"}, "state"),
        ({"state": ""}, "state"),
        ({"source": "email"}, "source"),
        ({"until": at(9)}, "until"),  # in the past
        ({"until": at(10)}, "until"),  # not after now
        ({"starts_at": at(12), "until": at(11)}, "until"),  # before its start
        ({"starts_at": at(12), "until": at(12)}, "until"),
        ({"starts_at": at(0, days=800)}, "starts_at"),
        ({"until": at(0, days=800)}, "until"),
        ({"until": datetime(2025, 6, 2, 11, 0)}, "until"),  # naive
        ({"starts_at": datetime(2025, 6, 3, 11, 0)}, "starts_at"),
        ({"now": datetime(2025, 6, 2, 10, 0)}, "now"),
        ({"note_for_callers": "x" * 201}, "note_for_callers"),
        ({"note_for_callers": "rivi\nrivi"}, "note_for_callers"),
        ({"note_for_callers": "bell\x07"}, "note_for_callers"),
        ({"internal_note": "x" * 1001}, "internal_note"),
        ({"internal_note": "nul\x00"}, "internal_note"),
        ({"set_by": ""}, "set_by"),
        ({"set_by": "   "}, "set_by"),
    ],
)
def test_bad_input_names_the_field(overrides, field):
    assert field_of(**overrides) == field


def test_messages_are_plain_words():
    with pytest.raises(PresenceError) as err:
        valid(state="lunch")
    assert "unknown state 'lunch'" in str(err.value) and "away" in str(err.value)
    with pytest.raises(PresenceError) as err:
        valid(until=at(9))
    assert str(err.value) == "until: is already in the past"
