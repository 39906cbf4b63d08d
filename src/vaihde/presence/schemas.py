"""What the REST API accepts and answers for availability: the bodies that set and schedule
it, the path parameters, and the replies around vaihde.presence.model's Entry and
Availability (the records themselves are the JSON shapes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vaihde.api.route import MAX_INT32, MUST_BE_TEXT, Body, PathParams, Query
from vaihde.config.patterns import ID
from vaihde.presence.model import (
    MAX_INTERNAL_NOTE,
    MAX_NOTE_FOR_CALLERS,
    Availability,
    Entry,
    State,
)
from vaihde.presence.store import AuditRecord
from vaihde.records import TIME_FORMAT, Record, Time

EmployeeId = Annotated[str, Field(pattern=ID.pattern, description="employee id, e.g. anna")]


class EmployeePath(PathParams):
    employee_id: EmployeeId


class EntryPath(PathParams):
    entry_id: Annotated[int, Field(ge=0, le=MAX_INT32, description="entry number")]


class HistoryQuery(Query):
    limit: int = Field(50, ge=1, le=500, description="1-500, default 50")


class SetAvailability(Body):
    """An employee's availability from now on."""

    state: Annotated[State, MUST_BE_TEXT]
    until: Time | None = Field(
        None, description="when it ends (default: until changed); "
        f"{TIME_FORMAT}; must be in the future"
    )
    note_for_callers: str = Field("", max_length=MAX_NOTE_FOR_CALLERS)
    internal_note: str = Field("", max_length=MAX_INTERNAL_NOTE)


class ScheduleEntry(Body):
    """An entry that starts later (a vacation, a meeting)."""

    state: Annotated[State, MUST_BE_TEXT]
    starts_at: Time
    until: Time | None = None
    note_for_callers: str = Field("", max_length=MAX_NOTE_FOR_CALLERS)
    internal_note: str = Field("", max_length=MAX_INTERNAL_NOTE)


class EntryChange(Record):
    entry: Entry
    availability: Availability


class EntryList(Record):
    entries: list[Entry]


class History(Record):
    entries: list[Entry]
    audit: list[AuditRecord]


class AvailabilityList(Record):
    availability: list[Availability]
