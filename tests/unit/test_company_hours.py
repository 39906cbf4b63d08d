"""Opening hours: open or closed at a moment, which rule decided, and when that changes."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaihde.company import parse_company
from vaihde.company.hours import day_rule, is_open, open_now
from vaihde.company.schema import OpeningHours

HELSINKI = ZoneInfo("Europe/Helsinki")
WEEK = """\
  mon-thu: 08:00-16:30
  fri: 08:00-15:00
  sat: closed
  sun: closed
  holidays:
    2026-12-25..2026-12-26: Joulu
    2027-01-01: Uudenvuodenpäivä
  exceptions:
    2026-12-24: {hours: 08:00-12:00, name: Jouluaatto}
"""


def opening_hours(lines: str = WEEK) -> OpeningHours:
    text = (
        "company: {name: Demo Oy}\n"
        "numbers: {'+358201234567': {menu: main}}\n"
        "hours:\n" + lines + "  closed_action: {operator: true}\n"
        "menus: {main: {prompt: Paina}}\n"
        "teams: {ops: {name: Vaihde, kind: operators, members: [a]}}\n"
        "employees: {a: {name: Anna, devices: [{desk: PJSIP/a}]}}\n"
    )
    return parse_company(text, "c.yaml").hours


def hki(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=HELSINKI)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def elapsed(start: datetime, end: datetime | None) -> timedelta:
    # Python subtracts two datetimes of the same zone by wall clock: real time needs UTC.
    assert end is not None
    return end.astimezone(UTC) - start.astimezone(UTC)


@pytest.fixture(scope="module")
def week() -> OpeningHours:
    return opening_hours()


# 2026-11-23 is a Monday.


def test_opening_minute_is_open_closing_minute_is_closed(week):
    before = is_open(week, hki(2026, 11, 23, 7, 59, 59))
    assert not before.open and before.opens_at == hki(2026, 11, 23, 8, 0)
    opening = is_open(week, hki(2026, 11, 23, 8, 0))
    assert opening.open and opening.closes_at == hki(2026, 11, 23, 16, 30)
    assert opening.rule == "mon 08:00-16:30" and opening.kind == "weekly"
    assert is_open(week, hki(2026, 11, 23, 16, 29, 59)).open
    closing = is_open(week, hki(2026, 11, 23, 16, 30))
    assert not closing.open and closing.opens_at == hki(2026, 11, 24, 8, 0)


def test_any_time_zone_is_judged_in_company_time(week):
    # 06:00 UTC is 08:00 in Helsinki in November (UTC+2).
    assert is_open(week, utc(2026, 11, 23, 6, 0)).open
    assert not is_open(week, utc(2026, 11, 23, 5, 59)).open


def test_next_opening_across_a_weekend(week):
    friday_close = is_open(week, hki(2026, 11, 27, 15, 0))
    assert not friday_close.open and friday_close.rule == "fri 08:00-15:00"
    assert friday_close.opens_at == hki(2026, 11, 30, 8, 0)
    saturday = is_open(week, hki(2026, 11, 28, 12, 0))
    assert saturday.rule == "sat closed" and saturday.opens_at == hki(2026, 11, 30, 8, 0)


def test_holiday_is_closed_all_day(week):
    christmas = is_open(week, hki(2026, 12, 25, 10, 0))
    assert not christmas.open
    assert (christmas.kind, christmas.rule) == ("holiday", "holiday Joulu")
    # Fri 25th and Sat 26th holidays, Sunday closed.
    assert christmas.opens_at == hki(2026, 12, 28, 8, 0)


def test_exception_hours(week):
    eve = is_open(week, hki(2026, 12, 24, 11, 59))
    assert eve.open and eve.kind == "exception"
    assert eve.closes_at == hki(2026, 12, 24, 12, 0)
    after = is_open(week, hki(2026, 12, 24, 12, 0))
    assert not after.open and after.rule == "exception Jouluaatto: 08:00-12:00"
    assert after.opens_at == hki(2026, 12, 28, 8, 0)


def test_new_years_holiday_then_weekend(week):
    assert is_open(week, hki(2026, 12, 31, 17, 0)).opens_at == hki(2027, 1, 4, 8, 0)


def test_day_rule_precedence(week):
    assert day_rule(week, date(2026, 12, 25)).kind == "holiday"
    assert day_rule(week, date(2026, 12, 24)).kind == "exception"
    assert str(day_rule(week, date(2026, 12, 23))) == "wed 08:00-16:30"


def test_naive_datetime_is_refused(week):
    with pytest.raises(ValueError, match="aware"):
        is_open(week, datetime(2026, 11, 23, 9, 0))


# ---- daylight saving time in Helsinki: 2026-03-29 03:00 → 04:00, 2026-10-25 04:00 → 03:00 ----


def test_opening_follows_the_wall_clock_after_spring_change(week):
    # 08:00 is 06:00 UTC before the change and 05:00 UTC after it.
    assert not is_open(week, utc(2026, 3, 23, 5, 0)).open
    assert is_open(week, utc(2026, 3, 23, 6, 0)).open
    assert is_open(week, utc(2026, 3, 30, 5, 0)).open
    friday = is_open(week, hki(2026, 3, 27, 15, 0))
    assert friday.opens_at == utc(2026, 3, 30, 5, 0)
    # The weekend is an hour shorter than the wall clock says.
    assert elapsed(hki(2026, 3, 27, 15, 0), friday.opens_at) == timedelta(hours=64)


def test_weekend_with_autumn_change_is_an_hour_longer(week):
    friday = hki(2026, 10, 23, 15, 0)
    opens = is_open(week, friday).opens_at
    assert opens == utc(2026, 10, 26, 6, 0) == hki(2026, 10, 26, 8, 0)
    assert elapsed(friday, opens) == timedelta(hours=66)


def test_open_all_day_on_change_days():
    hours = opening_hours("  sun: 00:00-24:00\n")
    spring = is_open(hours, hki(2026, 3, 29, 0, 30))
    assert spring.open and spring.closes_at == hki(2026, 3, 30, 0, 0)
    assert elapsed(hki(2026, 3, 29, 0, 0), spring.closes_at) == timedelta(hours=23)
    autumn = is_open(hours, hki(2026, 10, 25, 0, 30))
    assert elapsed(hki(2026, 10, 25, 0, 0), autumn.closes_at) == timedelta(hours=25)
    # Both 03:30s of the repeated autumn hour are open.
    assert is_open(hours, utc(2026, 10, 25, 0, 30)).open
    assert is_open(hours, utc(2026, 10, 25, 1, 30)).open


def test_opening_time_skipped_by_spring_change_opens_at_the_change():
    hours = opening_hours("  sun: 03:30-05:00\n")
    before = is_open(hours, utc(2026, 3, 29, 0, 30))  # 02:30 EET
    assert not before.open
    # 03:30 never shows on the clock that night: the clock jumps 03:00 → 04:00 at 01:00 UTC.
    assert before.opens_at == utc(2026, 3, 29, 1, 0)
    at_change = is_open(hours, before.opens_at)
    assert at_change.open and at_change.closes_at == utc(2026, 3, 29, 2, 0)


def test_repeated_autumn_hour_opens_at_its_first_occurrence():
    hours = opening_hours("  sun: 03:30-05:00\n")
    state = is_open(hours, hki(2026, 10, 25, 1, 0))
    # 03:30 EEST, the first 03:30 (an ambiguous time never compares equal across zones).
    assert state.opens_at.astimezone(UTC) == utc(2026, 10, 25, 0, 30)


# ---- stretches and extremes ---------------------------------------------------------------


def test_touching_ranges_close_at_the_end_of_the_stretch():
    hours = opening_hours("  mon: 08:00-12:00, 12:00-16:00\n")
    assert is_open(hours, hki(2026, 11, 23, 11, 0)).closes_at == hki(2026, 11, 23, 16, 0)


def test_open_through_midnight_closes_when_the_stretch_ends():
    hours = opening_hours("  mon-fri: 00:00-24:00\n")
    state = is_open(hours, hki(2026, 11, 23, 10, 0))
    assert state.closes_at == hki(2026, 11, 28, 0, 0)


def test_never_open_and_always_open():
    closed = is_open(opening_hours(""), hki(2026, 11, 23, 10, 0))
    assert not closed.open and closed.opens_at is None
    always = is_open(opening_hours("  mon-sun: 00:00-24:00\n"), hki(2026, 11, 23, 10, 0))
    assert always.open and always.closes_at is None


def test_demo_company_hours():
    from vaihde.company import load_company

    hours = load_company("config/demo-company.yaml").hours
    assert is_open(hours, hki(2026, 11, 23, 16, 29)).open
    assert not is_open(hours, hki(2026, 12, 6, 10, 0)).open  # Itsenäisyyspäivä (a Sunday)
    summer = is_open(hours, hki(2027, 7, 7, 8, 30))
    assert not summer.open and summer.opens_at == hki(2027, 7, 7, 9, 0)


def test_open_now_agrees_with_is_open_every_quarter_hour_for_a_week(week):
    # open_now is the routing fast path; it must never disagree with is_open.
    start = hki(2026, 12, 21)  # holidays and exceptions fall in this week
    for quarter in range(7 * 24 * 4):
        at = start + timedelta(minutes=15 * quarter)
        full = is_open(week, at)
        fast, rule = open_now(week, at)
        assert (fast, rule.kind) == (full.open, full.kind), at
