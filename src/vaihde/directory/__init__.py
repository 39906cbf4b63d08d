"""The employee directory: plain descriptions of employees and teams (built from the company
configuration, stored by `directory.store`, searched by `directory.search`). No I/O here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BeforeValidator, ConfigDict, Field

from vaihde.config.patterns import EMAIL, EMAIL_MAX, EXTENSION, ID, LANGUAGE, PHONE
from vaihde.errors import ProblemsError
from vaihde.records import Record, Time, each

DEVICE_KINDS = ("desk", "mobile", "softphone")
_NUMBER_SEPARATORS = str.maketrans("", "", " +-().\u00a0/")


class DirectoryError(ProblemsError, ValueError):
    """The directory description (or a caller's details) cannot be stored; nothing was written.
    `problems` lists each thing wrong as "field: what is wrong"."""


def digits(number: str) -> str:
    """A phone number as callers dial it: digits only ("+358 40-123 4567" → "358401234567").
    Raises ValueError if anything else than digits and the usual separators is in it."""
    stripped = number.translate(_NUMBER_SEPARATORS)
    if not stripped.isascii() or not stripped.isdigit():
        raise ValueError(f"not a phone number: {number!r}")
    return stripped


class DeviceDescription(Record):
    """One of an employee's phones, in ring order."""

    dial: str  # Dial() device string, e.g. PJSIP/anna; validated by the configuration code
    kind: str = "desk"  # desk | mobile | softphone


@dataclass(frozen=True, slots=True)
class EmployeeDescription:
    id: str  # slug, e.g. "anna"
    name: str
    extension: str | None = None
    email: str | None = None
    sms_number: str | None = None
    languages: tuple[str, ...] = ()  # e.g. ("fi", "sv", "en")
    numbers: tuple[str, ...] = ()  # direct numbers; separators allowed, stored as digits
    devices: tuple[DeviceDescription, ...] = ()  # ring order
    delegates: tuple[str, ...] = ()  # employee ids, in order
    title: str = ""  # "Myyntipäällikkö"
    topics: tuple[str, ...] = ()  # what they answer for: "fishing permits", "invoices"


@dataclass(frozen=True, slots=True)
class TeamDescription:
    id: str
    name: str
    kind: str = "team"  # e.g. "operators", "sales"
    members: tuple[str, ...] = ()  # employee ids, in order
    title: str = ""
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DirectoryDescription:
    """Everyone the company configuration describes; stored whole by `store.sync_directory`."""

    employees: tuple[EmployeeDescription, ...] = ()
    teams: tuple[TeamDescription, ...] = ()

    def problems(self) -> list[str]:
        """Everything wrong with the description, as "field: what is wrong" lines."""
        out: list[str] = []
        ids = Counter(e.id for e in self.employees)
        for dup in sorted(i for i, n in ids.items() if n > 1):
            out.append(f"employees.{dup}: given {ids[dup]} times")
        extensions: dict[str, str] = {}
        numbers: dict[str, str] = {}
        for e in self.employees:
            where = f"employees.{e.id}"
            if not isinstance(e.id, str) or not ID.match(e.id):
                out.append(
                    f"{where}: id must be 1-40 lower-case letters, digits, _ or -, "
                    "starting with a letter or digit"
                )
            if not e.name or not e.name.strip() or len(e.name) > 200:
                out.append(f"{where}.name: must be 1-200 characters")
            out += _described(where, e.title, e.topics)
            if e.extension is not None:
                if not EXTENSION.match(e.extension):
                    out.append(f"{where}.extension: must be digits, not {e.extension!r}")
                elif e.extension in extensions:
                    out.append(
                        f"{where}.extension: {e.extension} is already {extensions[e.extension]}'s"
                    )
                else:
                    extensions[e.extension] = e.id
            for n in e.numbers:
                try:
                    d = digits(n)
                except ValueError:
                    out.append(f"{where}.numbers: not a phone number: {n!r}")
                    continue
                if not 3 <= len(d) <= 32:
                    out.append(f"{where}.numbers: {n!r} must have 3-32 digits")
                elif d in numbers:
                    out.append(f"{where}.numbers: {n} is already {numbers[d]}'s")
                else:
                    numbers[d] = e.id
            if e.email is not None and (len(e.email) > EMAIL_MAX or not EMAIL.match(e.email)):
                out.append(f"{where}.email: not an e-mail address: {e.email!r}")
            if e.sms_number is not None and not PHONE.match(
                e.sms_number.translate(str.maketrans("", "", " -"))
            ):
                out.append(f"{where}.sms_number: not a phone number: {e.sms_number!r}")
            for lang in e.languages:
                if not isinstance(lang, str) or not LANGUAGE.match(lang):
                    out.append(f"{where}.languages: not a language code: {lang!r}")
            for i, device in enumerate(e.devices):
                if device.kind not in DEVICE_KINDS:
                    out.append(
                        f"{where}.devices[{i}].kind: must be one of {', '.join(DEVICE_KINDS)}"
                    )
                if not device.dial or len(device.dial) > 120:
                    out.append(f"{where}.devices[{i}].dial: must be 1-120 characters")
            seen: set[str] = set()
            for d_id in e.delegates:
                if d_id == e.id:
                    out.append(f"{where}.delegates: cannot delegate to themselves")
                elif d_id not in ids:
                    out.append(f"{where}.delegates: no employee {d_id!r}")
                elif d_id in seen:
                    out.append(f"{where}.delegates: {d_id} given twice")
                seen.add(d_id)
        team_ids = Counter(t.id for t in self.teams)
        for dup in sorted(i for i, n in team_ids.items() if n > 1):
            out.append(f"teams.{dup}: given {team_ids[dup]} times")
        for t in self.teams:
            where = f"teams.{t.id}"
            if not isinstance(t.id, str) or not ID.match(t.id):
                out.append(f"{where}: id must be 1-40 lower-case letters, digits, _ or -")
            if not t.name or not t.name.strip() or len(t.name) > 200:
                out.append(f"{where}.name: must be 1-200 characters")
            if not t.kind or len(t.kind) > 40:
                out.append(f"{where}.kind: must be 1-40 characters")
            out += _described(where, t.title, t.topics)
            seen = set()
            for m in t.members:
                if m not in ids:
                    out.append(f"{where}.members: no employee {m!r}")
                elif m in seen:
                    out.append(f"{where}.members: {m} given twice")
                seen.add(m)
        return out


MAX_TITLE, MAX_TOPIC, MAX_TOPICS = 200, 100, 50


def _described(where: str, title: str, topics: tuple[str, ...]) -> list[str]:
    out = []
    if not isinstance(title, str) or len(title) > MAX_TITLE:
        out.append(f"{where}.title: must be text of at most {MAX_TITLE} characters")
    if len(topics) > MAX_TOPICS:
        out.append(f"{where}.topics: at most {MAX_TOPICS}")
    for topic in topics:
        if not isinstance(topic, str) or not topic.strip() or len(topic) > MAX_TOPIC:
            out.append(f"{where}.topics: {topic!r} must be 1-{MAX_TOPIC} characters")
    return out


def _sorted(items: Iterable[Any]) -> tuple[str, ...]:
    return tuple(sorted(items))


class EmployeeRecord(Record):
    """An employee as stored, with what the configuration said and what the store keeps."""

    id: str
    name: str
    extension: str | None
    email: str | None
    sms_number: str | None
    languages: Annotated[tuple[str, ...], each()]
    numbers: Annotated[tuple[str, ...], each("number")]  # digits
    devices: tuple[DeviceDescription, ...]
    delegates: Annotated[tuple[str, ...], each("delegate_id")]
    # Team ids (the memberships of a row).
    teams: Annotated[
        tuple[str, ...], AfterValidator(_sorted), each("team_id"),
        Field(validation_alias=AliasChoices("teams", "memberships")),
    ]
    active: bool
    updated_at: Time
    title: Annotated[str, BeforeValidator(lambda v: v or "")] = ""
    topics: Annotated[tuple[str, ...], each()] = ()


class TeamRecord(Record):
    """A team as stored."""

    id: str
    name: str
    kind: str
    members: Annotated[tuple[str, ...], each("employee_id")]  # employee ids, in order
    active: bool
    updated_at: Time
    title: Annotated[str, BeforeValidator(lambda v: v or "")] = ""
    topics: Annotated[tuple[str, ...], each()] = ()


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What `sync_directory` changed (employee and team ids)."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deactivated: tuple[str, ...] = ()
    reactivated: tuple[str, ...] = ()
    teams_added: tuple[str, ...] = ()
    teams_updated: tuple[str, ...] = ()
    teams_deactivated: tuple[str, ...] = ()
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return any(
            (
                self.added,
                self.updated,
                self.deactivated,
                self.reactivated,
                self.teams_added,
                self.teams_updated,
                self.teams_deactivated,
            )
        )


class CallerRecord(Record):
    """What is known about a caller (by number): how they want to be greeted and reached."""

    model_config = ConfigDict(title="Caller")  # its name in the API

    number: str = Field(description="digits only")
    name: str
    organisation: str
    greet_by_name: bool = Field(description="the caller agreed to it")
    preferred_channel: Literal["phone", "email", "sms"] | None
    email: str | None
    notes: str
    updated_at: Time


class ContactRecord(Record):
    """One call with a caller: who they sought, through what, and how it ended."""

    model_config = ConfigDict(title="Contact")  # its name in the API

    id: int
    caller_number: str | None = Field(exclude=True)  # None: number withheld
    at: Time
    direction: Literal["in", "out"]
    path: str  # direct_number, menu, extension, name_search, operator, callback, …
    employee_id: str | None
    outcome: str
    call_id: str
    details: Annotated[dict[str, Any], BeforeValidator(lambda v: dict(v or {}))] = Field(
        default_factory=dict
    )


class ConfigVersionRecord(Record):
    """A company configuration as applied (the document is its canonical JSON)."""

    id: int
    applied_at: Time
    applied_by: str
    sha256: str
    source_name: str
    document: str
