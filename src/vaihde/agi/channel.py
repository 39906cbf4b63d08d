"""The typed channel API a call handler uses, over one AGI connection (TCP or stdin/stdout).

It also keeps the caller-silence guard: control commands and the handler's own thinking share a
budget (the caller hears nothing meanwhile); playing audio or waiting for the caller's digits
suspends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from vaihde import contract
from vaihde.agi.protocol import (
    MAX_LINE_BYTES,
    AgiCommandError,
    AgiEnvironment,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    EnvironmentParser,
    Reply,
    ReplyAssembler,
    format_command,
    split_script,
)
from vaihde.agi.stalls import LoopStalls

# A media command can legitimately run as long as the prompt; beyond this something is wrong.
MEDIA_TIMEOUT_S = 600.0
# Asterisk's own deadline for the session (TIMEOUT(absolute), armed by the dialplan before AGI()
# at contract.DEFAULT_AGI_DEADLINE_S): the backstop when both the service and the guard are gone.
# Before each wait we push it beyond the longest the wait may take (a prompt of unknown length
# counts as PROMPT_GUESS_S) plus DEADLINE_SLACK_S, but only when it would expire sooner than that
# plus DEADLINE_MARGIN_S: about one extra round trip every half minute of a call.
PROMPT_GUESS_S = 60.0
ENVIRONMENT_AGE_S = 1.0
DEADLINE_SLACK_S = 30.0
DEADLINE_MARGIN_S = 3.0
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
# Values that need no quoting inside MSet()'s arguments (no comma, quote, backslash, $, space).
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_/@:.&+*#-]{0,200}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2})?$")
_FUNC_EXPR = re.compile(r"^[A-Z_][A-Z0-9_]*\([^\x00-\x1f]*\)$")
_DIGITS = "0123456789*#"


class Writer(Protocol):
    def write(self, data: bytes) -> object: ...
    async def drain(self) -> None: ...
    def close(self) -> object: ...


class LineReader(Protocol):
    async def readline(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Digits:
    """What GET DATA returned: the digits and whether the caller stopped typing (timeout)."""

    digits: str
    timed_out: bool


class SilenceGuard:
    """Bounds how long the caller hears nothing because of us.

    A timer that cancels the handler's task when it runs out: `hold()` stops it while audio
    plays or we wait for the caller, `release()` starts a fresh budget afterwards. `expired`
    tells the session that it fired, also when the handler does not stop at once (a database
    driver that waits for its server before giving up).
    """

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.expired = False
        self._task: asyncio.Task[None] | None = None
        self._on_expire: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def bind(self, task: asyncio.Task[None], on_expire: Callable[[], None]) -> None:
        self._task = task
        self._on_expire = on_expire
        self.release()

    def hold(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def release(self) -> None:
        if self._task is None or self.expired:
            return
        self.hold()
        self._timer = asyncio.get_running_loop().call_later(self.budget_s, self._fire)

    def stop(self) -> None:
        self.hold()
        self._task = None

    def _fire(self) -> None:
        self._timer = None
        if self._task is None or self._task.done():
            return
        self.expired = True
        self._task.cancel()
        if self._on_expire is not None:
            self._on_expire()


class AgiConnection:
    """Line-level AGI over any reader/writer pair; one command in flight at a time."""

    def __init__(self, reader: LineReader, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer
        self._replies = ReplyAssembler()
        self._unanswered = 0  # commands sent whose replies were abandoned (cancelled waits)
        self.closed = False
        # When the last command went out (time.monotonic()). Before the first, what the session
        # acts on is the environment: a connection Asterisk made while this process stalled is
        # accepted only as the stall ends, so its environment counts as sent a moment earlier.
        self.last_sent = time.monotonic() - ENVIRONMENT_AGE_S

    @property
    def hungup(self) -> bool:
        return self._replies.hungup

    async def _readline(self) -> str:
        try:
            raw = await self._reader.readline()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            raise AgiHangup(f"connection lost: {exc}") from exc
        if not raw:
            raise AgiHangup("end of stream")
        if len(raw) > MAX_LINE_BYTES:
            raise AgiProtocolError("line too long")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def read_environment(self) -> AgiEnvironment:
        parser = EnvironmentParser()
        while not parser.feed(await self._readline()):
            pass
        return parser.env

    async def _read_reply(self) -> Reply:
        while True:
            reply = self._replies.feed(await self._readline())
            if reply is not None:
                return reply

    async def send(self, verb: str, *args: str | int) -> Reply:
        line = format_command(verb, *args)
        # A cancelled earlier command still gets its reply from Asterisk; consume it first so
        # this command reads its own reply.
        while self._unanswered:
            with contextlib.suppress(AgiCommandError):
                await self._read_reply()
            self._unanswered -= 1
        self._unanswered += 1
        self.last_sent = time.monotonic()
        try:
            self._writer.write(line)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            # Asterisk closed the session (the caller hung up, or was taken on by the guard or
            # the deadline while we were not answering): the same as a HANGUP.
            self._unanswered -= 1
            raise AgiHangup(f"connection lost: {exc}") from exc
        # Only a cancelled wait leaves the reply unread; errors and replies both consume it.
        try:
            reply = await self._read_reply()
        except AgiError:
            self._unanswered -= 1
            raise
        self._unanswered -= 1
        return reply

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._writer.close()
            except Exception:  # closing a broken transport must not raise
                pass


class Channel:
    """One call as seen from a handler. Methods raise AgiHangup once the caller is gone."""

    def __init__(
        self, conn: AgiConnection, env: AgiEnvironment, silence: SilenceGuard | None = None,
        *, script: str | None = None, stalls: LoopStalls | None = None,
    ) -> None:
        self.conn = conn
        self.env = env
        self.script, self.params = split_script(
            env.network_script if script is None else script
        )
        self.silence = silence or SilenceGuard(3.0)
        self.variables_set: dict[str, str] = {}
        self.stalls = stalls
        # Set when the session gave up on the handler (it did not stop when cancelled): whatever
        # it still tries on the connection must not interleave with the fallback route.
        self.abandoned = False
        # When Asterisk's TIMEOUT(absolute) for this session fires (monotonic); the dialplan
        # armed it just before the environment was sent.
        self.deadline_at = time.monotonic() + contract.DEFAULT_AGI_DEADLINE_S
        # (name, value) → the value this call's Asterisk needs: with several Asterisks, a phone
        # that lives on another one is dialled through it (set by the service; None = as is).
        self.adapt: Callable[[str, str], str] | None = None

    @property
    def uniqueid(self) -> str:
        return self.env.uniqueid

    @property
    def name(self) -> str:
        return self.env.channel

    @property
    def hungup(self) -> bool:
        return self.conn.hungup

    def _check_live(self) -> None:
        if self.conn.hungup:
            raise AgiHangup("caller hung up")
        if self.abandoned:
            raise AgiHangup("session taken over by its fallback route")

    async def _control(self, verb: str, *args: str | int) -> Reply:
        self._check_live()
        return await self.conn.send(verb, *args)

    async def _extend_deadline(self, wait_s: float) -> None:
        """Keep Asterisk's deadline beyond a wait of up to `wait_s` (see DEADLINE_SLACK_S)."""
        now = time.monotonic()
        if self.deadline_at - now >= wait_s + DEADLINE_MARGIN_S:
            return
        seconds = math.ceil(wait_s + DEADLINE_SLACK_S)
        await self.conn.send("SET AUTOHANGUP", seconds)
        self.deadline_at = now + seconds

    async def _waiting(self, timeout_s: float, verb: str, *args: str | int,
                       wait_s: float | None = None) -> Reply:
        """A command during which the caller hears audio or is typing: not silence. `wait_s`
        is the longest Asterisk may take over it (default `timeout_s`)."""
        self._check_live()
        await self._extend_deadline(timeout_s if wait_s is None else wait_s)
        self.silence.hold()
        try:
            async with asyncio.timeout(timeout_s):
                return await self.conn.send(verb, *args)
        finally:
            self.silence.release()

    async def confirm_live(self) -> None:
        """Before acting on what the caller did (storing a message, a callback request, an
        availability): if this process stalled since the last command went out, Asterisk may
        have given the caller to the operators meanwhile, so ask it once more (NOOP). Raises
        AgiHangup if the session is gone. Costs nothing when the loop did not stall."""
        self._check_live()
        if self.stalls is not None and self.stalls.since(self.conn.last_sent):
            await self.conn.send("NOOP")
            self._check_live()

    async def answer(self) -> None:
        if (await self._control("ANSWER")).result_int < 0:
            raise AgiHangup("ANSWER failed")

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a sound; returns the digit that interrupted it, or None."""
        _check_sound(name)
        _check_digits(escape_digits)
        reply = await self._waiting(MEDIA_TIMEOUT_S, "STREAM FILE", name, escape_digits,
                                    wait_s=PROMPT_GUESS_S)
        code = reply.result_int
        if code < 0:
            # -1 means the file is missing as well as hangup; a hangup also sends HANGUP.
            if self.conn.hungup:
                raise AgiHangup("caller hung up during playback")
            return None
        return chr(code) if code else None

    async def get_data(
        self, prompt: str, timeout_ms: int = 5000, max_digits: int = 1
    ) -> Digits:
        """Play a prompt and collect up to max_digits digits (# ends input)."""
        _check_sound(prompt)
        if not (0 < max_digits <= 64 and 0 < timeout_ms <= 120_000):
            raise ValueError("get_data: max_digits 1..64 and timeout_ms 1..120000")
        typing = timeout_ms / 1000 * (max_digits + 1)
        reply = await self._waiting(MEDIA_TIMEOUT_S + typing, "GET DATA", prompt, timeout_ms,
                                    max_digits, wait_s=PROMPT_GUESS_S + typing)
        if reply.result == "-1":
            raise AgiHangup("caller hung up during GET DATA")
        digits = "".join(c for c in reply.result if c in _DIGITS)
        return Digits(digits, reply.data == "timeout")

    async def record_file(
        self, path: str, fmt: str = "wav", escape_digits: str = "#", timeout_ms: int = 120_000,
        *, beep: bool = True, silence_s: int = 0,
    ) -> str | None:
        """Record the caller into `path` (no extension); returns the key that ended it, if any.
        Raises AgiHangup when the caller hangs up (the file is kept by Asterisk)."""
        _check_sound(path.lstrip("/"))
        _check_digits(escape_digits)
        if fmt not in ("wav", "gsm", "sln", "ulaw", "alaw") or not 0 < timeout_ms <= 600_000:
            raise ValueError("record_file: known format and timeout 1..600000 ms")
        args: list[str | int] = [path, fmt, escape_digits, timeout_ms, 0]
        if beep:
            args.append("BEEP")
        if silence_s:
            args.append(f"s={int(silence_s)}")
        reply = await self._waiting(timeout_ms / 1000 + 10, "RECORD FILE", *args)
        if reply.result == "-1" or reply.data == "hangup":
            raise AgiHangup("caller hung up while recording")
        code = reply.result_int
        return chr(code) if code > 0 and reply.data == "dtmf" else None

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        reply = await self._waiting(timeout_ms / 1000 + 5, "WAIT FOR DIGIT", timeout_ms)
        code = reply.result_int
        if code < 0:
            raise AgiHangup("caller hung up while waiting for a digit")
        return chr(code) if code else None

    async def get_variable(self, name: str) -> str | None:
        if not (_VAR_NAME.match(name) or _FUNC_EXPR.match(name)):
            raise ValueError(f"not a variable name: {name!r}")
        reply = await self._control("GET VARIABLE", name)
        return reply.data if reply.result == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        if not _VAR_NAME.match(name):
            raise ValueError(f"not a variable name: {name!r}")
        if self.adapt is not None:
            value = self.adapt(name, value)
        await self._set_variable(name, value)

    async def set_language(self, language: str) -> None:
        """The channel's language: Asterisk's own sounds are played in it from now on."""
        if not _LANGUAGE.match(language):
            raise ValueError(f"not a language code: {language!r}")
        await self._control("SET VARIABLE", "CHANNEL(language)", language)

    async def _set_variable(self, name: str, value: str) -> None:
        await self._control("SET VARIABLE", name, value)
        self.variables_set[name] = value

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Set several variables in one round trip (MSet) when every value is plain; otherwise,
        or if MSet refuses, one SET VARIABLE each. Under load each round trip costs the caller
        time before their phone rings."""
        for name in values:
            if not _VAR_NAME.match(name):
                raise ValueError(f"not a variable name: {name!r}")
        adapt = self.adapt
        if adapt is not None:
            values = {name: adapt(name, value) for name, value in values.items()}
        if len(values) > 1 and all(_PLAIN_VALUE.match(v) for v in values.values()):
            assignments = ",".join(f"{name}={value}" for name, value in values.items())
            if (await self._control("EXEC", "MSet", assignments)).result_int == 0:
                self.variables_set.update(values)
                return
        for name, value in values.items():
            await self._set_variable(name, value)


def _check_sound(name: str) -> None:
    if not name or not re.fullmatch(r"[A-Za-z0-9_/.\-]{1,200}", name) or ".." in name:
        raise ValueError(f"not a sound file name: {name!r}")


def _check_digits(digits: str) -> None:
    if any(c not in _DIGITS for c in digits):
        raise ValueError(f"escape digits must be 0-9*#: {digits!r}")
