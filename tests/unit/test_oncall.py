"""Who is on call at an instant (vaihde.company.oncall): weekly shifts in the company's zone,
shifts over midnight, daylight-saving changes, dated exceptions overriding the pattern, nobody."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from vaihde.company import parse_company
from vaihde.company.oncall import on_call, on_call_now

HKI = ZoneInfo("Europe/Helsinki")

BASE = """\
company: {{name: Testi Oy, timezone: Europe/Helsinki}}
numbers:
  "0201234567": {{menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: Valitse
    options:
      1: {{oncall: duty}}
teams:
  ops: {{name: Vaihde, kind: operators, members: [olga]}}
employees:
  olga: {{name: Olga, devices: [desk: PJSIP/olga]}}
  anna: {{name: Anna, devices: [desk: PJSIP/anna]}}
  mikko: {{name: Mikko, devices: [desk: PJSIP/mikko]}}
  bob: {{name: Bob, devices: [desk: PJSIP/bob]}}
oncall:
  duty:
    name: Päivystys
{rota}
"""

# Weeknights Monday to Thursday from 16:00 to 08:00 the next morning: Mikko, then Anna; Friday
# evening to Monday morning: Bob; Friday daytime nobody (the office answers).
WEEKLY = """\
    weekly:
      - {days: mon-thu, hours: 16:00-08:00, people: [mikko, anna]}
      - {days: fri, hours: 16:00-24:00, people: [bob]}
      - {days: sat-sun, hours: 00:00-24:00, people: [bob]}
      - {days: mon, hours: 00:00-08:00, people: [bob]}
"""


def rota(text: str = WEEKLY, zone: str = "Europe/Helsinki"):
    company = parse_company(BASE.format(rota=text).replace("Europe/Helsinki", zone), "c.yaml")
    return company, company.oncall["duty"]


def local(*args: int, zone: ZoneInfo = HKI) -> datetime:
    return datetime(*args, tzinfo=zone)


def who(text: str, at: datetime) -> tuple[str, ...]:
    return on_call(rota(text)[1], HKI, at).people


# 2026-03-02 is a Monday.
@pytest.mark.parametrize("at, people", [
    (local(2026, 3, 2, 15, 59), ()),  # Monday daytime: nobody
    (local(2026, 3, 2, 16, 0), ("mikko", "anna")),  # Monday evening starts at 16:00
    (local(2026, 3, 2, 23, 59), ("mikko", "anna")),
    (local(2026, 3, 3, 0, 0), ("mikko", "anna")),  # over midnight into Tuesday
    (local(2026, 3, 3, 7, 59), ("mikko", "anna")),
    (local(2026, 3, 3, 8, 0), ()),  # the end is excluded
    (local(2026, 3, 6, 7, 30), ("mikko", "anna")),  # Thursday's night, Friday morning
    (local(2026, 3, 6, 12, 0), ()),  # Friday daytime
    (local(2026, 3, 6, 16, 0), ("bob",)),
    (local(2026, 3, 8, 23, 59), ("bob",)),  # Sunday night
    (local(2026, 3, 9, 7, 59), ("bob",)),  # Monday morning: the weekend's last hours
    (local(2026, 3, 9, 8, 0), ()),
])
def test_the_weekly_pattern_in_company_time(at, people):
    assert who(WEEKLY, at) == people


def test_the_instant_is_read_in_the_company_zone_not_utc():
    # 14:30 UTC on a Monday in March is 16:30 in Helsinki: on call; in London it is 14:30: not.
    at = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    assert on_call(rota()[1], HKI, at).people == ("mikko", "anna")
    assert on_call(rota(zone="Europe/London")[1], ZoneInfo("Europe/London"), at).people == ()


def test_the_first_listed_is_first_in_the_order():
    found = on_call(rota()[1], HKI, local(2026, 3, 2, 20, 0))
    assert found.people[0] == "mikko" and found.source == "weekly"


def test_a_night_shift_over_the_spring_daylight_saving_change_ends_at_wall_clock_0800():
    # Finland moves from 03:00 EET to 04:00 EEST on Sunday 2026-03-29. A Sunday-to-Monday
    # night is unaffected; a Saturday-to-Sunday night is one hour shorter, ending at 08:00.
    text = """\
    weekly:
      - {days: sat, hours: 20:00-08:00, people: [anna]}
"""
    duty = rota(text)[1]
    before = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)  # 02:59 EET
    after = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 04:00 EEST
    assert on_call(duty, HKI, before).people == ("anna",)
    assert on_call(duty, HKI, after).people == ("anna",)
    # 08:00 EEST is 05:00 UTC: the shift ends at the wall clock's 08:00, one hour less of it.
    assert on_call(duty, HKI, datetime(2026, 3, 29, 4, 59, tzinfo=UTC)).people == ("anna",)
    assert on_call(duty, HKI, datetime(2026, 3, 29, 5, 0, tzinfo=UTC)).people == ()
    assert on_call(duty, HKI, before).until == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)


def test_a_shift_that_starts_in_the_hour_that_does_not_exist_still_holds_after_it():
    text = """\
    weekly:
      - {days: sun, hours: 03:30-06:00, people: [anna]}
"""
    duty = rota(text)[1]
    # 03:30 does not exist on 2026-03-29 (03:00 → 04:00): at 04:15 EEST Anna is on call.
    assert on_call(duty, HKI, local(2026, 3, 29, 4, 15)).people == ("anna",)
    assert on_call(duty, HKI, local(2026, 3, 29, 2, 59)).people == ()


def test_the_autumn_change_repeats_an_hour_that_stays_inside_the_night():
    # 2026-10-25: 04:00 EEST → 03:00 EET. Both 03:30s are on Saturday's night shift, which
    # lasts one hour longer by the clock on the wall of an office.
    text = """\
    weekly:
      - {days: sat, hours: 22:00-06:00, people: [mikko]}
"""
    duty = rota(text)[1]
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 03:30 EEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 03:30 EET
    assert first.astimezone(HKI).hour == second.astimezone(HKI).hour == 3
    assert on_call(duty, HKI, first).people == on_call(duty, HKI, second).people == ("mikko",)
    assert on_call(duty, HKI, datetime(2026, 10, 25, 3, 59, tzinfo=UTC)).people == ("mikko",)
    assert on_call(duty, HKI, datetime(2026, 10, 25, 4, 0, tzinfo=UTC)).people == ()


EXCEPTIONS = WEEKLY + """\
    exceptions:
      - {from: 2026-03-03 16:00, until: 2026-03-04 08:00, people: [anna], note: Mikko sick}
      - {from: 2026-03-07, until: 2026-03-07, people: []}
      - {from: 2026-03-11 12:00, until: 2026-03-11 13:00, people: [bob, anna]}
"""


@pytest.mark.parametrize("at, people, source", [
    (local(2026, 3, 3, 15, 59), (), "none"),
    (local(2026, 3, 3, 16, 0), ("anna",), "exception"),  # instead of mikko, anna
    (local(2026, 3, 4, 7, 59), ("anna",), "exception"),
    (local(2026, 3, 4, 8, 0), (), "none"),
    (local(2026, 3, 4, 16, 0), ("mikko", "anna"), "weekly"),  # the pattern again
    (local(2026, 3, 6, 23, 0), ("bob",), "weekly"),
    (local(2026, 3, 7, 0, 0), (), "exception"),  # Saturday: explicitly nobody
    (local(2026, 3, 7, 23, 59), (), "exception"),
    (local(2026, 3, 8, 0, 0), ("bob",), "weekly"),
    (local(2026, 3, 11, 12, 30), ("bob", "anna"), "exception"),  # when the pattern has none
])
def test_exceptions_override_the_weekly_pattern(at, people, source):
    found = on_call(rota(EXCEPTIONS)[1], HKI, at)
    assert (found.people, found.source) == (people, source)


def test_an_exception_carries_its_note_and_end():
    found = on_call(rota(EXCEPTIONS)[1], HKI, local(2026, 3, 3, 20, 0))
    assert found.note == "Mikko sick" and found.until == local(2026, 3, 4, 8, 0)


def test_until_is_when_the_list_changes_next():
    duty = rota(EXCEPTIONS)[1]
    # Monday evening: the weekly shift ends Tuesday 08:00.
    assert on_call(duty, HKI, local(2026, 3, 2, 20, 0)).until == local(2026, 3, 3, 8, 0)
    # Tuesday daytime, nobody: the exception at 16:00 starts the next list.
    assert on_call(duty, HKI, local(2026, 3, 3, 10, 0)).until == local(2026, 3, 3, 16, 0)
    # Friday night's shift is cut short by Saturday's exception (nobody).
    assert on_call(duty, HKI, local(2026, 3, 6, 20, 0)).until == local(2026, 3, 7, 0, 0)


def test_nobody_on_call_without_shifts_or_exceptions():
    company, duty = rota("    weekly: []")
    found = on_call(duty, HKI, local(2026, 3, 2, 12, 0))
    assert found.nobody and found.source == "none" and found.until is None
    assert any("nobody is ever on call" in w for w in company.warnings)


def test_on_call_now_uses_the_company_zone():
    company, _ = rota()
    at = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 16:30 in Helsinki
    assert on_call_now(company, "duty", at).people == ("mikko", "anna")


# --- what the file may say ---------------------------------------------------------------------


def problems(text: str) -> list[str]:
    from vaihde.company import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_company(BASE.format(rota=text), "c.yaml")
    return err.value.problems


def test_overlapping_weekly_shifts_are_refused_naming_both_lines():
    text = """\
    weekly:
      - {days: mon-fri, hours: 16:00-08:00, people: [mikko]}
      - {days: sat, hours: 00:00-24:00, people: [bob]}
"""
    # Friday 16:00 → Saturday 08:00 overlaps Saturday's shift.
    assert problems(text) == [
        "c.yaml:24: oncall.duty.weekly[1]: overlaps the shift at line 23: each moment of the "
        "week has one list"]


def test_a_sunday_night_shift_wraps_into_monday():
    text = """\
    weekly:
      - {days: sun, hours: 20:00-08:00, people: [mikko]}
      - {days: mon, hours: 06:00-09:00, people: [bob]}
"""
    assert problems(text) == [
        "c.yaml:24: oncall.duty.weekly[1]: overlaps the shift at line 23: each moment of the "
        "week has one list"]
    fine = rota("""\
    weekly:
      - {days: sun, hours: 20:00-08:00, people: [mikko]}
""")[1]
    assert on_call(fine, HKI, local(2026, 3, 9, 7, 0)).people == ("mikko",)


@pytest.mark.parametrize("line, problem", [
    ("{days: mon-fir, hours: 08:00-16:00, people: [anna]}",
     "oncall.duty.weekly[0].days: must be days like mon-fri, sat, or mon-wed, fri (Monday "
     "towards Sunday)"),
    ("{days: fri-mon, hours: 08:00-16:00, people: [anna]}",
     "oncall.duty.weekly[0].days: must be days like mon-fri, sat, or mon-wed, fri (Monday "
     "towards Sunday)"),
    ("{days: mon, hours: 08:00-08:00, people: [anna]}",
     "oncall.duty.weekly[0].hours: '08:00-08:00': starts and ends at once; a whole day is "
     "00:00-24:00"),
    ("{days: mon, hours: 8-16, people: [anna]}",
     "oncall.duty.weekly[0].hours: must be a time range like 08:00-16:00, or 16:00-08:00 "
     "(until the next morning)"),
    ("{days: mon, hours: 08:00-16:00, people: [ana]}",
     "oncall.duty.weekly[0].people[0]: no employee 'ana' (did you mean 'anna'?)"),
    ("{days: mon, hours: 08:00-16:00, people: [anna, anna]}",
     "oncall.duty.weekly[0].people[1]: 'anna' is listed twice (also at line 23)"),
    ("{days: mon, hour: 08:00-16:00, people: [anna]}",
     "oncall.duty.weekly[0].hours: is required: like 08:00-16:00, or 16:00-08:00"),
])
def test_bad_shifts_name_file_line_and_field(line, problem):
    found = problems(f"    weekly:\n      - {line}\n")
    assert any(p == f"c.yaml:23: {problem}" for p in found), found


def test_overlapping_and_backwards_exceptions_are_refused():
    text = """\
    exceptions:
      - {from: 2026-12-24, until: 2026-12-26, people: [anna]}
      - {from: 2026-12-26 18:00, until: 2026-12-27, people: [bob]}
      - {from: 2026-12-30, until: 2026-12-29, people: [bob]}
      - {from: 2027-01-02, people: [bob]}
"""
    assert problems(text) == [
        "c.yaml:24: oncall.duty.exceptions[1]: overlaps the exception at line 23: each moment "
        "has one list",
        "c.yaml:25: oncall.duty.exceptions[2].until: ends before it starts (from)",
        "c.yaml:26: oncall.duty.exceptions[3].until: is required: a date (included) or a date "
        "and time",
    ]


def test_a_menu_option_must_name_a_rota_that_exists():
    text = BASE.format(rota="    weekly: []").replace("{oncall: duty}", "{oncall: dutty}")
    from vaihde.company import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml")
    assert err.value.problems == [
        "c.yaml:11: menus.main.options.1.oncall: no on-call rota 'dutty' (did you mean 'duty'?)"]


def test_a_rota_id_may_not_be_an_employee_or_team_id():
    text = BASE.format(rota="    weekly: []").replace("  duty:\n", "  anna:\n").replace(
        "{oncall: duty}", "{oncall: anna}")
    from vaihde.company import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml")
    assert err.value.problems == [
        "c.yaml:20: oncall.anna: 'anna' is also an employee or a team: on-call rotas need ids "
        "of their own (a contact: names any of them)"]


def test_round_trip_through_the_canonical_document():
    from vaihde.company import company_from_document

    company, _ = rota(EXCEPTIONS)
    again = company_from_document(company.to_document())
    assert again == company and again.digest() == company.digest()
    assert company.to_document()["oncall"]["duty"]["weekly"][0] == {
        "days": "mon-thu", "hours": "16:00-08:00", "people": ["mikko", "anna"]}
