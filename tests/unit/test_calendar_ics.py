"""parse_busy/parse_calendar on realistic feeds: recurrences, DST, all-day absences, states,
privacy, text hygiene and malformed files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from vaihde.calendar import BusyPeriod, CalendarError, parse_busy, parse_calendar
from vaihde.calendar.ics import CALLER_NOTE_MAX, INTERNAL_NOTE_MAX, PRIVATE_NOTE, STATES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "calendars"
HEL = ZoneInfo("Europe/Helsinki")
WEEKLY_UID = (
    "040000008200E00074C5B7101A82E00800000000D0F1A3C21B3ADC01000000000000000"
    "010000000F5B2A4C3E2D1104A9C0E9F3B6B7A2D11"
)
DAILY_UID = "5rq0ld1a2b3c4d5e6f7g8h9i0j@google.com"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=HEL)


def parse(ics: bytes, start: datetime, end: datetime, **kw: str) -> list[BusyPeriod]:
    return parse_busy(ics, window_start=start, window_end=end, **kw)


def calendar(*events: str, header: str = "") -> bytes:
    """A minimal calendar around VEVENT bodies (property lines without BEGIN/END)."""
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//vaihde tests//EN\r\n"
        f"{header}{body}END:VCALENDAR\r\n"
    ).encode()


def event(summary: str, *extra: str, uid: str = "e1@test", when: str = "") -> str:
    when = when or "DTSTART:20261124T080000Z\r\nDTEND:20261124T090000Z"
    return "\r\n".join([f"UID:{uid}", f"SUMMARY:{summary}", when, *extra])


def all_day(summary: str, *extra: str, uid: str = "a1@test") -> str:
    when = "DTSTART;VALUE=DATE:20261123\r\nDTEND;VALUE=DATE:20261124"
    return event(summary, *extra, uid=uid, when=when)


def only(periods: list[BusyPeriod]) -> BusyPeriod:
    assert len(periods) == 1, periods
    return periods[0]


NOV = (utc(2026, 11, 1), utc(2026, 12, 1))


# --- recurrence and time zones --------------------------------------------------------------


def test_weekly_meeting_with_exdate_and_moved_occurrence_over_three_weeks() -> None:
    periods = parse(fixture("outlook_exchange.ics"), local(2026, 10, 19), local(2026, 11, 9))
    weekly = [p for p in periods if p.external_id.startswith(WEEKLY_UID)]
    # Tue 20.10. is an EXDATE, Tue 3.11. was moved to Wed 4.11. 13:00; the id stays the
    # original occurrence's so that the stored entry is updated, not replaced.
    assert [(p.external_id, p.starts_at, p.until) for p in weekly] == [
        (f"{WEEKLY_UID}#20261027T080000Z", utc(2026, 10, 27, 8), utc(2026, 10, 27, 9)),
        (f"{WEEKLY_UID}#20261103T080000Z", utc(2026, 11, 4, 11), utc(2026, 11, 4, 12)),
    ]
    assert weekly[1].internal_note.startswith("Viikkopalaveri (siirretty)")
    assert all(p.state == "meeting" for p in weekly)


def test_autumn_dst_week_keeps_local_time_and_moves_utc() -> None:
    # Europe/Helsinki leaves summer time on Sunday 25.10.2026.
    periods = parse(fixture("outlook_exchange.ics"), local(2026, 10, 12), local(2026, 11, 1))
    weekly = [p for p in periods if p.external_id.startswith(WEEKLY_UID)]
    assert [p.starts_at for p in weekly] == [utc(2026, 10, 13, 7), utc(2026, 10, 27, 8)]
    assert {p.starts_at.astimezone(HEL).hour for p in weekly} == {10}


def test_spring_dst_with_google_x_wr_timezone_and_cancelled_instance() -> None:
    ics = fixture("google_calendar.ics")
    periods = parse(ics, local(2027, 3, 8), local(2027, 4, 5))
    daily = [p for p in periods if p.external_id.startswith(DAILY_UID)]
    # Summer time starts on Sunday 28.3.2027; the 23.3. instance is cancelled by an override.
    assert [p.starts_at for p in daily] == [
        utc(2027, 3, 9, 8),
        utc(2027, 3, 16, 8),
        utc(2027, 3, 30, 7),
    ]
    assert {p.starts_at.astimezone(HEL).hour for p in daily} == {10}
    assert all(p.until - p.starts_at == timedelta(minutes=15) for p in daily)
    assert all(p.state == "video_conference" for p in daily)

    # Without X-WR-TIMEZONE the UTC rule would keep 08:00 UTC, i.e. 11:00 in summer.
    plain = ics.replace(b"X-WR-TIMEZONE:Europe/Helsinki\r\n", b"")
    moved = [p for p in parse(plain, local(2027, 3, 29), local(2027, 4, 5))]
    assert [p.starts_at for p in moved if p.external_id.startswith(DAILY_UID)] == [
        utc(2027, 3, 30, 8)
    ]


def test_windows_tzid_without_vtimezone_and_unknown_tzid() -> None:
    ics = calendar(
        event("Windows", uid="w@t", when="DTSTART;TZID=FLE Standard Time:20260701T100000\r\n"
              "DTEND;TZID=FLE Standard Time:20260701T110000"),
        event("Unknown", uid="u@t", when="DTSTART;TZID=Mars/Olympus:20260701T100000\r\n"
              "DTEND;TZID=Mars/Olympus:20260701T110000"),
    )  # fmt: skip
    got = {p.external_id: p.starts_at for p in parse(ics, utc(2026, 7, 1), utc(2026, 7, 2))}
    # Unknown zones are read in the tz given, like floating times.
    assert got == {"w@t": utc(2026, 7, 1, 7), "u@t": utc(2026, 7, 1, 7)}


def test_floating_times_are_read_in_the_given_zone() -> None:
    ics = fixture("thunderbird_floating.ics")
    window = (utc(2026, 7, 20), utc(2026, 7, 21))
    helsinki = {p.external_id: p for p in parse(ics, *window)}
    stockholm = {p.external_id: p for p in parse(ics, *window, tz="Europe/Stockholm")}
    # DURATION instead of DTEND.
    assert (helsinki["2b9e4c1a-suunn-0004"].starts_at, helsinki["2b9e4c1a-suunn-0004"].until) == (
        utc(2026, 7, 20, 6),
        utc(2026, 7, 20, 7, 30),
    )
    assert stockholm["2b9e4c1a-suunn-0004"].starts_at == utc(2026, 7, 20, 7)
    # A timed event without an end has no length: not busy.
    assert "2b9e4c1a-muist-0005" not in helsinki


# --- all-day events --------------------------------------------------------------------------


def test_all_day_vacation_monday_to_friday_ends_saturday_local_midnight() -> None:
    ics = fixture("outlook_exchange.ics")
    vacation = only([p for p in parse(ics, *NOV) if p.state == "vacation"])
    assert vacation.starts_at == local(2026, 11, 9)  # Monday 00:00
    assert vacation.until == local(2026, 11, 14)  # Saturday 00:00
    assert vacation.until == utc(2026, 11, 13, 22)
    assert vacation.note_for_callers.startswith("Palaan lomalta maanantaina 16.11.")
    assert "Muistilista" not in vacation.note_for_callers  # only the marked line

    stockholm = only([p for p in parse(ics, *NOV, tz="Europe/Stockholm") if p.state == "vacation"])
    assert stockholm.until == utc(2026, 11, 13, 23)


def test_all_day_events_without_end_last_one_day_and_long_ones_are_capped() -> None:
    periods = {
        p.external_id: p
        for p in parse(fixture("thunderbird_floating.ics"), utc(2026, 7, 1), utc(2026, 9, 1))
    }
    semester = periods["2b9e4c1a-semester-0001"]
    assert (semester.starts_at, semester.until) == (local(2026, 7, 13), local(2026, 7, 14))
    summer = periods["2b9e4c1a-kesa-0011"]
    assert (summer.state, summer.until) == ("vacation", local(2026, 8, 22))
    runaway = periods["2b9e4c1a-forever-0012"]  # DTEND in 2030
    assert runaway.until - runaway.starts_at == timedelta(days=366)


def test_ongoing_absence_that_started_before_the_window_is_included() -> None:
    ics = fixture("outlook_exchange.ics")
    periods = parse(ics, utc(2026, 11, 11), utc(2026, 11, 12))
    assert [p.state for p in periods] == ["vacation"]
    # A period that ends exactly when the window starts is not in it.
    assert not [p for p in parse(ics, utc(2026, 11, 13, 22), NOV[1]) if p.state == "vacation"]


# --- states ----------------------------------------------------------------------------------


def test_outlook_feed_states_and_skipped_events() -> None:
    periods = parse(fixture("outlook_exchange.ics"), local(2026, 10, 26), local(2026, 11, 2))
    notes = {p.internal_note: p.state for p in periods}
    assert notes == {
        "Viikkopalaveri (Neuvotteluhuone Kuusi)": "meeting",
        "Asiakaspalaveri: Oy Esimerkki Ab (Microsoft Teams -kokous)": "video_conference",
        PRIVATE_NOTE: "busy",
        "(tentative) Alustava: budjettikatselmus (Neuvotteluhuone Kolme)": "meeting",
    }
    # TRANSP:TRANSPARENT lunch and the STATUS:CANCELLED afternoon are not busy.
    assert not any("Lounas" in p.internal_note or "Peruttu" in p.internal_note for p in periods)


def test_thunderbird_feed_states() -> None:
    periods = parse(fixture("thunderbird_floating.ics"), utc(2026, 7, 1), utc(2026, 8, 1))
    states = {p.internal_note: p.state for p in periods}
    assert states["Mökkiviikko"] == "vacation"  # CATEGORIES:Vacation
    assert states["Sjukledig"] == "sick"
    assert states["Konferenssi Berliinissä (Estrel Berlin)"] == "away"  # timed, two days
    assert states["Loma-asioiden palaveri"] == "meeting"  # short: no keyword matching
    assert states["Etäpalaveri"] == "video_conference"  # Jitsi link as location
    assert states["Busy"] == "busy"
    assert states["Poissa"] == "away"
    assert {p.state for p in periods} <= STATES


@pytest.mark.parametrize(
    ("summary", "state"),
    [
        ("Kesäloma", "vacation"),
        ("Lomalla", "vacation"),
        ("Semester", "vacation"),
        ("Vacation in Spain", "vacation"),
        ("Public holiday", "vacation"),
        ("Sairasloma", "sick"),
        ("Sairaana", "sick"),
        ("Kipeänä", "sick"),
        ("Sjukskriven", "sick"),
        ("Out sick", "sick"),
        ("Saldovapaa", "off_work"),
        ("Vapaapäivä", "off_work"),
        ("Föräldraledig", "off_work"),
        ("Day off", "off_work"),
        ("Koulutus Tampereella", "away"),
        ("Messut", "away"),
        ("Diplomityön palautus", "away"),
        ("Vapaaehtoistyöpäivä", "away"),
        ("Grillijuhlat", "away"),
    ],
)
def test_all_day_keywords(summary: str, state: str) -> None:
    assert only(parse(calendar(all_day(summary)), *NOV)).state == state


def test_keywords_in_categories_and_outlook_out_of_office() -> None:
    ics = calendar(
        all_day("Mökillä", "CATEGORIES:Loma"),
        event("Hammaslääkäri", "X-MICROSOFT-CDO-BUSYSTATUS:OOF", uid="oof@t"),
        event("Lomalla", "X-MICROSOFT-CDO-BUSYSTATUS:OOF", uid="oof2@t",
              when="DTSTART:20261125T080000Z\r\nDTEND:20261125T120000Z"),
    )  # fmt: skip
    assert {p.external_id: p.state for p in parse(ics, *NOV)} == {
        "a1@test": "vacation",
        "oof@t": "away",
        "oof2@t": "vacation",
    }


@pytest.mark.parametrize(
    ("extra", "state"),
    [
        ("LOCATION:https://us02web.zoom.us/j/81234567890", "video_conference"),
        ("DESCRIPTION:Liity: https://teams.microsoft.com/l/meetup-join/19%3a", "video_conference"),
        ("X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.microsoft.com/l/x", "video_conference"),
        ("X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij", "video_conference"),
        ("LOCATION:https://meet.jit.si/tiimi", "video_conference"),
        ("LOCATION:Neuvotteluhuone Kuusi", "meeting"),
        ("STATUS:TENTATIVE", "meeting"),
    ],
)
def test_timed_event_states(extra: str, state: str) -> None:
    assert only(parse(calendar(event("Palaveri", extra)), *NOV)).state == state


def test_skipped_events() -> None:
    ics = calendar(
        event("Vapaa", "TRANSP:TRANSPARENT", uid="t@t"),
        event("Peruttu", "STATUS:CANCELLED", uid="c@t"),
        event("Lounas", "X-MICROSOFT-CDO-BUSYSTATUS:FREE", uid="f@t"),
        event("Etätyö", "X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", uid="w@t"),
        event("Muistutus", uid="z@t", when="DTSTART:20261124T080000Z"),
        all_day("Isänpäivä", "TRANSP:TRANSPARENT"),
        event("Palaveri", uid="kept@t"),
    )
    assert [p.external_id for p in parse(ics, *NOV)] == ["kept@t"]


def test_overlapping_events_are_all_returned() -> None:
    ics = calendar(event("Yksi", uid="1@t"), event("Kaksi", uid="2@t"), all_day("Loma"))
    assert {p.external_id for p in parse(ics, *NOV)} == {"1@t", "2@t", "a1@test"}


# --- privacy and texts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "window"),
    [
        ("outlook_exchange.ics", (utc(2026, 10, 1), utc(2026, 12, 1))),
        ("google_calendar.ics", (utc(2027, 3, 1), utc(2027, 4, 30))),
    ],
)
def test_private_events_never_leak(name: str, window: tuple[datetime, datetime]) -> None:
    periods = parse(fixture(name), *window)
    private = [p for p in periods if p.internal_note == PRIVATE_NOTE]
    assert len(private) == (1 if name.startswith("outlook") else 2)
    assert all(p.note_for_callers == "" and p.state == "busy" for p in private)
    secrets = ["psykiatri", "Lääkäri", "Mehiläinen", "lähete", "Hammas", "Juurihoito", "irtisan"]
    for p in periods:
        for text in (p.note_for_callers, p.internal_note, p.external_id):
            assert not [s for s in secrets if s.lower() in text.lower()], text


def test_private_content_does_not_decide_the_state() -> None:
    ics = calendar(all_day("Sairasloma", "CLASS:PRIVATE", "DESCRIPTION:Soittajille: sairaana"))
    period = only(parse(ics, *NOV))
    assert (period.state, period.internal_note, period.note_for_callers) == (
        "away",
        PRIVATE_NOTE,
        "",
    )


def test_caller_note_only_when_written_for_callers() -> None:
    ics = calendar(
        event("Budjettipalaveri: YT-neuvottelut", "DESCRIPTION:Salainen asialista", uid="1@t"),
        event("Palaveri", "DESCRIPTION:Muistiinpanoja\\nFor callers: back at 3 pm", uid="2@t"),
        event("Palaveri", "X-VAIHDE-CALLER-NOTE:Tavoitettavissa klo 15 jälkeen", uid="3@t"),
    )
    notes = {p.external_id: p.note_for_callers for p in parse(ics, *NOV)}
    assert notes == {"1@t": "", "2@t": "back at 3 pm", "3@t": "Tavoitettavissa klo 15 jälkeen"}


def test_control_characters_stripped_and_lengths_capped() -> None:
    long_summary = "Pitkä " * 500
    ics = calendar(
        event("Palaveri\x1b[31m \u202eevil\u200b\tsisältö", uid="1@t"),
        event(long_summary, f"DESCRIPTION:Soittajille: {'x' * 500}", uid="2@t"),
    )
    periods = {p.external_id: p for p in parse(ics, *NOV)}
    assert periods["1@t"].internal_note == "Palaveri[31m evil sisältö"
    assert len(periods["2@t"].internal_note) == INTERNAL_NOTE_MAX
    assert periods["2@t"].internal_note.endswith("…")
    assert len(periods["2@t"].note_for_callers) == CALLER_NOTE_MAX

    fixture_note = next(
        p.internal_note
        for p in parse(fixture("thunderbird_floating.ics"), utc(2026, 7, 24), utc(2026, 7, 25))
    )
    assert fixture_note == "Palaveri nimellä jossa ohjausmerkkejä"  # BEL, RLO and TAB gone


def test_summary_hash_follows_the_texts() -> None:
    base = only(parse(calendar(event("Palaveri")), *NOV))
    same = only(parse(calendar(event("Palaveri", "DTSTAMP:20991231T000000Z")), *NOV))
    renamed = only(parse(calendar(event("Palaveri siirretty")), *NOV))
    assert base == same
    assert base.summary_hash != renamed.summary_hash


# --- identity --------------------------------------------------------------------------------


def test_external_ids_are_stable_and_unique() -> None:
    ics = fixture("thunderbird_floating.ics")
    window = (utc(2026, 7, 1), utc(2026, 9, 1))
    first, second = parse(ics, *window), parse(ics, *window)
    assert first == second
    ids = [p.external_id for p in first]
    assert len(ids) == len(set(ids))
    assert any(i.startswith("nouid-") for i in ids)  # the event without UID

    # The same UID twice without RECURRENCE-ID is one event to the library: one period.
    twice = calendar(event("A", uid="dup@t"), event("B", uid="dup@t",
                     when="DTSTART:20261125T080000Z\r\nDTEND:20261125T090000Z"))  # fmt: skip
    assert [p.external_id for p in parse(twice, *NOV)] == ["dup@t"]

    long_uid = calendar(event("A", uid="x" * 500))
    assert only(parse(long_uid, *NOV)).external_id.startswith("sha256-")


def test_this_and_future_modification_keeps_each_occurrence_id() -> None:
    ics = calendar(
        event("Sarja", "RRULE:FREQ=WEEKLY;COUNT=4", uid="s@t"),
        event("Sarja myöhemmin", "RECURRENCE-ID;RANGE=THISANDFUTURE:20261201T080000Z",
              uid="s@t", when="DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z"),
    )  # fmt: skip
    periods = parse(ics, utc(2026, 11, 1), utc(2027, 1, 1))
    assert [(p.external_id, p.starts_at.hour) for p in periods] == [
        ("s@t#20261124T080000Z", 8),
        ("s@t#20261201T080000Z", 10),
        ("s@t#20261208T080000Z", 10),
        ("s@t#20261215T080000Z", 10),
    ]


def test_all_day_recurrence_ids() -> None:
    ics = calendar(all_day("Loma", "RRULE:FREQ=WEEKLY;COUNT=2"))
    assert [p.external_id for p in parse(ics, *NOV)] == ["a1@test#20261123", "a1@test#20261130"]


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ics", "message"),
    [
        (fixture("malformed_truncated.ics"), "ends inside BEGIN:VEVENT from line 124"),
        (fixture("malformed_html_login.ics"), "not an iCalendar file: line 1 is an HTML"),
        (fixture("malformed_unbalanced.ics"), "line 12: END:VEVENT but BEGIN:VALARM"),
        (b"", "it is empty"),
        (b"BEGIN:VCARD\r\nFN:Matti\r\nEND:VCARD\r\n", "not BEGIN:VCALENDAR"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n<html>\r\n", "line 3: not an iCalendar line"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nSUMMARY:x\r\n", "line 3: SUMMARY after END"),
    ],
)
def test_malformed_files_raise_with_a_useful_message(ics: bytes, message: str) -> None:
    with pytest.raises(CalendarError) as info:
        parse(ics, *NOV)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "Traceback" not in text


def test_feed_cut_off_between_events_is_refused_not_half_read() -> None:
    # The dangerous truncation: every event is complete, only END:VCALENDAR is missing.
    # Reading it would cancel the events that were cut off.
    whole = fixture("outlook_exchange.ics")
    cut = whole[: whole.index(b"BEGIN:VEVENT", whole.index(b"SUMMARY:Lounas"))]
    with pytest.raises(CalendarError, match="truncated"):
        parse(cut, *NOV)


def test_huge_file_is_refused() -> None:
    huge = calendar(event("Palaveri", "DESCRIPTION:" + "x" * 6_000_000))
    with pytest.raises(CalendarError, match="more than the limit"):
        parse(huge, *NOV)


def test_too_many_periods_is_refused() -> None:
    ics = calendar(event("Tunneittain", "RRULE:FREQ=HOURLY"))
    with pytest.raises(CalendarError, match="more than 5000 busy periods"):
        parse(ics, utc(2026, 11, 1), utc(2027, 11, 1))


def test_broken_events_are_left_out_and_reported_with_lines() -> None:
    result = parse_calendar(
        fixture("malformed_bad_events.ics"), window_start=NOV[0], window_end=NOV[1]
    )
    assert [p.external_id for p in result.periods] == ["good-1@example.fi"]
    assert len(result.problems) == 5
    problems = "\n".join(result.problems)
    for expected in (
        "line 13 (UID bad-date-2@example.fi): event left out: DTSTART",
        "line 21 (UID bad-rule-3@example.fi): event left out: RRULE",
        "line 23 (UID minutely-4@example.fi): event left out: repeats every minute",
        "line 30 (UID backwards-5@example.fi): event left out: DTEND is before DTSTART",
        "line 36 (UID no-start-6@example.fi): event left out: no DTSTART",
    ):
        assert expected in problems
    assert parse(fixture("malformed_bad_events.ics"), *NOV) == list(result.periods)


def test_time_property_that_is_no_moment_leaves_out_its_event_only() -> None:
    # A duration where a date-time belongs: found by mypy. A THISANDFUTURE modification with
    # one used to raise AttributeError out of parse_calendar, costing the whole calendar.
    ics = calendar(
        all_day("Loma", "RRULE:FREQ=WEEKLY;COUNT=2", uid="s@t"),
        event("Siirretty", "RECURRENCE-ID;RANGE=THISANDFUTURE:PT1H", uid="s@t",
              when="DTSTART;VALUE=DATE:20261130\r\nDTEND;VALUE=DATE:20261201"),
        event("Kesto", uid="d@t", when="DTSTART:PT1H\r\nDTEND:20261124T090000Z"),
        event("Palaveri", uid="ok@t"),
    )  # fmt: skip
    result = parse_calendar(ics, window_start=NOV[0], window_end=NOV[1])
    assert [p.external_id for p in result.periods] == [
        "s@t#20261123",
        "ok@t",
        "s@t#20261130",
    ]
    assert result.problems == (
        "line 16 (UID s@t): event left out: RECURRENCE-ID: not a date or a date-time",
        "line 21 (UID d@t): event left out: DTSTART: not a date or a date-time",
    )


def test_stray_line_inside_an_event_is_ignored_and_reported() -> None:
    # A generator that forgot to escape a line break in DESCRIPTION.
    ics = calendar(event("Palaveri", "DESCRIPTION:Asialista:\r\n1. budjetti\r\nLOCATION:Kuusi"))
    result = parse_calendar(ics, window_start=NOV[0], window_end=NOV[1])
    assert [p.internal_note for p in result.periods] == ["Palaveri (Kuusi)"]
    assert result.problems == ("line 10: ignored, not a property: '1. budjetti'",)


def test_windows_1252_file_is_read() -> None:
    ics = calendar(event("Kehityskeskustelu Äänekoskella")).decode().encode("cp1252")
    assert only(parse(ics, *NOV)).internal_note == "Kehityskeskustelu Äänekoskella"


def test_bad_arguments() -> None:
    ics = calendar(event("Palaveri"))
    with pytest.raises(ValueError, match="timezone-aware"):
        parse(ics, datetime(2026, 11, 1), datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="at most"):
        parse(ics, utc(2026, 1, 1), utc(2028, 1, 1))
    with pytest.raises(ValueError, match="unknown time zone"):
        parse(ics, *NOV, tz="Europe/Nowhere")
