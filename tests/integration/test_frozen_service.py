"""A frozen service cannot hold a caller: `vaihde serve` runs in its own process, as in production,
and is stopped with SIGSTOP (what a blocked event loop, a stuck call into a library or a paused
VM look like from Asterisk) at the greeting, while the caller is to press a key, and after the
caller has pressed it (the decision). The caller reaches the operator queue within 3 s of
Asterisk starting to wait for the frozen service; after SIGCONT the service serves the next call
normally and does not route the rescued call a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from amiprobe import AmiProbe
from company import COMPANY, PHONES
from test_first_call import assert_bridged_with, call

from vaihde.sandbox import Instance
from vaihde.sandbox.service import ServiceProcess

CALLER_LEG = "Local/0201234567@vaihde-inbound-"
# The menu waits long enough for a test to act while the caller is to choose.
SLOW_COMPANY = COMPANY.replace("timeout: 2\n    attempts: 2", "timeout: 6\n    attempts: 2")
RESCUE_S = 3.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(asterisk: Instance, tmp_path: Path) -> tuple[Path, int]:
    assert SLOW_COMPANY != COMPANY
    (tmp_path / "company.yaml").write_text(SLOW_COMPANY)
    http_port = _free_port()
    settings = tmp_path / "settings.yaml"
    settings.write_text(asterisk.service_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/vaihde.db", company_file="company.yaml",
        http_port=http_port,
    ))
    return settings, http_port


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """systemd's side of sd_notify: a datagram socket the service is told about."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


def _notifications(sock: socket.socket) -> list[str]:
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(4096).decode())
    return out


@pytest.fixture
async def served(asterisk: Instance, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    settings, http_port = _settings(asterisk, tmp_path)
    service = ServiceProcess(settings, tmp_path / "vaihde.log", log_format="json")
    service.start()
    try:
        await service.wait_healthy(http_port)
        service.http_port = http_port  # type: ignore[attr-defined]
        yield service
    finally:
        service.stop()
        log = service.log_path.read_text(errors="replace")
        # The service's own log, read back as a newcomer would: no traceback anywhere.
        assert "Traceback" not in log, log[-3000:]


def _caller_agi(command_part: str, event: str = "AGIExecStart"):
    return lambda e: (e.get("Event") == event and e.get("Channel", "").startswith(CALLER_LEG)
                      and command_part in e.get("Command", ""))


def _rescued(e: dict[str, str]) -> bool:
    return e.get("Event") == "QueueCallerJoin" and e.get("Queue") == "vaihde-switchboard"


def _guard_pid(service: ServiceProcess) -> int:
    children = Path(f"/proc/{service.pid}/task/{service.pid}/children").read_text().split()
    for pid in children:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"vaihde.guard" in cmdline:
            return int(pid)
    raise AssertionError(f"no guard among the service's children {children}")


async def _rescue_after(
    ami: AmiProbe, waiting_from: dict[str, str]
) -> tuple[dict[str, str], float]:
    """The caller's arrival in the operator queue, and how long after Asterisk began waiting
    for the service (the AGIExecEnd of the last command it answered)."""
    joined = await ami.wait_for(_rescued, 15)
    return joined, ami.time_of(joined) - ami.time_of(waiting_from)


async def _no_second_route(ami: AmiProbe, since: int, seconds: float = 2.0) -> None:
    """After SIGCONT the late service must not act on the rescued call: no AGI command for it
    and no employee's phone rung for it."""
    await asyncio.sleep(seconds)
    late = [e for e in ami.events[since:]
            if e.get("Channel", "").startswith(CALLER_LEG)
            and (e.get("Event") == "AGIExecStart"
                 or (e.get("Event") == "DialBegin"
                     and not e.get("DestChannel", "").startswith(f"Local/operator@{PHONES}")))]
    assert late == [], late


async def test_frozen_at_the_greeting(asterisk, ami, served):
    await call(ami, "", hold=40)
    await ami.wait_for(_caller_agi("hello-world"), 10)
    served.freeze()
    done = await ami.wait_for(_caller_agi("hello-world", "AGIExecEnd"), 10)
    joined, waited = await _rescue_after(ami, done)
    print(f"rescued {waited:.2f} s after Asterisk began waiting")
    assert waited <= RESCUE_S, f"caller waited {waited:.2f} s in silence"
    assert "VAIHDE_REASON=agi-stalled" in joined.get("ChanVariable", "")
    mark = ami.mark()
    served.thaw()
    await _no_second_route(ami, mark)


async def test_frozen_while_the_caller_is_to_press_a_key(asterisk, ami, served):
    """No key: the prompt's wait ends (Asterisk's own timeout), then Asterisk waits for us."""
    await call(ami, "", hold=40)
    await ami.wait_for(_caller_agi("GET DATA"), 10)
    served.freeze()
    done = await ami.wait_for(_caller_agi("GET DATA", "AGIExecEnd"), 15)
    joined, waited = await _rescue_after(ami, done)
    print(f"rescued {waited:.2f} s after Asterisk began waiting")
    assert waited <= RESCUE_S, f"caller waited {waited:.2f} s in silence"
    assert "VAIHDE_REASON=agi-stalled" in joined.get("ChanVariable", "")
    served.thaw()


async def test_frozen_before_deciding_on_the_key_pressed(asterisk, ami, served):
    """The caller presses 1 (Anna) while the service is frozen: the decision never comes, the
    caller reaches the operators instead, and Anna's phone is never rung for this call."""
    await call(ami, "", hold=40)
    start = await ami.wait_for(_caller_agi("GET DATA"), 10)
    served.freeze()
    await ami.action("PlayDTMF", Channel=start["Channel"].replace(";2", ";1"), Digit="1")
    await ami.wait_for(lambda e: e.get("Event") == "DTMFEnd" and e.get("Digit") == "1"
                       and e.get("Channel") == start["Channel"]
                       and e.get("Direction") == "Received", 5)
    done = await ami.wait_for(_caller_agi("GET DATA", "AGIExecEnd"), 10)
    # The key ended the wait, long before the menu's 6 s timeout.
    assert ami.time_of(done) - ami.time_of(start) < 4
    _, waited = await _rescue_after(ami, done)
    print(f"rescued {waited:.2f} s after Asterisk began waiting")
    assert waited <= RESCUE_S, f"caller waited {waited:.2f} s in silence"
    await assert_bridged_with(ami, f"Local/operator@{PHONES}", timeout=20)
    mark = ami.mark()
    served.thaw()
    await _no_second_route(ami, mark)
    assert not [e for e in ami.events if e.get("Event") == "DialBegin"
                and e.get("DestChannel", "").startswith(f"Local/anna@{PHONES}")]


def _stored(served: ServiceProcess, table: str) -> int:
    """Rows the service committed to `table` (messages, callbacks) in its SQLite database."""
    db = served.settings_path.parent / "vaihde.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_a_callback_asked_for_while_frozen_is_not_stored_behind_the_rescue(
    asterisk, ami, served, tmp_path
):
    """The caller presses 3 (call me back) at Bob's offer while the service is frozen; the guard
    takes them to the operators. The service, thawed, reads that 3 late: it must not store a
    callback request the caller was never told about and an operator is already handling."""
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    await _vaihde_cli(served, "presence", "set", "bob", "vacation", "--until", until)
    await call(ami, "2", hold=40)
    offer = await ami.wait_for(lambda e: _caller_agi("GET DATA")(e)
                               and "6000" in e.get("Command", ""), 20)
    served.freeze()
    await ami.action("PlayDTMF", Channel=offer["Channel"].replace(";2", ";1"), Digit="3")
    await ami.wait_for(_rescued, 15)
    served.thaw()
    await asyncio.sleep(2.0)
    assert _stored(served, "callbacks") == 0


async def test_a_message_recorded_while_frozen_is_not_stored_behind_the_rescue(
    asterisk, ami, served
):
    await call(ami, "5", hold=40)
    recording = await ami.wait_for(_caller_agi("RECORD FILE"), 20)
    served.freeze()
    await ami.action("PlayDTMF", Channel=recording["Channel"].replace(";2", ";1"), Digit="#")
    await ami.wait_for(_rescued, 15)
    served.thaw()
    await asyncio.sleep(2.0)
    assert _stored(served, "messages") == 0


async def _vaihde_cli(served: ServiceProcess, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vaihde", *args, "--settings", str(served.settings_path),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_after_sigcont_the_service_serves_calls_again(asterisk, ami, served):
    await call(ami, "", hold=40)
    await ami.wait_for(_caller_agi("GET DATA"), 10)
    served.freeze()
    await ami.wait_for(_rescued, 20)
    served.thaw()
    mark = ami.mark()
    await call(ami, "1", delay=2)
    await assert_bridged_with(ami, f"Local/anna@{PHONES}", timeout=15)
    # That call went through the service, not the rescue path.
    assert ami.find(_rescued, since=mark) is None
    log = [json.loads(line) for line in served.log_path.read_text().splitlines()
           if line.startswith("{")]
    assert not [r for r in log if r.get("level") == "error"], log


async def test_guard_gone_the_deadline_still_rescues(asterisk, ami, served):
    """Both the service and its guard are gone (frozen, killed): Asterisk's own deadline for
    the session (TIMEOUT(absolute), armed before AGI()) takes the caller to the operators."""
    guard = _guard_pid(served)
    served.freeze()  # first, so that it cannot restart the guard
    os.kill(guard, signal.SIGKILL)
    await call(ami, "", hold=40)
    start = await ami.wait_for(
        lambda e: e.get("Event") == "Newexten" and e.get("Application") == "AGI"
        and e.get("Channel", "").startswith(CALLER_LEG), 10,
    )
    joined = await ami.wait_for(_rescued, 15)
    waited = ami.time_of(joined) - ami.time_of(start)
    assert "VAIHDE_REASON=agi-deadline" in joined.get("ChanVariable", "")
    assert waited <= 5 + 1.0, f"the deadline took {waited:.2f} s"
    served.thaw()


async def test_systemd_hears_ready_and_pings_that_stop_while_frozen(
    asterisk, tmp_path, notify_socket
):
    """Run as systemd runs it (Type=notify, WatchdogSec=1): READY=1 once serving, then watchdog
    pings from the event loop, none while the loop cannot run, and again after."""
    settings, http_port = _settings(asterisk, tmp_path)
    service = ServiceProcess(settings, tmp_path / "vaihde.log", env={
        "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000",
    })
    service.start()
    try:
        await service.wait_healthy(http_port)
        await asyncio.sleep(1.6)
        running = _notifications(notify_socket)
        assert running[0] == "READY=1", running
        assert running[1:].count("WATCHDOG=1") >= 2, running
        service.freeze()
        await asyncio.sleep(0.2)
        _notifications(notify_socket)  # a ping sent just before the stop
        await asyncio.sleep(1.5)
        assert _notifications(notify_socket) == []
        service.thaw()
        await asyncio.sleep(1.2)
        assert "WATCHDOG=1" in _notifications(notify_socket)
    finally:
        service.stop()
    assert "STOPPING=1" in _notifications(notify_socket)


async def test_the_guard_unit_tells_systemd_it_is_ready(asterisk, tmp_path, notify_socket):
    settings, _ = _settings(asterisk, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAIHDE_")}
    env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vaihde.guard", "--config", str(settings),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            if "READY=1" in _notifications(notify_socket):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the guard never said READY=1")
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, out.decode()
    assert b"Traceback" not in out
