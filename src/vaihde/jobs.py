"""Background asyncio jobs: stopping a set of them the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger("vaihde.jobs")
T = TypeVar("T")

RECANCEL_S = 0.5
GIVE_UP_S = 10.0


async def cancel_all(tasks: Iterable[asyncio.Task[object]], *, quiet: bool = False) -> None:
    """Cancel every task, then wait for each to end. `quiet` also swallows a task's own error
    (for jobs whose failures were already logged where they happened).

    A task may swallow one cancellation: Python 3.11's asyncio.wait_for returns the result when
    what it waits for finished in the same loop step as the cancel (an event set just as the
    service stops). Such a task is cancelled again every RECANCEL_S, and one that outlives
    GIVE_UP_S is logged and left, so that a stop never hangs on it."""
    every = list(tasks)
    pending = [t for t in every if not t.done()]
    for task in pending:
        task.cancel()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GIVE_UP_S
    left = set(pending)
    while left and loop.time() < deadline:
        _, left = await asyncio.wait(left, timeout=RECANCEL_S)
        for task in left:
            task.cancel()
    for task in left:
        log.error("a task did not end when cancelled", extra={"task": task.get_name()})
    ignored: tuple[type[BaseException], ...] = (
        (asyncio.CancelledError, Exception) if quiet else (asyncio.CancelledError,)
    )
    for task in every:
        if task.done():
            with contextlib.suppress(*ignored):
                task.result()


async def until_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds: True if it was set. Unlike Python 3.11's
    asyncio.wait_for, a cancel that comes in the same loop step as the event is never lost."""
    if event.is_set():
        await asyncio.sleep(0)  # still a point where the caller can be cancelled
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


async def next_within(queue: asyncio.Queue[T], timeout: float) -> T | None:
    """The queue's next item, or None after `timeout` seconds; a cancel is never lost (as
    `until_set`)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            return await queue.get()
    return None


class Background:
    """Short jobs started from synchronous callbacks (an AMI event, a hangup), each kept
    referenced until it ends and cancelled together when the owner stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, job: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel(self) -> None:
        await cancel_all(list(self._tasks))
