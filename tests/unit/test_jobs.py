"""Stopping background jobs never hangs (vaihde.jobs): a wait for an event is never left running
by a cancel that comes with the event, and cancel_all ends a task that swallowed one cancel,
and gives up on (and names) one that swallows all of them."""

import asyncio
import logging

import pytest

from vaihde import jobs
from vaihde.jobs import cancel_all, until_set


async def test_until_set_says_whether_the_event_came_in_time():
    event = asyncio.Event()
    assert await until_set(event, 0.05) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await until_set(event, 5) is True


async def test_a_cancel_in_the_same_step_as_the_event_ends_the_waiting_loop():
    event = asyncio.Event()
    rounds = 0

    async def loop_on_event() -> None:
        nonlocal rounds
        while True:
            await until_set(event, 10)
            event.clear()
            rounds += 1

    task = asyncio.create_task(loop_on_event())
    await asyncio.sleep(0.01)
    # The event and the cancel in one loop step: what Python 3.11's asyncio.wait_for loses.
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    assert task in done and task.cancelled()
    assert rounds == 0


async def test_cancel_all_ends_a_task_that_swallowed_the_first_cancel():
    async def swallows_once() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(30)

    task = asyncio.create_task(swallows_once())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await cancel_all([task])
    assert task.cancelled()
    assert asyncio.get_running_loop().time() - started < jobs.RECANCEL_S * 3


async def test_cancel_all_leaves_a_task_that_will_not_end_and_names_it(monkeypatch, caplog):
    monkeypatch.setattr(jobs, "GIVE_UP_S", 0.3)
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn-job")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="vaihde.jobs"):
        await asyncio.wait_for(cancel_all([task]), 5)
    assert not task.done()
    assert any(r.getMessage() == "a task did not end when cancelled"
               and getattr(r, "task", "") == "stubborn-job" for r in caplog.records)
    stop.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.done()


async def test_cancel_all_still_raises_a_task_s_own_error_unless_quiet():
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError):
        await cancel_all([task])
    await cancel_all([task], quiet=True)
