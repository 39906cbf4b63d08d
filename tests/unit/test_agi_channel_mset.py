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
