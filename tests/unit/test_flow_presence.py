"""The caller flow with availability and phones' reach: teams skip who cannot answer, a team
nobody can answer and a person whose phones cannot ring are said so at once with the offers,
and a call forwarded from an employee's own phone is recognised and never rings them again.
Over a simulated channel (the real Asterisk runs are in tests/integration)."""

from datetime import UTC, datetime

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.company import parse_company
from vaihde.company.dials import Reach
from vaihde.flows.answering import Answering
from vaihde.flows.inbound import AWAY_FALLBACK, inbound
from vaihde.presence.model import Availability, State
from vaihde.story import CallStory

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en]}
numbers:
  "0201234567": {label: Main, menu: main}
hours:
  mon-sun: 00:00-24:00
  closed_action: {operator: true}
menus:
  main:
    prompt: {en: Choose, sound: beep}
    options:
      1: {team: sales}
      2: {employee: anna}
      3: {team: order}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  sales: {name: Sales, members: [anna, mikko], ring_seconds: 15}
  order: {name: Order, members: [anna, mikko], strategy: in_order, ring_seconds: 10}
employees:
  anna:
    name: Anna Virtanen
    direct: ["+358201234501"]
    devices: [{softphone: PJSIP/anna-soft}, {desk: PJSIP/anna}, {mobile: "+358401234567"}]
    delegates: [mikko]
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/op1]}
"""
CO = parse_company(COMPANY, "company.yaml")


def availability(absent=(), on_call=()):
    def lookup(eid: str) -> Availability:
        if eid in absent:
            return Availability(eid, State.VACATION,
                                datetime(2026, 12, 20, 22, 0, tzinfo=UTC), "", "",
                                None, None, None, 1, False, "", None)
        state = State.ON_CALL if eid in on_call else State.AVAILABLE
        return Availability(eid, state, None, "", "", None, None, None, None, eid in on_call,
                            "", None)
    return lookup


def reach(unreachable=()):
    return lambda device: Reach.UNREACHABLE if device in unreachable else Reach.REACHABLE


async def run(chan, script="inbound?did=0201234567", *, lookup, devices=None, callbacks=None,
              mobile_dial="PJSIP/{number}@trunk"):
    story = CallStory("1700000000.1", "0401234567", "", "0201234567", datetime.now(UTC))

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
        await inbound(channel, CO, lookup=lookup, devices=devices, story=story,
                      answering=answering, mobile_dial=mobile_dial)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        await play_session("127.0.0.1", server.port, script, chan)
    finally:
        await server.stop()
    return chan, story


async def test_team_rings_only_members_who_can_answer():
    chan, story = await run(SimulatedChannel(digits=["1"]), lookup=availability(absent={"anna"}))
    assert chan.variables[contract.DIAL] == "PJSIP/mikko"
    step = next(s for s in story.steps if s.kind == "team")
    assert step.detail["skipped"] == "anna:vacation" and step.detail["ringing"] == "mikko"


async def test_in_order_team_passes_over_a_member_on_a_call():
    chan, _ = await run(SimulatedChannel(digits=["3"]), lookup=availability(on_call={"anna"}))
    assert chan.variables[contract.DIAL] == "PJSIP/mikko"
    assert chan.variables[f"{contract.DIAL}2"] == ""


@pytest.mark.parametrize(("key", "route", "reason_end"), [
    ("", "operator", "menu-main-1-team-absent"),
    ("0", "operator", "menu-main-1-team-absent"),
    ("3", "hangup", "menu-main-1-team-absent-callback-taken"),
])
async def test_team_nobody_can_answer_is_said_and_offered(key, route, reason_end):
    callbacks: list = []
    chan, story = await run(SimulatedChannel(digits=["1", key]),
                            lookup=availability(absent={"anna", "mikko"}), callbacks=callbacks)
    # The second GET DATA is the "nobody can answer" sentence with the offers; no phone rang.
    asks = [c for c in chan.commands if c.startswith("GET DATA")]
    assert asks[1].startswith(f'GET DATA "{AWAY_FALLBACK}"')
    assert contract.DIAL not in chan.variables
    assert chan.variables[contract.ROUTE] == route
    assert chan.variables[contract.REASON] == reason_end
    if key == "3":
        assert callbacks == [("team", "sales")]
    assert story.steps[-1].detail["reason"] == reason_end


async def test_employee_whose_phones_cannot_ring_hears_the_offers_at_once():
    off = reach(unreachable={"PJSIP/anna-soft", "PJSIP/anna"})
    # The mobile has no device state: it still rings.
    chan, _ = await run(SimulatedChannel(digits=["2"]), lookup=availability(), devices=off)
    assert chan.variables[contract.DIAL] == "PJSIP/358401234567@trunk"
    # Only the softphone is off: the rest ring, the softphone does not.
    chan, _ = await run(SimulatedChannel(digits=["2"]), lookup=availability(),
                        devices=reach(unreachable={"PJSIP/anna-soft"}))
    assert chan.variables[contract.DIAL] == "PJSIP/anna&PJSIP/358401234567@trunk"


async def test_available_employee_with_every_phone_off_gets_the_offers_and_the_delegate():
    # Without a trunk the mobile cannot ring either: none of Anna's phones can.
    off = reach(unreachable={"PJSIP/anna-soft", "PJSIP/anna"})
    chan, story = await run(SimulatedChannel(digits=["2", "1"]), lookup=availability(),
                            devices=off, mobile_dial="")
    assert chan.commands[-2].startswith(f'GET DATA "{AWAY_FALLBACK}"')
    # Key 1: the delegate Mikko, whose phone can ring.
    assert chan.variables[contract.DIAL] == "PJSIP/mikko"
    assert chan.variables[contract.REASON] == "menu-main-2-unreachable-delegate-mikko"
    assert any(s.kind == "unreachable" and s.detail["employee"] == "anna" for s in story.steps)


async def test_call_forwarded_from_an_employees_mobile_never_rings_them():
    chan, story = await run(
        SimulatedChannel(digits=[""]), "inbound?did=0201234567&fwd=358401234567&why=cfnr",
        lookup=availability(absent={"anna"}),
    )
    # No menu, no ringing: at once her availability and the offers, then a person.
    assert chan.commands[0].startswith(f'GET DATA "{AWAY_FALLBACK}"')
    assert contract.DIAL not in chan.variables
    assert chan.variables[contract.REASON] == "forwarded-anna-no_answer"
    assert story.forwarded["text"] == "for Anna Virtanen, forwarded from their mobile, no answer"
    assert story.path == "forwarded" and story.sought_id == "anna"
    assert chan.variables[contract.SOUGHT] == "employee:anna"


async def test_forwarded_call_offers_the_delegate_who_can_answer():
    chan, story = await run(
        SimulatedChannel(digits=["1"]), "inbound?did=0201234567&fwd=0401234567&why=cfb",
        lookup=availability(),
    )
    assert chan.variables[contract.DIAL] == "PJSIP/mikko"
    assert story.forwarded["reason"] == "busy"


async def test_forwarded_from_a_stranger_goes_on_to_the_menu():
    chan, story = await run(
        SimulatedChannel(digits=["2"]), "inbound?did=0201234567&fwd=0409999999&why=cfnr",
        lookup=availability(),
    )
    assert chan.variables[contract.DIAL].startswith("PJSIP/anna-soft&PJSIP/anna")
    assert story.forwarded["text"] == "forwarded from 0409999999, no answer"


@pytest.mark.parametrize("fwd", ["1%26PJSIP/x", "abc", "1" * 40])
async def test_hostile_forwarding_data_is_ignored(fwd):
    chan, story = await run(
        SimulatedChannel(digits=["2"]), f"inbound?did=0201234567&fwd={fwd}&why=%24%7BX%7D",
        lookup=availability(),
    )
    assert story.forwarded == {}
    assert chan.variables[contract.DIAL].startswith("PJSIP/anna-soft&PJSIP/anna")
