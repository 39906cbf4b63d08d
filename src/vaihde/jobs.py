"""Background asyncio jobs: stopping a set of them the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable
from typing import Any


async def cancel_all(tasks: Iterable[asyncio.Task[object]], *, quiet: bool = False) -> None:
    """Cancel every task, then wait for each to end. `quiet` also swallows a task's own error
    (for jobs whose failures were already logged where they happened)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    ignored: tuple[type[BaseException], ...] = (
        (asyncio.CancelledError, Exception) if quiet else (asyncio.CancelledError,)
    )
    for task in pending:
        with contextlib.suppress(*ignored):
            await task


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
