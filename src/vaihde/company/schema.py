"""The company as the admin describes it: immutable, validated objects built by `load.py`.

`CompanyConfig.to_document()` is the canonical form (the file format with every default filled in).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from vaihde.config.source import Where

LANGUAGES = ("fi", "sv", "en")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STRATEGIES = ("all", "in_order")
TEAM_KINDS = ("team", "operators")
DEVICE_KINDS = ("desk", "mobile", "softphone")
# Every menu target key; the file names a target by exactly one of these.
TARGET_KINDS = (
    "employee",
    "team",
    "menu",
    "announcement",
    "operator",
    "external",
    "dial_by_name",
    "message",
    "language",
    "hangup",
)
# Targets that need no argument beyond `true`.
FLAG_TARGETS = ("operator", "dial_by_name", "hangup")
OPERATOR_DIGIT = "0"
REPEAT_KEY = "*"
BACK_KEY = "#"

def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a fresh dict: the loader's dicts never leak out mutable."""
    return MappingProxyType(dict(items or {}))




# Objects remember where the admin wrote them (`where`) for messages only: compare=False, so a
# reformatted file still compares equal.


@dataclass(frozen=True, slots=True)
class Say:
    """Something said to callers: text per language for synthesis, or a recording overriding it.

    `sound` is an Asterisk sound name; Asterisk picks the recording in the caller's language.
    """

    texts: Mapping[str, str]
    sound: str = ""

    def text(self, language: str, default: str) -> str:
        return self.texts.get(language) or self.texts.get(default, "")

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.texts)
        if self.sound:
            data["sound"] = self.sound
        return data


@dataclass(frozen=True, slots=True)
class CompanyInfo:
    name: str
    timezone: str
    language: str
    languages: tuple[str, ...]

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timezone": self.timezone,
            "language": self.language,
            "languages": list(self.languages),
        }


@dataclass(frozen=True, slots=True)
class Target:
    """Where a key press (or the closed-hours action) takes the caller.

    kind is one of TARGET_KINDS; ref is the id (employee, team, menu, announcement; for `message`
    an employee or team id), the phone number for `external`, the language code for `language`,
    and "" for the flag targets.
    """

    kind: str
    ref: str = ""

    def to_data(self) -> dict[str, Any]:
        return {self.kind: True if self.kind in FLAG_TARGETS else self.ref}

    def __str__(self) -> str:
        if self.kind in FLAG_TARGETS:
            return self.kind.replace("_", " ")
        return f"{self.kind.replace('_', ' ')} {self.ref}"


@dataclass(frozen=True, slots=True)
class Number:
    """A company number and the menu its callers start in."""

    number: str  # as written: digits with an optional leading +
    label: str
    menu: str
    language: str
    where: Where | None = field(default=None, compare=False, repr=False)

    @property
    def digits(self) -> str:
        return self.number.lstrip("+")

    def to_data(self) -> dict[str, Any]:
        data = {"menu": self.menu, "language": self.language}
        if self.label:
            data["label"] = self.label
        return data


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """Wall-clock opening time in the company's zone, minutes after midnight; end excluded.

    end may be 1440 (24:00) so that a day can be open until midnight.
    """

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def ranges_text(ranges: tuple[TimeRange, ...]) -> str:
    return ", ".join(str(r) for r in ranges) if ranges else "closed"


def _dates_key(first: date, last: date) -> str:
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


@dataclass(frozen=True, slots=True)
class Holiday:
    """Closed all day from `first` to `last` (inclusive)."""

    first: date
    last: date
    name: str

    @property
    def key(self) -> str:
        return _dates_key(self.first, self.last)


@dataclass(frozen=True, slots=True)
class HoursException:
    """Different opening hours from `first` to `last` (inclusive); no ranges = closed."""

    first: date
    last: date
    ranges: tuple[TimeRange, ...]
    name: str

    @property
    def key(self) -> str:
        return _dates_key(self.first, self.last)

    def to_data(self) -> dict[str, Any]:
        data = {"hours": ranges_text(self.ranges)}
        if self.name:
            data["name"] = self.name
        return data


@dataclass(frozen=True, slots=True)
class ClosedAction:
    """What callers get when the company is closed: an announcement, then the target."""

    announcement: str  # announcement id, "" = none
    target: Target

    def to_data(self) -> dict[str, Any]:
        data = self.target.to_data()
        if self.announcement:
            data["announcement"] = self.announcement
        return data


@dataclass(frozen=True, slots=True)
class OpeningHours:
    timezone: str  # the company's; hours are wall-clock time there
    weekly: tuple[tuple[TimeRange, ...], ...]  # Monday first, as date.weekday()
    holidays: tuple[Holiday, ...]  # sorted by date
    exceptions: tuple[HoursException, ...]  # sorted by date
    closed_action: ClosedAction

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            day: ranges_text(ranges) for day, ranges in zip(WEEKDAYS, self.weekly, strict=True)
        }
        data["holidays"] = {h.key: h.name for h in self.holidays}
        data["exceptions"] = {e.key: e.to_data() for e in self.exceptions}
        data["closed_action"] = self.closed_action.to_data()
        return data


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str
    say: Say
    valid_from: datetime | None  # aware; None = always
    valid_until: datetime | None  # aware, excluded; None = for ever
    where: Where | None = field(default=None, compare=False, repr=False)

    def active(self, at: datetime) -> bool:
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until

    def to_data(self) -> dict[str, Any]:
        data = self.say.to_data()
        if self.valid_from is not None:
            data["from"] = self.valid_from.isoformat()
        if self.valid_until is not None:
            data["until"] = self.valid_until.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class MenuOption:
    digit: str
    target: Target
    label: str = ""  # what the choice is, for the console and reports ("Myynti")
    human_only: bool = False  # complaints, cancellations: a person answers, never automation
    then: str = ""  # after an announcement: "back" to the menu or "hangup"; "" otherwise

    def to_data(self) -> dict[str, Any]:
        data = self.target.to_data()
        if self.label:
            data["label"] = self.label
        if self.human_only:
            data["human_only"] = True
        if self.then:
            data["then"] = self.then
        return data


@dataclass(frozen=True, slots=True)
class Menu:
    """A numbered menu. 0 (operator), * (repeat) and # (back) are implied, never in `options`."""

    id: str
    greeting: Say | None  # said once on arrival
    prompt: Say  # the choices; repeated on * and after a wrong key
    options: Mapping[str, MenuOption]  # "1".."9"
    timeout: int  # seconds to wait for a key
    attempts: int  # prompts before the caller is taken to the operator
    announce: tuple[str, ...] = ()  # announcement ids said after the greeting while valid
    where: Where | None = field(default=None, compare=False, repr=False)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt": self.prompt.to_data(),
            "options": {d: o.to_data() for d, o in self.options.items()},
            "timeout": self.timeout,
            "attempts": self.attempts,
        }
        if self.greeting is not None:
            data["greeting"] = self.greeting.to_data()
        if self.announce:
            data["announce"] = list(self.announce)
        return data


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    kind: str  # "team" | "operators"
    members: tuple[str, ...]  # employee ids, in ring order
    strategy: str  # "all" | "in_order"
    ring_seconds: int  # per member with in_order, in all for "all"
    queue: str = ""  # Asterisk queue name, "" = ring members directly
    email: str = ""  # where messages for the team go; "" = each member's e-mail
    where: Where | None = field(default=None, compare=False, repr=False)
    title: str = ""  # what the team does, for operators ("Laskutus ja reskontra")
    topics: tuple[str, ...] = ()  # what the team answers for ("invoices"), for the directory

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "members": list(self.members),
            "strategy": self.strategy,
            "ring_seconds": self.ring_seconds,
        }
        if self.queue:
            data["queue"] = self.queue
        if self.email:
            data["email"] = self.email
        if self.title:
            data["title"] = self.title
        if self.topics:
            data["topics"] = list(self.topics)
        return data


@dataclass(frozen=True, slots=True)
class Device:
    """One phone of an employee. desk/softphone: a Dial() string; mobile: a phone number that the
    trunk settings turn into a dial string later."""

    kind: str  # "desk" | "mobile" | "softphone"
    address: str
    seconds: int  # ring time when devices ring in order

    def to_data(self) -> dict[str, Any]:
        return {self.kind: self.address, "seconds": self.seconds}

    def __str__(self) -> str:
        return f"{self.kind} {self.address}"


@dataclass(frozen=True, slots=True)
class Employee:
    id: str
    name: str
    extension: str  # "" = none
    direct: tuple[str, ...]  # direct numbers, sorted
    devices: tuple[Device, ...]  # ring order
    strategy: str  # "all" | "in_order"
    ring_seconds: int
    teams: tuple[str, ...]  # sorted; derived from the teams' members
    delegates: tuple[str, ...]  # employee ids, first is asked first
    languages: tuple[str, ...]
    title: str = ""
    email: str = ""
    sms: str = ""
    calendar: str = ""  # ICS URL, or a path relative to the company file
    where: Where | None = field(default=None, compare=False, repr=False)
    topics: tuple[str, ...] = ()  # what they answer for ("fishing permits"), for the directory

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "devices": [d.to_data() for d in self.devices],
            "strategy": self.strategy,
            "ring_seconds": self.ring_seconds,
            "languages": list(self.languages),
        }
        optional = {
            "extension": self.extension,
            "direct": list(self.direct),
            "delegates": list(self.delegates),
            "title": self.title,
            "topics": list(self.topics),
            "email": self.email,
            "sms": self.sms,
            "calendar": self.calendar,
        }
        data.update({k: v for k, v in optional.items() if v})
        return data


@dataclass(frozen=True, slots=True)
class CompanyConfig:
    company: CompanyInfo
    numbers: Mapping[str, Number]  # by number as written
    hours: OpeningHours
    announcements: Mapping[str, Announcement]
    menus: Mapping[str, Menu]
    teams: Mapping[str, Team]
    employees: Mapping[str, Employee]
    warnings: tuple[str, ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False)
    # Indexes for the lookups every call (and every phone state change) makes; built once.
    _menu_by_number: Mapping[str, str] = field(init=False, compare=False, repr=False)
    _by_number: Mapping[str, str] = field(init=False, compare=False, repr=False)
    _by_extension: Mapping[str, str] = field(init=False, compare=False, repr=False)
    _by_device: Mapping[str, str] = field(init=False, compare=False, repr=False)
    # Proper prefixes of extensions → how many longer extensions start with them (keying "12"
    # when 123 exists means "wait for the next key").
    extension_prefixes: Mapping[str, int] = field(init=False, compare=False, repr=False)
    extension_keys: str = field(init=False, compare=False, repr=False)  # keys that begin one
    _language_by_number: Mapping[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        menus = {n.digits: n.menu for n in self.numbers.values()}
        by_number: dict[str, str] = {}
        by_extension: dict[str, str] = {}
        by_device: dict[str, str] = {}
        for employee in self.employees.values():
            for number in employee.direct:
                by_number.setdefault(number.lstrip("+"), employee.id)
            if employee.extension:
                by_extension.setdefault(employee.extension, employee.id)
            for device in employee.devices:
                # Mobiles cannot be told apart from any caller, so they identify no one.
                if device.kind != "mobile":
                    by_device.setdefault(device.address, employee.id)
        prefixes: dict[str, int] = {}
        for extension in by_extension:
            for end in range(1, len(extension)):
                prefixes[extension[:end]] = prefixes.get(extension[:end], 0) + 1
        languages = {n.digits: n.language for n in self.numbers.values()}
        for name, index in (("_menu_by_number", menus), ("_by_number", by_number),
                            ("_by_extension", by_extension), ("_by_device", by_device),
                            ("extension_prefixes", prefixes),
                            ("_language_by_number", languages)):
            object.__setattr__(self, name, MappingProxyType(index))
        object.__setattr__(self, "extension_keys", "".join(sorted({e[0] for e in by_extension})))

    @property
    def operators(self) -> Team:
        """The team behind 0 in every menu (validation guarantees exactly one)."""
        return next(t for t in self.teams.values() if t.kind == "operators")

    def entry_menu(self, dialled: str) -> Menu | None:
        """The menu for a dialled company number, with or without its leading +."""
        menu = self._menu_by_number.get(dialled.lstrip("+"))
        return self.menus[menu] if menu is not None else None

    def employee_by_number(self, dialled: str) -> Employee | None:
        found = self._by_number.get(dialled.lstrip("+"))
        return self.employees[found] if found is not None else None

    def number_language(self, dialled: str) -> str:
        """The language callers of a company number hear first."""
        return self._language_by_number.get(dialled.lstrip("+"), self.company.language)

    def company_number(self, dialled: str) -> Number | None:
        """The company number that was dialled (with or without its leading +), if it is one."""
        wanted = dialled.lstrip("+")
        return next((n for n in self.numbers.values() if n.digits == wanted), None)

    def employee_by_extension(self, extension: str) -> Employee | None:
        found = self._by_extension.get(extension)
        return self.employees[found] if found is not None else None

    def employee_by_device(self, device: str) -> Employee | None:
        """Whose desk phone or softphone `device` (e.g. PJSIP/anna) is."""
        found = self._by_device.get(device)
        return self.employees[found] if found is not None else None

    def to_document(self) -> dict[str, Any]:
        """The canonical form: the file format with every default written out, keys sorted.

        Two files that mean the same give equal documents; `load.company_from_document` reads it
        back. JSON-able: only dicts, lists, strings, ints and booleans.
        """
        doc = {
            "company": self.company.to_data(),
            "numbers": {k: v.to_data() for k, v in self.numbers.items()},
            "hours": self.hours.to_data(),
            "announcements": {k: v.to_data() for k, v in self.announcements.items()},
            "menus": {k: v.to_data() for k, v in self.menus.items()},
            "teams": {k: v.to_data() for k, v in self.teams.items()},
            "employees": {k: v.to_data() for k, v in self.employees.items()},
        }
        return _sorted(doc)

    def digest(self) -> str:
        """sha256 of the canonical document: identifies a version of the company."""
        text = json.dumps(self.to_document(), sort_keys=True, ensure_ascii=False,
                          separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value
