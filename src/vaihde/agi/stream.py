"""One FastAGI connection as an asyncio Protocol that is its own line reader and writer.

asyncio's StreamReader costs a readline()/readuntil() round of Python calls and a Future per line;
AGI lines are tiny and arrive one segment at a time, so splitting them here as data arrives is
cheaper and keeps the same readline()/write()/drain()/close() surface AgiConnection uses.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Coroutine
from typing import Any, cast

from vaihde.agi.protocol import MAX_LINE_BYTES

# Lines buffered before we stop reading the socket (a peer flooding us waits, memory stays small).
MAX_BUFFERED_LINES = 512


class AgiStream(asyncio.Protocol):
    def __init__(
        self, on_connect: Callable[[AgiStream], Coroutine[Any, Any, None]] | None = None
    ) -> None:
        self._on_connect = on_connect
        self._lines: collections.deque[bytes] = collections.deque()
        self._partial = b""
        self._eof = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport reads and writes; uvloop's is not an asyncio.Transport
        # subclass, only the same methods.
        self.transport = cast(asyncio.Transport, transport)
        if self._on_connect is not None:
            self.task = asyncio.get_running_loop().create_task(self._on_connect(self))

    def data_received(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > MAX_LINE_BYTES:
            self._error = ValueError("line too long")
            self._partial = b""
        if lines:
            self._lines.extend(lines)
            if len(self._lines) > MAX_BUFFERED_LINES and self.transport is not None:
                self.transport.pause_reading()
                self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._error is None:
            self._error = ConnectionResetError(str(exc))
        self._wake()
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reader -------------------------------------------------------------------------------
    def feed_eof(self) -> None:
        self.eof_received()

    async def readline(self) -> bytes:
        """The next line with its b"\\n", or b"" at end of stream (like StreamReader)."""
        while not self._lines:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._reading_paused and len(self._lines) < MAX_BUFFERED_LINES // 2:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        return self._lines.popleft() + b"\n"

    # -- writer -------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            # uvloop raises RuntimeError on a closed transport, asyncio only warns: the same
            # ConnectionError for both (Asterisk ended the session).
            raise ConnectionResetError("connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self.transport is not None and self.transport.is_closing() and self._eof:
            raise ConnectionResetError("connection lost")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
