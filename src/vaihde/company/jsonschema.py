"""The company file's JSON Schema, generated from the shapes in `schema.py`: each field's name,
type, pattern, range, default and whether it is required come from its annotation (through
pydantic); the file's own forms (a text or texts per language, a menu target written as one
key, a phone, the opening hours) are assembled here from the same field types.

Editors validate and complete the file with it (`config/company.schema.json`, printed by
`vaihde config schema`). vaihde itself validates with `load.py`, which also checks what a
schema cannot say: references, duplicates, overlapping dates, menu loops.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import TypeAdapter

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
    OPTION_TARGETS,
    Announcement,
    BaseTarget,
    CompanyInfo,
    Employee,
    Menu,
    MenuOption,
    Number,
    OncallException,
    Profile,
    Rota,
    Shift,
    Team,
    UrgentRule,
)
from vaihde.config.patterns import ID, PHONE
from vaihde.config.typed import FieldShape, shape_of

_DAYS = "|".join(WEEKDAYS)
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_HOURS_HELP = "opening hours: 08:00-16:30, several like 08:00-11:30, 12:00-16:30, or closed"


def _leaf(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    return adapter.json_schema()


def _field(shape: FieldShape) -> dict[str, Any]:
    assert shape.adapter is not None
    out = _leaf(shape.adapter)
    out.pop("title", None)
    default = shape.default
    if default is not dataclasses.MISSING and default not in ("", ()) and default != {}:
        out["default"] = list(default) if isinstance(default, tuple) else default
    return out


def _object(cls: type, nested: dict[str, Any] | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A mapping with the file fields of `cls` (leaf fields from their types, the others from
    `nested`), and `extra` keys that are written in the same mapping."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for shape in shape_of(cls):
        if not shape.in_mapping:
            continue
        properties[shape.key] = (nested or {})[shape.name] if shape.nested else _field(shape)
        if shape.required is not None:
            required.append(shape.key)
    properties.update(extra or {})
    out: dict[str, Any] = {"type": "object", "properties": properties,
                           "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _texts() -> dict[str, Any]:
    return {
        **{lang: {"type": "string", "minLength": 1} for lang in LANGUAGES},
        "sound": _leaf(TypeAdapter(SoundName)),
    }


def _say() -> dict[str, Any]:
    return {
        "description": "what callers hear: one text in company.language, or a text per language "
                       "(and a recording that overrides them)",
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "object", "properties": _texts(), "additionalProperties": False},
        ],
    }


def _targets(classes: tuple[type[BaseTarget], ...]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A target is written as one key: its properties, and the oneOf that allows only one."""
    properties: dict[str, Any] = {}
    for cls in classes:
        shapes = shape_of(cls)
        properties[cls.key] = _field(shapes[0]) if shapes else {"const": True}
    return properties, [{"required": [cls.key]} for cls in classes]


def _option() -> dict[str, Any]:
    properties, one_of = _targets(OPTION_TARGETS)
    out = _object(MenuOption, extra=properties)
    out["oneOf"] = one_of
    return out


def _device() -> dict[str, Any]:
    dial, phone = _leaf(TypeAdapter(DeviceDial)), _leaf(TypeAdapter(Phone))
    properties = {kind: phone if kind == "mobile" else dial for kind in DEVICE_KINDS}
    seconds = _leaf(TypeAdapter(RingSeconds))
    seconds["description"] = "ring time when devices ring in order; default: ring_seconds"
    return {
        "type": "object",
        "properties": {**properties, "seconds": seconds},
        "additionalProperties": False,
        "oneOf": [{"required": [kind]} for kind in DEVICE_KINDS],
    }


def _day_hours() -> dict[str, Any]:
    text = {"type": "string", "description": _HOURS_HELP}
    return {"anyOf": [text, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}


def _hours() -> dict[str, Any]:
    properties, one_of = _targets(CLOSED_TARGETS)
    closed = {
        "type": "object",
        "description": "what callers get when the company is closed",
        "properties": {"announcement": _leaf(TypeAdapter(AnnouncementRef)), **properties},
        "additionalProperties": False,
        "oneOf": one_of,
    }
    name = _leaf(TypeAdapter(Text))
    exception = {"anyOf": [_day_hours(), {
        "type": "object",
        "properties": {"hours": _day_hours(), "name": name},
        "required": ["hours"],
        "additionalProperties": False,
    }]}
    dates = f"^{_DATE}(\\.\\.{_DATE})?$"
    return {
        "type": "object",
        "description": "weekly hours by day or day range (mon, mon-fri), in company time",
        "patternProperties": {f"^({_DAYS})(-({_DAYS}))?$": _day_hours()},
        "properties": {
            "holidays": {"type": "object", "patternProperties": {dates: name},
                         "additionalProperties": False,
                         "description": "closed all day: 2025-12-25: Joulupäivä, or a range "
                                        "2025-12-24..2025-12-26"},
            "exceptions": {"type": "object", "patternProperties": {dates: exception},
                           "additionalProperties": False,
                           "description": "other hours on these dates"},
            "closed_action": closed,
        },
        "required": ["closed_action"],
        "additionalProperties": False,
    }


def _by(key_pattern: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "patternProperties": {key_pattern: schema},
            "additionalProperties": False}


def company_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a company file."""
    say = {"$ref": "#/$defs/say"}
    menu = _object(Menu, nested={
        "greeting": say, "prompt": say,
        "options": _by("^[0-9]$", {"$ref": "#/$defs/option"}),
    })
    employee = _object(Employee, nested={
        "devices": {"type": "array", "items": {"$ref": "#/$defs/device"}},
    })
    announcement = _object(Announcement, extra=_texts())
    profile = _object(Profile, nested={
        "urgent": {"type": "array", "items": _object(UrgentRule),
                   "description": "when a message is urgent, and whom to contact"},
    })
    rota = _object(Rota, nested={
        "weekly": {"type": "array", "items": _object(Shift),
                   "description": "shifts in company time; no two may overlap"},
        "exceptions": {"type": "array", "items": _object(OncallException),
                       "description": "instead of the weekly shifts (people: [] = nobody)"},
    })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vaihde company file",
        "description": "A company's numbers, opening hours, menus, teams and people "
                       "(config/README.md). Generated by `vaihde config schema`.",
        "type": "object",
        "properties": {
            "company": _object(CompanyInfo),
            "numbers": _by(PHONE.pattern, _object(Number)),
            "hours": _hours(),
            "announcements": _by(ID.pattern, announcement),
            "menus": _by(ID.pattern, menu),
            "teams": _by(ID.pattern, _object(Team)),
            "employees": _by(ID.pattern, employee),
            "employees_file": {"type": "string", "description":
                               "a YAML file (beside this one) with more employees:"},
            "profile": profile,
            "oncall": _by(ID.pattern, rota),
        },
        "required": ["company", "numbers", "hours", "menus"],
        "additionalProperties": False,
        "$defs": {"say": _say(), "option": _option(), "device": _device()},
    }


def schema_text(schema: dict[str, Any]) -> str:
    """As committed in config/company.schema.json."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
