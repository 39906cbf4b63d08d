"""iCalendar (ICS) bytes → busy periods: pure, no I/O, no clock; recurring events are expanded
within a window and every period is in UTC.

Rules (the *why* is kept next to the code that applies them):

Skipped, i.e. the person counts as free:
  * ``STATUS:CANCELLED`` events, and occurrences cancelled via ``EXDATE``;
  * ``TRANSP:TRANSPARENT`` ("show as free") and Outlook's ``X-MICROSOFT-CDO-BUSYSTATUS`` ``FREE``
    or ``WORKINGELSEWHERE`` (working elsewhere is still reachable);
  * timed events without an end (no ``DTEND``/``DURATION``, so zero length);
  * broken events (unreadable ``DTSTART``/``DTEND``/``RRULE``…, ``DTEND`` before ``DTSTART``,
    rules firing every minute or second): the rest of the calendar is still used and each
    one is listed in :attr:`ParsedCalendar.problems`;
  * lines inside the calendar that are not properties (typically an unescaped line break in a
    description) are ignored, and listed in problems too.

Refused as a whole with CalendarError (the caller then keeps the previous state): not a
calendar (an HTML login page, say), broken BEGIN/END nesting or a truncated file (the message
gives the line), more than 5 MB, more than 5000 periods in the window.

Counted as busy: everything else, including ``STATUS:TENTATIVE`` and Outlook's ``TENTATIVE``
(tentative meetings usually happen; saying "in a meeting" is the safer guess for a caller;
operators see "(tentative)" in front of the note).

Times: ``TZID`` (IANA, Windows names and custom ``VTIMEZONE``) is honoured; ``X-WR-TIMEZONE``
(Google) is applied to the whole calendar, so UTC-based weekly rules keep their local time over
DST; floating times and unknown ``TZID`` are read in ``X-WR-TIMEZONE`` if given, else in
``tz``. All-day events run from local midnight of their first day to local midnight of the day
after their last (``tz``); an all-day event without an end lasts one day. Periods longer than
366 days are cut to 366 days so that a runaway end date cannot park someone for years.

State, first match wins:
  1. private (``CLASS:PRIVATE``/``CONFIDENTIAL``): ``away`` if all-day or ≥ 24 h, else ``busy``;
     the content of a private event is never read, not even for the state, so that a private
     "sick leave" is never announced as ``sick``;
  2. all-day, ≥ 24 h or Outlook out-of-office (``OOF``): keywords in the summary and categories,
     Finnish/Swedish/English, matched at word starts and ends so that compounds and inflections
     work ("kesäloma", "lomalla", "sjukledig"): ``sick`` (sairas, sairaa, sairau, kipeä, sjuk,
     sick, ill), then ``vacation`` (loma, semester, vacation, holiday, ferie, pto, annual
     leave), then ``off_work`` (vapaa, ledig, day off, time off, off work, parental leave);
     none → ``away``. Short timed events are not keyword-matched: "Loma-asioiden palaveri" is
     a meeting, not a vacation;
  3. a Teams/Zoom/Meet/Jitsi/Webex/Whereby link (location, description, URL, conference and
     ``X-MICROSOFT-ONLINEMEETING…``/``X-GOOGLE-CONFERENCE`` properties) → ``video_conference``;
  4. a title that is only a free/busy placeholder, as free/busy-only shares have: "Poissa",
     "Frånvarande", "Out of office", "Away"… → ``away``; none, "Busy", "Varattu", "Upptagen",
     "Tentative"… → ``busy``;
  5. otherwise → ``meeting``.

Texts: ``internal_note`` (operators) is the summary plus a non-URL location, or
"Private appointment" for private events; ``note_for_callers`` is empty unless the owner wrote
one on purpose — a description line "Soittajille: …" / "For callers: …" / "Till uppringare: …"
or ``X-VAIHDE-CALLER-NOTE`` — because meeting titles are not for outsiders' ears. Control and
format characters are removed, whitespace collapsed, lengths capped (200 / 1000).

Identity: ``external_id`` is the ``UID`` (an event without one gets a stable hash of its start
and summary), plus ``#<RECURRENCE-ID in UTC>`` (``#YYYYMMDD`` for all-day) for occurrences of
recurring events, so a moved occurrence keeps its id (also under ``RANGE=THISANDFUTURE``);
over-long UIDs are hashed. Overlapping periods are all returned.

Parsing is CPU work (roughly a second per 2 MB of feed): from async code, run it in a
thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events
import x_wr_timezone

STATES = frozenset({"meeting", "video_conference", "vacation", "sick", "off_work", "away", "busy"})
CALLER_NOTE_MAX = 200
INTERNAL_NOTE_MAX = 1000
PRIVATE_NOTE = "Private appointment"
MAX_ICS_BYTES = 5_000_000
# A person cannot have this many appointments in a sync window; more means a runaway rule or a
# feed that is not one person's calendar, and the whole feed is refused.
MAX_PERIODS = 5000
MAX_WINDOW = timedelta(days=400)
MAX_SPAN = timedelta(days=366)
_LONG = timedelta(hours=24)
_UID_MAX = 200  # keeps external_id comfortably inside a VARCHAR(255)


class CalendarError(Exception):
    """A calendar could not be fetched or read; the message names the source or line, in words."""


@dataclass(frozen=True, slots=True)
class BusyPeriod:
    """One busy stretch from one (occurrence of an) event; times are aware UTC."""

    external_id: str
    starts_at: datetime
    until: datetime
    state: str
    note_for_callers: str
    internal_note: str
    summary_hash: str


@dataclass(frozen=True, slots=True)
class ParsedCalendar:
    """The periods of a calendar and, in words, the broken events that were left out."""

    periods: tuple[BusyPeriod, ...]
    problems: tuple[str, ...]


def parse_busy(
    ics: bytes,
    *,
    window_start: datetime,
    window_end: datetime,
    tz: str = "Europe/Helsinki",
) -> list[BusyPeriod]:
    """Busy periods overlapping [window_start, window_end), sorted by start.

    Raises CalendarError if the file as a whole cannot be trusted (not a calendar, truncated,
    too big, too many occurrences); broken single events are left out (see parse_calendar).
    """
    return list(
        parse_calendar(ics, window_start=window_start, window_end=window_end, tz=tz).periods
    )


def parse_calendar(
    ics: bytes,
    *,
    window_start: datetime,
    window_end: datetime,
    tz: str = "Europe/Helsinki",
    max_bytes: int = MAX_ICS_BYTES,
) -> ParsedCalendar:
    """parse_busy, plus the list of events left out as broken (for logs and the operator UI)."""
    zone = _zone(tz)
    start, end = _check_window(window_start, window_end)
    if len(ics) > max_bytes:
        raise CalendarError(
            f"calendar is {len(ics):,} bytes, more than the limit of {max_bytes:,} bytes"
        )
    text = _decode(ics)
    problems: list[str] = []
    layout = _check_structure(text, problems)
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as e:  # icalendar raises bare ValueErrors and worse on odd input
        raise CalendarError(f"not a valid iCalendar file: {_clean(str(e), 200)}") from None

    periods: list[BusyPeriod] = []
    events_seen = 0
    for cal in calendars:
        if not isinstance(cal, icalendar.Calendar):
            raise CalendarError(f"not an iCalendar file (found {cal.name})")
        events = [c for c in cal.subcomponents if c.name == "VEVENT"]
        lines = layout[events_seen : events_seen + len(events)]
        events_seen += len(events)
        if len(lines) != len(events):  # should not happen; only costs line numbers
            lines = [_EventLayout(0, {})] * len(events)
        # Broken events go before X-WR-TIMEZONE is applied: that rewrites every time value.
        good = _usable_events(events, lines, zone, problems)
        cal.subcomponents = [c for c in cal.subcomponents if c.name == "VTIMEZONE"] + good
        try:
            cal = x_wr_timezone.to_standard(cal)
        except Exception as e:  # e.g. an X-WR-TIMEZONE that names no zone
            raise CalendarError(f"cannot apply X-WR-TIMEZONE: {_clean(str(e), 160)}") from None
        good = [c for c in cal.subcomponents if c.name == "VEVENT"]
        for period in _expand(good, start, end, zone, problems):
            periods.append(period)
            if len(periods) > MAX_PERIODS:  # checked as we go: stops a runaway rule early
                raise CalendarError(
                    f"more than {MAX_PERIODS} busy periods in the window; refusing the calendar"
                )
    periods = [p for p in periods if p.until > start and p.starts_at < end]
    return ParsedCalendar(tuple(_unique(periods)), tuple(problems))


# --- input checks --------------------------------------------------------------------------


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _check_window(window_start: datetime, window_end: datetime) -> tuple[datetime, datetime]:
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    start, end = window_start.astimezone(UTC), window_end.astimezone(UTC)
    if not start < end <= start + MAX_WINDOW:
        raise ValueError(f"window must be non-empty and at most {MAX_WINDOW.days} days")
    return start, end


def _decode(ics: bytes) -> str:
    try:
        return ics.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Old Outlook and Notes exports are Windows-1252; better umlauts than no calendar.
        return ics.decode("cp1252", errors="replace")


@dataclass(frozen=True, slots=True)
class _EventLayout:
    """Where a VEVENT is in the file: its BEGIN line and the line of each property."""

    line: int
    props: dict[str, int]


_NAME = re.compile(r"[A-Za-z0-9-]+")


def _check_structure(text: str, problems: list[str]) -> list[_EventLayout]:
    """Checks BEGIN/END nesting with line numbers (icalendar's own messages have none) and
    notes where each VEVENT and its properties are, for messages about single events.
    """
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(re.split(r"\r\n|\n|\r", text), start=1):
        if raw[:1] in (" ", "\t"):
            if not logical:
                raise CalendarError(f"line {number}: continuation line before any property")
            logical[-1] = (logical[-1][0], logical[-1][1] + raw[1:])
        elif raw.strip():
            logical.append((number, raw))
    if not logical:
        raise CalendarError("not an iCalendar file: it is empty")
    first = logical[0][1].strip()
    if first.upper() != "BEGIN:VCALENDAR":
        kind = "an HTML or XML page" if first.startswith("<") else f"{_clean(first, 40)!r}"
        raise CalendarError(f"not an iCalendar file: line 1 is {kind}, not BEGIN:VCALENDAR")

    stack: list[tuple[str, int]] = []
    layouts: list[_EventLayout] = []
    for number, line in logical:
        match = _NAME.match(line)
        if match is None or line[match.end() : match.end() + 1] not in (":", ";"):
            if not stack:
                raise CalendarError(f"line {number}: not an iCalendar line: {_clean(line, 40)!r}")
            # Usually an unescaped line break in a description; icalendar skips it too.
            problems.append(f"line {number}: ignored, not a property: {_clean(line, 40)!r}")
            continue
        name = match.group().upper()
        value = line.partition(":")[2].strip().upper()
        if name == "BEGIN":
            if not stack and value != "VCALENDAR":
                raise CalendarError(f"line {number}: BEGIN:{value} outside of VCALENDAR")
            stack.append((value, number))
            if value == "VEVENT":
                layouts.append(_EventLayout(number, {}))
        elif name == "END":
            if not stack:
                raise CalendarError(f"line {number}: END:{value} without a BEGIN")
            opened, at = stack.pop()
            if opened != value:
                raise CalendarError(
                    f"line {number}: END:{value} but BEGIN:{opened} from line {at} is still open"
                )
        elif not stack:
            raise CalendarError(f"line {number}: {name} after END:VCALENDAR")
        elif stack[-1][0] == "VEVENT":
            layouts[-1].props.setdefault(name, number)
    if stack:
        opened, at = stack[-1]
        raise CalendarError(
            f"the file ends inside BEGIN:{opened} from line {at} (truncated download?)"
        )
    return layouts


# --- events ---------------------------------------------------------------------------------

# If one of these is unreadable we do not know when the event happens.
_TIME_PROPS = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")


def _usable_events(
    events: list[icalendar.Component],
    layouts: list[_EventLayout],
    zone: ZoneInfo,
    problems: list[str],
) -> list[icalendar.Component]:
    good = []
    for event, layout in zip(events, layouts, strict=True):
        uid = _clean(_raw_text(event, "UID"), 80)
        where = f"line {layout.line}" if layout.line else "an event"
        label = f"{where} (UID {uid})" if uid else where
        try:
            problem = _event_problem(event, layout, uid, zone)
        except Exception as e:  # odd value types (a DTSTART that is a time, say)
            problem = f"unreadable: {_clean(str(e), 160) or type(e).__name__}"
        if problem is not None:
            if problem.startswith("line "):  # the line of the property itself
                problems.append(problem)
            else:
                problems.append(f"{label}: event left out: {problem}")
            continue
        if not uid:
            # Stable across fetches as long as the event does not change; better than
            # recurring_ical_events' fallback, the Python object id.
            seed = f"{_raw(event, 'DTSTART')}\x1f{_raw_text(event, 'SUMMARY')}"
            event["UID"] = "nouid-" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        good.append(event)
    return good


def _event_problem(
    event: icalendar.Component, layout: _EventLayout, uid: str, zone: ZoneInfo
) -> str | None:
    """Why the event cannot be used, or None."""

    def at_line(prop: str, message: str) -> str:
        line = layout.props.get(prop.upper())
        if line:
            at = f"line {line} (UID {uid})" if uid else f"line {line}"
            return f"{at}: event left out: {prop}: {_clean(message, 160)}"
        return f"{prop}: {_clean(message, 160)}"

    broken = [(str(p), m) for p, m in event.errors if str(p or "").upper() in _TIME_PROPS]
    if broken:
        prop, message = broken[0]
        return at_line(prop, str(message))
    if "DTSTART" not in event:
        return "no DTSTART"
    for name in ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID"):
        if isinstance(event.get(name), list):
            return f"{name} appears more than once"
    for name in ("DTSTART", "DTEND", "RECURRENCE-ID"):
        # A duration, time or period here ("DTSTART:PT1H") is no moment in the calendar.
        if name in event and _when(event, name) is None:
            return at_line(name, "not a date or a date-time")
    if "DTEND" in event and _utc(_moment(event, "DTEND"), zone) < _utc(
        _moment(event, "DTSTART"), zone
    ):
        # recurring_ical_events would swap the two; a guess we do not want to make.
        return "DTEND is before DTSTART"
    rules = event.get("RRULE")
    rules = rules if isinstance(rules, list) else [rules] if rules is not None else []
    if {str(f).upper() for rule in rules for f in _freqs(rule)} & {"SECONDLY", "MINUTELY"}:
        return "repeats every minute or second"
    return None


def _freqs(rule: object) -> list[str]:
    return list(rule.get("FREQ", [])) if isinstance(rule, icalendar.vRecur) else []


def _when(component: icalendar.Component, name: str) -> date | None:
    """The date or date-time of a DTSTART, DTEND or RECURRENCE-ID (a datetime is a date);
    None when it is something else (a duration, a time or a period)."""
    prop = component.get(name)
    value = prop.dt if isinstance(prop, icalendar.vDDDTypes) else None
    return value if isinstance(value, date) else None


def _moment(component: icalendar.Component, name: str) -> date:
    """_when of a property _event_problem has checked (ValueError, should one slip through)."""
    value = _when(component, name)
    if value is None:
        raise ValueError(f"{name} is not a date or a date-time")
    return value


def _raw(component: icalendar.Component, name: str) -> str:
    value = component.get(name)
    try:
        return value.to_ical().decode() if value is not None else ""
    except Exception:  # a broken value still needs some stable text
        return str(value)


def _expand(
    events: list[icalendar.Component],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    problems: list[str],
) -> Iterable[BusyPeriod]:
    by_uid: dict[str, list[icalendar.Component]] = {}
    for event in events:
        by_uid.setdefault(str(event["UID"]), []).append(event)
    # A day of slack either side: floating and all-day times are compared by the library in
    # a zone that is not ours; the exact cut is made on UTC periods afterwards.
    query_start, query_end = start - timedelta(days=1), end + timedelta(days=1)
    for uid, series in by_uid.items():
        recurring = any("RRULE" in e or "RDATE" in e or "RECURRENCE-ID" in e for e in series)
        shifts = _this_and_future_shifts(series, zone) if recurring else None
        single = icalendar.Calendar()
        for event in series:
            single.add_component(event)
        try:
            occurrences = recurring_ical_events.of(single).between(query_start, query_end)
        except Exception as e:  # one odd series must not cost the whole calendar
            problems.append(
                f"event UID {_clean(uid, 80)}: left out: {_clean(str(e), 160) or type(e).__name__}"
            )
            continue
        for occurrence in occurrences:
            try:
                period = _period(occurrence, uid, shifts, zone)
            except Exception as e:  # the same reasoning as above, for a single occurrence
                problems.append(
                    f"event UID {_clean(uid, 80)}: an occurrence left out: "
                    f"{_clean(str(e), 160) or type(e).__name__}"
                )
                continue
            if period is not None:
                yield period


def _this_and_future_shifts(
    series: list[icalendar.Component], zone: ZoneInfo
) -> dict[str, timedelta]:
    """How far each RANGE=THISANDFUTURE modification moved its occurrences, by RECURRENCE-ID."""
    shifts = {}
    for event in series:
        recurrence = event.get("RECURRENCE-ID")
        if recurrence is None or str(recurrence.params.get("RANGE", "")).upper() != (
            "THISANDFUTURE"
        ):
            continue
        moved, original = _moment(event, "DTSTART"), _moment(event, "RECURRENCE-ID")
        if isinstance(moved, datetime) and isinstance(original, datetime):
            shifts[_stamp(original, zone)] = _utc(moved, zone) - _utc(original, zone)
        elif not isinstance(moved, datetime) and not isinstance(original, datetime):
            shifts[_stamp(original, zone)] = moved - original  # whole days
    return shifts


def _period(
    event: icalendar.Component, uid: str, shifts: dict[str, timedelta] | None, zone: ZoneInfo
) -> BusyPeriod | None:
    """shifts is None for a non-recurring event, see _this_and_future_shifts otherwise."""
    if _upper(event, "STATUS") == "CANCELLED" or _upper(event, "TRANSP") == "TRANSPARENT":
        return None
    busy_status = _upper(event, "X-MICROSOFT-CDO-BUSYSTATUS")
    if busy_status in ("FREE", "WORKINGELSEWHERE"):
        return None

    raw_start, raw_end = _moment(event, "DTSTART"), _moment(event, "DTEND")
    all_day = not isinstance(raw_start, datetime)
    starts_at, until = _utc(raw_start, zone), _utc(raw_end, zone)
    if until <= starts_at:
        if not all_day:
            return None
        until = _utc(raw_start + timedelta(days=1), zone)  # DTEND == DTSTART: one day meant
    until = min(until, starts_at + MAX_SPAN)
    long = all_day or until - starts_at >= _LONG

    private = _upper(event, "CLASS") in ("PRIVATE", "CONFIDENTIAL")
    if private:
        state = "away" if long else "busy"
        caller, internal = "", PRIVATE_NOTE
    else:
        summary = _text(event, "SUMMARY")
        state = _state(event, summary, long=long, out_of_office=busy_status == "OOF")
        caller = _caller_note(event)
        internal = _internal_note(event, summary)

    external_id = _external_uid(uid)
    if shifts is not None:
        original = _when(event, "RECURRENCE-ID") or raw_start
        shift = shifts.get(_stamp(original, zone))
        if shift is not None and isinstance(raw_start, datetime) == isinstance(original, datetime):
            # Every occurrence after a THISANDFUTURE modification carries the modification's
            # RECURRENCE-ID; its own is where it was before the shift.
            original = (
                _utc(raw_start, zone) - shift
                if isinstance(original, datetime)
                else (raw_start - shift)
            )
        external_id += "#" + _stamp(original, zone)
    digest = hashlib.sha256(f"{caller}\x1f{internal}".encode()).hexdigest()[:16]
    return BusyPeriod(external_id, starts_at, until, state, caller, internal, digest)


def _utc(value: date | datetime, zone: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _stamp(value: date | datetime, zone: tzinfo) -> str:
    if not isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    return _utc(value, zone).strftime("%Y%m%dT%H%M%SZ")


def _external_uid(uid: str) -> str:
    cleaned = re.sub(r"\s+", "", _clean(uid, 10 * _UID_MAX)).replace("#", "%23")
    if len(cleaned) > _UID_MAX or not cleaned:
        return "sha256-" + hashlib.sha256(uid.encode()).hexdigest()[:40]
    return cleaned


def _unique(periods: list[BusyPeriod]) -> list[BusyPeriod]:
    """Sorted by start; should ids repeat (two copies of one override in a sloppy export), the
    later copies get ~2, ~3… in a stable order, so that external_id stays unique per feed.
    """
    periods.sort(key=lambda p: (p.starts_at, p.external_id, p.until, p.state, p.summary_hash))
    seen: dict[str, int] = {}
    out = []
    for p in periods:
        count = seen.get(p.external_id, 0) + 1
        seen[p.external_id] = count
        if count > 1:
            p = BusyPeriod(
                f"{p.external_id}~{count}", p.starts_at, p.until, p.state,
                p.note_for_callers, p.internal_note, p.summary_hash,
            )  # fmt: skip
        out.append(p)
    return out


# --- state and texts ------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+")
# (state, words matched at a word's start or end, phrases matched anywhere); order matters.
_KEYWORDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("sick", ("sairas", "sairaa", "sairau", "kipeä", "sjuk", "sick", "ill"), ("sick leave",)),
    (
        "vacation",
        ("loma", "semester", "vacation", "holiday", "ferie", "pto"),
        ("annual leave",),
    ),
    (
        "off_work",
        ("vapaa", "ledig"),
        ("day off", "time off", "off work", "parental leave", "leave of absence"),
    ),
)
# Beginnings of words that merely start like a keyword: "diplomi", "lomake" (a form),
# "vapaaehtoinen" (voluntary).
_NOT_KEYWORDS = ("diplom", "lomake", "lomakk", "vapaaeh")

# Free/busy-only shares put the status where the title would be.
_BUSY_PLACEHOLDERS = frozenset(
    {"", "busy", "varattu", "upptagen", "tentative", "alustava", "preliminär", "preliminary"}
)
_AWAY_PLACEHOLDERS = frozenset(
    {"away", "poissa", "frånvarande", "out of office", "ooo", "not available",
     "ei tavoitettavissa"}
)  # fmt: skip
_VIDEO = re.compile(
    r"teams\.microsoft\.com|teams\.live\.com|zoom\.us/|zoomgov\.com|meet\.google\.com|"
    r"meet\.jit\.si|jitsi|webex\.com|whereby\.com|gotomeeting\.com|join\.skype\.com",
    re.IGNORECASE,
)
_VIDEO_PROPS = (
    "LOCATION", "DESCRIPTION", "URL", "CONFERENCE", "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL", "X-MICROSOFT-ONLINEMEETINGCONFLINK",
    "X-MICROSOFT-ONLINEMEETINGINFORMATION", "X-MICROSOFT-ONLINEMEETINGEXTERNALLINK",
)  # fmt: skip
_CALLER_LINE = re.compile(
    r"^\s*(?:soittajille|soittajalle|for callers|to callers|callers|till uppringare|"
    r"för uppringare|för den som ringer)\s*:\s*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_URL = re.compile(r"\S+://\S+|\bwww\.\S+", re.IGNORECASE)


def _state(event: icalendar.Component, summary: str, *, long: bool, out_of_office: bool) -> str:
    if long or out_of_office:
        words = " ".join([summary, *_categories(event)]).lower()
        return _keyword_state(words) or "away"
    if any(_VIDEO.search(value) for name in _VIDEO_PROPS for value in _raw_texts(event, name)):
        return "video_conference"
    if "X-MICROSOFT-SKYPETEAMSMEETINGURL" in event or "X-GOOGLE-CONFERENCE" in event:
        return "video_conference"
    bare = summary.strip().lower().rstrip(".!")
    if bare in _AWAY_PLACEHOLDERS:
        return "away"
    if bare in _BUSY_PLACEHOLDERS:
        return "busy"
    return "meeting"


def _keyword_state(text: str) -> str | None:
    tokens = [t for t in _WORD.findall(text) if not t.startswith(_NOT_KEYWORDS)]
    joined = " ".join(tokens)
    for state, words, phrases in _KEYWORDS:
        if any(p in joined for p in phrases):
            return state
        for token in tokens:
            for word in words:
                # Short words only as whole words: "ill" is not "illalla"/"grill".
                if token == word or (
                    len(word) >= 4 and (token.startswith(word) or token.endswith(word))
                ):
                    return state
    return None


def _categories(event: icalendar.Component) -> list[str]:
    values = event.get("CATEGORIES")
    if values is None:
        return []
    out: list[str] = []
    for value in values if isinstance(values, list) else [values]:
        cats = getattr(value, "cats", None)
        out.extend(str(c) for c in cats) if cats is not None else out.append(str(value))
    return out


def _caller_note(event: icalendar.Component) -> str:
    explicit = _text(event, "X-VAIHDE-CALLER-NOTE", limit=CALLER_NOTE_MAX)
    if explicit:
        return explicit
    description = _raw_text(event, "DESCRIPTION")
    match = _CALLER_LINE.search(description)
    return _clean(match.group(1), CALLER_NOTE_MAX) if match else ""


def _internal_note(event: icalendar.Component, summary: str) -> str:
    location = _clean(_URL.sub(" ", _raw_text(event, "LOCATION")), INTERNAL_NOTE_MAX)
    location = location.strip(" ;,")
    tentative = _upper(event, "STATUS") == "TENTATIVE" or (
        _upper(event, "X-MICROSOFT-CDO-BUSYSTATUS") == "TENTATIVE"
    )
    note = summary
    if location and location.lower() not in summary.lower():
        note = f"{note} ({location})" if note else location
    if tentative:
        note = f"(tentative) {note}".strip()
    return _clean(note, INTERNAL_NOTE_MAX)


def _raw_texts(component: icalendar.Component, name: str) -> list[str]:
    value = component.get(name)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _raw_text(component: icalendar.Component, name: str) -> str:
    values = _raw_texts(component, name)  # a repeated property: the first one counts
    return values[0] if values else ""


def _text(component: icalendar.Component, name: str, *, limit: int = INTERNAL_NOTE_MAX) -> str:
    return _clean(_raw_text(component, name), limit)


def _upper(component: icalendar.Component, name: str) -> str:
    return _raw_text(component, name).strip().upper()


_DROP = frozenset({"Cc", "Cf", "Cs", "Co"})


def _clean(text: str, limit: int) -> str:
    """One line of visible text: no control, format (bidi tricks) or private-use characters."""
    text = "".join(
        " " if ch in "\t\n\r\v\f" else ch
        for ch in text[: limit * 4]
        if ch in "\t\n\r\v\f" or unicodedata.category(ch) not in _DROP
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
