"""The company-number flow: menu decisions (pure) and the conversation over a simulated channel."""

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.config.settings import loads
from vaihde.flows.inbound import AskAgain, Ring, ToOperator, choose, inbound

CONFIG = """\
service: {ami: {secret: x}}
company:
  name: Demo Oy
  operator: {devices: [PJSIP/operator]}
  employees:
    anna: {name: Anna Virtanen, devices: [PJSIP/anna], ring_seconds: 25}
  menu:
    greeting: [hello-world]
    prompt: press-1
    attempts: 2
    options:
      "1": {employee: anna}
"""


@pytest.fixture
def company():
    return loads(CONFIG).company


def test_choice_rings_employee(company):
    assert choose(company, "1", 1) == Ring("PJSIP/anna", 25, "menu-1-anna")


def test_zero_is_operator(company):
    assert choose(company, "0", 1) == ToOperator("menu-0-operator")


@pytest.mark.parametrize("digits", ["", "5", "*", "11", "1" * 50])
def test_bad_choice_retries_then_reaches_a_human(company, digits):
    assert isinstance(choose(company, digits, 1), AskAgain)
    assert isinstance(choose(company, digits, 2), ToOperator)


async def run_flow(company, chan):
    router = Router()

    @router.route("inbound")
    async def handler(channel):
        await inbound(channel, company)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        return await play_session("127.0.0.1", server.port, "inbound", chan)
    finally:
        await server.stop()


async def test_conversation_sets_dial_route(company):
    chan = await run_flow(company, SimulatedChannel(digits=["1"]))
    assert chan.variables[contract.ROUTE] == "dial"
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert chan.variables[contract.DIAL_TIMEOUT] == "25"
    assert chan.commands[0] == 'STREAM FILE "hello-world" "01"'


async def test_silent_caller_gets_operator_after_attempts(company):
    chan = await run_flow(company, SimulatedChannel(digits=["", ""]))
    assert sum(c.startswith("GET DATA") for c in chan.commands) == 2
    assert chan.variables[contract.ROUTE] == "operator"
    assert chan.variables[contract.REASON] == "menu-no-choice"


async def test_invalid_choice_is_told_then_asked_again(company):
    chan = await run_flow(company, SimulatedChannel(digits=["7", "1"]))
    assert 'STREAM FILE "pm-invalid-option" ""' in chan.commands
    assert chan.variables[contract.ROUTE] == "dial"
