"""The admin's company file → validated `CompanyConfig`, or every problem at once as
`file:line: field.path: plain-words message` (ConfigError). Pure apart from reading the files.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
import re
from collections.abc import Collection
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vaihde.calendar.policy import NO_FILES, CalendarPolicy
from vaihde.company.schema import (
    DEVICE_KINDS,
    FLAG_TARGETS,
    LANGUAGES,
    OPERATOR_DIGIT,
    STRATEGIES,
    TARGET_KINDS,
    TEAM_KINDS,
    WEEKDAYS,
    Announcement,
    ClosedAction,
    CompanyConfig,
    CompanyInfo,
    Device,
    Employee,
    Holiday,
    HoursException,
    Menu,
    MenuOption,
    Number,
    OpeningHours,
    Say,
    Target,
    Team,
    TimeRange,
    frozen_map,
)
from vaihde.config.patterns import DEVICE as _DEVICE
from vaihde.config.patterns import EMAIL as _EMAIL
from vaihde.config.patterns import EMAIL_MAX, PHONE_HELP
from vaihde.config.patterns import EXTENSION as _EXTENSION
from vaihde.config.patterns import ID as _ID
from vaihde.config.patterns import LANGUAGE as _LANG_CODE
from vaihde.config.patterns import PHONE as _PHONE
from vaihde.config.patterns import QUEUE as _QUEUE
from vaihde.config.patterns import SOUND as _SOUND
from vaihde.config.source import (
    ConfigError,
    Node,
    Reader,
    Where,
    load_yaml,
    node_from_data,
    parse_yaml,
)
from vaihde.directory.search import fold

_URL = re.compile(r"^(https|http|webcal)://[^\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")

MENU_TARGETS = tuple(k for k in TARGET_KINDS if k != "hangup")
CLOSED_TARGETS = ("menu", "team", "employee", "message", "external", "operator", "hangup")
THEN = ("back", "hangup")
_ARTICLE = {"employee": "an employee", "announcement": "an announcement"}
MAX_TITLE = 200
MAX_TOPIC = 100
MAX_TOPICS = 50
MAX_DATED = 1000  # holidays and exceptions together (their overlaps are checked pairwise)
_MAX_HINTS = 20  # "did you mean …?" for the first unknown ids only (each compares with all)


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


class _Loader:
    def __init__(self, file: str, base_dir: Path | None, calendars: CalendarPolicy | None) -> None:
        self.file = file
        self.base_dir = base_dir
        self.calendars = calendars  # None: only the form of calendar sources is checked
        self.files = [file]
        self.problems: list[str] = []
        self.warnings: list[str] = []
        # References are checked once everything is read, so order in the file does not matter.
        self.refs: list[tuple[Node, str, str]] = []
        self.language = "fi"
        self.languages: tuple[str, ...] = ("fi",)
        self.tz = ZoneInfo("UTC")
        self.menu_edges: dict[str, list[tuple[str, Node]]] = {}
        self.roots: list[str] = []
        self.teams_where = Where(file, 1, "teams")

    # ---- small readers -------------------------------------------------------------------

    def reader(self, node: Node) -> Reader:
        return Reader(node, self.problems)

    def error(self, node: Node, message: str) -> None:
        self.problems.append(f"{node.where}: {message}")

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(f"{node.where}: {message}")

    def missing(self, r: Reader, key: str, why: str = "") -> None:
        field = f"{r.where.field}.{key}" if r.where.field else key
        extra = f": {why}" if why else ""
        self.problems.append(f"{r.where.file}:{r.where.line}: {field}: is required{extra}")

    def text(self, r: Reader, key: str, *, required: bool = False) -> str:
        node = r.child(key)
        if node is None or node.value is None:
            if required:
                self.missing(r, key)
            return ""
        value = _scalar_text(node)
        if value is None:
            self.error(node, "must be text")
            return ""
        value = value.strip()
        if not value and required:
            self.error(node, "must not be empty")
        return value

    def flag(self, r: Reader, key: str) -> bool:
        node = r.child(key)
        if node is None or node.value is None:
            return False
        if not isinstance(node.value, bool):
            self.error(node, "must be true or false")
            return False
        return node.value

    def ident(self, node: Node, value: str, what: str) -> bool:
        if _ID.match(value):
            return True
        self.error(
            node,
            f"{what} id {value!r} must be lower-case letters, digits, - or _ "
            "(at most 40, starting with a letter or digit)",
        )
        return False

    def phone(self, node: Node) -> str:
        value = _scalar_text(node)
        if value is None or not _PHONE.match(value):
            self.error(node, PHONE_HELP)
            return ""
        return value

    def ref(self, node: Node, kind: str, what: str | None = None) -> str:
        """Read an id that must name something defined elsewhere (checked at the end)."""
        value = _scalar_text(node)
        if value is None or not value.strip():
            self.error(node, f"must be the id of {what or _ARTICLE.get(kind, 'a ' + kind)}")
            return ""
        value = value.strip()
        self.refs.append((node, kind, value))
        return value

    def id_list(self, r: Reader, key: str, kind: str) -> list[tuple[str, Node]]:
        out: list[tuple[str, Node]] = []
        seen: dict[str, Node] = {}
        for node in r.list(key):
            value = self.ref(node, kind)
            if not value:
                continue
            if value in seen:
                line = seen[value].where.line
                self.error(node, f"{value!r} is listed twice (also at line {line})")
                continue
            seen[value] = node
            out.append((value, node))
        return out

    def say(self, node: Node | None, r_parent: Reader, key: str, *, required: bool) -> Say | None:
        """A text per language (or one text in the default language) with an optional sound."""
        if node is None or node.value is None:
            if required:
                self.missing(r_parent, key, "what callers hear, as text per language")
            return None
        if not isinstance(node.value, dict):
            value = _scalar_text(node)
            if value is None or not value.strip():
                self.error(node, "must be a text, or texts per language like {fi: ..., sv: ...}")
                return None
            self.missing_languages(node, {self.language})
            return Say(frozen_map({self.language: value.strip()}))
        r = self.reader(node)
        out = self.say_fields(r, node)
        r.done()
        return out

    def say_fields(self, r: Reader, node: Node) -> Say:
        texts: dict[str, str] = {}
        for lang in LANGUAGES:
            if not r.has(lang):
                continue
            value = self.text(r, lang)
            if not value:
                self.error(r.child(lang) or node, "is empty: write the text or remove the line")
                continue
            texts[lang] = value
            if lang not in self.languages:
                self.warn(
                    r.child(lang) or node,
                    f"{lang} is not in company.languages, so callers never hear this text",
                )
        sound = ""
        sound_node = r.child("sound")
        if sound_node is not None and sound_node.value is not None:
            sound = _scalar_text(sound_node) or ""
            if not _SOUND.match(sound):
                self.error(
                    sound_node,
                    "must be a sound name like custom/welcome (letters, digits, - _ /; "
                    "no extension): Asterisk picks the recording in the caller's language",
                )
                sound = ""
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
        self, r: Reader, node: Node, allowed: tuple[str, ...], place: str
    ) -> Target | None:
        # In closed_action, announcement: is what is said before the target, not a target.
        considered = [k for k in TARGET_KINDS if place == "menu" or k != "announcement"]
        present = [k for k in considered if r.has(k)]
        for key in present:
            r.child(key)
        if not present:
            choices = ", ".join(f"{k}:" for k in allowed)
            self.error(node, f"say where this goes: one of {choices}")
            return None
        if len(present) > 1:
            self.error(node, f"give only one place to go, not {' and '.join(present)}")
            return None
        kind = present[0]
        value_node = r.child(kind)
        assert value_node is not None
        if kind not in allowed:
            if kind == "hangup":
                why = (
                    "hangup: is only for hours.closed_action; "
                    "after an announcement use then: hangup"
                )
            else:
                why = f"{kind}: is not possible here (use one of {', '.join(allowed)})"
            self.error(value_node, why)
            return None
        if kind in FLAG_TARGETS:
            if value_node.value is not True:
                self.error(value_node, f"write {kind}: true (or remove the choice)")
                return None
            return Target(kind)
        if kind == "external":
            number = self.phone(value_node)
            return Target(kind, number) if number else None
        if kind == "language":
            lang = _scalar_text(value_node) or ""
            if lang not in self.languages:
                self.error(
                    value_node,
                    f"must be one of the offered languages ({', '.join(self.languages)})",
                )
                return None
            return Target(kind, lang)
        ref_kind = "recipient" if kind == "message" else kind
        what = "an employee or a team who gets the message" if kind == "message" else None
        ref = self.ref(value_node, ref_kind, what)
        return Target(kind, ref) if ref else None

    # ---- sections ------------------------------------------------------------------------

    def build(self, root: Node) -> CompanyConfig:
        top = self.reader(root)
        company = self.company(top.section("company", required=True))
        employees_raw = self.employees(top.section("employees"))
        included = top.child("employees_file")
        if included is not None and included.value is not None:
            employees_raw += self.employees_file(included, employees_raw)
        teams_r = top.section("teams")
        self.teams_where = teams_r.where
        teams = self.teams(teams_r)
        announcements = self.announcements(top.section("announcements"))
        menus = self.menus(top.section("menus", required=True), top.has("menus"))
        numbers = self.numbers(top.section("numbers", required=True), top.has("numbers"))
        hours = self.hours(top.section("hours", required=True), top.has("hours"))
        top.done()

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

    def company(self, r: Reader) -> CompanyInfo:
        name = self.text(r, "name", required=True)
        tz_name = self.text(r, "timezone") or "Europe/Helsinki"
        try:
            self.tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            node = r.child("timezone")
            assert node is not None
            self.error(node, f"{tz_name!r} is not a time zone name like Europe/Helsinki")
        language = self.text(r, "language") or "fi"
        if language not in LANGUAGES:
            node = r.child("language")
            assert node is not None
            self.error(node, f"must be one of {', '.join(LANGUAGES)}")
            language = "fi"
        self.language = language
        languages: list[str] = []
        lang_nodes = r.list("languages")
        for node in lang_nodes:
            lang = _scalar_text(node) or ""
            if lang not in LANGUAGES:
                self.error(node, f"must be one of {', '.join(LANGUAGES)}")
            elif lang in languages:
                self.error(node, f"{lang} is listed twice")
            else:
                languages.append(lang)
        if not lang_nodes:
            languages = [language]
        elif language not in languages:
            self.error(
                r.child("languages") or r.node,
                f"must include the default language {language} (company.language)",
            )
            languages.insert(0, language)
        self.languages = tuple(languages)
        r.done()
        return CompanyInfo(name, tz_name, language, self.languages)

    def numbers(self, r: Reader, given: bool) -> dict[str, Number]:
        out: dict[str, Number] = {}
        for number, node in r.items():
            nr = self.reader(node)
            if not _PHONE.match(number):
                self.error(node, f"{number!r} {PHONE_HELP.replace('must be', 'is not')}")
            label = self.text(nr, "label")
            menu_node = nr.child("menu")
            menu = ""
            if menu_node is None or menu_node.value is None:
                self.missing(nr, "menu", "the menu callers of this number start in")
            else:
                menu = self.ref(menu_node, "menu")
                self.roots.append(menu)
            language = self.language
            if nr.has("language"):
                language = self.text(nr, "language")
                if language not in self.languages:
                    self.error(
                        nr.child("language") or node,
                        f"must be one of the offered languages ({', '.join(self.languages)})",
                    )
                    language = self.language
            nr.done()
            out[number] = Number(number, label, menu, language, node.where)
        if not out and given and r.node.value == {}:
            self.error(r.node, "at least one company number is required")
        return out

    # ---- hours ---------------------------------------------------------------------------

    def hours(self, r: Reader, given: bool) -> OpeningHours:
        weekly: list[tuple[TimeRange, ...] | None] = [None] * 7
        given_at: list[Node | None] = [None] * 7
        for key, node in list(r.node.value.items()):
            if key in ("holidays", "exceptions", "closed_action"):
                continue
            days = _weekdays(key)
            if days is None:
                continue  # left for r.done(): "unknown setting (misspelt?)"
            r.child(key)
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
        dated = [r.section(k) for k in ("holidays", "exceptions")]
        if sum(len(d.node.value) for d in dated) > MAX_DATED:
            # Overlaps are checked pairwise; a real company lists a few dozen.
            self.error(r.node, f"at most {MAX_DATED:,} holidays and exceptions together")
            dated = []
        holiday_items = dated[0].items() if dated else []
        exception_items = dated[1].items() if dated else []
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
                er = self.reader(node)
                hours_node = er.child("hours")
                if hours_node is None or hours_node.value is None:
                    self.missing(er, "hours", "like 08:00-12:00, or closed")
                    ranges = None
                else:
                    ranges = self.ranges(hours_node)
                name = self.text(er, "name")
                er.done()
            else:
                ranges = self.ranges(node)
            if dates and ranges is not None:
                exceptions.append(HoursException(dates[0], dates[1], ranges, name))
                spans.append((dates[0], dates[1], f"exception {key}", node))
        self.check_overlapping_dates(spans)
        closed = self.closed_action(r, given)
        r.done()
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

    def closed_action(self, hours: Reader, hours_given: bool) -> ClosedAction:
        node = hours.child("closed_action")
        fallback = ClosedAction("", Target("operator"))
        if node is None or node.value is None:
            if hours_given:  # a missing hours: section is reported once, as itself
                self.missing(hours, "closed_action", "what callers get when the company is closed")
            return fallback
        r = self.reader(node)
        announcement = ""
        ann_node = r.child("announcement")
        if ann_node is not None and ann_node.value is not None:
            announcement = self.ref(ann_node, "announcement")
        target = self.target(r, node, CLOSED_TARGETS, "closed")
        if target is not None and target.kind == "hangup" and not announcement:
            self.error(
                node,
                "hangup needs an announcement: to say first (callers must not be cut off silently)",
            )
        if target is not None and target.kind == "menu":
            self.roots.append(target.ref)
        r.done()
        return ClosedAction(announcement, target) if target else fallback

    # ---- announcements and menus ---------------------------------------------------------

    def announcements(self, r: Reader) -> dict[str, Announcement]:
        out: dict[str, Announcement] = {}
        for ann_id, node in r.items():
            self.ident(node, ann_id, "announcement")
            ar = self.reader(node)
            say = self.say_fields(ar, node)
            valid_from = self.moment(ar, "from", end=False)
            valid_until = self.moment(ar, "until", end=True)
            if valid_from and valid_until and valid_until <= valid_from:
                self.error(ar.child("until") or node, "ends before it starts (from)")
            ar.done()
            out[ann_id] = Announcement(ann_id, say, valid_from, valid_until, node.where)
        return out

    def moment(self, r: Reader, key: str, *, end: bool) -> datetime | None:
        """A date (the whole day: `until` includes it) or a date and time, in company time."""
        node = r.child(key)
        if node is None or node.value is None:
            return None
        text = (_scalar_text(node) or "").strip()
        try:
            if _DATE.match(text):
                day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
                return datetime(day.year, day.month, day.day, tzinfo=self.tz)
            at = datetime.fromisoformat(text)
        except ValueError:
            self.error(node, "must be a date like 2025-12-24 or a time like 2025-12-24 08:00")
            return None
        return at if at.tzinfo is not None else at.replace(tzinfo=self.tz)

    def menus(self, r: Reader, given: bool) -> dict[str, Menu]:
        out: dict[str, Menu] = {}
        for menu_id, node in r.items():
            self.ident(node, menu_id, "menu")
            mr = self.reader(node)
            greeting = self.say(mr.child("greeting"), mr, "greeting", required=False)
            prompt = self.say(mr.child("prompt"), mr, "prompt", required=True)
            options = self.options(menu_id, mr.section("options"))
            timeout = mr.int("timeout", 5, low=1, high=30)
            attempts = mr.int("attempts", 3, low=1, high=10)
            announce = tuple(a for a, _ in self.id_list(mr, "announce", "announcement"))
            mr.done()
            out[menu_id] = Menu(
                id=menu_id,
                greeting=greeting,
                prompt=prompt or Say(frozen_map()),
                options=frozen_map(options),
                timeout=timeout,
                attempts=attempts,
                announce=announce,
                where=node.where,
            )
        if not out and given and r.node.value == {}:
            self.error(r.node, "at least one menu is required")
        return out

    def options(self, menu_id: str, r: Reader) -> dict[str, MenuOption]:
        out: dict[str, MenuOption] = {}
        edges = self.menu_edges.setdefault(menu_id, [])
        for key, node in r.items():
            if key == OPERATOR_DIGIT:
                # Writing the operator's own choice is harmless; anything else takes 0 away.
                value = node.value
                if not (isinstance(value, dict) and list(value) == ["operator"]
                        and value["operator"].value is True):
                    self.error(
                        node,
                        "0 always goes to the operator in every menu (callers rely on it); "
                        "use a digit from 1 to 9",
                    )
                continue
            if key in ("*", "#"):
                self.error(node, "* repeats the menu and # goes back: they cannot be choices")
                continue
            if not re.fullmatch(r"[1-9]", key):
                self.error(node, "choices are single digits from 1 to 9")
                continue
            if not isinstance(node.value, dict):
                self.error(node, "say where this goes, like {employee: anna} or {team: sales}")
                continue
            orr = self.reader(node)
            target = self.target(orr, node, MENU_TARGETS, "menu")
            label = self.text(orr, "label")
            human_only = self.flag(orr, "human_only")
            then = ""
            then_node = orr.child("then")
            if target is not None and target.kind == "announcement":
                then = "back"
            if then_node is not None and then_node.value is not None:
                value = _scalar_text(then_node) or ""
                if target is not None and target.kind != "announcement":
                    self.error(then_node, "then: only follows an announcement")
                elif value not in THEN:
                    self.error(then_node, "must be back (to this menu) or hangup")
                else:
                    then = value
            if human_only and target is not None and target.kind not in ("team", "operator"):
                self.error(
                    orr.child("human_only") or node,
                    f"a human_only choice must reach a person: point it at a team or the "
                    f"operator, not {target}",
                )
            orr.done()
            if target is None:
                continue
            if target.kind == "menu":
                edges.append((target.ref, orr.child("menu") or node))
            out[key] = MenuOption(key, target, label, human_only, then)
        return dict(sorted(out.items()))

    # ---- teams and employees -------------------------------------------------------------

    def teams(self, r: Reader) -> dict[str, tuple[Team, Node]]:
        out: dict[str, tuple[Team, Node]] = {}
        for team_id, node in r.items():
            self.ident(node, team_id, "team")
            tr = self.reader(node)
            name = self.text(tr, "name", required=True)
            kind = self.text(tr, "kind") or "team"
            if kind not in TEAM_KINDS:
                self.error(tr.child("kind") or node, f"must be one of {', '.join(TEAM_KINDS)}")
            members = tuple(m for m, _ in self.id_list(tr, "members", "employee"))
            strategy = self.strategy(tr)
            ring = tr.int("ring_seconds", 20, low=5, high=600)
            queue = self.text(tr, "queue")
            if queue and not _QUEUE.match(queue):
                self.error(tr.child("queue") or node, "must be an Asterisk queue name "
                           "(letters, digits, - and _)")
            elif queue and kind == "operators":
                self.error(tr.child("queue") or node, "the operators' queue is the dialplan's "
                           "VAIHDE_QUEUE (config/asterisk/queues-vaihde.conf); remove this key")
            email = self.email(tr)
            title = self.title(tr)
            topics = self.topics(tr)
            tr.done()
            team = Team(team_id, name, kind, members, strategy, ring, queue, email, node.where,
                        title=title, topics=topics)
            out[team_id] = (team, node)
        return out

    def title(self, r: Reader) -> str:
        value = self.text(r, "title")
        if len(value) > MAX_TITLE or "\n" in value:
            self.error(r.child("title") or r.node, f"must be one line of at most {MAX_TITLE} "
                       "characters")
            return ""
        return value

    def topics(self, r: Reader) -> tuple[str, ...]:
        """What a person or team answers for, as callers and operators put it ("fishing
        permits", "kalastuslupa"): found by the directory search."""
        out: list[str] = []
        seen: dict[str, Node] = {}
        nodes = r.list("topics")
        if len(nodes) > MAX_TOPICS:
            self.error(r.child("topics") or r.node, f"at most {MAX_TOPICS} topics")
            return ()
        for node in nodes:
            value = (_scalar_text(node) or "").strip() if not isinstance(
                node.value, dict | list) else ""
            if not value or len(value) > MAX_TOPIC or "\n" in value:
                self.error(node, f"a topic is one line of text, 1 to {MAX_TOPIC} characters, "
                           "like fishing permits")
                continue
            key = " ".join(fold(value).split())
            if key in seen:
                self.error(node, f"{value!r} is listed twice (also at line "
                           f"{seen[key].where.line})")
                continue
            seen[key] = node
            out.append(value)
        return tuple(out)

    def strategy(self, r: Reader) -> str:
        value = self.text(r, "strategy") or "all"
        if value not in STRATEGIES:
            self.error(
                r.child("strategy") or r.node,
                "must be all (ring together) or in_order (one after another)",
            )
            return "all"
        return value

    def email(self, r: Reader) -> str:
        value = self.text(r, "email")
        if value and (len(value) > EMAIL_MAX or not _EMAIL.match(value)):
            self.error(r.child("email") or r.node, "is not an e-mail address like anna@example.fi")
            return ""
        return value

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
        r = self.reader(root)
        out = self.employees(r.section("employees", required=True))
        r.done()
        first = {e["id"]: e["node"] for e in already}
        for e in out:
            if e["id"] in first:
                self.error(
                    e["node"], f"employee {e['id']!r} is also defined at {_where(first[e['id']])}"
                )
        return [e for e in out if e["id"] not in first]

    def employees(self, r: Reader) -> list[dict[str, Any]]:
        return [self.employee(emp_id, node) for emp_id, node in r.items()]

    def employee(self, emp_id: str, node: Node) -> dict[str, Any]:
        self.ident(node, emp_id, "employee")
        er = self.reader(node)
        name = self.text(er, "name", required=True)
        title = self.title(er)
        topics = self.topics(er)
        extension = ""
        ext_node = er.child("extension")
        if ext_node is not None and ext_node.value is not None:
            extension = _scalar_text(ext_node) or ""
            if not _EXTENSION.match(extension):
                self.error(
                    ext_node,
                    "must be 2 to 8 digits, not starting with 0 (0 is the operator)",
                )
                extension = ""
        direct = [(n, d) for d in er.list("direct") if (n := self.phone(d))]
        strategy = self.strategy(er)
        ring = er.int("ring_seconds", 20, low=5, high=300)
        devices = self.devices(er, ring)
        given = er.node.value.get("devices")
        has_devices = given is not None and bool(given.value)
        if not has_devices:
            self.warn(
                node,
                "has no devices: callers who choose this person get messages or the operator",
            )
        teams = self.id_list(er, "teams", "team")
        delegates = []
        for delegate, d_node in self.id_list(er, "delegates", "employee"):
            if delegate == emp_id:
                self.error(d_node, "cannot be their own delegate")
                continue
            delegates.append(delegate)
        languages: list[str] = []
        for l_node in er.list("languages"):
            lang = _scalar_text(l_node) or ""
            if not _LANG_CODE.match(lang):
                self.error(l_node, "must be a two-letter language code like fi, sv or en")
            elif lang in languages:
                self.error(l_node, f"{lang} is listed twice")
            else:
                languages.append(lang)
        email = self.email(er)
        sms = ""
        sms_node = er.child("sms")
        if sms_node is not None and sms_node.value is not None:
            sms = self.phone(sms_node)
        calendar = self.text(er, "calendar")
        if calendar:
            if self.calendars is not None:
                problem = self.calendars.problem(calendar)
            elif "://" in calendar and not _URL.match(calendar):
                problem = "must be an https:// (or webcal://) address of an ICS calendar"
            else:
                problem = "must be one line" if "\n" in calendar else None
            if problem is not None:
                self.error(er.child("calendar") or node, problem)
                calendar = ""
        er.done()
        return {
            "id": emp_id,
            "node": node,
            "ext_node": ext_node,
            "direct_nodes": direct,
            "teams": teams,
            "has_devices": has_devices,
            "employee": Employee(
                id=emp_id,
                name=name,
                extension=extension,
                direct=tuple(sorted({n for n, _ in direct})),
                devices=devices,
                strategy=strategy,
                ring_seconds=ring,
                teams=(),
                delegates=tuple(delegates),
                languages=tuple(languages) or (self.language,),
                title=title,
                email=email,
                sms=sms,
                calendar=calendar,
                where=node.where,
                topics=topics,
            ),
        }

    def devices(self, r: Reader, ring: int) -> tuple[Device, ...]:
        out: list[Device] = []
        for node in r.list("devices"):
            if not isinstance(node.value, dict):
                self.error(
                    node,
                    "say which phone this is, like desk: PJSIP/anna, mobile: +358401234567 or "
                    "softphone: PJSIP/anna-soft",
                )
                continue
            dr = self.reader(node)
            kinds = [k for k in DEVICE_KINDS if dr.has(k)]
            seconds = dr.int("seconds", ring, low=5, high=300)
            for k in kinds:
                dr.child(k)
            if len(kinds) != 1:
                self.error(
                    node,
                    "give exactly one of desk:, mobile: or softphone:"
                    if kinds else "say which phone this is: desk:, mobile: or softphone:",
                )
                dr.done()
                continue
            kind = kinds[0]
            value_node = dr.child(kind)
            assert value_node is not None
            dr.done()
            if kind == "mobile":
                number = self.phone(value_node)
                if number:
                    out.append(Device(kind, number, seconds))
                continue
            value = _scalar_text(value_node) or ""
            if not _DEVICE.match(value):
                self.error(
                    value_node,
                    "must be a device like PJSIP/anna or Local/anna@context "
                    "(letters, digits and . _ - + @ / only)",
                )
                continue
            out.append(Device(kind, value, seconds))
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
            teams[tid] = (dataclasses.replace(team, members=tuple(members[tid])), node)
        teams_of: dict[str, list[str]] = {}
        for tid in sorted(members):
            for emp_id in member_sets[tid]:
                teams_of.setdefault(emp_id, []).append(tid)
        out: dict[str, Employee] = {}
        for e in raw:
            mine = tuple(teams_of.get(e["id"], ()))
            out[e["id"]] = dataclasses.replace(e["employee"], teams=mine)
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
            where = num.where
            assert where is not None
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
        for menu_id, menu in menus.items():
            if menu_id not in reachable and menu.where is not None:
                self.warnings.append(
                    f"{menu.where}: no number, menu or closed_action leads here (unused)"
                )


def _weekdays(key: str) -> list[int] | None:
    """`mon` → [0]; `mon-fri` → [0..4]; [] for a backwards range; None if not days at all."""
    first, sep, last = key.partition("-")
    if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
        return None
    a = WEEKDAYS.index(first)
    b = WEEKDAYS.index(last) if sep else a
    return list(range(a, b + 1))
