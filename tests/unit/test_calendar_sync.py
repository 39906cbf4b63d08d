"""plan_sync: create/update/cancel against stored entries, history kept, idempotence, and
failed feeds cancelling nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vaihde.calendar import (
    BusyPeriod,
    CalendarError,
    StoredCalendarEntry,
    SyncPlan,
    parse_busy,
    plan_sync,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "calendars"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def period(external_id: str, start: datetime, hours: float = 1, **kw: str) -> BusyPeriod:
    fields = {"state": "meeting", "note_for_callers": "", "internal_note": "Palaveri"}
    fields.update(kw)
    return BusyPeriod(
        external_id=external_id,
        starts_at=start,
        until=start + timedelta(hours=hours),
        summary_hash=f"h-{fields['internal_note']}",
        **fields,
    )


def stored_from(p: BusyPeriod, entry_id: int) -> StoredCalendarEntry:
    return StoredCalendarEntry(
        entry_id, p.external_id, p.starts_at, p.until, p.state, p.summary_hash
    )


class Store:
    """What the caller does with a plan: cancelled entries leave the active set."""

    def __init__(self) -> None:
        self.entries: dict[int, StoredCalendarEntry] = {}
        self.next_id = 1

    def apply(self, plan: SyncPlan) -> None:
        for p in plan.create:
            self.entries[self.next_id] = stored_from(p, self.next_id)
            self.next_id += 1
        for entry_id, p in plan.update:
            self.entries[entry_id] = stored_from(p, entry_id)
        for entry_id in plan.cancel:
            del self.entries[entry_id]

    def sync(self, fetched: list[BusyPeriod], now: datetime = NOW) -> SyncPlan:
        plan = plan_sync(self.entries.values(), fetched, now=now)
        self.apply(plan)
        return plan


def test_new_periods_are_created_and_a_second_run_is_empty() -> None:
    store = Store()
    fetched = [period("a", NOW + H), period("b", NOW + 2 * H)]
    plan = store.sync(fetched)
    assert plan.create == tuple(fetched) and not plan.update and not plan.cancel
    assert store.sync(fetched).is_empty
    assert plan_sync(store.entries.values(), fetched, now=NOW) == SyncPlan()


def test_removed_event_is_cancelled_but_ended_one_is_kept() -> None:
    store = Store()
    past = period("past", NOW - 3 * H)
    ongoing = period("ongoing", NOW - H, hours=2)
    future = period("future", NOW + H)
    store.sync([past, ongoing, future], now=NOW - 4 * H)
    ids = {e.external_id: i for i, e in store.entries.items()}

    plan = store.sync([])
    assert plan.cancel == (ids["ongoing"], ids["future"])
    assert [e.external_id for e in store.entries.values()] == ["past"]
    assert store.sync([]).is_empty


def test_changed_meeting_time_is_an_update() -> None:
    store = Store()
    store.sync([period("m", NOW + H)])
    (entry_id,) = store.entries
    moved = period("m", NOW + 3 * H)
    plan = store.sync([moved])
    assert plan == SyncPlan(update=((entry_id, moved),))
    assert store.sync([moved]).is_empty


@pytest.mark.parametrize(
    "change",
    [
        {"state": "video_conference"},
        {"internal_note": "Palaveri (siirretty)"},
    ],
)
def test_changed_state_or_text_is_an_update(change: dict[str, str]) -> None:
    store = Store()
    store.sync([period("m", NOW + H)])
    changed = period("m", NOW + H, **change)
    assert [p for _, p in store.sync([changed]).update] == [changed]


def test_history_is_not_rewritten_but_a_revived_entry_is_updated() -> None:
    store = Store()
    store.sync([period("old", NOW - 5 * H), period("back", NOW - 5 * H)], now=NOW - 6 * H)
    ids = {e.external_id: i for i, e in store.entries.items()}
    renamed_in_past = period("old", NOW - 5 * H, internal_note="Toinen nimi")
    extended = period("back", NOW - 5 * H, hours=8)  # now ends in the future
    plan = store.sync([renamed_in_past, extended])
    assert plan == SyncPlan(update=((ids["back"], extended),))


def test_shortened_into_the_past_is_an_update() -> None:
    store = Store()
    store.sync([period("m", NOW - H, hours=3)])
    shortened = period("m", NOW - H, hours=0.5)
    assert store.sync([shortened]).update == ((1, shortened),)


def test_periods_that_already_ended_are_not_created() -> None:
    assert plan_sync([], [period("gone", NOW - 2 * H)], now=NOW).is_empty


def test_entries_outside_the_window_are_left_alone() -> None:
    far = stored_from(period("far", NOW + timedelta(days=90)), 7)
    near = stored_from(period("near", NOW + H), 8)
    window = (NOW - timedelta(days=1), NOW + timedelta(days=60))
    assert plan_sync([far, near], [], now=NOW, window=window).cancel == (8,)
    assert plan_sync([far, near], [], now=NOW).cancel == (7, 8)


def test_duplicate_stored_entries_are_cleaned_up() -> None:
    p = period("m", NOW + H)
    plan = plan_sync([stored_from(p, 3), stored_from(p, 9)], [p], now=NOW)
    assert plan == SyncPlan(cancel=(9,))


def test_naive_stored_times_are_utc() -> None:
    p = period("m", NOW + H)
    naive = replace(
        stored_from(p, 1),
        starts_at=p.starts_at.replace(tzinfo=None),
        until=p.until.replace(tzinfo=None),
    )
    assert plan_sync([naive], [p], now=NOW).is_empty


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        plan_sync([], [period("m", NOW), period("m", NOW + H)], now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_sync([], [], now=NOW.replace(tzinfo=None))


# --- with real feeds ---------------------------------------------------------------------------

WINDOW = (datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 12, 20, tzinfo=UTC))
SYNC_NOW = datetime(2026, 10, 28, 6, 0, tzinfo=UTC)


def outlook(ics: bytes | None = None) -> list[BusyPeriod]:
    ics = ics if ics is not None else (FIXTURES / "outlook_exchange.ics").read_bytes()
    return parse_busy(ics, window_start=WINDOW[0], window_end=WINDOW[1])


def without_event(ics: bytes, summary: bytes) -> bytes:
    at = ics.index(b"SUMMARY:" + summary)
    begin = ics.rindex(b"BEGIN:VEVENT", 0, at)
    end = ics.index(b"END:VEVENT\r\n", at) + len(b"END:VEVENT\r\n")
    return ics[:begin] + ics[end:]


def test_feed_edits_become_a_plan() -> None:
    original = (FIXTURES / "outlook_exchange.ics").read_bytes()
    store = Store()
    first = store.sync(outlook(), now=SYNC_NOW)
    assert len(first.create) == len(store.entries) > 5
    assert store.sync(outlook(), now=SYNC_NOW).is_empty

    # The vacation is deleted; the customer meeting moves an hour later.
    edited = without_event(original, b"Syysloma").replace(
        b"DTSTART;TZID=FLE Standard Time:20261028T130000\r\n"
        b"DTEND;TZID=FLE Standard Time:20261028T140000",
        b"DTSTART;TZID=FLE Standard Time:20261028T140000\r\n"
        b"DTEND;TZID=FLE Standard Time:20261028T150000",
    )
    by_note = {e.entry_id: e for e in store.entries.values()}
    plan = store.sync(outlook(edited), now=SYNC_NOW)
    assert [by_note[i].state for i in plan.cancel] == ["vacation"]
    assert [(p.state, p.starts_at.hour) for _, p in plan.update] == [("video_conference", 12)]
    assert not plan.create
    assert store.sync(outlook(edited), now=SYNC_NOW).is_empty

    # Later on, an event that has already happened disappears from the feed: kept.
    later = SYNC_NOW + timedelta(days=3)
    gone_after_it_ended = without_event(edited, b"Alustava: budjettikatselmus")
    assert store.sync(outlook(gone_after_it_ended), now=later).is_empty


@pytest.mark.parametrize(
    "broken",
    [
        "malformed_truncated.ics",
        "malformed_html_login.ics",
        "malformed_unbalanced.ics",
    ],
)
def test_a_feed_that_cannot_be_read_cancels_nothing(broken: str) -> None:
    """The contract: plan_sync only ever sees a successfully parsed feed."""
    store = Store()
    store.sync(outlook(), now=SYNC_NOW)
    before = dict(store.entries)

    def sync_feed(ics: bytes) -> None:  # what the caller does
        try:
            fetched = outlook(ics)
        except CalendarError:
            return  # keep the previous state
        store.sync(fetched, now=SYNC_NOW)

    sync_feed((FIXTURES / broken).read_bytes())
    assert store.entries == before
