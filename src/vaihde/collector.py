"""The service's garbage collection: the young generation collected by Python as it allocates, the
older ones only on the service's own schedule, so that calls in progress are not all stopped
together by a collector pass over every one of them.

Why (bench/results/tenants.json, issue 12): with 500 calls in progress each call's coroutines,
tasks and story live for seconds, so they survive the young collections and fill the older
generations; Python's automatic generation-1 and full passes then walk all of them, 20–110 ms
with the event loop stopped, and every caller waiting on a decision waits that much more
(decision p99 32 ms with them, 8 ms without). Those passes found almost nothing to free: the
service's objects are freed by reference counting when a call ends, not by the collector.

So: everything alive after start-up is frozen (never walked again); the young generation stays
automatic, in short passes (only objects allocated since the last one); the older
generations are collected in full when what Python has allocated grew by `grow_blocks` since
the last full collection (reference cycles do build up: exceptions with their tracebacks, for
one), or at the latest every `every_s`. Each such collection is logged with its pause.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("vaihde.collector")

# Python's default is 700, counted as allocations minus deallocations: with calls' objects dying
# as fast as new ones are made, a young pass then came every ~0.4 s and walked 5,000-15,000
# live objects (2-6 ms with the loop stopped). A lower count: more passes, each short (< 1.5 ms).
YOUNG_THRESHOLD = 250
NEVER = 1 << 30  # an automatic pass of the older generations never comes
CHECK_S = 1.0
# About 100 MB of small objects (Python's allocator's blocks are 16–512 bytes): a cycle-heavy
# failure (every call raising through deep frames) reaches it in tens of seconds, a normal day
# hardly between two `every_s`.
GROW_BLOCKS = 1_500_000
EVERY_S = 600.0
# A pass held the loop at least this long: worth a log line even when it was not ours.
PAUSE_LOG_MS = 20.0


def due(now: float, last_at: float, blocks: int, last_blocks: int, *,
        grow_blocks: int = GROW_BLOCKS, every_s: float = EVERY_S) -> str:
    """Why a full collection is due now ("grown", "interval"), or "" when it is not."""
    if blocks - last_blocks >= grow_blocks:
        return "grown"
    if now - last_at >= every_s:
        return "interval"
    return ""


def settle() -> None:
    """At start-up, before taking calls: collect once, freeze what is alive (modules, settings,
    the companies: they live as long as the process), and leave the older generations to the
    `Collector`. The collection itself stops the loop too, so it comes before the first call."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, NEVER, NEVER)
    log.info("garbage collection settled", extra={
        "frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())})


@dataclass
class Collector:
    """Run `watch()` in the service's loop after `settle()`."""

    grow_blocks: int = GROW_BLOCKS
    every_s: float = EVERY_S
    check_s: float = CHECK_S
    collections: int = 0
    last_pause_ms: float = 0.0

    def __post_init__(self) -> None:
        self.last_at = time.monotonic()
        self.last_blocks = sys.getallocatedblocks()

    async def watch(self) -> None:
        log.info("full garbage collections scheduled",
                 extra={"grow_blocks": self.grow_blocks, "every_s": self.every_s})
        while True:
            await asyncio.sleep(self.check_s)
            self.tick()

    def tick(self) -> str:
        """A full collection when one is due; why it was ("" for none)."""
        blocks = sys.getallocatedblocks()
        why = due(time.monotonic(), self.last_at, blocks, self.last_blocks,
                  grow_blocks=self.grow_blocks, every_s=self.every_s)
        if why:
            started = time.perf_counter()
            found = gc.collect()
            self.last_pause_ms = (time.perf_counter() - started) * 1000
            self.collections += 1
            self.last_at = time.monotonic()
            self.last_blocks = sys.getallocatedblocks()
            log.info("full garbage collection", extra={
                "why": why, "pause_ms": round(self.last_pause_ms, 1), "collected": found,
                "blocks_before": blocks, "blocks_after": self.last_blocks})
        return why


def watch_pauses(log_ms: float = PAUSE_LOG_MS) -> None:
    """Log each collector pass that stops the event loop for longer than `log_ms` (the young
    generation's own, or a library's gc.collect()): what delays callers."""
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - started[0]) * 1000
        if pause_ms > log_ms:
            log.info("garbage collection paused the loop",
                     extra={"generation": info.get("generation"),
                            "pause_ms": round(pause_ms, 1),
                            "collected": info.get("collected")})

    gc.callbacks.append(timed)
