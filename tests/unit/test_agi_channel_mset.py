"""Several contract variables in one AGI round trip (MSet), and a safe fallback to one SET
VARIABLE each when a value would need quoting inside MSet's arguments."""

from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router


async def run(values):
    router = Router()

    @router.route("s")
    async def handler(channel):
        await channel.set_variables(values)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        return await play_session("127.0.0.1", server.port, "s", SimulatedChannel())
    finally:
        await server.stop()


async def test_plain_values_go_in_one_mset():
    chan = await run({"A": "PJSIP/a&PJSIP/b", "B": "", "C": "menu-main-1"})
    assert chan.commands == ['EXEC "MSet" "A=PJSIP/a&PJSIP/b,B=,C=menu-main-1"']
    assert chan.variables == {"A": "PJSIP/a&PJSIP/b", "B": "", "C": "menu-main-1"}


async def test_a_value_with_a_comma_quote_or_dollar_is_set_on_its_own():
    for odd in ("a,b", 'say "hi"', "${EVIL}", "two words"):
        chan = await run({"A": "x", "B": odd})
        assert all(c.startswith("SET VARIABLE") for c in chan.commands), chan.commands
        assert chan.variables["B"] == odd


async def test_the_service_may_adapt_values_to_the_calls_asterisk():
    """Several Asterisks: the service adapts a route's Dial() strings to the Asterisk that holds
    the call, in one MSet or one by one alike."""
    router = Router()

    def adapt(name: str, value: str) -> str:
        return value.replace("PJSIP/op1", "PJSIP/op1@to-ast1") if name == "D" else value

    @router.route("s")
    async def handler(channel):
        channel.adapt = adapt
        await channel.set_variables({"D": "PJSIP/op1&PJSIP/b", "R": "PJSIP/op1"})
        await channel.set_variable("D", "PJSIP/op1")

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        chan = await play_session("127.0.0.1", server.port, "s", SimulatedChannel())
    finally:
        await server.stop()
    assert chan.commands == ['EXEC "MSet" "D=PJSIP/op1@to-ast1&PJSIP/b,R=PJSIP/op1"',
                             'SET VARIABLE "D" "PJSIP/op1@to-ast1"']
