"""FastAGI against hostile input: a forged environment line, a peer that is not our Asterisk, a
request without the shared secret; and the session's deadline kept in Asterisk."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from vaihde import contract
from vaihde.agi.channel import DEADLINE_SLACK_S, PROMPT_GUESS_S
from vaihde.agi.peer import SimulatedChannel, environment, play_session
from vaihde.agi.protocol import AgiProtocolError, EnvironmentParser
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router

SECRET = "s3cret-Token_0123456789"


def router() -> tuple[Router, list[str]]:
    ran: list[str] = []
    r = Router()

    @r.route("inbound")
    async def inbound(channel):
        ran.append("inbound")
        await channel.set_variable(contract.ROUTE, contract.Route.OPERATOR)

    @r.route("feature")
    async def feature(channel):
        ran.append(f"feature {channel.params}")
        await channel.set_variable(contract.ROUTE, "done")

    @r.route("menus")
    async def menus(channel):
        for _ in range(3):
            await channel.get_data("prompt", 5000, 1)
        await channel.stream_file("bye")

    return r, ran


@pytest.fixture
async def serve():
    servers: list[FastAgiServer] = []

    async def start(**kwargs) -> tuple[FastAgiServer, list[str]]:
        r, ran = router()
        srv = FastAgiServer(r, "127.0.0.1", 0, **kwargs)
        await srv.start()
        servers.append(srv)
        return srv, ran

    yield start
    for srv in servers:
        await srv.stop(grace=0.5)


def forged_environment(script: str, name_line: str) -> bytes:
    """What Asterisk sends when a caller ID name contains a newline and a line of its own."""
    env = environment(script).decode()
    return env.replace("agi_calleridname: Caller\n", f"agi_calleridname: x\n{name_line}\n").encode()


def test_a_repeated_environment_key_is_refused():
    parser = EnvironmentParser()
    parser.feed("agi_network_script: inbound?did=1")
    with pytest.raises(AgiProtocolError, match="repeated"):
        parser.feed("agi_network_script: feature?code=*74")


@pytest.mark.parametrize("line", ["AGI_CHANNEL: x", "agi_x y: z", "agi_: z", "agi_ok"])
def test_malformed_keys_are_refused(line):
    with pytest.raises(AgiProtocolError):
        EnvironmentParser().feed(line)


async def test_a_forged_script_line_never_runs_the_feature_handler(serve):
    """The review's injection: a caller ID name that adds agi_network_script: feature?... The
    session is refused (the dialplan then takes the caller to the operator) and no handler runs."""
    srv, ran = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(forged_environment(
        "inbound?did=1", "agi_network_script: feature?code=*74&device=PJSIP/anna"))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed with no command sent
    writer.close()
    assert ran == []
    assert srv.outcomes["rejected"] == 1


async def test_a_peer_outside_the_allow_list_gets_nothing(serve):
    srv, ran = await serve(allow=[ipaddress.ip_network("192.0.2.0/24")])
    chan = await play_session("127.0.0.1", srv.port, "inbound", SimulatedChannel())
    assert chan.commands == [] and ran == []
    assert srv.outcomes["refused"] == 1


async def test_an_allowed_peer_is_served(serve):
    srv, ran = await serve(allow=[ipaddress.ip_network("127.0.0.0/8")])
    chan = await play_session("127.0.0.1", srv.port, "inbound", SimulatedChannel())
    assert ran == ["inbound"] and chan.variables[contract.ROUTE] == "operator"


async def test_the_shared_secret_is_required_and_stripped(serve):
    srv, ran = await serve(secret=SECRET)
    refused = await play_session("127.0.0.1", srv.port, "inbound", SimulatedChannel())
    wrong = await play_session("127.0.0.1", srv.port, "x" * 23 + "/inbound", SimulatedChannel())
    assert refused.commands == [] and wrong.commands == [] and ran == []
    chan = await play_session("127.0.0.1", srv.port, f"{SECRET}/feature?code=*70",
                              SimulatedChannel())
    assert ran == ["feature {'code': '*70'}"]
    assert chan.variables[contract.ROUTE] == "done"


async def test_the_deadline_is_pushed_out_before_waits_but_not_before_each_one(serve):
    """Asterisk's TIMEOUT(absolute) must outlast every wait (a prompt and the caller's typing);
    it is extended once with slack, not before every prompt (a round trip each)."""
    srv, _ = await serve()
    chan = await play_session("127.0.0.1", srv.port, "menus", SimulatedChannel())
    assert sum(c.startswith("GET DATA") for c in chan.commands) == 3
    first = PROMPT_GUESS_S + 5.0 * 2 + DEADLINE_SLACK_S
    assert chan.deadlines == [first]


def test_loop_stalls_are_noticed_also_before_the_watcher_runs(monkeypatch):
    from vaihde.agi import stalls as mod

    clock = [100.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: clock[0])
    watch = mod.LoopStalls(tick_s=0.2, stall_s=1.0)
    sent = 100.1
    clock[0] = 100.3
    watch._tick(100.3)
    assert not watch.since(sent)
    clock[0] = 103.3  # the loop did not run for 3 s; the watcher has not looked yet
    assert watch.since(sent)
    watch._tick(103.3)
    assert watch.since(sent) and watch.stalls == 1
    # Input read after the stall (a command sent later) is fresh.
    clock[0] = 103.5
    watch._tick(103.5)
    assert not watch.since(103.4)


async def test_confirm_live_asks_asterisk_only_after_a_stall(serve):
    from vaihde.agi.channel import Channel

    srv, _ = await serve()
    seen: list[str] = []

    r = Router()

    @r.route("act")
    async def act(channel: Channel):
        await channel.confirm_live()  # no stall: nothing sent
        assert channel.stalls is not None
        channel.stalls.last_stall_end = channel.conn.last_sent + 0.5  # as after a SIGSTOP
        await channel.confirm_live()  # one NOOP
        seen.append("acted")

    srv.router = r
    chan = await play_session("127.0.0.1", srv.port, "act", SimulatedChannel())
    assert seen == ["acted"]
    assert chan.commands == ["NOOP"]
