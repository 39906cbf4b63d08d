"""Background asyncio jobs: stopping a set of them the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


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
