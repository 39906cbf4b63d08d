"""AGI wire protocol without I/O: the environment block, command quoting and reply parsing.

Shared by the FastAGI server (TCP) and process-per-call scripts (stdin/stdout). Ground truth is
Asterisk's res/res_agi.c (parse_args(), agi_handle_command(), the 5xx replies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

# res_agi reads commands into a 2 KiB buffer; anything longer would be cut silently.
MAX_COMMAND_BYTES = 2000
# A real environment is ~25 lines; generous bounds keep a hostile client from growing memory.
MAX_ENV_LINES = 256
MAX_LINE_BYTES = 8192

HANGUP_LINE = "HANGUP"
_ENV_KEY = re.compile(r"^agi_[a-z0-9_]{1,40}$")


class AgiError(Exception):
    """Base of every AGI protocol failure."""


class AgiProtocolError(AgiError):
    """The peer sent something that is not AGI."""


class AgiHangup(AgiError):
    """The channel is gone: HANGUP notice, 511 dead channel, or end of stream."""


class AgiCommandError(AgiError):
    """Asterisk refused a command (510 unknown command, 520 usage)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Reply:
    """A 200 reply: `200 result=<result> [(data)] [endpos=<n>]`."""

    code: int
    result: str
    data: str | None = None
    endpos: int | None = None

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            raise AgiProtocolError(f"result is not a number: {self.result!r}") from None


_REPLY_RE = re.compile(r"^(\d{3}) result=(\S*)(?: \((.*)\))?(?: endpos=(-?\d+))?\s*$")


def parse_reply(line: str) -> Reply:
    """Parse one `200 result=…` line; other codes are handled by ReplyAssembler."""
    m = _REPLY_RE.match(line)
    if not m:
        raise AgiProtocolError(f"unparseable AGI reply: {line[:200]!r}")
    code, result, data, endpos = m.groups()
    return Reply(int(code), result, data, int(endpos) if endpos is not None else None)


class ReplyAssembler:
    """Turns reply lines into one outcome per command.

    Feed lines one at a time; `feed` returns None while more lines are needed (inside a 520- block
    or after an asynchronous HANGUP notice), a Reply when the command succeeded, or raises.
    """

    def __init__(self) -> None:
        self.hungup = False
        self._usage: list[str] | None = None

    def feed(self, line: str) -> Reply | None:
        if self._usage is not None:
            if line.startswith("520 "):
                usage, self._usage = "\n".join(self._usage), None
                raise AgiCommandError(520, usage or line[4:])
            self._usage.append(line)
            if len(self._usage) > MAX_ENV_LINES:
                raise AgiProtocolError("520 usage block never ended")
            return None
        if line == HANGUP_LINE:
            # Asterisk sends this unprompted when the caller hangs up; the reply to the command
            # in flight still follows.
            self.hungup = True
            return None
        if line.startswith("200 "):
            return parse_reply(line)
        if line.startswith("520-"):
            self._usage = []
            return None
        if line.startswith("511"):
            self.hungup = True
            raise AgiHangup(line)
        if line.startswith(("510", "520")):
            raise AgiCommandError(int(line[:3]), line[4:])
        raise AgiProtocolError(f"unexpected AGI reply: {line[:200]!r}")


@dataclass(slots=True)
class AgiEnvironment:
    """The `agi_*` block Asterisk sends before the first command."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def callerid(self) -> str:
        return self.get("agi_callerid")

    @property
    def calleridname(self) -> str:
        return self.get("agi_calleridname")

    @property
    def network_script(self) -> str:
        return self.get("agi_network_script")

    @property
    def args(self) -> list[str]:
        out = []
        n = 1
        while (value := self.values.get(f"agi_arg_{n}")) is not None:
            out.append(value)
            n += 1
        return out


class EnvironmentParser:
    """Collects environment lines until the blank line that ends the block."""

    def __init__(self) -> None:
        self.env = AgiEnvironment()
        self.done = False
        self._lines = 0

    def feed(self, line: str) -> bool:
        """Add one line (without its newline); True once the block is complete."""
        if self.done:
            raise AgiProtocolError("environment already complete")
        if line == "":
            if not self.env.values:
                raise AgiProtocolError("empty AGI environment")
            self.done = True
            return True
        self._lines += 1
        if self._lines > MAX_ENV_LINES:
            raise AgiProtocolError("AGI environment too long")
        key, sep, value = line.partition(": ")
        if not sep:
            # Asterisk writes "agi_x: " with an empty value as "agi_x: " — the separator is
            # always there, so a line without it is not AGI.
            if line.endswith(":") and line.startswith("agi_"):
                key, value = line[:-1], ""
            else:
                raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
        if not _ENV_KEY.match(key):
            raise AgiProtocolError(f"not an AGI environment key: {key[:80]!r}")
        if key in self.env.values:
            # Asterisk sends each key once. A repeat means a value (a caller ID name with a
            # newline) smuggled in a line of its own: it would overwrite the real one, e.g.
            # agi_network_script, and turn an inbound call into a feature-code session.
            raise AgiProtocolError(f"AGI environment key repeated: {key}")
        self.env.values[key] = value
        return False


def split_script(network_script: str) -> tuple[str, dict[str, str]]:
    """`inbound/menu?lang=fi` → ("inbound/menu", {"lang": "fi"}). Path is normalised."""
    path, _, query = network_script.partition("?")
    path = "/".join(p for p in path.split("/") if p and p != ".")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value)
    return path, params


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def quote(value: str) -> str:
    """Quote one command argument the way res_agi's parse_args() unquotes it."""
    if _CONTROL_CHARS.search(value):
        raise ValueError(f"AGI argument contains a control character: {value[:40]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(verb: str, *args: str | int) -> bytes:
    """`format_command("SET VARIABLE", "X", "a b")` → b'SET VARIABLE "X" "a b"\\n'."""
    parts = [verb]
    for arg in args:
        parts.append(str(arg) if isinstance(arg, int) else quote(arg))
    line = " ".join(parts).encode("utf-8")
    if len(line) > MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes: {verb}")
    return line + b"\n"
