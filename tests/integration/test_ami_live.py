"""Our AMI client and call tracker against the real Asterisk: login, permissions of the vaihde
user, live tracking, and resynchronisation after Asterisk restarts under a call."""

from __future__ import annotations

import asyncio

import pytest

from vaihde.ami import AmiAuthError, AmiClient, CallTracker

PHONES = "vaihde-test-phones"


async def wait_until(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def tracked(asterisk):
    client = AmiClient(
        "127.0.0.1", asterisk.ami_port, "vaihde", asterisk.ami_secret,
        ping_interval=0.5, ping_timeout=0.5, reconnect_min=0.1, reconnect_max=0.5,
    )
    tracker = CallTracker()
    tracker.attach(client)
    client.start()
    await wait_until(lambda: client.connected)
    yield client, tracker
    await client.close()


async def test_wrong_secret_is_an_error(asterisk):
    client = AmiClient("127.0.0.1", asterisk.ami_port, "vaihde", "wrong")
    with pytest.raises(AmiAuthError):
        await client.connect()
    await client.close()


async def answered_call(ami):
    await ami.action(
        {
            "Action": "Originate",
            "Channel": f"Local/anna@{PHONES}",
            "Application": "Wait",
            "Data": "60",
            "Async": "true",
        }
    )
    return await ami.wait_for(
        lambda e: e.get("Event") == "Newstate"
        and e.get("Channel", "").startswith(f"Local/anna@{PHONES}")
        and e.get("ChannelStateDesc") == "Up",
        10,
    )


async def test_tracker_follows_a_live_call(asterisk, ami, tracked):
    _, tracker = tracked
    up = await answered_call(ami)
    await wait_until(lambda: tracker.channel(up["Uniqueid"]) is not None)
    assert tracker.channel(up["Uniqueid"]).name == up["Channel"]
    asterisk.rx("channel request hangup all")
    await wait_until(lambda: tracker.channel(up["Uniqueid"]) is None)
    assert any(h.channel.uniqueid == up["Uniqueid"] for h in tracker.recent_hangups)


async def test_resync_sees_calls_that_started_before_connecting(asterisk, ami):
    up = await answered_call(ami)
    # The vaihde user (no system/command write class) may still list channels, bridges, queues.
    client = AmiClient("127.0.0.1", asterisk.ami_port, "vaihde", asterisk.ami_secret)
    tracker = CallTracker()
    tracker.attach(client)
    client.start()
    try:
        await wait_until(lambda: client.connected and tracker.synced)
        assert tracker.channel(up["Uniqueid"]) is not None
    finally:
        await client.close()


async def test_reconnects_and_resyncs_after_asterisk_restart(asterisk, ami, tracked):
    client, tracker = tracked
    generation = tracker.generation
    up = await answered_call(ami)
    await wait_until(lambda: tracker.channel(up["Uniqueid"]) is not None)
    await ami.close()
    asterisk.stop()
    await wait_until(lambda: not client.connected, 5)
    asterisk.start()
    # The restart ended the call: after the resync the tracker must not still show it.
    await wait_until(lambda: client.connected and tracker.generation > generation, 15)
    assert tracker.channel(up["Uniqueid"]) is None
