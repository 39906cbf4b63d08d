"""The kinds of values a company file holds, as typed pydantic shapes: pattern, range and the
words the admin reads when a value does not fit. `schema.py` builds the company's shapes from
them; the JSON Schema for editors is generated from the same annotations.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, WithJsonSchema

from vaihde.config import patterns
from vaihde.config.typed import as_flag, as_text, as_whole, check, check_in_context, problem

LANGUAGES = ("fi", "sv", "en")  # what vaihde can speak to callers
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STRATEGIES = ("all", "in_order")
TEAM_KINDS = ("team", "operators")
DEVICE_KINDS = ("desk", "mobile", "softphone")
THEN = ("back", "hangup")
MAX_TITLE = 200
MAX_TOPIC = 100
MAX_TOPICS = 50
MAX_INSTRUCTIONS = 4000  # an operator reads them during a call: a screenful, not a manual
MAX_PROFILE_ITEMS = 30  # questions to ask, urgent rules
MAX_SUMMARY_TO = 10  # addresses of the daily message summary
PLACEHOLDERS = ("operator",)  # what an answer phrase may be filled with
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URL = re.compile(r"^(https|http|webcal)://[^\s]+$")


def _shaped(pattern: re.Pattern[str], help_text: str, max_length: int | None = None) -> Any:
    def run(value: Any) -> str:
        text = as_text(value) if isinstance(value, str) else ""
        if not pattern.match(text) or (max_length is not None and len(text) > max_length):
            raise problem(help_text)
        return text

    return check(run)


def _one_of(choices: tuple[str, ...], help_text: str = "") -> Any:
    words = help_text or f"must be one of {', '.join(choices)}"

    def run(value: Any) -> str:
        text = as_text(value)
        if text not in choices:
            raise problem(words)
        return text

    return check(run)


def _name(value: Any) -> str:
    text = as_text(value)
    if not text:
        raise problem("must not be empty")
    return text


def _line(value: Any) -> str:
    text = as_text(value)
    if len(text) > MAX_TITLE or "\n" in text:
        raise problem(f"must be one line of at most {MAX_TITLE} characters")
    return text


def _topic(value: Any) -> str:
    text = as_text(value) if isinstance(value, str) else ""
    if not text or len(text) > MAX_TOPIC or "\n" in text:
        raise problem(f"a topic is one line of text, 1 to {MAX_TOPIC} characters, like "
                      "fishing permits")
    return text


def _topics(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_TOPICS:
        raise problem(f"at most {MAX_TOPICS} topics")
    return value


def _time_zone(value: Any) -> str:
    text = as_text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise problem(f"{text!r} is not a time zone name like Europe/Helsinki") from None
    return text


def _offered(value: Any, context: Mapping[str, Any]) -> str:
    text = as_text(value) if isinstance(value, str) else ""
    offered = context.get("languages", LANGUAGES)
    if text not in offered:
        raise problem(f"must be one of the offered languages ({', '.join(offered)})")
    return text


def _instructions(value: Any) -> str:
    text = as_text(value)
    if len(text) > MAX_INSTRUCTIONS:
        raise problem(f"must be at most {MAX_INSTRUCTIONS} characters (operators read it "
                      "during a call)")
    return text


def _profile_items(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_PROFILE_ITEMS:
        raise problem(f"at most {MAX_PROFILE_ITEMS} items")
    return value


def placeholder_problem(text: str) -> str | None:
    """Why an answer phrase cannot be filled in (None: it can). Only {operator} is known."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return "has an unmatched { or }: write {operator} for the operator's name, or {{ }}"
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown or any(n == "" for n in names):
        shown = ", ".join("{" + n + "}" for n in unknown) or "{}"
        return f"{shown} is no placeholder: only {{operator}} (the operator's name) is"
    return None


def _answer(value: Any, context: Mapping[str, Any]) -> dict[str, str]:
    """One line (in company.language) or one per language: `{fi: ..., sv: ...}`."""
    if isinstance(value, dict):
        given = value
    else:
        given = {context.get("language", LANGUAGES[0]): value}
    out: dict[str, str] = {}
    for lang, text in given.items():
        if lang not in LANGUAGES:
            raise problem(f"{lang}: is no language vaihde knows ({', '.join(LANGUAGES)})")
        line = _line(text)
        if not line:
            raise problem(f"{lang}: is empty: write the phrase or remove the line")
        found = placeholder_problem(line)
        if found is not None:
            raise problem(f"{lang}: {found}")
        out[lang] = line
    return out


_DAY_RUN = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(mon|tue|wed|thu|fri|sat|sun))?$")
_SHIFT = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
DAYS_HELP = "must be days like mon-fri, sat, or mon-wed, fri (Monday towards Sunday)"


def _days(value: Any) -> tuple[int, ...]:
    text = as_text(value) if isinstance(value, str) else ""
    days: set[int] = set()
    for part in text.split(","):
        m = _DAY_RUN.match(part.strip())
        if not m:
            raise problem(DAYS_HELP)
        first = WEEKDAYS.index(m.group(1))
        last = WEEKDAYS.index(m.group(2)) if m.group(2) else first
        if last < first:
            raise problem(DAYS_HELP)
        days.update(range(first, last + 1))
    return tuple(sorted(days))


def days_text(days: tuple[int, ...]) -> str:
    """(0, 1, 2, 3, 4, 6) → "mon-fri, sun": runs of days as the file writes them."""
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(WEEKDAYS[r[0]] if len(r) == 1 else f"{WEEKDAYS[r[0]]}-{WEEKDAYS[r[-1]]}"
                     for r in runs)


def _shift_hours(value: Any) -> tuple[int, int]:
    """`08:00-16:00`; an end at or before the start is the next day (`16:00-08:00`)."""
    text = as_text(value) if isinstance(value, str) else ""
    m = _SHIFT.match(text)
    if not m:
        raise problem("must be a time range like 08:00-16:00, or 16:00-08:00 (until the next "
                      "morning)")
    sh, sm, eh, em = (int(g) for g in m.groups())
    if sh > 24 or eh > 24 or sm > 59 or em > 59 or sh * 60 + sm >= 1440 or eh * 60 + em > 1440:
        raise problem(f"{text!r}: not a time of day (00:00 to 24:00)")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise problem(f"{text!r}: starts and ends at once; a whole day is 00:00-24:00")
    return start, end


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def clock_minutes(text: str) -> int:
    """"17:00" → 1020: minutes after midnight of a time of day already checked by _clock."""
    m = _CLOCK.match(text)
    assert m is not None, text
    return int(m.group(1)) * 60 + int(m.group(2))


def _clock(value: Any) -> str:
    """A time of day like 17:00 (company time)."""
    text = as_text(value) if isinstance(value, str) else ""
    m = _CLOCK.match(text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise problem("must be a time of day like 17:00 (00:00 to 23:59)")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def _addresses(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_SUMMARY_TO:
        raise problem(f"at most {MAX_SUMMARY_TO} addresses")
    return value


def ref(what: str) -> Any:
    """The id of something defined elsewhere in the file (whether it is, is checked once the
    whole file is read)."""

    def run(value: Any) -> str:
        text = as_text(value) if isinstance(value, str) else ""
        if not text:
            raise problem(f"must be the id of {what}")
        return text

    return check(run)


def _between(low: int, high: int) -> Any:
    return check(lambda v: as_whole(v, low, high))


def _calendar(value: Any, context: Mapping[str, Any]) -> str:
    text = as_text(value)
    policy = context.get("calendars")
    if policy is not None:
        found = policy.problem(text)
    elif "://" in text and not _URL.match(text):
        found = "must be an https:// (or webcal://) address of an ICS calendar"
    else:
        found = "must be one line" if "\n" in text else None
    if found is not None:
        raise problem(found)
    return text


def moment(value: Any, zone: ZoneInfo, *, end: bool) -> datetime:
    """A date (the whole day: an end includes it) or a date and time, in the company's zone."""
    text = (value if isinstance(value, str) else "").strip()
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime(day.year, day.month, day.day, tzinfo=zone)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise problem("must be a date like 2025-12-24 or a time like 2025-12-24 08:00") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


def _moment(end: bool) -> Any:
    def run(value: Any, context: Mapping[str, Any]) -> datetime:
        return moment(value, context.get("zone", ZoneInfo("UTC")), end=end)

    return check_in_context(run)


def _pattern(regex: re.Pattern[str], *, digits: bool = False) -> Any:
    """For the JSON Schema only: the checks above validate (and word the problem). `digits`:
    YAML reads an unquoted 0401234567 as a number, and vaihde reads it as written."""
    extra: dict[str, Any] = {"pattern": regex.pattern}
    if digits:
        extra["type"] = ["string", "integer"]
    return Field(json_schema_extra=extra)


def _schema(**extra: Any) -> Any:
    return Field(json_schema_extra=extra)


Text = Annotated[str, check(as_text)]
Name = Annotated[str, check(_name), _schema(minLength=1)]
Title = Annotated[str, check(_line), _schema(maxLength=MAX_TITLE)]
Topic = Annotated[str, check(_topic), _schema(minLength=1, maxLength=MAX_TOPIC)]
Topics = Annotated[tuple[Topic, ...], check(_topics), _schema(maxItems=MAX_TOPICS)]
Flag = Annotated[bool, check(as_flag)]
Phone = Annotated[
    str, _shaped(patterns.PHONE, patterns.PHONE_HELP), _pattern(patterns.PHONE, digits=True)
]
Extension = Annotated[
    str, _shaped(patterns.EXTENSION, patterns.EXTENSION_HELP),
    _pattern(patterns.EXTENSION, digits=True),
]
Email = Annotated[
    str, _shaped(patterns.EMAIL, patterns.EMAIL_HELP, patterns.EMAIL_MAX),
    _pattern(patterns.EMAIL),
]
QueueName = Annotated[str, _shaped(patterns.QUEUE, patterns.QUEUE_HELP), _pattern(patterns.QUEUE)]
MusicClass = Annotated[
    str, _shaped(patterns.MUSIC_CLASS, patterns.MUSIC_CLASS_HELP), _pattern(patterns.MUSIC_CLASS)
]
DeviceDial = Annotated[
    str, _shaped(patterns.DEVICE, patterns.DEVICE_HELP), _pattern(patterns.DEVICE)
]
SoundName = Annotated[str, _shaped(patterns.SOUND, patterns.SOUND_HELP), _pattern(patterns.SOUND)]
LanguageCode = Annotated[
    str, _shaped(patterns.LANGUAGE, patterns.LANGUAGE_HELP), _pattern(patterns.LANGUAGE)
]
Language = Annotated[str, _one_of(LANGUAGES), _schema(enum=list(LANGUAGES))]
OfferedLanguage = Annotated[
    str, check_in_context(_offered), _schema(enum=list(LANGUAGES))
]
TimeZone = Annotated[str, check(_time_zone)]
Strategy = Annotated[
    str,
    _one_of(STRATEGIES, "must be all (ring together) or in_order (one after another)"),
    _schema(enum=list(STRATEGIES)),
]
TeamKind = Annotated[str, _one_of(TEAM_KINDS), _schema(enum=list(TEAM_KINDS))]
Then = Annotated[
    str, _one_of(THEN, "must be back (to this menu) or hangup"),
    _schema(enum=list(THEN)),
]
Calendar = Annotated[str, check_in_context(_calendar)]
_MOMENT_SCHEMA = WithJsonSchema({
    "type": "string",
    "description": "a date (2025-12-24: the whole day) or a date and time (2025-12-24 08:00)",
})
Start = Annotated[datetime, _moment(end=False), _MOMENT_SCHEMA]
End = Annotated[datetime, _moment(end=True), _MOMENT_SCHEMA]
Id = Annotated[str, _pattern(patterns.ID)]
EmployeeRef = Annotated[str, ref("an employee"), _pattern(patterns.ID)]
TeamRef = Annotated[str, ref("a team"), _pattern(patterns.ID)]
MenuRef = Annotated[str, ref("a menu"), _pattern(patterns.ID)]
AnnouncementRef = Annotated[str, ref("an announcement"), _pattern(patterns.ID)]
RecipientRef = Annotated[
    str, ref("an employee or a team who gets the message"), _pattern(patterns.ID)
]
Timeout = Annotated[int, _between(1, 30), _schema(minimum=1, maximum=30)]
Attempts = Annotated[int, _between(1, 10), _schema(minimum=1, maximum=10)]
TeamRing = Annotated[int, _between(5, 600), _schema(minimum=5, maximum=600)]
RingSeconds = Annotated[int, _between(5, 300), _schema(minimum=5, maximum=300)]
RotaRef = Annotated[str, ref("an on-call rota (oncall:)"), _pattern(patterns.ID)]
ContactRef = Annotated[
    str, ref("an employee, a team or an on-call rota to contact"), _pattern(patterns.ID)
]
Instructions = Annotated[str, check(_instructions), _schema(maxLength=MAX_INSTRUCTIONS)]
ProfileItem = Annotated[str, check(_line), _schema(minLength=1, maxLength=MAX_TITLE)]
ProfileItems = Annotated[
    tuple[ProfileItem, ...], check(_profile_items), _schema(maxItems=MAX_PROFILE_ITEMS)
]
AnswerTexts = Annotated[
    Mapping[str, str],
    check_in_context(_answer),
    WithJsonSchema({
        "description": "what operators say when they answer: one line in company.language, "
                       "or one per language; {operator} is the operator's name",
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_TITLE},
            {"type": "object", "additionalProperties": False, "minProperties": 1,
             "properties": {lang: {"type": "string", "minLength": 1, "maxLength": MAX_TITLE}
                            for lang in LANGUAGES}},
        ],
    }),
]
ConfirmMinutes = Annotated[int, _between(1, 1440), _schema(minimum=1, maximum=1440)]
ClockTime = Annotated[
    str, check(_clock),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}$",
                    "description": "a time of day in company time, like 17:00"}),
]
SummaryTo = Annotated[tuple[Email, ...], check(_addresses), _schema(maxItems=MAX_SUMMARY_TO)]
Days = Annotated[
    tuple[int, ...], check(_days),
    WithJsonSchema({"type": "string", "description": "days a shift starts on: mon-fri, sat, "
                    "or mon-wed, fri"}),
]
ShiftHours = Annotated[
    tuple[int, int], check(_shift_hours),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}$",
                    "description": "08:00-16:00; an end at or before the start is the next "
                    "day (16:00-08:00)"}),
]
