"""Several vaihde instances behind one Asterisk (VAIHDE_AGI, VAIHDE_AGI2): when the first cannot
be reached the dialplan goes straight to the next, and when the first freezes mid-call its guard
hands the caller to the next instance, which takes them from the start. Each instance's guard
rescues only its own sessions."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from amiprobe import AmiProbe
from company import COMPANY, PHONES
from test_first_call import assert_bridged_with, call

from vaihde.sandbox import Instance
from vaihde.sandbox.service import ServiceProcess

CALLER_LEG = "Local/0201234567@vaihde-inbound-"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(asterisk: Instance, work: Path, agi_port: int, http_port: int) -> Path:
    work.mkdir()
    (work / "company.yaml").write_text(COMPANY)
    settings = work / "settings.yaml"
    settings.write_text(asterisk.service_settings(
        database_url=f"sqlite+aiosqlite:///{work}/vaihde.db", company_file="company.yaml",
        http_port=http_port, agi_port=agi_port,
        extra=f"guard: {{agi_url: 'agi://127.0.0.1:{agi_port}'}}",
    ))
    return settings


async def _serve(asterisk: Instance, work: Path, agi_port: int) -> ServiceProcess:
    """A vaihde instance on `agi_port` whose guard stands in for that URL only."""
    http_port = _free_port()
    settings = _settings(asterisk, work, agi_port, http_port)
    service = ServiceProcess(settings, work / "vaihde.log")
    service.start()
    await service.wait_healthy(http_port)
    return service


@pytest.fixture
async def second(asterisk: Instance, ami: AmiProbe, tmp_path: Path
                 ) -> AsyncIterator[tuple[ServiceProcess, int]]:
    """A second instance on its own port, named to Asterisk as VAIHDE_AGI2 (a global)."""
    port = _free_port()
    service = await _serve(asterisk, tmp_path / "second", port)
    url = f"agi://127.0.0.1:{port}/{asterisk.settings.agi_secret}"
    await ami.action("Setvar", Variable="VAIHDE_AGI2", Value=url)
    try:
        yield service, port
    finally:
        await ami.action("Setvar", Variable="VAIHDE_AGI2", Value="")
        service.stop()


def _agi_on(port: int):
    return lambda e: (e.get("Event") == "Newexten" and e.get("Application") == "AGI"
                      and e.get("Channel", "").startswith(CALLER_LEG)
                      and f"127.0.0.1:{port}/" in e.get("AppData", ""))


async def test_an_instance_that_cannot_be_reached_is_skipped(asterisk, ami, second):
    """Nothing listens on VAIHDE_AGI's port: the connection is refused and the second instance
    serves the caller at once."""
    _, port = second
    await call(ami, "1")
    tried = await ami.wait_for(_agi_on(asterisk.agi_port), 10)
    served = await ami.wait_for(_agi_on(port), 10)
    assert ami.time_of(served) - ami.time_of(tried) < 0.5
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    assert ami.find(lambda e: e.get("Event") == "QueueCallerJoin") is None


async def test_a_frozen_instance_hands_its_caller_to_the_next(asterisk, ami, second, tmp_path):
    other, port = second
    """The first instance freezes at the greeting: its guard moves the caller within 3 s to the
    second instance (not to the operators), where they choose Anna as any caller would."""
    first = await _serve(asterisk, tmp_path / "first", asterisk.agi_port)
    try:
        await call(ami, "", hold=40)
        start = await ami.wait_for(lambda e: e.get("Event") == "AGIExecStart"
                                   and e.get("Channel", "").startswith(CALLER_LEG)
                                   and "hello-world" in e.get("Command", ""), 10)
        first.freeze()
        done = await ami.wait_for(lambda e: e.get("Event") == "AGIExecEnd"
                                  and e.get("Channel") == start["Channel"]
                                  and "hello-world" in e.get("Command", ""), 10)
        moved = await ami.wait_for(lambda e: _agi_on(port)(e)
                                   and e.get("Channel") == start["Channel"], 10)
        waited = ami.time_of(moved) - ami.time_of(done)
        assert waited <= 3.0, f"{waited:.2f} s before the second instance had the caller"
        # The second instance greets them and waits for a key: they press 1.
        menu = await ami.wait_for(lambda e: e.get("Event") == "AGIExecStart"
                                  and e.get("Channel") == start["Channel"]
                                  and "GET DATA" in e.get("Command", "")
                                  and ami.time_of(e) > ami.time_of(moved), 15)
        await ami.action("PlayDTMF", Channel=menu["Channel"].replace(";2", ";1"), Digit="1")
        await assert_bridged_with(ami, f"Local/anna@{PHONES}", timeout=15)
        assert ami.find(lambda e: e.get("Event") == "QueueCallerJoin") is None
    finally:
        first.stop()
    # The second instance's guard left the first one's session alone (one rescue, by one guard).
    rescues = first.log_path.read_text().count("caller taken out of a stalled AGI session")
    assert rescues == 1
    assert "caller taken out" not in other.log_path.read_text()
