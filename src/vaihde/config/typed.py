"""Typed reading of located YAML: a dataclass's fields, each validated by pydantic from its
annotated type, and every problem worded for an admin as `file:line: field: what`.

The dataclass is the shape (types, ranges, defaults, patterns, what is required); the located
Nodes (`vaihde.config.source`) say where each value was written. A field is validated on its
own, so one bad value costs only that value (it takes its default) and every problem of a
mapping is reported at once, as the hand-written readers did.

Markers in a field's `Annotated[...]` metadata: `Required(why)` (the file must give it:
`is required: why`) and the `Mark`s below.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BeforeValidator, TypeAdapter, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from vaihde.config.source import Node


@dataclass(frozen=True, slots=True)
class Required:
    why: str = ""


class Mark(Enum):
    """How the file holds a field, when not as a key of its own in the mapping."""

    KEY = "the key the mapping is stored under (an id, a digit), not a key in it"
    DERIVED = "not in the file at all: the loader computes it"
    ALWAYS = "written in the canonical document even when empty"
    UNWRITTEN = "read from the file, not written back (it is kept elsewhere)"
    FLATTENED = "its own keys are written in this mapping (an announcement's texts, a target)"


class YamlText(str):
    """A YAML scalar that is not a string (a number, a time, a date, true/false) as its source
    text, with the YAML value beside it: `0401234567`, `+358401234567` and `12:00` are text to
    a phone number or a time, and a whole number or true to a number or a flag."""

    value: Any


def plain(node: Node) -> Any:
    """Located Nodes → the plain data pydantic validates (mappings, lists, str, YamlText, None)."""
    value = node.value
    if isinstance(value, dict):
        return {key: plain(child) for key, child in value.items()}
    if isinstance(value, list):
        return [plain(child) for child in value]
    if value is None or isinstance(value, str):
        return value
    out = YamlText(node.text if node.text is not None else str(value))
    out.value = value
    return out


def problem(message: str) -> PydanticCustomError:
    """An error whose message is what the admin reads (braces in it are not placeholders)."""
    return PydanticCustomError("vaihde", "{problem}", {"problem": message})


def check(fn: Callable[[Any], Any]) -> BeforeValidator:
    return BeforeValidator(fn)


def check_in_context(fn: Callable[[Any, Mapping[str, Any]], Any]) -> BeforeValidator:
    """A check that needs the file's context (its languages, time zone, the settings…)."""

    def run(value: Any, info: ValidationInfo) -> Any:
        return fn(value, info.context or {})

    return BeforeValidator(run)


def as_text(value: Any) -> str:
    """A scalar as the admin wrote it, stripped ("must be text" for mappings and lists)."""
    if not isinstance(value, str):
        raise problem("must be text")
    return str(value).strip()


def as_whole(value: Any, low: int, high: int) -> int:
    number = value.value if isinstance(value, YamlText) else value
    if isinstance(number, bool) or not isinstance(number, int):
        raise problem(f"must be a whole number from {low} to {high}")
    if not low <= number <= high:
        raise problem(f"must be from {low} to {high}, not {number}")
    return number


def as_flag(value: Any) -> bool:
    flag = value.value if isinstance(value, YamlText) else value
    if not isinstance(flag, bool):
        raise problem("must be true or false")
    return flag


# pydantic's own words for a wrong kind of value, in the admin's.
_WORDS = {
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping of names to values",
    "int_type": "must be a whole number",
}


def wording(error: Mapping[str, Any]) -> str:
    if error["type"] == "vaihde":
        return str(error["ctx"]["problem"])
    words = _WORDS.get(error["type"])
    return words if words is not None else str(error["msg"])


def node_at(node: Node, loc: tuple[int | str, ...]) -> Node:
    """The Node a pydantic error's `loc` points at; parts the file does not have (a union's
    tag) are stepped over."""
    for part in loc:
        value = node.value
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            node = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            node = value[part]
    return node


@dataclass(frozen=True, slots=True)
class FieldShape:
    name: str  # the attribute
    key: str  # what the file calls it
    adapter: TypeAdapter[Any] | None  # None for Key / Derived fields
    required: Required | None
    nested: bool  # holds dataclasses (a text, a target, devices…): the caller reads it
    marks: frozenset[Mark]
    default: Any

    @property
    def in_mapping(self) -> bool:
        """Written as a key of its own in the file's mapping."""
        return not self.marks & {Mark.KEY, Mark.DERIVED, Mark.FLATTENED}


def _unwrap(hint: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while typing.get_origin(hint) is typing.Annotated:
        metadata.extend(hint.__metadata__)
        hint = hint.__origin__
    return hint, metadata


_SHAPES: dict[type, tuple[FieldShape, ...]] = {}
_ITEMS: dict[tuple[type, str], TypeAdapter[Any]] = {}


def shape_of(cls: type) -> tuple[FieldShape, ...]:
    """The fields of a dataclass as the file writes them (worked out once per class)."""
    found = _SHAPES.get(cls)
    if found is None:
        found = _SHAPES[cls] = _shape_of(cls)
    return found


def _shape_of(cls: type) -> tuple[FieldShape, ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        hint, metadata = _unwrap(hints[f.name])
        alias = next((getattr(m, "alias", None) for m in metadata
                      if getattr(m, "alias", None)), None)
        required = next((m for m in metadata if isinstance(m, Required)), None)
        marks = frozenset(m for m in metadata if isinstance(m, Mark))
        nested = _holds_dataclass(hint)
        default: Any = dataclasses.MISSING
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        adapter = None
        if not (marks & {Mark.KEY, Mark.DERIVED} or nested):
            # The alias names the key in the file; the value's own type is all the rest.
            kept = [m for m in metadata if not getattr(m, "alias", None)]
            adapter = TypeAdapter(typing.Annotated[(hint, *kept)] if kept else hint)
        out.append(FieldShape(f.name, alias or f.name, adapter, required, nested, marks, default))
    return tuple(out)


def _holds_dataclass(hint: Any) -> bool:
    hint, _ = _unwrap(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return True
    return any(_holds_dataclass(arg) for arg in typing.get_args(hint))


class Problems:
    """Where the problems of one file (and the files it includes) are collected."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def error(self, node: Node, message: str) -> None:
        self.problems.append(f"{node.where}: {message}")

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(f"{node.where}: {message}")

    def missing(self, parent: Node, key: str, why: str = "") -> None:
        where = parent.where
        field = f"{where.field}.{key}" if where.field else key
        extra = f": {why}" if why else ""
        self.problems.append(f"{where.file}:{where.line}: {field}: is required{extra}")

    def validate(self, adapter: TypeAdapter[Any], node: Node, context: Mapping[str, Any],
                 default: Any) -> Any:
        """One value by its type; on problems they are recorded and `default` is returned."""
        try:
            return adapter.validate_python(plain(node), context=context)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self.error(node_at(node, error["loc"]), wording(error))
            return default

    def read(
        self,
        cls: type,
        node: Node,
        context: Mapping[str, Any],
        *,
        also: Collection[str] = (),
        stand_ins: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Node]]:
        """The file fields of `cls` from the mapping `node`: validated values (a bad or missing
        value takes its default, or its stand-in when it has none) and the Node of each key
        given (not null). Fields whose type is a dataclass, and the keys in `also`, are left
        to the caller. Keys nobody reads are reported: typos are never ignored."""
        if not isinstance(node.value, dict):
            self.error(node, "must be a mapping of names to values")
            node = Node({}, node.where)
        given: dict[str, Node] = node.value
        values: dict[str, Any] = {}
        nodes: dict[str, Node] = {}
        known = set(also)
        for shape in shape_of(cls):
            if not shape.in_mapping:
                continue
            known.add(shape.key)
            child = given.get(shape.key)
            if child is None or child.value is None:
                if shape.required is not None:
                    self.missing(node, shape.key, shape.required.why)
            else:
                nodes[shape.key] = child
            if shape.nested:
                continue
            fallback = shape.default
            if fallback is dataclasses.MISSING:
                fallback = (stand_ins or {}).get(shape.name, "")
            if child is None or child.value is None:
                values[shape.name] = fallback
                continue
            assert shape.adapter is not None
            values[shape.name] = self.validate(shape.adapter, child, context, fallback)
        for key, child in given.items():
            if key not in known:
                self.error(child, "unknown setting (misspelt?)")
        return values, nodes


def _item_adapter(cls: type, name: str) -> TypeAdapter[Any]:
    found = _ITEMS.get((cls, name))
    if found is None:
        hint, _ = _unwrap(typing.get_type_hints(cls, include_extras=True)[name])
        found = _ITEMS[(cls, name)] = TypeAdapter(typing.get_args(hint)[0])
    return found


def each(cls: type, name: str, node: Node | None) -> list[tuple[Any, Node]]:
    """The good items of a list field with their Nodes (the bad ones were reported when the
    field was read): for checks that name the line of an item (duplicates, references)."""
    if node is None or not isinstance(node.value, list):
        return []
    adapter = _item_adapter(cls, name)
    out = []
    for item in node.value:
        try:
            out.append((adapter.validate_python(plain(item)), item))
        except ValidationError:
            continue
    return out
