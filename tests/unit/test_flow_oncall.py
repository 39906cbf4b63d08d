"""A menu choice (or the closed-hours action) `oncall: duty`: the people on call now are rung one
after another in the rota's order, passing over those who cannot take calls; when nobody can,
the caller hears so and the team's offers (a message, a callback, the switchboard). Over the
real AGI protocol layer with a simulated channel."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.company import parse_company
from vaihde.flows.answering import Answering
from vaihde.flows.inbound import inbound, oncall_plan
from vaihde.presence.model import Availability, State
from vaihde.story import CallStory

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en, fi]}
numbers:
  "0201234567": {label: Main, menu: main}
  "0201234500": {label: Toimisto, menu: main, language: fi}
hours:
  mon-fri: 08:00-16:00
  closed_action: {oncall: night}
menus:
  main:
    prompt: {en: Choose, fi: Valitse}
    options:
      1: {oncall: duty}
      2: {oncall: night}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  support: {name: Support, members: [mikko, anna]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna]}
  mikko: {name: Mikko Maki, devices: [desk: PJSIP/mikko]}
  bob: {name: Bob, devices: [desk: PJSIP/bob]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/op1]}
oncall:
  duty:
    name: Duty
    team: support
    ring_seconds: 15
    weekly:
      - {days: mon-sun, hours: 00:00-12:00, people: [mikko, anna]}
      - {days: mon-sun, hours: 12:00-18:00, people: [bob]}
  night:
    name: Night
    weekly:
      - {days: mon-sun, hours: 20:00-06:00, people: [anna, bob]}
"""
CO = parse_company(COMPANY, "company.yaml")
HKI = ZoneInfo("Europe/Helsinki")
MORNING = datetime(2026, 3, 4, 9, 0, tzinfo=HKI)  # a Wednesday
AFTERNOON = datetime(2026, 3, 4, 13, 0, tzinfo=HKI)
EVENING = datetime(2026, 3, 4, 18, 30, tzinfo=HKI)  # closed; nobody on the night rota yet
NIGHT = datetime(2026, 3, 4, 22, 0, tzinfo=HKI)  # closed; night rota: anna, bob


def availability(absent=(), on_call=()):
    def lookup(eid: str) -> Availability:
        if eid in absent:
            return Availability(eid, State.VACATION, None, "", "", None, None, None, 1, False,
                                "", None)
        state = State.ON_CALL if eid in on_call else State.AVAILABLE
        return Availability(eid, state, None, "", "", None, None, None, None, eid in on_call,
                            "", None)
    return lookup


async def run(digits, *, now, lookup, did="0201234567", callbacks=None, devices=None):
    story = CallStory("1700000000.1", "0401234567", "", did, datetime.now(UTC))
    said: list[str] = []

    async def speak(text: str, language: str) -> str:
        said.append(text)
        return "beep"

    async def store_callback(kind, target):
        callbacks.append((kind, target))
        return True

    async def never(*_):
        raise AssertionError("no message in this test")

    answering = Answering(lambda _id: never(), never, store_callback) if callbacks is not None \
        else None
    router = Router()

    @router.route("inbound")
    async def handler(channel):
        await inbound(channel, CO, lookup=lookup, story=story, answering=answering, now=now,
                      speak=speak, devices=devices)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    chan = SimulatedChannel(digits=digits)
    try:
        await play_session("127.0.0.1", server.port, f"inbound?did={did}", chan)
    finally:
        await server.stop()
    return chan, story, said


async def test_the_people_on_call_now_are_rung_in_order():
    chan, story, _ = await run(["1"], now=MORNING, lookup=availability())
    assert chan.variables[contract.DIAL] == "PJSIP/mikko"
    assert chan.variables[contract.DIAL_TIMEOUT] == "15"
    assert chan.variables[f"{contract.DIAL}2"] == "PJSIP/anna"
    assert chan.variables[f"{contract.DIAL}3"] == ""
    assert (story.sought_kind, story.sought_id, story.path) == ("oncall", "duty", "menu_option")
    step = next(s for s in story.steps if s.kind == "oncall")
    assert step.detail == {"rota": "duty", "people": "mikko anna", "source": "weekly",
                           "ringing": "mikko anna", "skipped": ""}


async def test_the_rota_follows_the_clock():
    chan, _, _ = await run(["1"], now=AFTERNOON, lookup=availability())
    assert chan.variables[contract.DIAL] == "PJSIP/bob"
    assert chan.variables[f"{contract.DIAL}2"] == ""


async def test_someone_on_call_who_cannot_take_calls_is_passed_over():
    chan, story, _ = await run(["1"], now=MORNING, lookup=availability(absent={"mikko"}))
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert chan.variables[f"{contract.DIAL}2"] == ""
    step = next(s for s in story.steps if s.kind == "oncall")
    assert step.detail["skipped"] == "mikko:vacation" and step.detail["ringing"] == "anna"


async def test_someone_on_another_call_or_whose_phones_cannot_ring_is_passed_over():
    from vaihde.company.dials import Reach

    chan, story, _ = await run(["1"], now=MORNING, lookup=availability(on_call={"mikko"}))
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert chan.variables[f"{contract.DIAL}2"] == ""

    def off(device: str) -> Reach:
        return Reach.UNREACHABLE if device == "PJSIP/anna" else Reach.REACHABLE

    chan, story, _ = await run(["1"], now=MORNING, lookup=availability(), devices=off)
    assert chan.variables[contract.DIAL] == "PJSIP/mikko"
    assert chan.variables[f"{contract.DIAL}2"] == ""
    step = next(s for s in story.steps if s.kind == "oncall")
    assert step.detail["skipped"] == "anna:unreachable"


@pytest.mark.parametrize(("key", "route", "reason_end"), [
    ("0", "operator", "menu-main-1-oncall-absent"),
    ("3", "hangup", "menu-main-1-oncall-absent-callback-taken"),
])
async def test_nobody_on_call_can_answer_the_caller_hears_it_and_the_team_offers(
    key, route, reason_end
):
    callbacks: list = []
    chan, _, said = await run(["1", key], now=MORNING, callbacks=callbacks,
                              lookup=availability(absent={"mikko", "anna"}))
    assert said[0] == ("Duty: nobody on call can answer right now. To leave a message, "
                       "press 2. To be called back, press 3. For the switchboard, press 0.")
    assert contract.DIAL not in chan.variables
    assert chan.variables[contract.ROUTE] == route
    assert chan.variables[contract.REASON] == reason_end
    if key == "3":
        assert callbacks == [("team", "support")]  # the rota's team


async def test_a_rota_without_a_team_takes_callbacks_for_the_first_on_call():
    callbacks: list = []
    # At night the company is closed: the closed-hours action is the night rota, no menu.
    _, _, said = await run(["3"], now=NIGHT, callbacks=callbacks,
                           lookup=availability(absent={"anna", "bob"}))
    assert said[0].startswith("Night: nobody on call can answer right now.")
    assert callbacks == [("employee", "anna")]


async def test_closed_hours_go_to_the_night_rota():
    chan, story, _ = await run([], now=NIGHT, lookup=availability())
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert chan.variables[f"{contract.DIAL}2"] == "PJSIP/bob"
    assert (story.sought_kind, story.sought_id, story.path) == ("oncall", "night", "closed")


async def test_nobody_on_call_at_all_offers_only_the_switchboard():
    chan, _, said = await run(["2"], now=EVENING, lookup=availability())
    assert said == ["Night: nobody is on call right now. For the switchboard, press 0."]
    # 2 is no offer here: the caller reaches a person, never a dead end.
    assert chan.variables[contract.ROUTE] == "operator"
    assert chan.variables[contract.REASON] == "closed-weekly-oncall-none"


def test_the_plan_without_availability_is_the_configuration_alone():
    now, plan = oncall_plan(CO, "night", NIGHT)
    assert now.people == ("anna", "bob") and plan.ringing == ("anna", "bob")
    assert [d for d, _ in plan.steps] == ["PJSIP/anna", "PJSIP/bob"]


async def test_the_caller_hears_it_in_their_language():
    _, _, said = await run(["0"], now=EVENING, lookup=availability(), did="0201234500")
    assert said == ["Night: kukaan ei päivystä juuri nyt. Vaihteeseen pääset painamalla nollaa."]
