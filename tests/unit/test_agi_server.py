"""FastAGI server against a simulated Asterisk peer: routing, deadlines, fallback, hostile peers."""

import asyncio
import time

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, environment, next_command, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router


def make_router():
    router = Router()

    @router.route("echo")
    async def echo(channel):
        await channel.answer()
        name = await channel.get_variable("CALLERID(num)")
        await channel.set_variable("ECHO", f"{channel.params.get('tag', '')}:{name}")
        await channel.set_variable(contract.ROUTE, contract.Route.OPERATOR)

    @router.route("boom")
    async def boom(channel):
        await channel.answer()
        raise RuntimeError("bug in a handler")

    @router.route("stall")
    async def stall(channel):
        await channel.answer()
        await asyncio.sleep(30)  # a DB that never answers

    @router.route("menu")
    async def menu(channel):
        got = await channel.get_data("prompt", 100, 1)
        await channel.set_variable("GOT", got.digits)

    @router.route("usage")
    async def usage(channel):
        await channel.conn.send("GET DATA")  # Asterisk answers with a 520- usage block
        await channel.set_variable("NOT_REACHED", "1")

    return router


@pytest.fixture
async def server():
    srv = FastAgiServer(make_router(), "127.0.0.1", 0, silence_budget=0.3, env_timeout=0.3)
    await srv.start()
    yield srv
    await srv.stop(grace=1)


async def test_routes_with_query_arguments(server):
    chan = SimulatedChannel(variables={"CALLERID(num)": "0401234567"})
    await play_session("127.0.0.1", server.port, "echo?tag=x", chan)
    assert chan.variables["ECHO"] == "x:0401234567"
    assert chan.variables[contract.ROUTE] == "operator"
    assert server.outcomes["done"] == 1


async def test_handler_exception_routes_to_a_human(server):
    chan = await play_session("127.0.0.1", server.port, "boom", SimulatedChannel())
    assert chan.variables[contract.ROUTE] == "fallback"
    assert chan.variables[contract.REASON] == "service-error"


async def test_stalled_handler_hits_silence_budget(server):
    started = time.monotonic()
    chan = await play_session("127.0.0.1", server.port, "stall", SimulatedChannel())
    elapsed = time.monotonic() - started
    assert chan.variables[contract.ROUTE] == "fallback"
    assert chan.variables[contract.REASON] == "service-timeout"
    assert elapsed < 1.0  # budget is 0.3 s here; 2 s in production


async def test_waiting_for_caller_input_is_not_silence(server):
    class SlowCaller(SimulatedChannel):
        def reply(self, line):
            return super().reply(line)

    chan = SlowCaller(digits=["7"])
    # The peer answers GET DATA only after longer than the silence budget: the caller was
    # typing, so the session must not fall back.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(environment("menu"))
    line = await next_command(reader, writer)
    assert line.startswith(b"GET DATA")
    await asyncio.sleep(0.6)
    writer.write(b"200 result=7\n")
    line = await reader.readline()
    assert line == b'SET VARIABLE "GOT" "7"\n'
    writer.write(b"200 result=1\n")
    assert await reader.readline() == b""
    writer.close()
    del chan


async def test_unknown_script_falls_back(server):
    chan = await play_session("127.0.0.1", server.port, "nope", SimulatedChannel())
    assert chan.variables[contract.ROUTE] == "fallback"
    assert chan.variables[contract.REASON] == "unknown-script"


async def test_usage_block_becomes_fallback(server):
    class Usage(SimulatedChannel):
        def reply(self, line):
            if line == "GET DATA":
                self.commands.append(line)
                return (
                    "520-Invalid command syntax.  Proper usage follows:\n"
                    " Usage: x\n520 End of proper usage."
                )
            return super().reply(line)

    chan = await play_session("127.0.0.1", server.port, "usage", Usage())
    assert "NOT_REACHED" not in chan.variables
    assert chan.variables[contract.ROUTE] == "fallback"


async def test_hangup_notice_ends_session_quietly(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(environment("menu"))
    assert (await next_command(reader, writer)).startswith(b"GET DATA")
    writer.write(b"HANGUP\n200 result=-1\n")
    assert await reader.readline() == b""  # no fallback commands to a dead channel
    writer.close()
    await asyncio.sleep(0.05)
    assert server.outcomes["hangup"] == 1


async def test_garbage_and_silent_clients_are_dropped(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 2) == b""  # env timeout 0.3 s
    assert time.monotonic() - started < 1.5
    writer.close()


async def test_thousand_sessions_with_hostile_clients(server):
    # About hostile peers not holding up good ones, not about the budget: generous, so that a
    # busy machine running 1,000 sessions does not trip it.
    server.silence_budget = 10.0

    async def hostile_close():
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_netw")  # closes before the blank line
        writer.close()

    async def hostile_stall():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\n")  # then says nothing
        await reader.read()
        writer.close()

    async def hostile_garbage():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x00\xff" * 5000 + b"\n")
        await reader.read()
        writer.close()

    hostile = [hostile_close() for _ in range(5)] + [hostile_stall() for _ in range(5)]
    hostile += [hostile_garbage() for _ in range(5)]
    callers = [
        SimulatedChannel(variables={"CALLERID(num)": str(i)}) for i in range(1000)
    ]
    started = time.monotonic()
    results = await asyncio.gather(
        *hostile, *(play_session("127.0.0.1", server.port, "echo", c) for c in callers)
    )
    elapsed = time.monotonic() - started
    del results
    assert all(c.variables.get("ECHO") == f":{i}" for i, c in enumerate(callers))
    assert server.outcomes["done"] == 1000
    assert server.outcomes["rejected"] == 15
    assert elapsed < 10  # generous: a blocked loop would wait out every stall


async def test_stop_sends_fallback_to_sessions_in_progress():
    router = Router()
    started = asyncio.Event()

    @router.route("long")
    async def long(channel):
        started.set()
        await channel.get_data("prompt", 60000, 1)

    srv = FastAgiServer(router, "127.0.0.1", 0)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(environment("long"))
    assert (await next_command(reader, writer)).startswith(b"GET DATA")
    stopping = asyncio.create_task(srv.stop(grace=0.1))
    await asyncio.sleep(0.2)
    writer.write(b"200 result= (timeout)\n")  # late reply to the abandoned GET DATA
    lines = []
    while line := await reader.readline():
        lines.append(line.decode())
        writer.write(b"200 result=1\n")
    await stopping
    assert 'SET VARIABLE "VAIHDE_ROUTE" "fallback"\n' in lines
    assert 'SET VARIABLE "VAIHDE_REASON" "service-stopping"\n' in lines


async def _waiting_in_get_data():
    """A server with one session blocked in GET DATA, as a caller in a menu."""
    router = Router()

    @router.route("long")
    async def long(channel):
        await channel.get_data("prompt", 60000, 1)

    srv = FastAgiServer(router, "127.0.0.1", 0)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(environment("long"))
    assert (await next_command(reader, writer)).startswith(b"GET DATA")
    return srv, reader, writer


async def test_stop_offers_the_calls_in_progress_for_a_handover_first():
    srv, _reader, writer = await _waiting_in_get_data()
    handed: list[list[str]] = []

    async def handover(channels):
        handed.append([c.script for c in channels])
        # As after an AMI Redirect: Asterisk ends the AGI with HANGUP.
        writer.write(b"HANGUP\n200 result=-1\n")

    await srv.stop(grace=1.0, handover=handover)
    assert handed == [["long"]]
    assert srv.outcomes["hangup"] == 1 and srv.outcomes["fallback"] == 0
    writer.close()


async def test_a_failing_handover_still_leaves_the_fallback():
    srv, reader, writer = await _waiting_in_get_data()

    async def broken(channels):
        raise RuntimeError("AMI went away")

    stopping = asyncio.create_task(srv.stop(grace=0.1, handover=broken))
    await asyncio.sleep(0.2)
    writer.write(b"200 result= (timeout)\n")
    lines = []
    while line := await reader.readline():
        lines.append(line.decode())
        writer.write(b"200 result=1\n")
    await stopping
    assert 'SET VARIABLE "VAIHDE_ROUTE" "fallback"\n' in lines
