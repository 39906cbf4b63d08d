"""YAML documents whose every value remembers its file and line, so that a mistake can be reported
as `file:line: field: what is wrong` in plain words.
"""

from __future__ import annotations

import builtins
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from vaihde.config.patterns import HOST
from vaihde.errors import ProblemsError

if TYPE_CHECKING:
    from vaihde.config.safe_yaml import YamlLimits


class ConfigError(ProblemsError):
    """One or more problems in a configuration file; nothing from it has been applied."""

    code = "invalid_config"

    def exit(self, path: str, consequence: str = "") -> NoReturn:
        """For commands: list every problem on stderr and exit with status 2."""
        print(f"vaihde: {path} has {len(self.problems)} problem(s){consequence}:",
              file=sys.stderr)
        for problem in self.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2)


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int
    field: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field or '(top level)'}"


class Node:
    """A YAML value with its location. Maps and lists hold Nodes.

    `text` is a scalar's source text as written: YAML 1.1 turns `0401234567` into an octal number,
    `+358401234567` into an int without its +, and `12:00` into 720, so phone numbers, extensions,
    times and dates are read from the text rather than from `value`.
    """

    __slots__ = ("text", "value", "where")

    def __init__(self, value: Any, where: Where, text: str | None = None) -> None:
        self.value = value
        self.where = where
        self.text = text


def node_from_data(data: Any, file: str = "<data>", field: str = "", line: int = 1) -> Node:
    """Located Nodes for plain Python data (e.g. a stored JSON document), so the same readers and
    messages serve files and documents; every value is placed at `file:line`."""
    where = Where(file, line, field)
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            key = str(key)
            out[key] = node_from_data(value, file, f"{field}.{key}" if field else key, line)
        return Node(out, where)
    if isinstance(data, list | tuple):
        return Node(
            [node_from_data(v, file, f"{field}[{i}]", line) for i, v in enumerate(data)], where
        )
    return Node(data, where, data if isinstance(data, str) else None)


def load_yaml(path: str | Path, limits: YamlLimits | None = None) -> Node:
    """Parse one YAML file into located Nodes, or raise ConfigError naming the line. The file
    is refused unread when it is over the size limit."""
    from vaihde.config.safe_yaml import DEFAULT_LIMITS, size_problem

    file = str(path)
    limits = limits or DEFAULT_LIMITS
    try:
        with open(path, "rb") as f:
            problem = size_problem(file, os.fstat(f.fileno()).st_size, limits)
            if problem is not None:
                raise ConfigError([problem])
            raw = f.read(limits.max_bytes + 1)  # it may have grown since fstat
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text ({exc.reason})"]) from None
    return parse_yaml(text, file, limits)


def parse_yaml(text: str, file: str = "<config>", limits: YamlLimits | None = None) -> Node:
    """YAML text as located Nodes, within `limits` (vaihde.config.safe_yaml)."""
    from vaihde.config.safe_yaml import DEFAULT_LIMITS, compose

    return compose(text, file, limits or DEFAULT_LIMITS)


class Reader:
    """Typed access to a mapping Node that collects problems instead of stopping at the first.

    Its methods `str`, `int` and `list` shadow the builtins in the class body, hence
    `builtins.str` in the annotations after them.
    """

    def __init__(self, node: Node, problems: list[str]) -> None:
        self.node = node
        self.problems = problems
        self._used: set[str] = set()
        if not isinstance(node.value, dict):
            self.error(node, "must be a mapping of names to values")
            node.value = {}

    @property
    def where(self) -> Where:
        return self.node.where

    def error(self, node: Node, message: str) -> None:
        self.problems.append(f"{node.where}: {message}")

    def child(self, key: str) -> Node | None:
        self._used.add(key)
        return self.node.value.get(key)

    def has(self, key: str) -> bool:
        return key in self.node.value

    def _missing(self, key: str) -> None:
        field = f"{self.where.field}.{key}" if self.where.field else key
        self.problems.append(f"{self.where.file}:{self.where.line}: {field}: is required")

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        node = self.child(key)
        if node is None or node.value is None:
            if required:
                self._missing(key)
            return default or ""
        if isinstance(node.value, bool) or not isinstance(node.value, str | int):
            self.error(node, "must be text")
            return default or ""
        return str(node.value)

    def host(self, key: builtins.str, default: builtins.str) -> builtins.str:
        """A host name or address."""
        value = self.str(key, default)
        if not HOST.match(value):
            self.problems.append(f"{self.where}.{key}: not a host name or address: {value!r}")
        return value

    def int(self, key: builtins.str, default: int, *, low: int, high: int) -> int:
        node = self.child(key)
        if node is None or node.value is None:
            return default
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            self.error(node, f"must be a whole number from {low} to {high}")
            return default
        if not low <= node.value <= high:
            self.error(node, f"must be from {low} to {high}, not {node.value}")
            return default
        return node.value

    def section(self, key: builtins.str, *, required: bool = False) -> Reader:
        node = self.child(key)
        if node is None or node.value is None:
            if required:
                self._missing(key)
            field = f"{self.where.field}.{key}" if self.where.field else key
            node = Node({}, Where(self.where.file, self.where.line, field))
        return Reader(node, self.problems)

    def list(self, key: builtins.str) -> builtins.list[Node]:
        node = self.child(key)
        if node is None or node.value is None:
            return []
        if not isinstance(node.value, list):
            self.error(node, "must be a list")
            return []
        return node.value

    def items(self) -> builtins.list[tuple[builtins.str, Node]]:
        self._used.update(self.node.value)
        return list(self.node.value.items())

    def done(self) -> None:
        """Report keys nobody asked for: typos must not be silently ignored."""
        for key, node in self.node.value.items():
            if key not in self._used:
                self.error(node, "unknown setting (misspelt?)")
