"""The sandbox Asterisk itself: boots, keeps the vaihde AMI user in its box, places test calls,
and falls back to the operators when no FastAGI server answers.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from amiprobe import AmiProbe, event_is

from vaihde.sandbox import Instance

pytestmark = pytest.mark.asterisk


async def test_boots_and_accepts_ami_login(asterisk: Instance, ami: AmiProbe) -> None:
    assert asterisk.running
    assert ami.banner.startswith("Asterisk Call Manager/")
    pong = await ami.action("Ping")
    assert pong["Ping"] == "Pong"
    assert "Asterisk 22" in asterisk.rx("core show version")


def test_every_shipped_context_is_loaded_whole(asterisk: Instance) -> None:
    """Every context of dialplan/ is in Asterisk, with its last line: a config slip (a bare
    `;--` opens a comment to the end of the file) must not silently drop the rest."""
    for path in sorted((Path(__file__).resolve().parents[2] / "dialplan").glob("*.conf")):
        text = path.read_text()
        for match in re.finditer(r"^\[([a-z0-9-]+)\]\n", text, re.M):
            context = match.group(1)
            shown = asterisk.rx(f"dialplan show {context}")
            assert f"'{context}'" in shown and "no existence" not in shown, (path.name, context)
        log = asterisk.full_log_path.read_text(errors="replace")
        assert "Unterminated comment" not in log and "No closing parenthesis" not in log


async def test_vaihde_user_cannot_run_cli_commands(asterisk: Instance) -> None:
    # (tests/integration/test_ami_user.py checks the rest of what this user may and may not do)
    vaihde = await AmiProbe.connect(asterisk.ami_port, asterisk.ami_username,
                                    asterisk.ami_secret)
    try:
        response = await vaihde.action("Command", Command="core show version", check=False)
    finally:
        await vaihde.close()
    assert response["Response"] == "Error"
    assert "permission denied" in response.get("Message", "").lower()


async def test_originated_call_to_a_test_phone_is_answered(ami: AmiProbe) -> None:
    since = ami.mark()
    await ami.action(
        "Originate",
        Channel="Local/anna@vaihde-test-phones",
        Application="Wait",
        Data="10",
        Async="true",
    )
    await ami.wait_for(
        event_is("Newstate", Channel="Local/anna@vaihde-test-phones-*", ChannelStateDesc="Up"),
        since=since,
    )
    result = await ami.wait_for(event_is("OriginateResponse"), since=since)
    assert result["Response"] == "Success", result


async def test_sipp_phone_answers_a_pjsip_call(
    ami: AmiProbe, sipp_phone: subprocess.Popen[bytes]
) -> None:
    since = ami.mark()
    await ami.action(
        "Originate", Channel="PJSIP/sipp-phone", Application="Wait", Data="10", Async="true"
    )
    up = await ami.wait_for(
        event_is("Newstate", Channel="PJSIP/sipp-phone-*", ChannelStateDesc="Up"), since=since
    )
    assert up["ChannelStateDesc"] == "Up"
    result = await ami.wait_for(event_is("OriginateResponse"), since=since)
    assert result["Response"] == "Success", result
    assert sipp_phone.poll() is None


def _port_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def test_call_reaches_operators_when_the_agi_service_is_down(
    asterisk: Instance, ami: AmiProbe
) -> None:
    operators = asterisk.settings.operators
    port = asterisk.agi_port
    assert not _port_listening(port), f"something listens on {port}; the test needs nothing there"
    since = ami.mark()
    started = time.monotonic()
    await ami.action(
        "Originate",
        Channel="Local/0201234567@vaihde-inbound/n",
        Context="vaihde-test-caller",
        Exten="s",
        Priority="1",
        Async="true",
        Variable="CALLER_HOLD=30",
    )
    dial = await ami.wait_for(
        # Through the answering-service queue, which rings the operators at once.
        event_is("DialBegin", DestChannel=operators + "-*"), timeout=5, since=since
    )
    elapsed = ami.time_of(dial) - started
    assert dial["DestChannel"].startswith(operators + "-"), dial
    assert elapsed < 2.0, f"operators were dialled only after {elapsed:.2f}s"
    # The operator (a test phone that answers) picks up.
    answered = await ami.wait_for(
        event_is("DialEnd", DestChannel=operators + "-*", DialStatus="ANSWER"), since=since
    )
    assert answered["Channel"].startswith("Local/0201234567@vaihde-inbound-")


async def _fake_fastagi(port: int, seen: dict[str, str]) -> tuple[asyncio.Server, asyncio.Event]:
    """A minimal FastAGI server: reads one digit with GET DATA and routes to the operators."""
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def command(text: str) -> str:
            writer.write(text.encode() + b"\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()

        while (line := (await reader.readline()).decode().strip()) != "":
            key, _, value = line.partition(": ")
            seen[key] = value
        seen["get_data"] = await command("GET DATA beep 5000 1")
        seen["set"] = await command("SET VARIABLE VAIHDE_ROUTE operator")
        writer.close()
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, done


async def test_caller_dtmf_reaches_agi_get_data(asterisk: Instance, ami: AmiProbe) -> None:
    operators = asterisk.settings.operators
    seen: dict[str, str] = {}
    server, done = await _fake_fastagi(asterisk.agi_port, seen)
    try:
        since = ami.mark()
        await ami.action(
            "Originate",
            Channel="Local/0201234567@vaihde-inbound/n",
            Context="vaihde-test-caller",
            Exten="s",
            Priority="1",
            Async="true",
            Variable=["CALLER_DIGITS=7", "CALLER_DELAY=1"],
        )
        await asyncio.wait_for(done.wait(), 10)
        secret = asterisk.settings.agi_secret
        assert seen["agi_network_script"] == f"{secret}/inbound?did=0201234567"
        assert seen["agi_context"] == "vaihde-main"
        assert seen["get_data"] == "200 result=7", seen
        await ami.wait_for(event_is("DialBegin", DestChannel=operators + "-*"), since=since)
    finally:
        server.close()
        await server.wait_closed()
