"""YAML text → located Nodes (vaihde.config.source) in one pass over the parser's events, within
limits on size, node count and nesting, so that a hostile or mistaken file is refused quickly and
by its line instead of eating the CPU and memory of the service.

What it refuses, each as `file:line: field: what`:
* more bytes than `max_bytes`, more values than `max_nodes`, deeper than `max_depth`;
* aliases (`*name`) that repeat more than `max_alias_nodes` values in all ("billion laughs":
  every use of an alias counts all the values it stands for), and an alias inside the value it
  names;
* tags other than YAML's plain types (`!!python/object`, `!!binary`, `!custom`, …): a company
  file holds text, numbers, true/false, dates, lists and mappings, nothing else.

The parser is libyaml's where PyYAML has it (about ten times faster than the pure-Python one).
Composing is iterative, so deep nesting cannot exhaust Python's stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

from vaihde.config.source import ConfigError, Node, Where

_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """How much one YAML document may hold. The defaults fit a company of 10,000 employees
    with every field written out (4.5 MiB, 440,000 values: vaihde.company.synthetic) with room
    to spare (config/README.md)."""

    max_bytes: int = 8 * 1024 * 1024
    max_nodes: int = 1_000_000  # keys, values and list items, aliases expanded
    max_alias_nodes: int = 10_000  # of those, how many aliases may repeat: sharing, not bombs
    max_depth: int = 32


DEFAULT_LIMITS = YamlLimits()

_STANDARD = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR = _STANDARD + "map", _STANDARD + "seq", _STANDARD + "str"
# Scalars become what yaml.safe_load would make of them: text, int, float, bool, None and, for
# an unquoted 2025-12-24, a date (readers look at the text as written for dates anyway).
_SCALAR_TAGS = frozenset(
    _STANDARD + t for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_CONSTRUCTOR = yaml.SafeLoader("")  # for its scalar constructors only (stateless for scalars)
_RESOLVER = yaml.resolver.Resolver()


def size_problem(file: str, size: int, limits: YamlLimits = DEFAULT_LIMITS) -> str | None:
    """The problem with a file of `size` bytes, or None if it is within the limit."""
    if size <= limits.max_bytes:
        return None
    return (
        f"{file}:1: (top level): the file is {_mib(size)}, over the limit of "
        f"{_mib(limits.max_bytes)}"
    )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _shown(tag: str) -> str:
    return "!!" + tag[len(_STANDARD):] if tag.startswith(_STANDARD) else tag


class _Frame:
    """A mapping or sequence being read."""

    __slots__ = ("anchor", "field", "height", "items", "key", "key_line", "size", "where")

    def __init__(self, items: dict[str, Node] | list[Node], where: Where, anchor: str | None):
        self.items = items
        self.where = where
        self.anchor = anchor
        self.key: str | None = None  # a mapping's key waiting for its value
        self.key_line = 0
        self.size = 1  # values in this subtree, keys included
        self.height = 1  # levels of nesting in this subtree


class _Composer:
    def __init__(self, text: str, file: str, limits: YamlLimits) -> None:
        self.file = file
        self.limits = limits
        self.parser = _PARSER(text)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Node, int, int]] = {}  # name → (node, size, height)
        self.open_anchors: set[str] = set()
        self.count = 0
        self.aliased = 0  # values repeated by aliases

    def fail(self, line: int, field: str, message: str) -> ConfigError:
        return ConfigError([f"{self.file}:{line}: {field or '(top level)'}: {message}"])

    def spend(self, n: int, line: int, field: str) -> None:
        self.count += n
        if self.count > self.limits.max_nodes:
            raise self.fail(
                line, field,
                f"the file holds more than {self.limits.max_nodes:,} values: "
                "that is more than a company of 20,000 people needs",
            )

    def position(self, line: int) -> tuple[str, int]:
        """The field path and the line of the value that starts at `line` in the current frame."""
        if not self.stack:
            return "", line
        parent = self.stack[-1]
        field = parent.where.field
        if isinstance(parent.items, dict):
            assert parent.key is not None
            # A block value starts below its key; the admin looks for the key's line.
            return (f"{field}.{parent.key}" if field else parent.key), parent.key_line
        return f"{field}[{len(parent.items)}]", line

    def compose(self) -> Node:
        p = self.parser
        try:
            p.get_event()  # StreamStart
            if p.check_event(StreamEndEvent):
                return Node({}, Where(self.file, 1, ""))
            p.get_event()  # DocumentStart
            root = self.document()
            end = p.get_event()
            assert isinstance(end, DocumentEndEvent)
            if not p.check_event(StreamEndEvent):
                extra = p.get_event()
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream", None,
                    "but found another document", extra.start_mark,
                )
            return root
        finally:
            p.dispose()

    def document(self) -> Node:
        p = self.parser
        while True:
            event = p.get_event()
            line = event.start_mark.line + 1
            if isinstance(event, MappingEndEvent | SequenceEndEvent):
                frame = self.stack.pop()
                node = Node(frame.items, frame.where)
                if frame.anchor is not None:
                    self.open_anchors.discard(frame.anchor)
                    self.anchors[frame.anchor] = (node, frame.size, frame.height)
                size, height = frame.size, frame.height
            else:
                parent = self.stack[-1] if self.stack else None
                if parent is not None and isinstance(parent.items, dict) and parent.key is None:
                    self.key(parent, event, line)
                    continue
                field, at = self.position(line)
                if isinstance(event, ScalarEvent):
                    self.spend(1, line, field)
                    node = Node(self.scalar(event, line, field), Where(self.file, at, field),
                                event.value)
                    if event.anchor is not None:
                        self.anchors[event.anchor] = (node, 1, 0)
                    size, height = 1, 0
                elif isinstance(event, AliasEvent):
                    node, size, height = self.alias(event, line, field, at)
                else:
                    assert isinstance(event, CollectionStartEvent)
                    self.start(event, line, field, at)
                    continue
            if not self.stack:
                return node
            parent = self.stack[-1]
            if isinstance(parent.items, dict):
                assert parent.key is not None
                parent.items[parent.key] = node
                parent.key = None
            else:
                parent.items.append(node)
            parent.size += size
            parent.height = max(parent.height, height + 1)

    def key(self, parent: _Frame, event: yaml.Event, line: int) -> None:
        field = parent.where.field
        if not isinstance(event, ScalarEvent):
            raise self.fail(line, field, "keys must be plain words")
        if event.tag not in (None, "!", _STR):
            raise self.fail(line, field, f"YAML tag {_shown(event.tag)} is not allowed here")
        key = event.value
        if key in parent.items:
            raise self.fail(line, f"{field}.{key}" if field else key, "given twice")
        self.spend(1, line, field)
        parent.key, parent.key_line = key, line

    def start(self, event: CollectionStartEvent, line: int, field: str, at: int) -> None:
        mapping = isinstance(event, MappingStartEvent)
        if event.tag not in (None, "!", _MAP if mapping else _SEQ):
            raise self.fail(line, field, f"YAML tag {_shown(event.tag)} is not allowed here")
        if len(self.stack) + 1 > self.limits.max_depth:
            raise self.fail(line, field, f"nested deeper than {self.limits.max_depth} levels")
        self.spend(1, line, field)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        items: dict[str, Node] | list[Node] = {} if mapping else []
        self.stack.append(_Frame(items, Where(self.file, at, field), event.anchor))

    def scalar(self, event: ScalarEvent, line: int, field: str) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            return event.value
        if tag not in _SCALAR_TAGS:
            raise self.fail(line, field, f"YAML tag {_shown(tag)} is not allowed here")
        # types-PyYAML types a Node's marks as yaml.error.Mark only, but libyaml's parser (and
        # PyYAML's own CComposer) give nodes yaml._yaml.Mark: the stub is too narrow.
        node = yaml.ScalarNode(
            tag, event.value, event.start_mark, event.end_mark, event.style  # type: ignore[arg-type]
        )
        try:
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
        except (ValueError, yaml.YAMLError):
            raise self.fail(line, field, f"{event.value!r} is not a valid {_shown(tag)}") from None

    def alias(self, event: AliasEvent, line: int, field: str, at: int) -> tuple[Node, int, int]:
        name = event.anchor
        if name in self.open_anchors:
            raise self.fail(line, field, f"alias *{name} is inside the value it stands for")
        if name not in self.anchors:
            raise self.fail(line, field, f"alias *{name} names no anchor &{name} above it")
        node, size, height = self.anchors[name]
        if len(self.stack) + height > self.limits.max_depth:
            raise self.fail(line, field, f"nested deeper than {self.limits.max_depth} levels")
        self.aliased += size
        if self.aliased > self.limits.max_alias_nodes:
            raise self.fail(
                line, field,
                f"aliases repeat more than {self.limits.max_alias_nodes:,} values in all: "
                "write the values out instead",
            )
        self.spend(size, line, field)
        return _relocated(node, field, at), size, height


def _relocated(node: Node, field: str, line: int | None = None) -> Node:
    """A copy of an anchored value placed at an alias: its own field paths (messages name where
    it is used), the lines of the text it repeats. Bounded by the node budget already spent."""
    where = Where(node.where.file, line or node.where.line, field)
    value = node.value
    if isinstance(value, dict):
        return Node(
            {k: _relocated(v, f"{field}.{k}" if field else k) for k, v in value.items()}, where
        )
    if isinstance(value, list):
        return Node([_relocated(v, f"{field}[{i}]") for i, v in enumerate(value)], where)
    return Node(value, where, node.text)


def compose(text: str, file: str = "<config>", limits: YamlLimits = DEFAULT_LIMITS) -> Node:
    """Parse one YAML document into located Nodes, or raise ConfigError naming the line."""
    problem = size_problem(file, len(text.encode("utf-8", "surrogatepass")), limits)
    if problem is not None:
        raise ConfigError([problem])
    try:
        return _Composer(text, file, limits).compose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([f"{file}:{line}: not valid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: not valid YAML: {exc}"]) from None
