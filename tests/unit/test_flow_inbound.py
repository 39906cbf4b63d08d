"""The company-number flow: menu decisions (pure) and the conversation over a simulated channel."""

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.company import ConfigError, parse_company
from vaihde.flows.inbound import Announce, AskAgain, GoTo, Ring, ToOperator, choose, inbound

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en]}
numbers:
  "+358201234567": {label: Main, menu: main}
hours:
  mon-sun: 00:00-24:00
  closed_action: {operator: true}
menus:
  main:
    greeting: {en: Welcome, sound: hello-world}
    prompt: {en: Press 1 for Anna, sound: press-1}
    attempts: 2
    options:
      1: {employee: anna}
      2: {team: sales}
      3: {menu: sub}
      5: {announcement: news}
      6: {external: "+358401110000"}
  sub:
    prompt: {en: Sub menu}
    options:
      1: {employee: bob}
announcements:
  news: {en: News, sound: news-recording}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  sales: {name: Sales, members: [anna, bob], ring_seconds: 15}
employees:
  anna:
    name: Anna Virtanen
    direct: ["+358201234501"]
    devices: [{desk: PJSIP/anna}, {mobile: "+358401234567"}]
    ring_seconds: 25
  bob: {name: Bob Berg, devices: [{desk: PJSIP/bob}]}
  olga: {name: Olga Operator, devices: [{desk: PJSIP/operator}]}
"""


@pytest.fixture
def company():
    return parse_company(COMPANY, "company.yaml")


@pytest.fixture
def main(company):
    return company.menus["main"]


def test_choice_rings_employee_desk_phone(company, main):
    assert choose(company, main, "1", 1) == Ring("PJSIP/anna", 25, "menu-main-1", "anna")


def test_mobile_rings_only_with_a_trunk_template(company, main):
    got = choose(company, main, "1", 1, mobile_dial="PJSIP/{number}@trunk")
    assert got.dial == "PJSIP/anna&PJSIP/358401234567@trunk"


def test_team_rings_every_member_once(company, main):
    assert choose(company, main, "2", 1) == Ring("PJSIP/anna&PJSIP/bob", 15, "menu-main-2",
                                                 team="sales")


def test_zero_star_hash(company, main):
    assert choose(company, main, "0", 1) == ToOperator("menu-main-0")
    assert choose(company, main, "*", 2) == AskAgain("repeat", counts=False)
    assert choose(company, main, "#", 1) == GoTo("", "menu-main-back")
    assert choose(company, main, "3", 1) == GoTo("sub", "menu-main-3")


def test_announcement_then_back(company, main):
    assert choose(company, main, "5", 1) == Announce("news", "back", "menu-main-5")


async def test_announcement_is_said_then_the_menu_again(company):
    chan = await run_flow(company, SimulatedChannel(digits=["5", "1"]))
    said = [c for c in chan.commands if c.startswith("STREAM FILE")]
    # Said listening for the menu's keys: a caller who knows what to press need not wait.
    assert said[-1] == 'STREAM FILE "news-recording" "#*012356"'
    assert chan.variables[contract.DIAL] == "PJSIP/anna"


def test_external_number_without_a_trunk_goes_to_a_person_with_the_reason(company, main):
    assert choose(company, main, "6", 1) == ToOperator("menu-main-6-external-no-trunk")


def test_external_number_rings_through_the_trunk(company, main):
    got = choose(company, main, "6", 1, mobile_dial="PJSIP/{number}@trunk")
    assert got == Ring("PJSIP/358401110000@trunk", 30, "menu-main-6")


@pytest.mark.parametrize("digits", ["", "7", "11", "1" * 50])
def test_bad_choice_retries_then_reaches_a_human(company, main, digits):
    assert isinstance(choose(company, main, digits, 1), AskAgain)
    assert isinstance(choose(company, main, digits, 2), ToOperator)


async def run_flow(company, chan, script="inbound"):
    router = Router()

    @router.route("inbound")
    async def handler(channel):
        await inbound(channel, company)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        return await play_session("127.0.0.1", server.port, script, chan)
    finally:
        await server.stop()


async def test_conversation_sets_dial_route(company):
    chan = await run_flow(company, SimulatedChannel(digits=["1"]))
    assert chan.variables[contract.ROUTE] == "dial"
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert chan.variables[contract.DIAL_TIMEOUT] == "25"
    assert chan.commands[0] == 'STREAM FILE "hello-world" "#*012356"'


async def test_direct_number_skips_the_menu(company):
    chan = await run_flow(company, SimulatedChannel(), "inbound?did=358201234501")
    # The whole route in one round trip, before anything is said.
    assert chan.commands[0].startswith('EXEC "MSet" "VAIHDE_REASON=direct-anna,')
    assert len(chan.commands) == 1
    assert chan.variables[contract.SOUGHT] == "employee:anna"
    assert chan.variables[contract.DIAL] == "PJSIP/anna"


async def test_the_company_s_music_on_hold_rides_with_every_route():
    """The caller waits to the company's own music (issue 12): the class goes in the same one
    round trip as the route, whatever the route; a company without one sets nothing."""
    company = parse_company(COMPANY.replace(
        "company: {name: Testi Oy, ",
        "company: {name: Testi Oy, music_on_hold: testi-oy, "), "company.yaml")
    assert company.company.music_on_hold == "testi-oy"
    for script, digits, route in (("inbound?did=358201234501", [], "dial"),
                                  ("inbound", ["0"], "operator"),
                                  ("inbound", ["", ""], "operator")):
        chan = await run_flow(company, SimulatedChannel(digits=digits), script)
        assert chan.variables[contract.ROUTE] == route
        assert chan.variables[contract.MUSIC_CLASS] == "testi-oy"
        assert sum(c.startswith(('EXEC "MSet"', "SET VARIABLE")) for c in chan.commands) == 1
    plain = await run_flow(parse_company(COMPANY, "company.yaml"), SimulatedChannel(),
                           "inbound?did=358201234501")
    assert contract.MUSIC_CLASS not in plain.variables


def test_a_music_class_that_is_not_a_class_name_is_refused_where_it_is_written():
    with pytest.raises(ConfigError) as err:
        parse_company(COMPANY.replace(
            "company: {name: Testi Oy, ",
            'company: {name: Testi Oy, music_on_hold: "x,m(evil)", '), "company.yaml")
    assert err.value.problems == [
        "company.yaml:1: company.music_on_hold: must be an Asterisk music-on-hold class (a "
        "musiconhold.conf section: letters, digits, - and _)"]


async def test_hostile_did_is_ignored(company):
    chan = await run_flow(company, SimulatedChannel(digits=["0"]), "inbound?did=1%26PJSIP/x")
    assert chan.variables[contract.ROUTE] == "operator"


async def test_silent_caller_gets_operator_after_attempts(company):
    chan = await run_flow(company, SimulatedChannel(digits=["", ""]))
    assert sum(c.startswith("GET DATA") for c in chan.commands) == 2
    assert chan.variables[contract.ROUTE] == "operator"
    assert chan.variables[contract.REASON] == "menu-main-no-choice"


async def test_submenu_then_back_then_choice(company):
    chan = await run_flow(company, SimulatedChannel(digits=["3", "#", "1"]))
    prompts = [c for c in chan.commands if c.startswith("GET DATA")]
    # The sub menu has no recording yet: a silent prompt, never a missing file.
    assert prompts[1].startswith('GET DATA "silence/1"')
    assert chan.variables[contract.DIAL] == "PJSIP/anna"


async def test_invalid_choice_is_told_then_asked_again(company):
    chan = await run_flow(company, SimulatedChannel(digits=["7", "1"]))
    assert 'STREAM FILE "pm-invalid-option" "#*012356"' in chan.commands
    assert chan.variables[contract.ROUTE] == "dial"


IN_ORDER = COMPANY.replace(
    "    ring_seconds: 25\n", "    ring_seconds: 25\n    strategy: in_order\n"
).replace(
    "devices: [{desk: PJSIP/anna}, {mobile: \"+358401234567\"}]",
    "devices: [{desk: PJSIP/anna, seconds: 10}, {mobile: \"+358401234567\", seconds: 15}]",
).replace(
    "  sales: {name: Sales, members: [anna, bob], ring_seconds: 15}",
    "  sales: {name: Sales, members: [anna, bob], ring_seconds: 15, strategy: in_order}\n"
    "  help: {name: Help, members: [bob], queue: help-desk, ring_seconds: 40}",
)


def test_in_order_rings_each_device_for_its_own_time():
    company = parse_company(IN_ORDER, "company.yaml")
    got = choose(company, company.menus["main"], "1", 1, mobile_dial="PJSIP/{number}@trunk")
    assert got == Ring("PJSIP/anna", 10, "menu-main-1", "anna",
                       (("PJSIP/358401234567@trunk", 15),))


def test_team_in_order_rings_member_after_member():
    company = parse_company(IN_ORDER, "company.yaml")
    got = choose(company, company.menus["main"], "2", 1)
    assert got == Ring("PJSIP/anna", 15, "menu-main-2", "", (("PJSIP/bob", 15),), "sales")


def test_team_with_its_own_queue_is_queued():
    from vaihde.flows.inbound import QueueTo, ring_team

    company = parse_company(IN_ORDER, "company.yaml")
    assert ring_team(company, company.teams["help"], "r") == QueueTo("help-desk", 40, "r",
                                                                      "help")


def test_operators_team_cannot_name_a_queue_of_its_own():
    from vaihde.config.source import ConfigError

    bad = COMPANY.replace("members: [olga]}", "members: [olga], queue: ops}")
    with pytest.raises(ConfigError, match="VAIHDE_QUEUE"):
        parse_company(bad, "company.yaml")


async def test_in_order_steps_reach_the_dialplan_and_end_cleanly():
    company = parse_company(IN_ORDER, "company.yaml")
    chan = await run_flow(company, SimulatedChannel(digits=["2"]))
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert chan.variables["VAIHDE_DIAL2"] == "PJSIP/bob"
    assert chan.variables["VAIHDE_DIAL2_TIMEOUT"] == "15"
    assert chan.variables["VAIHDE_DIAL3"] == ""
