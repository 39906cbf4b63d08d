"""Who is available, decided from availability entries: the one rule that routing and the console
share. Pure: no I/O, no clock; `now` is always passed in.

Precedence (also in docs/presence.md):

1. Only entries that are not cancelled and active at `now` count: `starts_at <= now < until`
   (`until=None`: until changed).
2. Each entry's *effective time* is `max(created_at, starts_at)`: when it became news. The latest
   statement wins: a manual "available" set at 10:15 overrides a calendar meeting that began at
   10:00 (the person came back early); a calendar meeting starting at 14:00 overrides a manual
   "available" set at 09:00 (the meeting is newer news).
3. Equal effective times: operator > manual > phone > calendar > device.
   Still equal: the higher entry id (written later) wins, so the result never depends on order.
4. No active entry: AVAILABLE, source None, explanation "no entries".
5. The phone being in use (AMI device state) is an overlay, not an entry: it turns AVAILABLE and
   BUSY into ON_CALL ("phone in use"); for absences (meeting, vacation, sick, …) the state stays and
   `on_call` is reported as a flag.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    computed_field,
    model_serializer,
)

from vaihde.errors import FieldError, one_of
from vaihde.records import Record, Time, keeps_fields


class State(StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    BUSY = "busy"
    MEETING = "meeting"
    VIDEO_CONFERENCE = "video_conference"
    AWAY = "away"  # lunch, errand: back soon
    VACATION = "vacation"
    SICK = "sick"
    OFF_WORK = "off_work"


class Source(StrEnum):
    MANUAL = "manual"  # the employee: web, REST, CLI
    OPERATOR = "operator"  # a switchboard operator on the employee's behalf
    PHONE = "phone"  # feature code
    CALENDAR = "calendar"
    DEVICE = "device"  # AMI device state


# Higher wins a tie of effective times: a person's word beats a machine's.
SOURCE_RANK: dict[Source, int] = {
    Source.OPERATOR: 5,
    Source.MANUAL: 4,
    Source.PHONE: 3,
    Source.CALENDAR: 2,
    Source.DEVICE: 1,
}

# Sources whose immediate entries mean "this is my status now" and replace each other.
HUMAN_SOURCES = frozenset({Source.MANUAL, Source.OPERATOR, Source.PHONE})

# States the caller can still be put through in; the phone being in use makes them ON_CALL.
REACHABLE = frozenset({State.AVAILABLE, State.BUSY})

MAX_NOTE_FOR_CALLERS = 200
MAX_INTERNAL_NOTE = 1000
MAX_SET_BY = 200
MAX_AHEAD = timedelta(days=731)  # "two years": a typo such as 2205 instead of 2025 is caught


class PresenceError(FieldError, ValueError):
    """Bad input for an availability change, in plain words; nothing was written. An unknown
    employee (field "employee") is a 404."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        if field == "employee":
            self.status, self.code = 404, "not_found"


@keeps_fields
def _hide_private(
    self: Entry | Availability, handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> Any:
    """The internal note only for readers who may see it: the context's `private(employee_id)`
    (the API's permission check) decides; without one, everything is shown."""
    out = handler(self)
    private = (info.context or {}).get("private")
    if private is not None and isinstance(out, dict) and not private(self.employee_id):
        out.pop("internal_note", None)
    return out


class Entry(Record):
    """One statement about an employee's availability; never deleted, only cancelled."""

    sometimes = ("internal_note",)

    id: int
    employee_id: str
    state: State
    starts_at: Time
    until: Time | None
    note_for_callers: str
    internal_note: str
    source: Source
    set_by: str
    created_at: Time
    # The feed's own id for it (a calendar event): not shown over the API.
    external_id: str | None = Field(default=None, exclude=True)
    cancelled_at: Time | None = None
    cancelled_by: str | None = None

    _private = model_serializer(mode="wrap")(_hide_private)

    @property
    def effective_at(self) -> datetime:
        return self.created_at if self.created_at > self.starts_at else self.starts_at

    @property
    def scheduled(self) -> bool:
        """Stated in advance (starts after it was written), e.g. next week's vacation."""
        return self.starts_at > self.created_at

    def active_at(self, now: datetime) -> bool:
        return (
            self.cancelled_at is None
            and self.starts_at <= now
            and (self.until is None or now < self.until)
        )


class AvailabilitySummary(Record):
    """The short form of an availability, as lists and search hits show it."""

    state: State
    until: Time | None
    on_call: bool = Field(description="the phone is in use (AMI)")
    note_for_callers: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reachable(self) -> bool:
        """The phone may be rung (possibly busy on another call)."""
        return self.state in REACHABLE or self.state is State.ON_CALL


class Availability(AvailabilitySummary):
    """An employee's availability at a moment, as routing and the console both see it."""

    sometimes = ("internal_note",)
    # The order of positional arguments (the fields' order when this was a dataclass).
    positional = (
        "employee_id", "state", "until", "note_for_callers", "internal_note", "source",
        "set_by", "since", "entry_id", "on_call", "explanation", "next_change",
    )

    employee_id: str
    internal_note: str = Field(
        description="only for the employee themselves, operators and admins"
    )
    source: Source | None
    set_by: str | None
    since: Time | None
    entry_id: int | None
    explanation: str = Field(description="which entry won and why")
    next_change: Time | None  # a scheduled entry starts or the current one ends

    _private = model_serializer(mode="wrap")(_hide_private)


def _rank(entry: Entry) -> tuple[datetime, int, int]:
    return (entry.effective_at, SOURCE_RANK[entry.source], entry.id)


def _clock(at: datetime, tz: tzinfo) -> str:
    # Messages built without the reader's zone say so rather than pass UTC off as local time.
    suffix = " UTC" if tz is UTC else ""
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") + suffix


def _describe(entry: Entry) -> str:
    by = f" by {entry.set_by}" if entry.set_by else ""
    return f"{entry.state} ({entry.source}{by}, #{entry.id})"


def resolve(
    employee_id: str,
    entries: Iterable[Entry],
    *,
    now: datetime,
    on_call: bool = False,
    tz: tzinfo = UTC,
) -> Availability:
    """The employee's availability at `now` from their entries (any order, any employee's
    cancelled or expired ones are ignored). `tz` only formats the explanation's times."""
    winner: Entry | None = None
    winner_rank: tuple[datetime, int, int] | None = None
    overridden: list[Entry] = []
    next_start: datetime | None = None
    for entry in entries:
        if entry.cancelled_at is not None:
            continue
        if entry.starts_at > now:
            if next_start is None or entry.starts_at < next_start:
                next_start = entry.starts_at
            continue
        if entry.until is not None and now >= entry.until:
            continue
        rank = _rank(entry)
        if winner_rank is None or rank > winner_rank:
            if winner is not None:
                overridden.append(winner)
            winner, winner_rank = entry, rank
        else:
            overridden.append(entry)

    if winner is None:
        state = State.ON_CALL if on_call else State.AVAILABLE
        why = "phone in use; no entries" if on_call else "no entries"
        return Availability(
            employee_id=employee_id, state=state, until=None, note_for_callers="",
            internal_note="", source=None, set_by=None, since=None, entry_id=None,
            on_call=on_call, explanation=why, next_change=next_start,
        )

    next_change = winner.until
    if next_start is not None and (next_change is None or next_start < next_change):
        next_change = next_start

    parts = [f"{_describe(winner)} since {_clock(winner.effective_at, tz)}"]
    if winner.until is not None:
        parts[0] += f" until {_clock(winner.until, tz)}"
    if overridden:
        overridden.sort(key=_rank, reverse=True)
        older = ", ".join(f"{_describe(e)} from {_clock(e.effective_at, tz)}" for e in overridden)
        parts.append(f"overrides {older}: the latest statement wins")
    state = winner.state
    if on_call:
        if state in REACHABLE:
            parts.insert(0, f"phone in use; underlying {state}")
            state = State.ON_CALL
        else:
            parts.append("phone in use")
    return Availability(
        employee_id=employee_id,
        state=state,
        until=winner.until,
        note_for_callers=winner.note_for_callers,
        internal_note=winner.internal_note,
        source=winner.source,
        set_by=winner.set_by,
        since=winner.effective_at,
        entry_id=winner.id,
        on_call=on_call,
        explanation="; ".join(parts),
        next_change=next_change,
    )


# --- validation ----------------------------------------------------------------------------


def parse_state(value: str | State) -> State:
    return one_of(State, "state", value, PresenceError)


def parse_source(value: str | Source) -> Source:
    return one_of(Source, "source", value, PresenceError)


def require_aware(field: str, value: datetime | None) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise PresenceError(field, f"must be a date and time, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise PresenceError(field, "must include a time zone (a time without one is ambiguous)")


def check_text(field: str, value: str, limit: int, *, newlines: bool = False) -> None:
    if not isinstance(value, str):
        raise PresenceError(field, "must be text")
    if len(value) > limit:
        raise PresenceError(field, f"is {len(value)} characters long; at most {limit} allowed")
    for ch in value:
        if unicodedata.category(ch) == "Cc" and not (newlines and ch == "\n"):
            raise PresenceError(field, f"contains a control character ({ord(ch):#04x})")


def clean_text(value: str, limit: int) -> str:
    """For machine sources (calendars): keep what fits instead of refusing the whole sync."""
    cleaned = " ".join(
        "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value).split()
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def validate_new_entry(
    *,
    state: str | State,
    source: str | Source,
    set_by: str,
    now: datetime,
    starts_at: datetime | None = None,
    until: datetime | None = None,
    note_for_callers: str = "",
    internal_note: str = "",
) -> None:
    """Raise PresenceError(field, message) for the first thing wrong with a new entry.

    `starts_at=None` means now. Checks that need the database (unknown employee, overlaps) are
    the store's; `find_overlap` does the latter's logic.
    """
    parse_state(state)
    parse_source(source)
    require_aware("now", now)
    require_aware("starts_at", starts_at)
    require_aware("until", until)
    if not isinstance(set_by, str) or not set_by.strip():
        raise PresenceError("set_by", "must say who made the change")
    check_text("set_by", set_by, MAX_SET_BY)
    check_text("note_for_callers", note_for_callers, MAX_NOTE_FOR_CALLERS)
    check_text("internal_note", internal_note, MAX_INTERNAL_NOTE, newlines=True)
    start = now if starts_at is None else starts_at
    if start > now + MAX_AHEAD:
        raise PresenceError("starts_at", f"is more than two years ahead ({start:%Y-%m-%d})")
    if until is not None:
        if until <= now:
            raise PresenceError("until", "is already in the past")
        if until <= start:
            raise PresenceError("until", "must be after the start")
        if until > now + MAX_AHEAD:
            raise PresenceError("until", f"is more than two years ahead ({until:%Y-%m-%d})")


def overlaps(a_start: datetime, a_until: datetime | None, b: Entry) -> bool:
    """Would the interval [a_start, a_until) and entry b both be active at some moment?"""
    a_ends_after_b_starts = a_until is None or a_until > b.starts_at
    b_ends_after_a_starts = b.until is None or b.until > a_start
    return a_ends_after_b_starts and b_ends_after_a_starts


def find_overlap(
    source: Source,
    starts_at: datetime,
    until: datetime | None,
    existing: Iterable[Entry],
) -> Entry | None:
    """A scheduled entry (explicit start) that clashes with another scheduled one from the same
    source. Statements of "my status now" never clash: they supersede instead."""
    for entry in existing:
        if (
            entry.cancelled_at is None
            and entry.source is source
            and entry.scheduled
            and overlaps(starts_at, until, entry)
        ):
            return entry
    return None


def superseded(now: datetime, existing: Iterable[Entry]) -> list[Entry]:
    """Entries that a new immediate human statement replaces: the open-ended manual, operator and
    phone entries active now. Bounded ones (vacation to Friday) resurface when the new one ends;
    future ones stay scheduled."""
    return [
        e for e in existing if e.source in HUMAN_SOURCES and e.until is None and e.active_at(now)
    ]


def describe_entry(entry: Entry, tz: tzinfo = UTC) -> str:
    """One line for messages and the CLI."""
    span = f"from {_clock(entry.starts_at, tz)}"
    span += f" until {_clock(entry.until, tz)}" if entry.until else " until changed"
    return f"#{entry.id} {entry.state} ({entry.source}, {entry.set_by}) {span}"
