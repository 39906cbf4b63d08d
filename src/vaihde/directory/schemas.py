"""What the REST API accepts and answers for the directory (employees, teams, search) and the
caller register: path and query parameters, the caller update body, and the views built from
vaihde.directory's records (an employee's list entry and details, a team's, a search hit). A
caller (CallerRecord) and a contact (ContactRecord) are sent as they are.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictBool, model_validator

from vaihde.api.route import Body, PathParams, Query
from vaihde.config.patterns import ID
from vaihde.directory import ContactRecord, digits
from vaihde.presence.model import Availability, AvailabilitySummary
from vaihde.records import Record, Time, fail

# --- employees and teams --------------------------------------------------------------------


class TeamPath(PathParams):
    team_id: Annotated[str, Field(pattern=ID.pattern, description="team id, e.g. sales")]


class EmployeeSummary(Record):
    id: str
    name: str
    title: str
    extension: str | None
    teams: tuple[str, ...]
    availability: AvailabilitySummary


class EmployeeList(Record):
    employees: list[EmployeeSummary]


class Person(Record):
    id: str
    name: str
    availability: AvailabilitySummary


class Phone(Record):
    dial: str
    kind: Literal["desk", "mobile", "softphone"]
    # From Asterisk's device state and registrations; mobiles are always unknown.
    reach: Literal["reachable", "in_use", "unreachable", "unknown"]


class TeamRef(Record):
    id: str
    name: str


class Employee(Record):
    """An employee's details: phones and whether they can ring now, teams, delegates and
    their availability."""

    id: str
    name: str
    title: str
    active: bool
    extension: str | None
    email: str | None
    sms_number: str | None
    languages: tuple[str, ...]
    numbers: tuple[str, ...]
    devices: list[Phone]
    teams: list[TeamRef]
    delegates: list[Person]
    availability: Availability
    updated_at: Time


class TeamSummary(Record):
    id: str
    name: str
    kind: str
    members: tuple[str, ...]


class TeamList(Record):
    teams: list[TeamSummary]


class Team(Record):
    id: str
    name: str
    kind: str
    active: bool
    strategy: Literal["all", "in_order"] | None
    ring_seconds: int | None
    queue: str | None
    members: list[Person]
    updated_at: Time


# --- search ----------------------------------------------------------------------------------


class SearchQuery(Query):
    q: str = Field(min_length=1, max_length=100,
                   description="what was typed (1-100 characters; accents optional)")
    limit: int = Field(20, ge=1, le=100, description="at most this many hits (1-100, default 20)")
    company: str | None = Field(
        None, pattern=r"^(\*|[a-z0-9][a-z0-9_\-]{0,39})$",
        description="one company's employees and teams (its id; the console sends the picked "
                    "call's), or `*` / none for every company's")

    @model_validator(mode="after")
    def _not_blank(self) -> SearchQuery:
        if not self.q.strip():
            raise fail("invalid", "must not be empty: type a name, team, extension or number",
                       "q")
        return self


class SearchHit(Record):
    employee_id: str
    name: str
    score: int
    matched: tuple[Literal["name", "title", "topic", "team", "extension", "number", "device"],
                   ...]
    extension: str | None
    teams: tuple[str, ...]
    title: str
    topics: tuple[str, ...]
    availability: AvailabilitySummary


class TeamHit(Record):
    team_id: str
    name: str
    score: int
    matched: tuple[Literal["name", "title", "topic"], ...]
    title: str
    topics: tuple[str, ...]


class SearchResult(Record):
    query: str
    hits: list[SearchHit]
    teams: list[TeamHit]


# --- callers ---------------------------------------------------------------------------------


def _caller_number(raw: str) -> str:
    try:
        number = digits(raw)
    except ValueError:
        raise fail("invalid", f"{raw!r} is not a phone number (digits, optional +)") from None
    if not 3 <= len(number) <= 32:
        raise fail("invalid", f"{raw!r} must have 3-32 digits")
    return number


class CallerPath(PathParams):
    number: Annotated[str, AfterValidator(_caller_number), Field(
        description="phone number; separators (spaces, +, -) allowed")]


class CallerUpdate(Body):
    """A caller's details to create or change; fields not sent are kept, null clears
    preferred_channel and email."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    nulls = True

    name: str = Field("", max_length=200)
    organisation: str = Field("", max_length=200)
    greet_by_name: StrictBool = False
    preferred_channel: Literal["phone", "email", "sms"] | None = None
    email: str | None = Field(None, max_length=254)
    notes: str = Field("", max_length=5000)

    @model_validator(mode="after")
    def _something(self) -> CallerUpdate:
        if not self.model_fields_set:
            fields = ", ".join(type(self).model_fields)
            raise fail("missing_field", f"give at least one of: {fields}", "body")
        return self


_COMPANY = r"^[a-z0-9][a-z0-9_\-]{0,39}$"


class CallerQuery(Query):
    company: str | None = Field(
        None, pattern=_COMPANY,
        description="whose register (a caller's details are per company; default: the "
                    "caller's own company if they act for one, else the first company)")


class ContactsQuery(Query):
    company: str | None = Field(
        None, pattern=_COMPANY,
        description="calls with this company only (default: the caller's own company if they "
                    "act for one, else every company's)")
    days: int = Field(30, ge=1, le=3650, description="how far back (1-3650, default 30)")
    limit: int = Field(50, ge=1, le=500, description="1-500, default 50")


class ContactList(Record):
    number: str
    days: int
    contacts: list[ContactRecord]
