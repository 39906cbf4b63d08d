"""Notices when this process's event loop did not run for a while (SIGSTOP, a blocked call, a
paused VM). Meanwhile Asterisk may have answered an AGI command and, waiting in vain for the
next one, handed the caller to the operators (the guard, or the session's deadline). What such a
session read must be confirmed live before the service acts on it (stores a message, a callback
request, an availability): otherwise a caller already with an operator is handled twice.
"""

from __future__ import annotations

import asyncio
import time

# The loop is looked at this often; a look this late means it did not run meanwhile. Well below
# the guard's 2.5 s, so that every stall long enough for a rescue is noticed.
TICK_S = 0.2
STALL_S = 1.0


class LoopStalls:
    """Run `watch()` in the loop to be watched; ask `since(t)` before acting on old input."""

    def __init__(self, tick_s: float = TICK_S, stall_s: float = STALL_S) -> None:
        self.tick_s = tick_s
        self.stall_s = stall_s
        self.last_tick = time.monotonic()
        self.last_stall_end = float("-inf")
        self.stalls = 0

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        if now - self.last_tick >= self.stall_s:
            self.last_stall_end = now
            self.stalls += 1
        self.last_tick = now

    def since(self, t: float) -> bool:
        """Whether the loop stalled after monotonic time `t`: a stall seen by the watcher, or
        one the watcher has not had the chance to see yet (it has not run for too long)."""
        now = time.monotonic()
        return self.last_stall_end > t or now - self.last_tick >= self.stall_s
