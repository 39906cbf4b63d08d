"""A fake AMI server on 127.0.0.1 speaking the wire protocol, for unit tests of the AMI
layer; it can refuse logins, stop answering pings or drop connections on demand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Fields = Mapping[str, str | list[str]]
# A handler gets the parsed action and returns the messages to send back (ActionID is
# filled in), or None to leave the action unanswered.
Handler = Callable[[dict[str, Any]], list[dict[str, str]] | None]


def encode(fields: Fields) -> bytes:
    lines: list[str] = []
    for k, v in fields.items():
        for item in v if isinstance(v, list) else [v]:
            lines.append(f"{k}: {item}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in raw.decode("utf-8").split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


def list_response(
    events: list[dict[str, str]], complete_event: str, message: str = "List will follow"
) -> list[dict[str, str]]:
    """The message sequence Asterisk sends for a list action."""
    first = {"Response": "Success", "EventList": "start", "Message": message}
    done = {"Event": complete_event, "EventList": "Complete", "ListItems": str(len(events))}
    return [first, *events, done]


@dataclass(eq=False)
class _Conn:
    writer: asyncio.StreamWriter
    logged_in: bool = False


@dataclass(eq=False)
class FakeAmi:
    """Start with ``await FakeAmi().start()``; connect to ``.port``; ``await stop()``."""

    username: str = "vaihde"
    secret: str = "s3cret"
    port: int = 0
    greeting: bytes = b"Asterisk Call Manager/9.0.0\r\n"
    answer_pings: bool = True
    silent: bool = False  # accept TCP, then say nothing at all
    drop_on_accept: bool = False  # accept TCP and close at once
    booted: bool = True  # says FullyBooted at login; else only at boot()
    handlers: dict[str, Handler] = field(default_factory=dict)

    connections: int = 0
    logins: int = 0
    failed_logins: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)
    connect_times: list[float] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _conns: set[_Conn] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop_all()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAmi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def logged_in_count(self) -> int:
        return sum(1 for c in self._conns if c.logged_in)

    async def drop_all(self) -> None:
        for c in list(self._conns):
            c.writer.close()
        for c in list(self._conns):
            with contextlib.suppress(Exception):
                await c.writer.wait_closed()

    def actions_named(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.actions if str(a.get("Action", "")).lower() == name.lower()]

    async def boot(self) -> None:
        """Asterisk has finished starting: FullyBooted to every session, and at each login."""
        self.booted = True
        await self.send_event({"Event": "FullyBooted", "Status": "Fully Booted"})

    async def send_event(self, fields: Fields) -> None:
        await self.send_raw(encode(fields))

    async def send_raw(self, data: bytes) -> None:
        """Write bytes to every logged-in connection, as one TCP write."""
        for c in list(self._conns):
            if c.logged_in:
                c.writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await c.writer.drain()

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Own the task so stop() can cancel it (start_server's own tasks outlive tests).
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connect_times.append(time.monotonic())
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            if self.drop_on_accept:
                return
            if not self.silent:
                writer.write(self.greeting)
            buf = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    action = parse(raw)
                    self.actions.append(action)
                    if not self.silent:
                        self._respond(conn, action)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(conn)
            writer.close()

    def _respond(self, conn: _Conn, action: dict[str, Any]) -> None:
        name = str(action.get("Action", "")).lower()
        aid = action.get("ActionID")
        replies: list[dict[str, str]] | None
        if name == "login":
            if action.get("Username") == self.username and action.get("Secret") == self.secret:
                conn.logged_in = True
                self.logins += 1
                replies = [{"Response": "Success", "Message": "Authentication accepted"}]
                self._write(conn, replies, aid)
                if self.booted:
                    self._write(conn, [{"Event": "FullyBooted", "Status": "Fully Booted"}], None)
                return
            self.failed_logins += 1
            replies = [{"Response": "Error", "Message": "Authentication failed"}]
        elif not conn.logged_in:
            replies = [{"Response": "Error", "Message": "Permission denied"}]
        elif name == "ping":
            if not self.answer_pings:
                return
            replies = [{"Response": "Success", "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}]
        elif name in self.handlers:
            replies = self.handlers[name](action)
        else:
            replies = [{"Response": "Error", "Message": "Invalid/unknown command"}]
        if replies:
            self._write(conn, replies, aid)

    @staticmethod
    def _write(conn: _Conn, replies: list[dict[str, str]], aid: str | None) -> None:
        for r in replies:
            msg = dict(r)
            if aid is not None:
                # Asterisk puts ActionID right after the first header.
                first_key = next(iter(msg))
                msg = {first_key: msg.pop(first_key), "ActionID": aid, **msg}
            conn.writer.write(encode(msg))
