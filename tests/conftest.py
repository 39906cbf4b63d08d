"""For every test: what a hung test was doing. pytest-timeout fails a test that runs longer than
[tool.pytest.ini_options] timeout (pyproject.toml) and shows the threads' stacks; a test is
usually stuck in a coroutine, which a thread's stack does not show (the loop waits in select).
So a little earlier every running event loop's tasks are printed with where each one waits.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import sys
import threading
from collections.abc import Iterator

import pytest

AHEAD_S = 30.0  # before pytest-timeout's limit


def _tasks_report(nodeid: str) -> None:
    out = sys.__stderr__
    if out is None:
        return
    print(f"\n+++ {nodeid} is still running: its threads and event loops' tasks +++",
          file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)
    loops = [o for o in gc.get_objects()
             if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    for loop in loops:
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while read: once more
            tasks = list(asyncio.all_tasks(loop))
        print(f"--- {len(tasks)} tasks of {loop!r}", file=out, flush=True)
        for task in tasks:
            try:
                task.print_stack(limit=12, file=out)
            except Exception as exc:  # a task finishing meanwhile
                print(f"{task!r}: {exc!r}", file=out)
    out.flush()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit = item.config.getini("timeout")
    seconds = float(limit) - AHEAD_S if limit else 0.0
    timer = None
    if seconds > 0:
        timer = threading.Timer(seconds, _tasks_report, (item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()
