"""The company as the admin describes it: one typed, immutable shape per thing, read from the
company file by `load.py` (each field validated by its annotated type: `fields.py`), written
back by `to_document()`, and described for editors by `jsonschema.py`.

The shapes are plain frozen dataclasses: a call reads them as attributes, nothing is validated
or copied on the way. `CompanyConfig.to_document()` is the canonical form (the file format with
every default filled in).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field

from vaihde.company.fields import (
    WEEKDAYS,
    AnnouncementRef,
    AnswerTexts,
    Attempts,
    Calendar,
    ClockTime,
    ConfirmMinutes,
    ContactRef,
    Days,
    Email,
    EmployeeRef,
    End,
    Extension,
    Flag,
    Id,
    Instructions,
    Language,
    LanguageCode,
    MenuRef,
    MusicClass,
    Name,
    OfferedLanguage,
    Phone,
    ProfileItems,
    QueueName,
    RecipientRef,
    RingSeconds,
    RotaRef,
    ShiftHours,
    SoundName,
    Start,
    Strategy,
    SummaryTo,
    TeamKind,
    TeamRef,
    TeamRing,
    Text,
    Then,
    Timeout,
    TimeZone,
    Title,
    Topics,
    days_text,
)
from vaihde.config.typed import Mark, Required, shape_of

MAIN_COMPANY = "main"  # the company of a file without company.id (vaihde.db.models.MAIN)
OPERATOR_DIGIT = "0"
REPEAT_KEY = "*"
BACK_KEY = "#"


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a fresh dict: the loader's dicts never leak out mutable."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True, slots=True)
class Say:
    """Something said to callers: text per language for synthesis, or a recording overriding it.

    In the file: one text (in company.language) or `{fi: …, sv: …, en: …, sound: …}`. `sound`
    is an Asterisk sound name; Asterisk picks the recording in the caller's language.
    """

    texts: Mapping[str, str]
    sound: SoundName = ""

    def text(self, language: str, default: str) -> str:
        return self.texts.get(language) or self.texts.get(default, "")

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.texts)
        if self.sound:
            data["sound"] = self.sound
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class CompanyInfo:
    name: Annotated[Name, Required()]
    # Which company of the service this file describes (issue 12); none written = "main", the
    # company of a single-company installation.
    id: Id = ""
    timezone: TimeZone = "Europe/Helsinki"
    language: Language = "fi"  # what callers hear first, and where every text must exist
    languages: tuple[Language, ...] = ()  # offered to callers; default: (language,)
    # What the company's callers hear while they wait (queue, hold, park): an Asterisk
    # music-on-hold class; "" = Asterisk's default.
    music_on_hold: MusicClass = ""


# ---- where a key press (or the closed-hours action) takes the caller ---------------------------
# Each is written in the file as one key (`employee: anna`, `operator: true`) and handled by the
# flow with `match` (flows/inbound.py). `key` is that key; `ref` its value ("" for a flag).


class BaseTarget:
    __slots__ = ()
    key: ClassVar[str]

    @property
    def ref(self) -> str:
        """The value written after the key: an id, a number, a language ("" for a flag)."""
        return str(getattr(self, self.__slots__[0])) if self.__slots__ else ""

    def to_data(self) -> dict[str, Any]:
        return {self.key: self.ref or True}

    def __str__(self) -> str:
        words = self.key.replace("_", " ")
        return f"{words} {self.ref}" if self.ref else words


@dataclass(frozen=True, slots=True)
class EmployeeTarget(BaseTarget):
    """Ring an employee (when they can take calls)."""

    key: ClassVar[str] = "employee"
    id: EmployeeRef


@dataclass(frozen=True, slots=True)
class TeamTarget(BaseTarget):
    """Ring a team (its members who can take calls, or its queue)."""

    key: ClassVar[str] = "team"
    id: TeamRef


@dataclass(frozen=True, slots=True)
class MenuTarget(BaseTarget):
    """Go to another menu (# comes back)."""

    key: ClassVar[str] = "menu"
    id: MenuRef


@dataclass(frozen=True, slots=True)
class AnnouncementTarget(BaseTarget):
    """Say an announcement, then back to the menu or goodbye (the option's `then`)."""

    key: ClassVar[str] = "announcement"
    id: AnnouncementRef


@dataclass(frozen=True, slots=True)
class OperatorTarget(BaseTarget):
    """The switchboard (`operator: true`)."""

    key: ClassVar[str] = "operator"


@dataclass(frozen=True, slots=True)
class ExternalTarget(BaseTarget):
    """An outside number, through the trunk."""

    key: ClassVar[str] = "external"
    number: Phone


@dataclass(frozen=True, slots=True)
class DialByNameTarget(BaseTarget):
    """Spell a name on the keypad (`dial_by_name: true`)."""

    key: ClassVar[str] = "dial_by_name"


@dataclass(frozen=True, slots=True)
class MessageTarget(BaseTarget):
    """Take a message for an employee or a team."""

    key: ClassVar[str] = "message"
    id: RecipientRef


@dataclass(frozen=True, slots=True)
class LanguageTarget(BaseTarget):
    """Switch the caller's language and say the menu again."""

    key: ClassVar[str] = "language"
    language: OfferedLanguage


@dataclass(frozen=True, slots=True)
class OncallTarget(BaseTarget):
    """Ring whoever is on call now on a rota ("Päivystys"), in its order."""

    key: ClassVar[str] = "oncall"
    id: RotaRef


@dataclass(frozen=True, slots=True)
class HangupTarget(BaseTarget):
    """Say goodbye and end the call (closed hours only, after an announcement)."""

    key: ClassVar[str] = "hangup"


OptionTarget = (
    EmployeeTarget | TeamTarget | MenuTarget | AnnouncementTarget | OperatorTarget
    | ExternalTarget | DialByNameTarget | MessageTarget | LanguageTarget | OncallTarget
)
ClosedTarget = (
    MenuTarget | TeamTarget | EmployeeTarget | MessageTarget | ExternalTarget | OperatorTarget
    | HangupTarget | OncallTarget
)
Target = OptionTarget | HangupTarget
# In the order problems name them.
OPTION_TARGETS: tuple[type[BaseTarget], ...] = (
    EmployeeTarget, TeamTarget, MenuTarget, AnnouncementTarget, OperatorTarget, ExternalTarget,
    DialByNameTarget, MessageTarget, LanguageTarget, OncallTarget,
)
CLOSED_TARGETS: tuple[type[BaseTarget], ...] = (
    MenuTarget, TeamTarget, EmployeeTarget, MessageTarget, ExternalTarget, OperatorTarget,
    HangupTarget, OncallTarget,
)
TARGETS: tuple[type[BaseTarget], ...] = (*OPTION_TARGETS, HangupTarget)
assert set(CLOSED_TARGETS) <= set(TARGETS)
TARGET_KINDS = tuple(t.key for t in TARGETS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Number:
    """A company number and the menu its callers start in."""

    number: Annotated[str, Mark.KEY]  # as written: digits with an optional leading +
    label: Text = ""
    menu: Annotated[MenuRef, Required("the menu callers of this number start in")]
    language: OfferedLanguage = ""  # default: company.language

    @property
    def digits(self) -> str:
        return self.number.lstrip("+")


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
    name: Text = ""

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

    announcement: AnnouncementRef  # "" = none
    target: ClosedTarget

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """Said when a menu option or the closed-hours action says so, or after a menu's greeting
    (its `announce:`) while valid. In the file its texts are written beside `from`/`until`."""

    id: Annotated[str, Mark.KEY]
    say: Annotated[Say, Mark.FLATTENED]
    valid_from: Annotated[Start | None, Field(alias="from")] = None  # None = always
    valid_until: Annotated[End | None, Field(alias="until")] = None  # excluded; None = for ever

    def active(self, at: datetime) -> bool:
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until


@dataclass(frozen=True, slots=True, kw_only=True)
class MenuOption:
    digit: Annotated[str, Mark.KEY]
    target: Annotated[OptionTarget, Mark.FLATTENED]
    label: Text = ""  # what the choice is, for the console and reports ("Myynti")
    human_only: Flag = False  # complaints, cancellations: a person answers, never automation
    then: Then = ""  # after an announcement: "back" to the menu or "hangup"; "" otherwise


@dataclass(frozen=True, slots=True, kw_only=True)
class Menu:
    """A numbered menu. 0 (operator), * (repeat) and # (back) are implied, never in `options`."""

    id: Annotated[str, Mark.KEY]
    greeting: Say | None = None  # said once on arrival
    prompt: Annotated[Say, Required("what callers hear, as text per language")]  # the choices
    options: Annotated[Mapping[str, MenuOption], Mark.ALWAYS] = field(default_factory=frozen_map)
    timeout: Timeout = 5  # seconds to wait for a key
    attempts: Attempts = 3  # prompts before the caller is taken to the operator
    announce: tuple[AnnouncementRef, ...] = ()  # bulletins said after the greeting while valid


@dataclass(frozen=True, slots=True, kw_only=True)
class Team:
    id: Annotated[str, Mark.KEY]
    name: Annotated[Name, Required()]
    kind: TeamKind = "team"  # "team" | "operators"
    members: tuple[EmployeeRef, ...] = ()  # employee ids, in ring order
    strategy: Strategy = "all"  # "all" | "in_order"
    ring_seconds: TeamRing = 20  # per member with in_order, in all for "all"
    queue: QueueName = ""  # Asterisk queue name, "" = ring members directly
    email: Email = ""  # where messages for the team go; "" = each member's e-mail
    title: Title = ""  # what the team does, for operators ("Laskutus ja reskontra")
    topics: Topics = ()  # what the team answers for ("invoices"), for the directory


@dataclass(frozen=True, slots=True)
class Device:
    """One phone of an employee. desk/softphone: a Dial() string; mobile: a phone number that the
    trunk settings turn into a dial string later. In the file: `{desk: PJSIP/anna, seconds: 20}`."""

    kind: str  # "desk" | "mobile" | "softphone"
    address: str
    seconds: RingSeconds = 20  # ring time when devices ring in order; default: ring_seconds

    def to_data(self) -> dict[str, Any]:
        return {self.kind: self.address, "seconds": self.seconds}

    def __str__(self) -> str:
        return f"{self.kind} {self.address}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Employee:
    id: Annotated[str, Mark.KEY]
    name: Annotated[Name, Required()]
    extension: Extension = ""  # "" = none
    direct: tuple[Phone, ...] = ()  # direct numbers, sorted
    devices: Annotated[tuple[Device, ...], Mark.ALWAYS] = ()  # ring order
    strategy: Strategy = "all"  # "all" | "in_order"
    ring_seconds: RingSeconds = 20
    # The teams written here join them; once loaded, every team they are in (sorted), while
    # the canonical document keeps membership on the teams.
    teams: Annotated[tuple[TeamRef, ...], Mark.UNWRITTEN] = ()
    delegates: tuple[EmployeeRef, ...] = ()  # employee ids, first is asked first
    languages: tuple[LanguageCode, ...] = ()  # default: company.language
    title: Title = ""
    email: Email = ""
    sms: Phone = ""
    calendar: Calendar = ""  # ICS URL, or a path relative to the company file
    topics: Topics = ()  # what they answer for ("fishing permits"), for the directory


# ---- the account profile: what operators see and say for this company -------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UrgentRule:
    """When a message taken for the company is urgent, and whom to contact then."""

    when: Annotated[Title, Required("when a message is urgent, in words")]
    contact: ContactRef = ""  # an employee, a team or an on-call rota ("" = as usual)


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The account profile on the operator's call card (none of it is said to callers)."""

    answer: AnswerTexts = field(default_factory=frozen_map)  # by language; {operator}
    instructions: Instructions = ""  # free text for operators
    ask: ProfileItems = ()  # what to ask every caller, in order
    urgent: tuple[UrgentRule, ...] = ()
    # Message dispatch (vaihde.dispatch): how long the person texted an urgent message has to
    # confirm it before the next one on call is texted; where and when (company time) the daily
    # message summary goes ("" addresses: none is sent).
    urgent_confirm_minutes: ConfirmMinutes = 10
    summary_to: SummaryTo = ()
    summary_at: ClockTime = "17:00"

    def answer_in(self, language: str, default: str) -> str:
        """The answer phrase in the call's language, else the company's ("" = none)."""
        return self.answer.get(language) or self.answer.get(default, "")

    @property
    def empty(self) -> bool:
        return not (self.answer or self.instructions or self.ask or self.urgent
                    or self.summary_to or self.urgent_confirm_minutes != 10
                    or self.summary_at != "17:00")


# ---- on-call rotas ("Päivystys") ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Shift:
    """A weekly on-call shift: starts on each of `days` at `hours[0]` (minutes after midnight,
    company time) and ends at `hours[1]`, the next day when that is at or before the start."""

    days: Annotated[Days, Required("the days it starts on, like mon-fri")]
    hours: Annotated[ShiftHours, Required("like 08:00-16:00, or 16:00-08:00")]
    people: Annotated[tuple[EmployeeRef, ...], Mark.ALWAYS] = ()  # first is rung first

    @property
    def overnight(self) -> bool:
        return self.hours[1] <= self.hours[0]

    def to_data(self) -> dict[str, Any]:
        start, end = self.hours
        return {"days": days_text(self.days), "hours": f"{_hhmm(start)}-{_hhmm(end)}",
                "people": list(self.people)}


@dataclass(frozen=True, slots=True, kw_only=True)
class OncallException:
    """Instead of the weekly pattern from `start` to `end` (excluded): these people, or nobody."""

    start: Annotated[Start, Field(alias="from"), Required("a date or a date and time")]
    end: Annotated[End, Field(alias="until"), Required("a date (included) or a date and time")]
    people: Annotated[tuple[EmployeeRef, ...], Mark.ALWAYS] = ()  # () = nobody is on call
    note: Title = ""  # why, for operators ("Mikko sairaana")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rota:
    """Who is on call when, for the company or one team (`team`)."""

    id: Annotated[str, Mark.KEY]
    name: Annotated[Name, Required()]  # what callers and operators hear ("Päivystys")
    team: TeamRef = ""  # "" = the whole company; a team: its messages when nobody answers
    ring_seconds: TeamRing = 20  # per person, rung in order
    weekly: Annotated[tuple[Shift, ...], Mark.ALWAYS] = ()
    exceptions: tuple[OncallException, ...] = ()  # sorted by start


@dataclass(frozen=True, slots=True)
class CompanyConfig:
    company: CompanyInfo
    numbers: Mapping[Phone, Number]  # by number as written
    hours: OpeningHours
    announcements: Mapping[Id, Announcement]
    menus: Mapping[Id, Menu]
    teams: Mapping[Id, Team]
    employees: Mapping[Id, Employee]
    profile: Profile = field(default_factory=Profile)
    oncall: Mapping[Id, Rota] = field(default_factory=frozen_map)
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
    def id(self) -> str:
        """The company's id in the service: company.id, or MAIN when the file gives none."""
        return self.company.id or MAIN_COMPANY

    @property
    def zone(self) -> ZoneInfo:
        """The company's time zone (ZoneInfo keeps each zone it made: no cost per call)."""
        return ZoneInfo(self.company.timezone)

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
        doc: dict[str, Any] = {
            "company": _fields_data(self.company),
            "numbers": {k: _fields_data(v) for k, v in self.numbers.items()},
            "hours": self.hours.to_data(),
            "announcements": {k: _fields_data(v) for k, v in self.announcements.items()},
            "menus": {k: _fields_data(v) for k, v in self.menus.items()},
            "teams": {k: _fields_data(v) for k, v in self.teams.items()},
            "employees": {k: _fields_data(v) for k, v in self.employees.items()},
        }
        # Only when given: a company without them keeps the digest it always had.
        if not self.profile.empty:
            doc["profile"] = _fields_data(self.profile)
        if self.oncall:
            doc["oncall"] = {k: _fields_data(v) for k, v in self.oncall.items()}
        sorted_doc: dict[str, Any] = _sorted(doc)
        return sorted_doc

    def digest(self) -> str:
        """sha256 of the canonical document: identifies a version of the company."""
        text = json.dumps(self.to_document(), sort_keys=True, ensure_ascii=False,
                          separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fields_data(obj: Any) -> dict[str, Any]:
    """A shape's file fields as the file writes them: an empty value (its default: "", none,
    false) is left out unless the field is marked ALWAYS; keys and derived fields never."""
    out: dict[str, Any] = {}
    for shape in shape_of(type(obj)):
        if shape.marks & {Mark.KEY, Mark.DERIVED, Mark.UNWRITTEN}:
            continue
        value = getattr(obj, shape.name)
        if Mark.FLATTENED in shape.marks:
            out.update(_data(value))
            continue
        empty = value is None or value in ("", (), False) or value == {}
        if empty and Mark.ALWAYS not in shape.marks:
            continue
        out[shape.key] = _data(value)
    return out


def _data(value: Any) -> Any:
    if hasattr(value, "to_data"):
        return value.to_data()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields_data(value)
    if isinstance(value, tuple | list):
        return [_data(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _data(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value
