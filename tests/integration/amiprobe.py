"""A small raw-asyncio AMI client for tests: an independent reader of what Asterisk really says.

Deliberately shares no code with vaihde.ami (nor panoramisk), so a bug there cannot hide here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping

Message = dict[str, str]
Predicate = Callable[[Message], bool]


class AmiError(Exception):
    """A failed login or action, or a wait that timed out."""


def _encode(fields: Iterable[tuple[str, str]]) -> bytes:
    lines = []
    for key, value in fields:
        if any(c in str(value) for c in "\r\n"):
            raise ValueError(f"AMI field {key} contains a line break")
        lines.append(f"{key}: {value}\r\n")
    return ("".join(lines) + "\r\n").encode()


def _parse(block: str) -> Message:
    msg: Message = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        # Repeated keys (Output:, ChanVariable:) are joined so nothing is lost.
        msg[key] = f"{msg[key]}\n{value}" if key in msg else value
    return msg


def _short(msg: Message) -> str:
    keys = ("Event", "Response", "Channel", "ChannelStateDesc", "DestChannel", "DialStatus")
    return ", ".join(f"{k}={msg[k]}" for k in keys if k in msg) or repr(msg)[:120]


class AmiProbe:
    """Logs in, sends actions, and keeps every event it receives in `events`, in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._changed = asyncio.Condition()
        self.events: list[Message] = []
        self.event_times: list[float] = []  # time.monotonic() of each event's arrival
        self.banner = ""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, port: int, username: str, secret: str, host: str = "127.0.0.1", timeout: float = 5
    ) -> AmiProbe:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        probe = cls(reader, writer)
        probe.banner = (await asyncio.wait_for(reader.readline(), timeout)).decode().strip()
        probe._task = asyncio.create_task(probe._read_loop())
        response = await probe.action("Login", Username=username, Secret=secret, check=False)
        if response.get("Response") != "Success":
            await probe.close()
            raise AmiError(f"AMI login as {username} failed: {response}")
        return probe

    async def _read_loop(self) -> None:
        buffer = ""
        try:
            while True:
                chunk = await self._reader.read(65536)
                if not chunk:
                    break
                buffer += chunk.decode(errors="replace")
                while "\r\n\r\n" in buffer:
                    block, buffer = buffer.split("\r\n\r\n", 1)
                    await self._dispatch(_parse(block))
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(AmiError("AMI connection closed"))

    async def _dispatch(self, msg: Message) -> None:
        if "Event" in msg:
            async with self._changed:
                self.events.append(msg)
                self.event_times.append(time.monotonic())
                self._changed.notify_all()
            return
        fut = self._pending.pop(msg.get("ActionID", ""), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def action(
        self,
        name: str | Mapping[str, str | Iterable[str]],
        fields: Mapping[str, str | Iterable[str]] | None = None,
        *,
        check: bool = True,
        timeout: float = 10,
        **kwargs: str | Iterable[str],
    ) -> Message:
        """Send an action and return its response; a list value sends the key once per item.

        `name` may also be a whole message with an "Action" key: action({"Action": "Ping"}).
        check: raise AmiError unless the response is Success.
        """
        if not isinstance(name, str):
            fields = {**name, **(fields or {})}
            name = str(fields.pop("Action"))
        action_id = f"probe-{next(self._ids)}"
        pairs = [("Action", name), ("ActionID", action_id)]
        for key, value in {**(fields or {}), **kwargs}.items():
            values = [value] if isinstance(value, str) else list(value)
            pairs += [(key, str(v)) for v in values]
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        self._writer.write(_encode(pairs))
        await self._writer.drain()
        try:
            response = await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            self._pending.pop(action_id, None)
            raise AmiError(f"no response to {name} within {timeout}s") from exc
        if check and response.get("Response") != "Success":
            raise AmiError(f"{name} failed: {response}")
        return response

    def mark(self) -> int:
        """Index of the next event; pass it as `since` to ignore what came before."""
        return len(self.events)

    def find(self, predicate: Predicate, since: int = 0) -> Message | None:
        return next((e for e in self.events[since:] if predicate(e)), None)

    async def wait_for(self, predicate: Predicate, timeout: float = 5, since: int = 0) -> Message:
        """The first event from index `since` on that matches; waits up to `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        checked = since
        async with self._changed:
            while True:
                for event in self.events[checked:]:
                    if predicate(event):
                        return event
                checked = len(self.events)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
        last = "\n  ".join(_short(e) for e in self.events[-25:]) or "(none)"
        raise AmiError(f"no matching event within {timeout}s; last events:\n  {last}")

    def time_of(self, event: Message) -> float:
        """When `event` arrived (time.monotonic())."""
        for e, t in zip(self.events, self.event_times, strict=True):
            if e is event:
                return t
        raise ValueError("event not from this probe")

    async def close(self) -> None:
        if self._task is not None and not self._writer.is_closing():
            with contextlib.suppress(AmiError, OSError, ConnectionError):
                await self.action("Logoff", check=False, timeout=2)
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def event_is(name: str, **fields: str) -> Predicate:
    """Predicate: Event == name and each field equals its value ('x*' matches a prefix)."""

    def check(e: Message) -> bool:
        if e.get("Event") != name:
            return False
        for key, want in fields.items():
            have = e.get(key, "")
            if want.endswith("*"):
                if not have.startswith(want[:-1]):
                    return False
            elif have != want:
                return False
        return True

    return check


__all__ = ["AmiError", "AmiProbe", "Message", "event_is"]
