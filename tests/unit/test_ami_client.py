"""AmiClient against a fake AMI server: login, actions, lists, events, pings, reconnects, close."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fake_ami import FakeAmi, encode, list_response

from vaihde.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConnectError,
    AmiError,
    AmiNotConnected,
    AmiRefused,
    AmiTimeout,
)

FAST = {
    "ping_interval": 0.1,
    "ping_timeout": 0.1,
    "connect_timeout": 0.5,
    "action_timeout": 0.5,
    "reconnect_min": 0.05,
    "reconnect_max": 0.2,
}


def make_client(server: FakeAmi, secret: str | None = None, **kw: Any) -> AmiClient:
    opts = {**FAST, **kw}
    return AmiClient("127.0.0.1", server.port, server.username, secret or server.secret, **opts)


def client_tasks() -> set[asyncio.Task[Any]]:
    """Tasks belonging to AmiClient (supervisor, pinger), whatever they are named."""
    found = set()
    for t in asyncio.all_tasks():
        if t is asyncio.current_task() or t.done():
            continue
        coro = t.get_coro()
        qualname = getattr(coro, "__qualname__", "")
        if t.get_name().startswith("vaihde-ami") or qualname.startswith("AmiClient."):
            found.add(t)
    return found


async def wait_for(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def server() -> AsyncIterator[FakeAmi]:
    srv = await FakeAmi().start()
    yield srv
    await srv.stop()


async def test_login_and_action(server: FakeAmi) -> None:
    server.handlers["getvar"] = lambda a: [{"Response": "Success", "Value": f"v-{a['Variable']}"}]
    client = make_client(server)
    states: list[bool] = []
    client.add_state_listener(states.append)
    await client.connect()
    try:
        assert client.connected and states == [True]
        resp = await client.action({"Action": "Getvar", "Variable": "X"})
        assert resp["Value"] == "v-X"
        assert resp["response"] == "Success"  # header lookups are case-insensitive
        assert resp.events == []
        await client.action({"Action": "Getvar", "Variable": "Y"})
        ids = [a["ActionID"] for a in server.actions]
        assert len(ids) == len(set(ids)) == 3  # Login + 2
    finally:
        await client.close()
    assert states == [True, False]
    assert not client_tasks()


async def test_bad_secret_raises_auth_error_quickly_and_leaves_nothing(
    server: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(server, secret="wrong-secret-xyz")
    t0 = time.monotonic()
    with pytest.raises(AmiAuthError) as ei:
        await client.connect()
    assert time.monotonic() - t0 < 0.3
    assert "vaihde" in str(ei.value) and "secret" in str(ei.value)
    assert "wrong-secret-xyz" not in str(ei.value)
    assert not client_tasks()
    assert not client.connected
    await asyncio.sleep(0.3)
    assert server.connections == 1  # no retry behind our back
    assert all("wrong-secret-xyz" not in r.getMessage() for r in caplog.records)
    await client.close()


async def test_dead_port_raises_connect_error_without_retries() -> None:
    port = free_port()
    client = AmiClient("127.0.0.1", port, "vaihde", "s3cret", **FAST)
    with pytest.raises(AmiConnectError):
        await client.connect()
    assert not client_tasks()
    # Bring a server up on that port: a hidden retry would show up as a connection.
    async with FakeAmi(port=port) as srv:
        await asyncio.sleep(0.4)
        assert srv.connections == 0


async def test_silent_peer_times_out_as_connect_error() -> None:
    async with FakeAmi(silent=True) as srv:
        client = make_client(srv, connect_timeout=0.2)
        with pytest.raises(AmiConnectError, match="within"):
            await client.connect()
        assert not client_tasks()


async def test_non_ami_peer_is_rejected() -> None:
    async with FakeAmi(greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n") as srv:
        with pytest.raises(AmiConnectError, match="not an Asterisk manager"):
            await make_client(srv).connect()
        assert not client_tasks()


async def test_missed_pong_is_detected_and_client_reconnects(server: FakeAmi) -> None:
    hook_calls: list[float] = []
    downs: list[float] = []

    async def on_connected(c: AmiClient) -> None:
        hook_calls.append(time.monotonic())
        # A hook may use the session before the client declares itself up.
        await c.action({"Action": "Ping"})

    client = make_client(server)
    client.add_on_connected(on_connected)
    client.add_state_listener(lambda up: None if up else downs.append(time.monotonic()))
    client.start()
    try:
        await wait_for(lambda: client.connected)
        assert len(hook_calls) == 1
        server.answer_pings = False
        silenced = time.monotonic()
        await wait_for(lambda: bool(downs))
        # A ping goes out within ping_interval, its timeout after ping_timeout more.
        assert downs[0] - silenced <= FAST["ping_interval"] + FAST["ping_timeout"] + 0.1
        assert "pong" in (client.last_error or "")
        server.answer_pings = True
        await wait_for(lambda: client.connected and len(hook_calls) == 2)
        assert server.logins == 2
        assert client.stats["ping_timeouts"] == 1
    finally:
        await client.close()
    assert not client_tasks()


async def test_close_during_backoff_stops_all_attempts() -> None:
    async with FakeAmi(drop_on_accept=True) as srv:
        client = make_client(srv, reconnect_min=0.05, reconnect_max=0.1)
        client.start()
        await wait_for(lambda: srv.connections >= 3)
        await client.close()
        seen = srv.connections
        await asyncio.sleep(0.5)
        assert srv.connections == seen
        assert not client_tasks()
        assert "connection closed" in (client.last_error or "")
        with pytest.raises(AmiError):
            await client.connect()


async def test_backoff_grows_between_failed_attempts() -> None:
    async with FakeAmi(drop_on_accept=True) as srv:
        client = make_client(srv, reconnect_min=0.02, reconnect_max=0.16)
        client.start()
        await wait_for(lambda: srv.connections >= 6)
        await client.close()
        gaps = [b - a for a, b in zip(srv.connect_times, srv.connect_times[1:], strict=False)]
        assert gaps[-1] > gaps[0] * 2
        assert max(gaps) < 0.16 + 0.1


async def test_auth_failure_under_supervision_retries_slowly_then_recovers(
    server: FakeAmi,
) -> None:
    client = make_client(server, secret="old-secret", reconnect_max=0.3)
    client.start()
    try:
        await asyncio.sleep(0.5)
        assert 1 <= server.failed_logins <= 2  # at reconnect_max, not a tight loop
        assert not client.connected
        assert "refused" in (client.last_error or "")
        server.secret = "old-secret"  # the admin fixes the configuration
        await wait_for(lambda: client.connected, timeout=1.0)
        assert client.last_error is None
    finally:
        await client.close()


async def test_events_reach_listeners_in_order(server: FakeAmi) -> None:
    client = make_client(server)
    got: list[str] = []
    client.add_event_listener(lambda ev: got.append(ev["Seq"]) if ev["Event"] == "Tick" else None)
    await client.connect()
    try:
        # Several events per TCP write and one event spread over writes.
        burst = b"".join(encode({"Event": "Tick", "Seq": str(i)}) for i in range(200))
        await server.send_raw(burst)
        tail = encode({"Event": "Tick", "Seq": "200"})
        await server.send_raw(tail[:7])
        await asyncio.sleep(0.02)
        await server.send_raw(tail[7:])
        await wait_for(lambda: len(got) == 201)
        assert got == [str(i) for i in range(201)]
    finally:
        await client.close()


async def test_utf8_split_across_reads_is_kept(server: FakeAmi) -> None:
    client = make_client(server)
    names: list[str] = []
    client.add_event_listener(lambda ev: names.append(ev.get("CallerIDName", "")))
    await client.connect()
    try:
        raw = encode({"Event": "Newchannel", "CallerIDName": "Mäkinen Pörrö"})
        cut = raw.index("ä".encode()) + 1  # inside the two-byte sequence
        await server.send_raw(raw[:cut])
        await asyncio.sleep(0.02)
        await server.send_raw(raw[cut:])
        await wait_for(lambda: "Mäkinen Pörrö" in names)
    finally:
        await client.close()


async def test_raising_listener_does_not_break_reader(
    server: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server)
    got: list[str] = []

    def bad(ev: Any) -> None:
        raise RuntimeError("listener bug")

    client.add_event_listener(bad)
    client.add_event_listener(lambda ev: got.append(ev["Event"]))
    await client.connect()
    try:
        for i in range(3):
            await server.send_event({"Event": f"E{i}"})
        await wait_for(lambda: got[-3:] == ["E0", "E1", "E2"])
        assert client.connected
        await client.action({"Action": "Ping"})
        assert client.stats["listener_errors"] >= 3
        assert any("listener" in r.getMessage() for r in caplog.records)
    finally:
        await client.close()


async def test_list_action_collects_events(server: FakeAmi) -> None:
    rows = [{"Event": "CoreShowChannel", "Uniqueid": str(i)} for i in range(3)]
    server.handlers["coreshowchannels"] = lambda a: list_response(rows, "CoreShowChannelsComplete")
    client = make_client(server)
    seen: list[str] = []
    client.add_event_listener(lambda ev: seen.append(ev["Event"]))
    await client.connect()
    try:
        resp = await client.action({"Action": "CoreShowChannels"})
        assert resp["EventList"] == "start"
        assert [e["Uniqueid"] for e in resp.events] == ["0", "1", "2"]
        assert resp.complete is not None and resp.complete["ListItems"] == "3"
        # List events belong to the action, not to the event stream.
        assert "CoreShowChannel" not in seen
    finally:
        await client.close()


async def test_error_response_raises_action_error(server: FakeAmi) -> None:
    client = make_client(server)
    await client.connect()
    try:
        with pytest.raises(AmiActionError) as ei:
            await client.action({"Action": "NoSuchThing"})
        assert ei.value.message == "Invalid/unknown command"
        assert client.connected
    finally:
        await client.close()


async def test_unanswered_action_times_out(server: FakeAmi) -> None:
    server.handlers["hang"] = lambda a: None
    client = make_client(server)
    await client.connect()
    try:
        with pytest.raises(AmiTimeout):
            await client.action({"Action": "Hang"}, timeout=0.1)
        assert client.connected
    finally:
        await client.close()


async def test_action_without_connection_raises_not_connected(server: FakeAmi) -> None:
    server.handlers["hang"] = lambda a: None
    client = make_client(server)
    with pytest.raises(AmiNotConnected):
        await client.action({"Action": "Ping"})
    await client.connect()
    pending = asyncio.create_task(client.action({"Action": "Hang"}, timeout=5))
    await asyncio.sleep(0.05)
    await server.drop_all()
    with pytest.raises(AmiNotConnected):
        await pending  # in flight when the connection died: fails, is never replayed
    await wait_for(lambda: not client.connected)
    with pytest.raises(AmiNotConnected):
        await client.action({"Action": "Ping"})
    await asyncio.sleep(0.2)
    assert server.connections == 1  # connect() alone does not reconnect
    await client.close()


async def test_close_fails_pending_actions(server: FakeAmi) -> None:
    server.handlers["hang"] = lambda a: None
    client = make_client(server)
    client.start()
    await wait_for(lambda: client.connected)
    pending = asyncio.create_task(client.action({"Action": "Hang"}, timeout=5))
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(AmiNotConnected):
        await pending
    assert not client_tasks()


async def test_run_returns_when_closed(server: FakeAmi) -> None:
    client = make_client(server)
    runner = asyncio.create_task(client.run())
    await wait_for(lambda: client.connected)
    await client.close()
    await asyncio.wait_for(runner, 1)
    assert runner.result() is None and not runner.cancelled()


async def test_connect_then_start_keeps_the_session_up(server: FakeAmi) -> None:
    client = make_client(server)
    await client.connect()
    client.start()
    try:
        await asyncio.sleep(0.05)
        assert server.connections == 1  # the supervisor adopted the existing session
        await server.drop_all()
        await wait_for(lambda: server.logins == 2 and client.connected)
    finally:
        await client.close()


async def test_failing_hook_fails_connect_and_leaves_nothing(server: FakeAmi) -> None:
    async def hook(c: AmiClient) -> None:
        raise RuntimeError("resync broke")

    client = make_client(server)
    client.add_on_connected(hook)
    with pytest.raises(AmiError, match="resync broke"):
        await client.connect()
    assert not client.connected and not client_tasks()
    await client.close()


UNKNOWN = ("Invalid/unknown command: DeviceStateList. Use Action: ListCommands to show available "
           "commands.")


def device_states(loaded: list[bool]) -> Callable[[dict[str, Any]], list[dict[str, str]]]:
    """DeviceStateList as an Asterisk answers it before and after its module has loaded."""
    def handler(action: dict[str, Any]) -> list[dict[str, str]]:
        if not loaded[0]:
            return [{"Response": "Error", "Message": UNKNOWN}]
        return list_response([], "DeviceStateListComplete")
    return handler


async def resync(c: AmiClient) -> None:
    await c.action({"Action": "DeviceStateList"})


async def test_hooks_run_again_when_a_starting_asterisk_says_fully_booted() -> None:
    """Logged in while Asterisk is still loading its modules (after a restart): the hooks'
    actions are unknown to it yet. The client keeps the session and runs every hook again as
    soon as Asterisk says FullyBooted, instead of dropping it and backing off."""
    loaded = [False]
    async with FakeAmi(booted=False, handlers={"devicestatelist": device_states(loaded)}) as srv:
        # reconnect_min (the retry without FullyBooted) far beyond the wait below: only the
        # event can have made the second run.
        client = make_client(srv, reconnect_min=30.0, reconnect_max=30.0)
        client.add_on_connected(resync)
        connecting = asyncio.create_task(client.connect())
        try:
            await wait_for(lambda: len(srv.actions_named("DeviceStateList")) == 1)
            assert not client.connected
            loaded[0] = True
            await srv.boot()
            await asyncio.wait_for(connecting, 2.0)
            assert client.connected
            assert srv.logins == 1 and len(srv.actions_named("DeviceStateList")) == 2
        finally:
            connecting.cancel()
            await client.close()


async def test_without_fully_booted_the_hooks_are_tried_again_every_reconnect_min() -> None:
    """A user that may not read `system` events never hears FullyBooted: the hooks are tried
    again every reconnect_min on the same session."""
    loaded = [False]
    async with FakeAmi(booted=False, handlers={"devicestatelist": device_states(loaded)}) as srv:
        client = make_client(srv, reconnect_min=0.05)
        client.add_on_connected(resync)
        client.start()
        try:
            await wait_for(lambda: len(srv.actions_named("DeviceStateList")) >= 3)
            assert not client.connected and srv.logins == 1
            loaded[0] = True
            await wait_for(lambda: client.connected)
            assert srv.logins == 1
        finally:
            await client.close()


async def test_an_unknown_command_of_a_booted_asterisk_fails_the_hooks(server: FakeAmi) -> None:
    """Booted and still unknown: the module is not loaded at all, said as before."""
    server.handlers["devicestatelist"] = device_states([False])
    client = make_client(server)
    client.add_on_connected(resync)
    with pytest.raises(AmiError, match="Invalid/unknown command"):
        await client.connect()
    assert not client.connected and not client_tasks()
    assert len(server.actions_named("DeviceStateList")) <= 2  # not tried for boot_wait
    await client.close()


async def test_an_asterisk_refused_at_login_is_tried_again_until_it_is_right(
        server: FakeAmi, caplog: pytest.LogCaptureFixture) -> None:
    """A hook refusing the Asterisk (e.g. the wrong systemname) drops the session, says why in
    last_error and the log (no traceback), and the client keeps trying: fixing it is enough."""
    wrong = [True]

    async def check(c: AmiClient) -> None:
        if wrong[0]:
            raise AmiRefused("its systemname is 'ast1', not 'ast2'")

    client = make_client(server)
    client.add_on_connected(check)
    client.start()
    try:
        await wait_for(lambda: server.logins >= 2)
        assert not client.connected
        assert client.last_error == "its systemname is 'ast1', not 'ast2'"
        refused = [r for r in caplog.records if "systemname" in r.getMessage()
                   and r.levelno == logging.ERROR]
        assert refused and all(r.exc_info is None for r in refused)
        wrong[0] = False
        await wait_for(lambda: client.connected)
        assert client.last_error is None
    finally:
        await client.close()
    assert not client_tasks()


async def test_header_injection_is_refused(server: FakeAmi) -> None:
    client = make_client(server)
    await client.connect()
    try:
        with pytest.raises(ValueError):
            await client.action({"Action": "Setvar", "Value": "x\r\nAction: Originate"})
        with pytest.raises(ValueError):
            await client.action({"Action": "Ping", "ActionID": "mine"})
        resp = await client.action({"Action": "Ping"})
        assert resp["Ping"] == "Pong"
    finally:
        await client.close()


async def test_repeated_headers_are_sent_as_repeated_lines(server: FakeAmi) -> None:
    server.handlers["originate"] = lambda a: [{"Response": "Success", "Message": "queued"}]
    client = make_client(server)
    await client.connect()
    try:
        await client.action({"Action": "Originate", "Variable": ["A=1", "B=2"]})
        assert server.actions[-1]["Variable"] == ["A=1", "B=2"]
    finally:
        await client.close()


def test_login_on_uvloop_the_loop_vaihde_serve_runs_on() -> None:
    """uvloop's transports are not asyncio.Transport subclasses; the client must still log in."""
    import uvloop  # a dependency of vaihde on Linux: `vaihde serve` runs on it

    async def scenario() -> None:
        srv = await FakeAmi().start()
        client = make_client(srv)
        try:
            await client.connect()
            assert client.connected
        finally:
            await client.close()
            await srv.stop()

    uvloop.run(scenario())
