"""Never strand a caller: with the database gone in the middle of the day, callers still reach
the employee they choose (routing reads memory, not the database) and an employee's feature code
gets a clear "sorry" instead of silence."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from company import PHONES, start_vaihde
from test_feature_codes_live import dial_code, played
from test_first_call import assert_bridged_with, call, phones_dialled

REPO = Path(__file__).resolve().parents[2]
SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
PG_ENV = {**os.environ, "VAIHDE_PG_PORT": str(15452 + 100 * SLOT)}
PG_NAME = f"strand{SLOT}"


def postgres(action: str) -> str:
    result = subprocess.run(
        [str(REPO / "scripts" / "postgres"), "--name", PG_NAME, action],
        env=PG_ENV, capture_output=True, text=True, timeout=120,
    )
    if result.returncode not in (0, 3):
        raise AssertionError(f"scripts/postgres {action}: {result.stderr}")
    return result.stdout.strip()


@pytest.fixture
async def vaihde_on_postgres(asterisk, monkeypatch, tmp_path):
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_PROMPTS_DIR", "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    postgres("start")
    # A database of its own, so earlier runs leave nothing behind.
    url = postgres("url").replace("vaihde_test", f"strand_{os.getpid()}")
    import asyncpg

    admin = await asyncpg.connect(postgres("url").replace("postgresql+asyncpg://", "postgres://"))
    await admin.execute(f"DROP DATABASE IF EXISTS strand_{os.getpid()}")
    await admin.execute(f"CREATE DATABASE strand_{os.getpid()}")
    await admin.close()
    monkeypatch.setenv("VAIHDE_DB_URL", url)
    service = await start_vaihde(asterisk, tmp_path)
    try:
        yield service
    finally:
        await service.stop()
        postgres("stop")


async def test_database_down_callers_still_reach_people(asterisk, ami, vaihde_on_postgres):
    vaihde = vaihde_on_postgres
    postgres("stop")
    await call(ami, "1")
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    assert phones_dialled(ami) == [f"Local/anna@{PHONES}"]
    # The employee's own phone gets a clear refusal, not silence, while the database is away.
    await dial_code(ami, "*7177")  # a code no other test dials, so the log line is this call's
    await played(asterisk, "*7177@vaihde-test-anna-phone", "im-sorry.gsm")
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{vaihde.http_port}/health"
    ) as resp:
        assert resp.status == 200  # FastAGI still serves: the service is up


def _cluster_pids() -> list[int]:
    """The private PostgreSQL's processes: the postmaster (postmaster.pid) and its backends."""
    pid_file = REPO / "var" / "postgres" / PG_NAME / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().splitlines()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *map(int, children)]


async def test_database_frozen_while_storing_a_message_the_caller_reaches_a_person(
    asterisk, ami, vaihde_on_postgres
):
    """The database stops answering (frozen, not down) just as the caller finishes their
    message: the caller is not told it was taken, and reaches the operators within 3 s."""
    import signal

    await call(ami, "5", hold=40)
    recording = await ami.wait_for(
        lambda e: e.get("Event") == "AGIExecStart" and "RECORD FILE" in e.get("Command", ""), 15)
    pids = _cluster_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await ami.action("PlayDTMF", Channel=recording["Channel"].replace(";2", ";1"), Digit="#")
        ended = await ami.wait_for(
            lambda e: e.get("Event") == "AGIExecEnd" and "RECORD FILE" in e.get("Command", ""),
            10)
        joined = await ami.wait_for(
            lambda e: e.get("Event") == "QueueCallerJoin"
            and e.get("Queue") == "vaihde-switchboard", 10)
        waited = ami.time_of(joined) - ami.time_of(ended)
        assert waited <= 3.0, f"{waited:.2f} s between the recording and a person"
        assert "VAIHDE_REASON=service-timeout" in joined.get("ChanVariable", "")
        # Nothing after the recording told the caller their message was taken.
        said = [e.get("Command", "") for e in ami.events
                if e.get("Event") == "AGIExecStart" and ami.time_of(e) > ami.time_of(ended)
                and e.get("Channel") == recording["Channel"]]
        assert not [c for c in said if c.startswith("STREAM FILE")], said
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def test_service_stopped_mid_menu_the_caller_reaches_an_operator(
    asterisk, ami, monkeypatch, tmp_path
):
    """vaihde stops (a deploy) while a caller is in the menu: the caller is handed to the
    operators at once (AMI Redirect), not after the grace and the rest of the prompt, and long
    before the menu itself would have given up (3 tries of 8 s)."""
    import time

    from company import COMPANY

    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    slow_menu = COMPANY.replace("timeout: 2\n    attempts: 2", "timeout: 8\n    attempts: 3")
    assert slow_menu != COMPANY
    service = await start_vaihde(asterisk, tmp_path, slow_menu)
    stopped = False
    try:
        await call(ami, "", hold=30)  # says nothing: the menu waits for a key
        await _in_menu(service)
        started = time.monotonic()
        await service.stop()
        stopped = True
        joined = await ami.wait_for(
            lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Queue")
            == "vaihde-switchboard", 10,
        )
        elapsed = ami.time_of(joined) - started
        assert elapsed < 3, f"the caller reached the queue {elapsed:.1f}s after the stop"
        assert "VAIHDE_REASON=service-stopping" in joined.get("ChanVariable", "")
        await ami.wait_for(
            lambda e: e.get("Event") == "AgentConnect"
            and e.get("DestChannel", "").startswith(f"Local/operator@{PHONES}"), 20,
        )
    finally:
        if not stopped:
            await service.stop()


async def _in_menu(service) -> None:
    """Until a call has been in the menu for a moment (its story says it entered)."""
    import asyncio

    for _ in range(150):
        if any(any(s.kind == "entered" for s in story.steps)
               for story in service.stories.stories()):
            await asyncio.sleep(0.5)
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no call entered the menu")
