"""The kinds of values a company file holds, as typed pydantic shapes: pattern, range and the
words the admin reads when a value does not fit. `schema.py` builds the company's shapes from
them; the JSON Schema for editors is generated from the same annotations.
"""

from __future__ import annotations

import re
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
