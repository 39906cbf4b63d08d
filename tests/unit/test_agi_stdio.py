"""Process-per-call AGI: agi/vaihde-agi over real stdin/stdout pipes, as Asterisk runs it."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from vaihde.agi.peer import SimulatedChannel, environment, next_command

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "agi" / "vaihde-agi"


@pytest.fixture(autouse=True)
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/vaihde.db'}}\n"
        f"company_file: {REPO}/bench/company.yaml\n"
    )
    monkeypatch.setenv("VAIHDE_TEST_SETTINGS", str(path))


async def spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "VAIHDE_AMI_SECRET": "unused"}
    return await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), *args, "--config", os.environ["VAIHDE_TEST_SETTINGS"],
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )


async def converse(proc, chan: SimulatedChannel) -> None:
    proc.stdin.write(environment("", agi_network="no", agi_request=str(SCRIPT)))
    await proc.stdin.drain()
    while line := await proc.stdout.readline():
        proc.stdin.write(chan.reply(line.decode().rstrip("\n")).encode() + b"\n")
        await proc.stdin.drain()


async def test_same_flow_over_pipes():
    proc = await spawn("inbound")
    chan = SimulatedChannel(digits=["1"])
    await asyncio.wait_for(converse(proc, chan), 20)
    assert await proc.wait() == 0
    assert chan.variables["VAIHDE_ROUTE"] == "dial"
    # 1 in the (always open) benchmark company is Anna: her desk phone and softphone.
    assert chan.variables["VAIHDE_DIAL"] == "PJSIP/anna&PJSIP/anna-soft"


async def test_sighup_is_a_hangup_not_a_crash():
    proc = await spawn("inbound")
    proc.stdin.write(environment("", agi_network="no"))
    await proc.stdin.drain()
    assert (await next_command(proc.stdout, proc.stdin)).startswith((b"STREAM FILE", b"GET DATA"))
    proc.send_signal(signal.SIGHUP)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_bad_config_is_reported_on_stderr():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "inbound", "--config", "/nonexistent.yaml",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2 and out == b""
    assert b"/nonexistent.yaml: cannot read" in err
