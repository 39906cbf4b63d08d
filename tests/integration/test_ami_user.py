"""The AMI user vaihde ships (config/asterisk/manager-vaihde.conf, installed by the sandbox as it
is, with its own secret) against the real Asterisk: it can do everything vaihde does, and a
stolen secret cannot run CLI commands or programs, read or change Asterisk's configuration, or
place calls."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import pytest
from amiprobe import AmiProbe, event_is

from vaihde.sandbox import Instance

pytestmark = pytest.mark.asterisk

PHONES = "vaihde-test-phones"
SHIPPED = Path(__file__).resolve().parents[2] / "config" / "asterisk" / "manager-vaihde.conf"


@pytest.fixture
async def shipped(asterisk: Instance, clean_channels: None) -> AmiProbe:
    """Logged in as the vaihde user, whose privileges are the shipped file's."""
    installed = (asterisk.dir / "etc" / "manager-vaihde.conf").read_text()
    assert _privileges(installed) == _privileges(SHIPPED.read_text())
    probe = await AmiProbe.connect(asterisk.ami_port, asterisk.ami_username, asterisk.ami_secret)
    yield probe
    await probe.close()


def _privileges(text: str) -> list[str]:
    return [x for x in text.splitlines() if re.match(r"^(read|write|permit|deny)\s*=", x)]


async def _answered(ami: AmiProbe, phone: str = "anna") -> str:
    """A call to an answering test phone, placed by the test driver: the phone's channel."""
    since = ami.mark()
    await ami.action("Originate", Channel=f"Local/{phone}@{PHONES}", Application="Wait",
                     Data="60", Async="true")
    up = await ami.wait_for(
        lambda e: event_is("Newstate", Channel=f"Local/{phone}@{PHONES}-*",
                           ChannelStateDesc="Up")(e) and e["Channel"].endswith(";1"),
        timeout=10, since=since,
    )
    return up["Channel"]


async def test_what_vaihde_asks_of_asterisk_is_allowed(shipped: AmiProbe, ami: AmiProbe):
    phone = await _answered(ami)
    # The resync after a reconnect, and the device states.
    for action in ("CoreShowChannels", "BridgeList", "QueueStatus", "ParkedCalls",
                   "DeviceStateList"):
        reply = await shipped.action(action, check=False)
        assert reply["Response"] == "Success", (action, reply)
    listed = await shipped.wait_for(event_is("CoreShowChannel", Channel=phone), timeout=5)
    assert listed["Channel"] == phone
    # Console actions and the hand-over when stopping: Setvar, Redirect, Park, Bridge, Hangup.
    since = shipped.mark()
    await shipped.action("Setvar", Channel=phone, Variable="VAIHDE_REASON", Value="priv-test")
    got = await ami.action("Getvar", Channel=phone, Variable="VAIHDE_REASON")
    assert got["Value"] == "priv-test"
    await shipped.action("Redirect", Channel=phone, Context=PHONES, Exten="operator",
                         Priority="1")
    await shipped.wait_for(event_is("Newexten", Channel=phone, Context=PHONES, Exten="operator"),
                           since=since)
    await shipped.action("Park", Channel=phone)
    parked = await shipped.wait_for(event_is("ParkedCall", ParkeeChannel=phone), since=since)
    assert parked["ParkingSpace"]
    other = await _answered(ami, "answers")
    third = await _answered(ami, "operator2")
    await shipped.action("Bridge", Channel1=other, Channel2=third, Tone="no")
    await shipped.wait_for(event_is("BridgeEnter", Channel=third), since=since)
    await shipped.action("Hangup", Channel=other)
    await shipped.wait_for(event_is("Hangup", Channel=other), since=since)
    # Team queues follow availability: members added, paused with the reason, removed.
    member = {"Queue": "vaihde-switchboard", "Interface": "Local/priv-test@vaihde-test-phones"}
    await shipped.action("QueueAdd", {**member, "Paused": "false"})
    await shipped.action("QueuePause", {**member, "Paused": "true", "Reason": "vacation"})
    paused = await shipped.wait_for(event_is("QueueMemberPause", Interface=member["Interface"]),
                                    since=since)
    assert paused["PausedReason"] == "vacation"
    await shipped.action("QueueRemove", member)


async def _fake_fastagi(port: int) -> tuple[asyncio.Server, asyncio.Event]:
    """Reads one key with GET DATA and sends the caller to the operators."""
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        for command in (b"GET DATA beep 5000 1\n", b"SET VARIABLE VAIHDE_ROUTE operator\n"):
            writer.write(command)
            await writer.drain()
            await reader.readline()
        writer.close()
        done.set()

    return await asyncio.start_server(handle, "127.0.0.1", port), done


async def test_the_events_vaihde_and_its_call_watchdog_read_arrive(
    asterisk: Instance, shipped: AmiProbe, ami: AmiProbe
):
    """call, dialplan (Newexten), agi (AGIExecStart/End), dtmf, agent (queue) and user."""
    server, done = await _fake_fastagi(asterisk.agi_port)
    try:
        since = shipped.mark()
        await ami.action("Originate", Channel="Local/0201234567@vaihde-inbound/n",
                         Context="vaihde-test-caller", Exten="s", Priority="1", Async="true",
                         Variable=["CALLER_DIGITS=7", "CALLER_DELAY=1"])
        await asyncio.wait_for(done.wait(), 10)
        for event in ("Newchannel", "Newexten", "VarSet", "AGIExecStart", "AGIExecEnd",
                      "DTMFEnd", "QueueCallerJoin"):
            await shipped.wait_for(event_is(event), timeout=10, since=since)
        await ami.action("Originate", Channel=f"Local/anna@{PHONES}", Application="UserEvent",
                         Data="VaihdeConsole,Kind: priv-test", Async="true")
        await shipped.wait_for(event_is("UserEvent", UserEvent="VaihdeConsole"), since=since)
    finally:
        server.close()
        await server.wait_closed()


async def test_commands_configuration_and_calls_are_refused(
    asterisk: Instance, shipped: AmiProbe, ami: AmiProbe
):
    marker = f"vaihde-ami-{secrets.token_hex(4)}"
    since = ami.mark()
    refused = {
        "Command": {"Command": "core show version"},
        "GetConfig": {"Filename": "manager.conf"},
        "UpdateConfig": {"SrcFilename": "manager.conf", "DstFilename": "manager.conf",
                         "Action-000000": "NewCat", "Cat-000000": "intruder"},
        # A program run by Asterisk, as root in a real install.
        "Originate": {"Channel": f"Local/anna@{PHONES}", "Application": "System",
                      "Data": f"touch /tmp/{marker}"},
    }
    for action, fields in refused.items():
        reply = await shipped.action(action, fields, check=False)
        assert reply["Response"] == "Error", (action, reply)
        assert "permission denied" in reply.get("Message", "").lower(), (action, reply)
    # No call of its own either (vaihde never originates; the tests' driver does).
    reply = await shipped.action("Originate", Channel=f"Local/anna@{PHONES}",
                                 Application="Wait", Data="1", check=False)
    assert reply["Response"] == "Error" and "permission denied" in reply["Message"].lower()
    await asyncio.sleep(0.5)
    assert ami.find(event_is("Newchannel", Channel=f"Local/anna@{PHONES}-*"), since) is None
    assert not (asterisk.root / "tmp" / marker).exists()
    assert "[intruder]" not in (asterisk.dir / "etc" / "manager.conf").read_text()
