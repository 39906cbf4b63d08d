"""The admin's company file → validated `CompanyConfig`, or every problem at once as
`file:line: field.path: plain-words message` (ConfigError). Pure apart from reading the files.

Each value is validated by its field's type in `schema.py` (`config/typed.py` maps pydantic's
problems back to the line); this module reads the file's own forms (texts, menu targets,
devices, opening hours) and makes the checks that span the file: references, duplicates,
overlapping dates, menu loops, the operators.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from vaihde.calendar.policy import NO_FILES, CalendarPolicy
from vaihde.company.fields import (
    DEVICE_KINDS,
    LANGUAGES,
    WEEKDAYS,
    AnnouncementRef,
    DeviceDial,
    Phone,
    RingSeconds,
    SoundName,
    Text,
)
from vaihde.company.schema import (
    CLOSED_TARGETS,
    OPERATOR_DIGIT,
    OPTION_TARGETS,
    TARGETS,
    Announcement,
    AnnouncementTarget,
    BaseTarget,
    ClosedAction,
    ClosedTarget,
    CompanyConfig,
    CompanyInfo,
    Device,
    Employee,
    EmployeeTarget,
    HangupTarget,
    Holiday,
    HoursException,
    Menu,
    MenuOption,
    MenuTarget,
    MessageTarget,
    Number,
    OpeningHours,
    OperatorTarget,
    OptionTarget,
    Say,
    Target,
    Team,
    TeamTarget,
    TimeRange,
    frozen_map,
)
from vaihde.config.patterns import ID, ID_HELP, PHONE, PHONE_HELP
from vaihde.config.source import (
    ConfigError,
    Node,
    Where,
    load_yaml,
    node_from_data,
    parse_yaml,
)
from vaihde.config.typed import Problems, each, shape_of
from vaihde.directory.search import fold

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")

MAX_DATED = 1000  # holidays and exceptions together (their overlaps are checked pairwise)
_MAX_HINTS = 20  # "did you mean …?" for the first unknown ids only (each compares with all)
_TARGET_BY_KEY = {t.key: t for t in TARGETS}
_REF_KINDS: dict[type[BaseTarget], str] = {
    EmployeeTarget: "employee", TeamTarget: "team", MenuTarget: "menu",
    AnnouncementTarget: "announcement", MessageTarget: "recipient",
}
# Each kind of value read outside a dataclass field, by its type in fields.py.
_TEXT = TypeAdapter(str)
_SOUND: TypeAdapter[str] = TypeAdapter(SoundName)
_PHONE: TypeAdapter[str] = TypeAdapter(Phone)
_DIAL: TypeAdapter[str] = TypeAdapter(DeviceDial)
_SECONDS: TypeAdapter[int] = TypeAdapter(RingSeconds)
_ANNOUNCEMENT: TypeAdapter[str] = TypeAdapter(AnnouncementRef)
_NAME: TypeAdapter[str] = TypeAdapter(Text)


def load_company(
    path: str | Path, *, calendars: CalendarPolicy | None = None
) -> CompanyConfig:
    """Read and validate the company file (and its employees_file); raises ConfigError.
    Employees' calendars must be sources `calendars` allows (the service settings' `calendar:`;
    by default https addresses and files in `calendars/` beside the company file, which is
    also the settings' default)."""
    root = load_yaml(path)
    if calendars is None:
        calendars = beside(path)
    return _Loader(str(path), Path(path).parent, calendars).build(root)


def beside(company_file: str | Path) -> CalendarPolicy:
    """The default calendar rules for a company file: files in `calendars/` next to it."""
    return CalendarPolicy(files_dir=os.path.abspath(Path(company_file).parent / "calendars"))


def parse_company(
    text: str,
    file: str = "<company>",
    base_dir: str | Path | None = None,
    *,
    calendars: CalendarPolicy = NO_FILES,
) -> CompanyConfig:
    """Validate company YAML given as text; an employees_file is read relative to base_dir
    (default: the directory of `file`)."""
    root = parse_yaml(text, file)
    base = Path(base_dir) if base_dir is not None else Path(file).parent
    return _Loader(file, base, calendars).build(root)


def check_company_text(text: str, file: str, calendars: CalendarPolicy) -> CompanyConfig:
    """Validate company YAML sent by a client (the API): nothing is read from the server's
    files (an `employees_file:` is refused), within the YAML limits."""
    return _Loader(file, None, calendars).build(parse_yaml(text, file))


def company_from_document(doc: dict[str, Any], file: str = "<document>") -> CompanyConfig:
    """Rebuild a CompanyConfig from `to_document()` output (e.g. the version stored in the DB).
    Calendar sources are not judged again here: the fetcher checks them on every fetch."""
    root = node_from_data(doc, file)
    return _Loader(file, None, None).build(root)


def _scalar_text(node: Node) -> str | None:
    """The scalar as the admin wrote it, or None for null, mappings and lists."""
    if node.value is None or isinstance(node.value, dict | list):
        return None
    if node.text is not None:
        return node.text
    return str(node.value)


def _where(node: Node) -> str:
    return f"{node.where.file}:{node.where.line}"


def _minutes(hh: str, mm: str) -> int:
    return int(hh) * 60 + int(mm)


def _entries(node: Node | None) -> list[tuple[str, Node]]:
    return list(node.value.items()) if node is not None and isinstance(node.value, dict) else []


class _Loader(Problems):
    def __init__(self, file: str, base_dir: Path | None, calendars: CalendarPolicy | None) -> None:
        super().__init__()
        self.file = file
        self.base_dir = base_dir
        self.files = [file]
        # References are checked once everything is read, so order in the file does not matter.
        self.refs: list[tuple[Node, str, str]] = []
        self.language = "fi"
        self.languages: tuple[str, ...] = ("fi",)
        self.tz = ZoneInfo("UTC")
        # What the fields' checks need to know: calendars None = only the form is checked.
        self.context: dict[str, Any] = {"calendars": calendars, "languages": self.languages,
                                        "zone": self.tz}
        self.menu_edges: dict[str, list[tuple[str, Node]]] = {}
        self.roots: list[str] = []
        self.teams_where = Where(file, 1, "teams")
        self.number_nodes: dict[str, Node] = {}
        self.menu_nodes: dict[str, Node] = {}

    # ---- small readers -------------------------------------------------------------------

    def section(self, top: Node, key: str, *, required: bool = False) -> Node:
        """A section's mapping (an empty one, placed at its parent, when not given)."""
        node: Node | None = top.value.get(key)
        if node is None or node.value is None:
            if required:
                self.missing(top, key)
            field = f"{top.where.field}.{key}" if top.where.field else key
            return Node({}, Where(top.where.file, top.where.line, field))
        if not isinstance(node.value, dict):
            self.error(node, "must be a mapping of names to values")
            return Node({}, node.where)
        return node

    def ident(self, node: Node, value: str, what: str) -> bool:
        if ID.match(value):
            return True
        self.error(node, f"{what} id {value!r} must be {ID_HELP}")
        return False

    def ref(self, node: Node, kind: str, value: str) -> None:
        """An id that must name something defined elsewhere (checked at the end)."""
        if value:
            self.refs.append((node, kind, value))

    def id_list(self, cls: type, name: str, node: Node | None, kind: str) -> list[tuple[str, Node]]:
        """The ids of a list field, each listed once, as references to check."""
        out: list[tuple[str, Node]] = []
        seen: dict[str, Node] = {}
        for value, item in each(cls, name, node):
            if value in seen:
                line = seen[value].where.line
                self.error(item, f"{value!r} is listed twice (also at line {line})")
                continue
            seen[value] = item
            self.ref(item, kind, value)
            out.append((value, item))
        return out

    def topics(self, cls: type, node: Node | None) -> None:
        """Topics are found by the directory search: one that folds to another is a repeat."""
        seen: dict[str, Node] = {}
        for value, item in each(cls, "topics", node):
            key = " ".join(fold(value).split())
            if key in seen:
                self.error(item, f"{value!r} is listed twice (also at line "
                           f"{seen[key].where.line})")
            else:
                seen[key] = item

    def say(self, node: Node | None) -> Say | None:
        """A text per language (or one text in the default language) with an optional sound."""
        if node is None:
            return None
        if not isinstance(node.value, dict):
            value = _scalar_text(node)
            if value is None or not value.strip():
                self.error(node, "must be a text, or texts per language like {fi: ..., sv: ...}")
                return None
            self.missing_languages(node, {self.language})
            return Say(frozen_map({self.language: value.strip()}))
        for key, child in node.value.items():
            if key not in (*LANGUAGES, "sound"):
                self.error(child, "unknown setting (misspelt?)")
        return self.say_fields(node)

    def say_fields(self, node: Node) -> Say:
        """The texts (fi, sv, en) and sound of a mapping (a text, or an announcement)."""
        given: dict[str, Node] = node.value
        texts: dict[str, str] = {}
        for lang in LANGUAGES:
            child = given.get(lang)
            if child is None:
                continue
            value = self.validate(_TEXT, child, {}, "") if child.value is not None else ""
            value = value.strip()
            if not value:
                if child.value is None or isinstance(_scalar_text(child), str):
                    self.error(child, "is empty: write the text or remove the line")
                continue
            texts[lang] = value
            if lang not in self.languages:
                self.warn(child, f"{lang} is not in company.languages, so callers never hear "
                          "this text")
        sound = ""
        sound_node = given.get("sound")
        if sound_node is not None and sound_node.value is not None:
            sound = self.validate(_SOUND, sound_node, {}, "")
        if self.language not in texts:
            self.error(
                node,
                f"needs a text in {self.language} (company.language), even with a recording: "
                "it is the fallback and what the console shows",
            )
        else:
            self.missing_languages(node, set(texts))
        return Say(frozen_map({lang: texts[lang] for lang in LANGUAGES if lang in texts}), sound)

    def missing_languages(self, node: Node, have: set[str]) -> None:
        lacking = [lang for lang in self.languages if lang not in have]
        if lacking:
            self.warn(
                node,
                f"no text in {', '.join(lacking)}: those callers hear the {self.language} text",
            )

    def target(
        self, node: Node, allowed: tuple[type[BaseTarget], ...], place: str
    ) -> Target | None:
        """Where a menu option or the closed-hours action goes: one target key and its value."""
        given: dict[str, Node] = node.value
        # In closed_action, announcement: is what is said before the target, not a target.
        considered = [t for t in TARGETS if place == "menu" or t is not AnnouncementTarget]
        present = [t.key for t in considered if t.key in given]
        if not present:
            choices = ", ".join(f"{t.key}:" for t in allowed)
            self.error(node, f"say where this goes: one of {choices}")
            return None
        if len(present) > 1:
            self.error(node, f"give only one place to go, not {' and '.join(present)}")
            return None
        kind = present[0]
        cls = _TARGET_BY_KEY[kind]
        value_node = given[kind]
        if cls not in allowed:
            if cls is HangupTarget:
                why = (
                    "hangup: is only for hours.closed_action; "
                    "after an announcement use then: hangup"
                )
            else:
                why = f"{kind}: is not possible here (use one of " \
                      f"{', '.join(t.key for t in allowed)})"
            self.error(value_node, why)
            return None
        if not shape_of(cls):  # a flag: operator: true
            if value_node.value is not True:
                self.error(value_node, f"write {kind}: true (or remove the choice)")
                return None
            return cast(Target, cls())
        (shape,) = shape_of(cls)
        assert shape.adapter is not None
        value = self.validate(shape.adapter, value_node, self.context, None)
        if value is None:
            return None
        # Each target with a value has that one field (schema.py).
        target = cast(Target, cast(Callable[..., BaseTarget], cls)(value))
        if cls in _REF_KINDS:
            self.ref(value_node, _REF_KINDS[cls], target.ref)
        return target

    # ---- sections ------------------------------------------------------------------------

    def build(self, root: Node) -> CompanyConfig:
        if not isinstance(root.value, dict):
            self.error(root, "must be a mapping of names to values")
            root = Node({}, root.where)
        top: dict[str, Node] = root.value
        known = ("company", "numbers", "hours", "announcements", "menus", "teams", "employees",
                 "employees_file")
        for key, child in top.items():
            if key not in known:
                self.error(child, "unknown setting (misspelt?)")
        company = self.company(self.section(root, "company", required=True))
        employees_raw = self.employees(self.section(root, "employees"))
        included = top.get("employees_file")
        if included is not None and included.value is not None:
            employees_raw += self.employees_file(included, employees_raw)
        teams_node = self.section(root, "teams")
        self.teams_where = teams_node.where
        teams = self.teams(teams_node)
        announcements = self.announcements(self.section(root, "announcements"))
        menus = self.menus(self.section(root, "menus", required=True), "menus" in top)
        numbers = self.numbers(self.section(root, "numbers", required=True), "numbers" in top)
        hours = self.hours(self.section(root, "hours", required=True), "hours" in top)

        employees = self.join(employees_raw, teams)
        self.check_refs(employees, teams, menus, announcements)
        self.check_unique(numbers, employees_raw, teams)
        self.check_operators(teams, {e["id"] for e in employees_raw if e["has_devices"]})
        self.check_menu_graph(menus)
        if self.problems:
            raise ConfigError(self.sorted(self.problems))
        return CompanyConfig(
            company=company,
            numbers=frozen_map(numbers),
            hours=hours,
            announcements=frozen_map(announcements),
            menus=frozen_map(menus),
            teams=frozen_map({k: v for k, (v, _) in teams.items()}),
            employees=frozen_map(employees),
            warnings=tuple(self.sorted(self.warnings)),
            source=self.file,
        )

    def sorted(self, messages: list[str]) -> list[str]:
        """File order (main file first), then line: the admin reads them top to bottom."""

        def key(message: str) -> tuple[int, int, str]:
            for index, file in enumerate(self.files):
                if message.startswith(file + ":"):
                    line, _, rest = message[len(file) + 1:].partition(": ")
                    # Within a line (flow style), by field: a list's own problems before its items'.
                    field = rest.partition(": ")[0]
                    return index, int(line) if line.isdigit() else 0, field
            return len(self.files), 0, ""

        return sorted(messages, key=key)

    def company(self, node: Node) -> CompanyInfo:
        values, nodes = self.read(CompanyInfo, node, self.context)
        self.tz = ZoneInfo(values["timezone"])
        self.language = values["language"]
        languages: list[str] = []
        for lang, item in each(CompanyInfo, "languages", nodes.get("languages")):
            if lang in languages:
                self.error(item, f"{lang} is listed twice")
            else:
                languages.append(lang)
        given = nodes.get("languages")
        if given is None or not isinstance(given.value, list) or not given.value:
            languages = [self.language]
        elif self.language not in languages:
            self.error(given, f"must include the default language {self.language} "
                       "(company.language)")
            languages.insert(0, self.language)
        self.languages = tuple(languages)
        self.context.update(languages=self.languages, zone=self.tz)
        return CompanyInfo(**{**values, "languages": self.languages})

    def numbers(self, node: Node, given: bool) -> dict[str, Number]:
        out: dict[str, Number] = {}
        for number, entry in _entries(node):
            if not PHONE.match(number):
                self.error(entry, f"{number!r} {PHONE_HELP.replace('must be', 'is not')}")
            values, nodes = self.read(Number, entry, self.context)
            if values["menu"]:
                self.ref(nodes["menu"], "menu", values["menu"])
                self.roots.append(values["menu"])
            out[number] = Number(number=number, **{**values,
                                                   "language": values["language"] or self.language})
            self.number_nodes[number] = entry
        if not out and given and node.value == {}:
            self.error(node, "at least one company number is required")
        return out

    # ---- hours ---------------------------------------------------------------------------

    def hours(self, section: Node, given: bool) -> OpeningHours:
        weekly: list[tuple[TimeRange, ...] | None] = [None] * 7
        given_at: list[Node | None] = [None] * 7
        for key, node in _entries(section):
            if key in ("holidays", "exceptions", "closed_action"):
                continue
            days = _weekdays(key)
            if days is None:
                self.error(node, "unknown setting (misspelt?)")
                continue
            if not days:
                self.error(node, "day ranges go from Monday towards Sunday, like mon-fri")
                continue
            ranges = self.ranges(node)
            for day in days:
                earlier = given_at[day]
                if earlier is not None:
                    self.error(
                        node,
                        f"{WEEKDAYS[day]} is already given at line {earlier.where.line}",
                    )
                    continue
                given_at[day] = node
                weekly[day] = ranges or ()
        spans: list[tuple[date, date, str, Node]] = []
        holidays = []
        dated = [_entries(self.section(section, k)) for k in ("holidays", "exceptions")]
        if sum(map(len, dated)) > MAX_DATED:
            # Overlaps are checked pairwise; a real company lists a few dozen.
            self.error(section, f"at most {MAX_DATED:,} holidays and exceptions together")
            dated = [[], []]
        holiday_items, exception_items = dated
        for key, node in holiday_items:
            dates = self.dates(node, key)
            name = _scalar_text(node)
            if name is None or not name.strip():
                self.error(node, "give the holiday's name, like 2025-12-25: Joulupäivä")
                continue
            if dates:
                holidays.append(Holiday(dates[0], dates[1], name.strip()))
                spans.append((dates[0], dates[1], f"holiday {key}", node))
        exceptions = []
        for key, node in exception_items:
            dates = self.dates(node, key)
            name = ""
            if isinstance(node.value, dict):
                for setting, child in node.value.items():
                    if setting not in ("hours", "name"):
                        self.error(child, "unknown setting (misspelt?)")
                hours_node = node.value.get("hours")
                if hours_node is None or hours_node.value is None:
                    self.missing(node, "hours", "like 08:00-12:00, or closed")
                    ranges = None
                else:
                    ranges = self.ranges(hours_node)
                name_node = node.value.get("name")
                if name_node is not None and name_node.value is not None:
                    name = self.validate(_NAME, name_node, {}, "")
            else:
                ranges = self.ranges(node)
            if dates and ranges is not None:
                exceptions.append(HoursException(dates[0], dates[1], ranges, name))
                spans.append((dates[0], dates[1], f"exception {key}", node))
        self.check_overlapping_dates(spans)
        closed = self.closed_action(section, given)
        return OpeningHours(
            timezone=str(self.tz.key),
            weekly=tuple(w or () for w in weekly),
            holidays=tuple(sorted(holidays, key=lambda h: h.first)),
            exceptions=tuple(sorted(exceptions, key=lambda e: e.first)),
            closed_action=closed,
        )

    def ranges(self, node: Node) -> tuple[TimeRange, ...] | None:
        """`08:00-16:30`, `08:00-11:30, 12:00-16:30`, a list of those, or `closed`."""
        if isinstance(node.value, list):
            parts = [(_scalar_text(n) or "", n) for n in node.value]
        else:
            text = _scalar_text(node)
            if text is None:
                self.error(node, "must be opening hours like 08:00-16:30, or closed")
                return None
            if text.strip().lower() == "closed":
                return ()
            parts = [(p, node) for p in text.split(",")]
        if not parts:
            self.error(node, "write closed for a day without opening hours")
            return None
        out: list[tuple[TimeRange, Node]] = []
        for part, part_node in parts:
            part = part.strip()
            m = _RANGE.match(part)
            if not m:
                self.error(
                    part_node,
                    f"{part!r} is not a time range: write HH:MM-HH:MM like 08:00-16:30, "
                    "or closed",
                )
                continue
            sh, sm, eh, em = m.groups()
            start, end = _minutes(sh, sm), _minutes(eh, em)
            if int(sm) > 59 or int(em) > 59 or int(sh) > 23 or end > 24 * 60:
                self.error(part_node, f"{part!r}: not a time of day (00:00 to 24:00)")
                continue
            if start >= end:
                self.error(
                    part_node,
                    f"{part!r}: closes before it opens (a range cannot cross midnight: "
                    "split it at 24:00 and 00:00)",
                )
                continue
            out.append((TimeRange(start, end), part_node))
        out.sort(key=lambda x: x[0])
        for (a, _), (b, b_node) in itertools.pairwise(out):
            if b.start < a.end:
                self.error(b_node, f"{a} and {b} overlap")
                return None
        if len(out) != len(parts):
            return None
        return tuple(r for r, _ in out)

    def dates(self, node: Node, key: str) -> tuple[date, date] | None:
        """`2025-12-24` or `2025-12-24..2025-12-26` (both days included)."""
        first_text, sep, last_text = key.partition("..")
        try:
            if not _DATE.match(first_text.strip()) or (sep and not _DATE.match(last_text.strip())):
                raise ValueError
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip()) if sep else first
        except ValueError:
            self.error(
                node,
                f"{key!r} is not a date: write YYYY-MM-DD like 2025-12-24, or a range like "
                "2025-12-24..2025-12-26",
            )
            return None
        if last < first:
            self.error(node, f"{key!r}: the range ends before it starts")
            return None
        return first, last

    def check_overlapping_dates(self, spans: list[tuple[date, date, str, Node]]) -> None:
        # Holidays and exceptions may not share a day: which one applies would be a guess.
        spans = sorted(spans, key=lambda s: (s[3].where.line, s[0]))
        for i, (first, last, _, node) in enumerate(spans):
            for other_first, other_last, other_what, other_node in spans[:i]:
                if first <= other_last and other_first <= last:
                    day = max(first, other_first).isoformat()
                    self.error(
                        node,
                        f"{day} is also in {other_what} ({_where(other_node)}): "
                        "each date may have one rule only",
                    )
                    break

    def closed_action(self, hours: Node, hours_given: bool) -> ClosedAction:
        node = hours.value.get("closed_action")
        fallback = ClosedAction("", OperatorTarget())
        if node is None or node.value is None:
            if hours_given:  # a missing hours: section is reported once, as itself
                self.missing(hours, "closed_action",
                             "what callers get when the company is closed")
            return fallback
        if not isinstance(node.value, dict):
            self.error(node, "must be a mapping of names to values")
            return fallback
        announcement = ""
        ann_node = node.value.get("announcement")
        if ann_node is not None:
            found = self.validate(_ANNOUNCEMENT, ann_node, {}, "")
            if found:
                announcement = found
                self.ref(ann_node, "announcement", found)
        target = self.target(node, CLOSED_TARGETS, "closed")
        if isinstance(target, HangupTarget) and not announcement:
            self.error(
                node,
                "hangup needs an announcement: to say first (callers must not be cut off silently)",
            )
        if isinstance(target, MenuTarget):
            self.roots.append(target.id)
        for key, child in node.value.items():
            if key != "announcement" and key not in _TARGET_BY_KEY:
                self.error(child, "unknown setting (misspelt?)")
        # target() returned one of CLOSED_TARGETS.
        return ClosedAction(announcement, cast(ClosedTarget, target)) if target else fallback

    # ---- announcements and menus ---------------------------------------------------------

    def announcements(self, node: Node) -> dict[str, Announcement]:
        out: dict[str, Announcement] = {}
        for ann_id, entry in _entries(node):
            self.ident(entry, ann_id, "announcement")
            values, nodes = self.read(Announcement, entry, self.context,
                                      also=(*LANGUAGES, "sound"))
            say = self.say_fields(entry) if isinstance(entry.value, dict) else Say(frozen_map())
            start, end = values["valid_from"], values["valid_until"]
            if start and end and end <= start:
                self.error(nodes["until"], "ends before it starts (from)")
            out[ann_id] = Announcement(id=ann_id, say=say, **values)
        return out

    def menus(self, node: Node, given: bool) -> dict[str, Menu]:
        out: dict[str, Menu] = {}
        for menu_id, entry in _entries(node):
            self.ident(entry, menu_id, "menu")
            values, nodes = self.read(Menu, entry, self.context)
            announce = self.id_list(Menu, "announce", nodes.get("announce"), "announcement")
            out[menu_id] = Menu(
                id=menu_id,
                greeting=self.say(nodes.get("greeting")),
                prompt=self.say(nodes.get("prompt")) or Say(frozen_map()),
                options=frozen_map(self.options(menu_id, nodes.get("options"))),
                **{**values, "announce": tuple(a for a, _ in announce)},
            )
            self.menu_nodes[menu_id] = entry
        if not out and given and node.value == {}:
            self.error(node, "at least one menu is required")
        return out

    def options(self, menu_id: str, node: Node | None) -> dict[str, MenuOption]:
        out: dict[str, MenuOption] = {}
        edges = self.menu_edges.setdefault(menu_id, [])
        if node is not None and not isinstance(node.value, dict):
            self.error(node, "must be a mapping of names to values")
        for key, entry in _entries(node):
            if key == OPERATOR_DIGIT:
                # Writing the operator's own choice is harmless; anything else takes 0 away.
                value = entry.value
                if not (isinstance(value, dict) and list(value) == ["operator"]
                        and value["operator"].value is True):
                    self.error(
                        entry,
                        "0 always goes to the operator in every menu (callers rely on it); "
                        "use a digit from 1 to 9",
                    )
                continue
            if key in ("*", "#"):
                self.error(entry, "* repeats the menu and # goes back: they cannot be choices")
                continue
            if not re.fullmatch(r"[1-9]", key):
                self.error(entry, "choices are single digits from 1 to 9")
                continue
            if not isinstance(entry.value, dict):
                self.error(entry, "say where this goes, like {employee: anna} or {team: sales}")
                continue
            target = self.target(entry, OPTION_TARGETS, "menu")
            values, nodes = self.read(MenuOption, entry, self.context, also=_TARGET_BY_KEY)
            announcement = isinstance(target, AnnouncementTarget)
            if "then" in nodes and target is not None and not announcement:
                self.error(nodes["then"], "then: only follows an announcement")
            if announcement and not values["then"]:
                values["then"] = "back"
            if values["human_only"] and target is not None and not isinstance(
                target, TeamTarget | OperatorTarget
            ):
                self.error(
                    nodes["human_only"],
                    f"a human_only choice must reach a person: point it at a team or the "
                    f"operator, not {target}",
                )
            if target is None:
                continue
            if isinstance(target, MenuTarget):
                edges.append((target.id, entry.value[MenuTarget.key]))
            # target() returned one of OPTION_TARGETS.
            out[key] = MenuOption(digit=key, target=cast(OptionTarget, target), **values)
        return dict(sorted(out.items()))

    # ---- teams and employees -------------------------------------------------------------

    def teams(self, node: Node) -> dict[str, tuple[Team, Node]]:
        out: dict[str, tuple[Team, Node]] = {}
        for team_id, entry in _entries(node):
            self.ident(entry, team_id, "team")
            values, nodes = self.read(Team, entry, self.context)
            members = self.id_list(Team, "members", nodes.get("members"), "employee")
            if values["queue"] and values["kind"] == "operators":
                self.error(nodes["queue"], "the operators' queue is the dialplan's "
                           "VAIHDE_QUEUE (config/asterisk/queues-vaihde.conf); remove this key")
                values["queue"] = ""
            self.topics(Team, nodes.get("topics"))
            team = Team(id=team_id, **{**values, "members": tuple(m for m, _ in members)})
            out[team_id] = (team, entry)
        return out

    def employees_file(self, node: Node, already: list[dict[str, Any]]) -> list[dict[str, Any]]:
        name = _scalar_text(node)
        if not name:
            self.error(node, "must be a file name like people.yaml")
            return []
        if self.base_dir is None:
            self.error(node, "cannot be read here: give the employees inline")
            return []
        path = self.base_dir / name
        if not path.is_file():
            self.error(node, f"no such file: {path}")
            return []
        self.files.append(str(path))
        try:
            root = load_yaml(path)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return []
        for key, child in _entries(root):
            if key != "employees":
                self.error(child, "unknown setting (misspelt?)")
        out = self.employees(self.section(root, "employees", required=True))
        first = {e["id"]: e["node"] for e in already}
        for e in out:
            if e["id"] in first:
                self.error(
                    e["node"], f"employee {e['id']!r} is also defined at {_where(first[e['id']])}"
                )
        return [e for e in out if e["id"] not in first]

    def employees(self, node: Node) -> list[dict[str, Any]]:
        return [self.employee(emp_id, entry) for emp_id, entry in _entries(node)]

    def employee(self, emp_id: str, node: Node) -> dict[str, Any]:
        self.ident(node, emp_id, "employee")
        values, nodes = self.read(Employee, node, self.context)
        self.topics(Employee, nodes.get("topics"))
        direct = each(Employee, "direct", nodes.get("direct"))
        devices = self.devices(nodes.get("devices"), values["ring_seconds"])
        given = nodes.get("devices")
        has_devices = given is not None and bool(given.value)
        if not has_devices:
            self.warn(
                node,
                "has no devices: callers who choose this person get messages or the operator",
            )
        teams = self.id_list(Employee, "teams", nodes.get("teams"), "team")
        delegates = []
        for delegate, d_node in self.id_list(Employee, "delegates", nodes.get("delegates"),
                                             "employee"):
            if delegate == emp_id:
                self.error(d_node, "cannot be their own delegate")
                continue
            delegates.append(delegate)
        languages: list[str] = []
        for lang, l_node in each(Employee, "languages", nodes.get("languages")):
            if lang in languages:
                self.error(l_node, f"{lang} is listed twice")
            else:
                languages.append(lang)
        return {
            "id": emp_id,
            "node": node,
            "ext_node": nodes.get("extension"),
            "direct_nodes": direct,
            "teams": teams,
            "has_devices": has_devices,
            "employee": Employee(**{
                **values,
                "id": emp_id,
                "direct": tuple(sorted({n for n, _ in direct})),
                "devices": devices,
                "teams": (),
                "delegates": tuple(delegates),
                "languages": tuple(languages) or (self.language,),
            }),
        }

    def devices(self, node: Node | None, ring: int) -> tuple[Device, ...]:
        """`[{desk: PJSIP/anna}, {mobile: +358401234567, seconds: 15}]`: ring order; seconds
        default to the employee's ring_seconds."""
        out: list[Device] = []
        items = node.value if node is not None and isinstance(node.value, list) else []
        for item in items:
            if not isinstance(item.value, dict):
                self.error(
                    item,
                    "say which phone this is, like desk: PJSIP/anna, mobile: +358401234567 or "
                    "softphone: PJSIP/anna-soft",
                )
                continue
            given: dict[str, Node] = item.value
            kinds = [k for k in DEVICE_KINDS if k in given]
            seconds_node = given.get("seconds")
            seconds = ring
            if seconds_node is not None and seconds_node.value is not None:
                seconds = self.validate(_SECONDS, seconds_node, {}, ring)
            for key, child in given.items():
                if key != "seconds" and key not in DEVICE_KINDS:
                    self.error(child, "unknown setting (misspelt?)")
            if len(kinds) != 1:
                self.error(
                    item,
                    "give exactly one of desk:, mobile: or softphone:"
                    if kinds else "say which phone this is: desk:, mobile: or softphone:",
                )
                continue
            kind = kinds[0]
            address = self.validate(_PHONE if kind == "mobile" else _DIAL, given[kind], {}, "")
            if address:
                out.append(Device(kind, address, seconds))
        return tuple(out)

    def join(
        self, raw: list[dict[str, Any]], teams: dict[str, tuple[Team, Node]]
    ) -> dict[str, Employee]:
        """Membership may be written on the team (ordered) or on the employee (appended)."""
        members = {tid: list(team.members) for tid, (team, _) in teams.items()}
        # Sets beside the ordered lists: linear in the number of employees, not quadratic.
        member_sets = {tid: set(ids) for tid, ids in members.items()}
        for e in raw:
            for team_id, _ in e["teams"]:
                if team_id in members and e["id"] not in member_sets[team_id]:
                    members[team_id].append(e["id"])
                    member_sets[team_id].add(e["id"])
        for tid, (team, node) in list(teams.items()):
            if not members[tid]:
                self.error(
                    node,
                    "has no members: list them under members: or give employees teams:",
                )
            teams[tid] = (replace(team, members=tuple(members[tid])), node)
        teams_of: dict[str, list[str]] = {}
        for tid in sorted(members):
            for emp_id in member_sets[tid]:
                teams_of.setdefault(emp_id, []).append(tid)
        out: dict[str, Employee] = {}
        for e in raw:
            mine = tuple(teams_of.get(e["id"], ()))
            out[e["id"]] = replace(e["employee"], teams=mine)
        return out

    # ---- whole-file checks ---------------------------------------------------------------

    def check_refs(
        self,
        employees: dict[str, Employee],
        teams: dict[str, Any],
        menus: dict[str, Menu],
        announcements: dict[str, Announcement],
    ) -> None:
        known: dict[str, Collection[str]] = {
            "employee": employees,
            "team": teams,
            "menu": menus,
            "announcement": announcements,
            "recipient": {*employees, *teams},
        }
        nouns = {"recipient": "employee or team"}
        hints = _MAX_HINTS  # each hint compares with every name: a few are enough to help
        for node, kind, ref in self.refs:
            names = known[kind]
            if ref in names:
                continue
            hint = ""
            if hints > 0:
                hints -= 1
                close = difflib.get_close_matches(ref, list(names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(node, f"no {nouns.get(kind, kind)} {ref!r}{hint}")

    def check_unique(
        self,
        numbers: dict[str, Number],
        raw: list[dict[str, Any]],
        teams: dict[str, tuple[Team, Node]],
    ) -> None:
        # Phone numbers: each rings one place, so no number may belong to two owners.
        owners: dict[str, tuple[str, Node]] = {}
        seen_numbers: list[tuple[str, str, Node]] = []
        for number, num in numbers.items():
            where = self.number_nodes[number].where
            owner = f"a company number ({num.label})" if num.label else "a company number"
            seen_numbers.append((number, owner, Node(number, where)))
        for e in raw:
            for number, node in e["direct_nodes"]:
                seen_numbers.append((number, f"{e['id']}'s direct number", node))
        for number, owner, node in self.in_file_order(seen_numbers):
            digits = number.lstrip("+")
            if digits in owners:
                first_owner, first_node = owners[digits]
                self.error(node, f"{number} is already {first_owner} at {_where(first_node)}")
            else:
                owners[digits] = (owner, node)
        extensions: dict[str, tuple[str, Node]] = {}
        for ext, emp_id, node in self.in_file_order(
            [(e["employee"].extension, e["id"], e["ext_node"]) for e in raw
             if e["employee"].extension]
        ):
            if ext in extensions:
                first_id, first_node = extensions[ext]
                self.error(node, f"extension {ext} is already {first_id}'s at {_where(first_node)}")
            else:
                extensions[ext] = (emp_id, node)
        employee_nodes = {e["id"]: e["node"] for e in raw}
        for team_id, (_, node) in teams.items():
            if team_id in employee_nodes:
                self.error(
                    node,
                    f"{team_id!r} is also an employee ({_where(employee_nodes[team_id])}): "
                    "teams and employees need different ids",
                )

    def in_file_order(self, items: list[tuple[str, str, Node]]) -> list[tuple[str, str, Node]]:
        def key(item: tuple[str, str, Node]) -> tuple[int, int]:
            where = item[2].where
            index = self.files.index(where.file) if where.file in self.files else len(self.files)
            return index, where.line

        return sorted(items, key=key)

    def check_operators(
        self, teams: dict[str, tuple[Team, Node]], with_devices: set[str]
    ) -> None:
        operators = [(t, n) for t, n in teams.values() if t.kind == "operators"]
        if not operators:
            where = self.teams_where
            self.problems.append(
                f"{where.file}:{where.line}: teams: one team needs kind: operators "
                "(0 in every menu goes to it)"
            )
            return
        first, first_node = operators[0]
        for _, node in operators[1:]:
            self.error(
                node,
                f"only one team can be the operators; {first.id!r} already is "
                f"({_where(first_node)})",
            )
        if first.members and not with_devices.intersection(first.members):
            self.error(first_node, "no operator has a device to ring: 0 would reach nobody")

    def check_menu_graph(self, menus: dict[str, Menu]) -> None:
        # A submenu chain that comes back to itself traps callers; # (back) is the way up.
        # Depth-first without recursion: a file may chain thousands of submenus.
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for start in menus:
            if start in state:
                continue
            state[start] = 1
            path = [start]
            at = {start: 0}  # position on the path
            edges = [iter(self.menu_edges.get(start, []))]
            while edges:
                step = next(edges[-1], None)
                if step is None:
                    edges.pop()
                    state[path.pop()] = 2
                    continue
                child, node = step
                if child not in menus:
                    continue
                if state.get(child) == 1:
                    loop = [*path[at[child]:], child]
                    if len(loop) > 8:  # a message names a few, not thousands
                        loop = [*loop[:3], "…", *loop[-3:]]
                    self.error(
                        node,
                        f"menu {child!r} leads back here ({' → '.join(loop)}): callers go back "
                        "with #, so a submenu must not lead to a menu above it",
                    )
                elif child not in state:
                    state[child] = 1
                    at[child] = len(path)
                    path.append(child)
                    edges.append(iter(self.menu_edges.get(child, [])))
        reachable: set[str] = set()
        todo = [m for m in self.roots if m in menus]
        while todo:
            menu = todo.pop()
            if menu in reachable:
                continue
            reachable.add(menu)
            todo.extend(c for c, _ in self.menu_edges.get(menu, []) if c in menus)
        for menu_id in menus:
            if menu_id not in reachable:
                self.warn(self.menu_nodes[menu_id], "no number, menu or closed_action leads here "
                          "(unused)")


def _weekdays(key: str) -> list[int] | None:
    """`mon` → [0]; `mon-fri` → [0..4]; [] for a backwards range; None if not days at all."""
    first, sep, last = key.partition("-")
    if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
        return None
    a = WEEKDAYS.index(first)
    b = WEEKDAYS.index(last) if sep else a
    return list(range(a, b + 1))
