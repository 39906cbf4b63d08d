"""What would change between two versions of the company, computed on their canonical documents
(pure), and rendered for an admin the way `vaihde config diff` prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaihde.company.fields import DEVICE_KINDS, WEEKDAYS
from vaihde.company.schema import TARGET_KINDS, CompanyConfig

SECTIONS = ("company", "numbers", "hours", "announcements", "menus", "teams", "employees",
            "profile", "oncall")
_HEADINGS = {
    "company": "Company",
    "numbers": "Numbers",
    "hours": "Opening hours",
    "announcements": "Announcements",
    "menus": "Menus",
    "teams": "Teams",
    "employees": "Employees",
    "profile": "Account profile (for operators)",
    "oncall": "On-call rotas",
}
# Mappings compared key by key; everything else is one value (a menu choice, a device list, a
# day's hours) so that a change reads as one line, not as its scattered parts.
_CONTAINERS = (
    ("company",),
    ("numbers",),
    ("numbers", "*"),
    ("hours",),
    ("hours", "holidays"),
    ("hours", "exceptions"),
    ("announcements",),
    ("announcements", "*"),
    ("menus",),
    ("menus", "*"),
    ("menus", "*", "options"),
    ("menus", "*", "greeting"),
    ("menus", "*", "prompt"),
    ("teams",),
    ("teams", "*"),
    ("employees",),
    ("employees", "*"),
    ("profile",),
    ("profile", "answer"),
    ("oncall",),
    ("oncall", "*"),
)
_ENTITY = {"numbers": "number", "announcements": "announcement", "menus": "menu",
           "teams": "team", "employees": "employee", "oncall": "on-call rota"}
_FIELDS = {
    "devices": "phones (ring order)",
    "direct": "direct numbers",
    "ring_seconds": "ring time (s)",
    "members": "members (ring order)",
    "announce": "announcements played",
    "closed_action": "when closed",
    "from": "valid from",
    "until": "valid until",
    "weekly": "weekly shifts",
    "exceptions": "exceptions",
    "answer": "answer phrase",
    "ask": "questions to ask",
    "urgent": "urgent rules",
}
_DAY_NAMES = dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                 "Saturday", "Sunday"), strict=True))


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "added" | "removed" | "changed"
    path: str  # dotted, e.g. "employees.anna.devices", "menus.main.options.2"
    old: Any  # the document value before (None when added)
    new: Any  # the document value after (None when removed)
    summary: str  # one line in plain words


def diff_company(old: CompanyConfig | None, new: CompanyConfig) -> list[Change]:
    """Every difference, section by section; [] when the two mean the same. old=None is a first
    apply: everything is added."""
    before = old.to_document() if old is not None else {s: {} for s in SECTIONS}
    after = new.to_document()
    changes: list[Change] = []
    for section in SECTIONS:
        _walk((section,), before.get(section, {}), after.get(section, {}), changes)
    return changes


def render_diff(changes: list[Change]) -> str:
    """Grouped by section: `+` added, `-` removed, `~` changed."""
    if not changes:
        return "No changes."
    lines: list[str] = []
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for section in SECTIONS:
        mine = [c for c in changes if c.path.split(".", 1)[0] == section]
        if not mine:
            continue
        if lines:
            lines.append("")
        lines.append(_HEADINGS[section])
        lines.extend(f"  {marks[c.kind]} {c.summary}" for c in mine)
    counts = {k: sum(1 for c in changes if c.kind == k) for k in marks}
    lines.append("")
    lines.append(
        f"{len(changes)} change{'s' if len(changes) != 1 else ''}: {counts['added']} added, "
        f"{counts['removed']} removed, {counts['changed']} changed."
    )
    return "\n".join(lines)


def _is_container(path: tuple[str, ...]) -> bool:
    return any(
        len(pattern) == len(path) and all(p in ("*", s) for p, s in zip(pattern, path, strict=True))
        for pattern in _CONTAINERS
    )


# Lists whose items are compared one by one (a rota's shifts and exceptions): a new shift
# reads as one added line, not as the whole list changed.
_ITEMWISE = (("oncall", "*", "weekly"), ("oncall", "*", "exceptions"))


def _walk(path: tuple[str, ...], old: Any, new: Any, out: list[Change]) -> None:
    if old == new:
        return
    itemwise = any(
        len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path, strict=True))
        for p in _ITEMWISE
    )
    if itemwise and isinstance(old, list) and isinstance(new, list):
        label = _label(path)
        gone = [o for o in old if o not in new]
        came = [n for n in new if n not in old]
        for item in gone:
            out.append(Change("removed", ".".join(path), item, None,
                              f"{label}: removed {_fmt(item)}"))
        for item in came:
            out.append(Change("added", ".".join(path), None, item,
                              f"{label}: added {_fmt(item)}"))
        if not gone and not came:
            out.append(_change("changed", path, old, new))
        return
    if isinstance(old, dict) and isinstance(new, dict) and _is_container(path):
        for key in sorted(set(old) | set(new), key=_key_order(path)):
            if key not in old:
                out.append(_change("added", (*path, key), None, new[key]))
            elif key not in new:
                out.append(_change("removed", (*path, key), old[key], None))
            else:
                _walk((*path, key), old[key], new[key], out)
        return
    out.append(_change("changed", path, old, new))


def _key_order(path: tuple[str, ...]) -> Callable[[str], tuple[int, str]]:
    if path == ("hours",):
        # Weekdays in week order, then the rest.
        return lambda k: (WEEKDAYS.index(k) if k in WEEKDAYS else len(WEEKDAYS), k)
    return lambda k: (0, k)


def _change(kind: str, path: tuple[str, ...], old: Any, new: Any) -> Change:
    label = _label(path)
    entity = len(path) == 2 and path[0] in _ENTITY
    if kind == "added":
        name = _name_of(new) if entity else ""
        summary = f"{label} added{name}" if entity else f"{label}: added {_fmt(new)}"
    elif kind == "removed":
        name = _name_of(old) if entity else ""
        summary = f"{label} removed{name}" if entity else f"{label}: removed (was {_fmt(old)})"
    else:
        reordered = (
            isinstance(old, list) and isinstance(new, list) and len(old) == len(new)
            and all(o in new for o in old)
        )
        what = "new order: " if reordered else ""
        summary = f"{label}: {what}{_fmt(old)} → {_fmt(new)}"
    return Change(kind, ".".join(path), old, new, summary)


def _name_of(value: Any) -> str:
    if isinstance(value, dict):
        name = value.get("name") or value.get("label")
        if isinstance(name, str) and name:
            return f" ({name})"
    return ""


def _label(path: tuple[str, ...]) -> str:
    section, rest = path[0], path[1:]
    if section == "company":
        return f"company {rest[0]}" if rest else "company"
    if section == "profile":
        if not rest:
            return "account profile"
        words = _FIELDS.get(rest[0], rest[0])
        return f"{words} ({rest[1]})" if len(rest) > 1 else words
    if section == "hours":
        if not rest:
            return "opening hours"
        head = rest[0]
        if head in WEEKDAYS:
            return f"{_DAY_NAMES[head]}"
        if head == "holidays":
            return f"holiday {rest[1]}" if len(rest) > 1 else "holidays"
        if head == "exceptions":
            return f"exception {rest[1]}" if len(rest) > 1 else "exceptions"
        return _FIELDS.get(head, head)
    label = f"{_ENTITY[section]} {rest[0]}" if rest else section
    if len(rest) < 2:
        return label
    field, more = rest[1], rest[2:]
    if section == "menus" and field == "options" and more:
        return f"{label}: key {more[0]}"
    if more:
        return f"{label}: {_FIELDS.get(field, field)} ({more[0]})"
    return f"{label}: {_FIELDS.get(field, field)}"


def _fmt(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _short(value)
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        targets = [k for k in TARGET_KINDS if k in value]
        device = next((k for k in DEVICE_KINDS if k in value), None)
        if targets and set(value) <= {*TARGET_KINDS, "label", "human_only", "then"}:
            # closed_action: announcement: is said first, the other key is where callers go.
            target = next((k for k in targets if k != "announcement"), targets[0])
            words = target.replace("_", " ")
            if value[target] is not True:
                words += f" {value[target]}"
            if target != "announcement" and "announcement" in value:
                words = f"announcement {value['announcement']}, then {words}"
            extras = [value["label"]] if value.get("label") else []
            if value.get("human_only"):
                extras.append("people only")
            if value.get("then"):
                extras.append(f"then {value['then']}")
            return words + (f" ({', '.join(extras)})" if extras else "")
        if {"days", "hours"} <= set(value):  # an on-call shift
            people = ", ".join(value.get("people") or []) or "nobody"
            return f"{value['days']} {value['hours']}: {people}"
        if {"from", "until"} <= set(value):  # an on-call exception
            people = ", ".join(value.get("people") or []) or "nobody"
            note = f" ({value['note']})" if value.get("note") else ""
            return f"{_moment(value['from'])} – {_moment(value['until'])}: {people}{note}"
        if device is not None:
            seconds = f" ({value['seconds']} s)" if value.get("seconds") else ""
            return f"{device} {value[device]}{seconds}"
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _moment(text: str) -> str:
    """An ISO instant of the document as the admin wrote it: "2026-12-24 08:00"."""
    return text[:16].replace("T", " ")


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
