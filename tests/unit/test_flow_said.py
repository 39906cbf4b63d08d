"""What the caller hears on the company number, over a simulated channel: bulletins after the
greeting while they are valid, 0 during every announcement (closed hours too) and during the
message instructions, and human_only choices that never end in a recording or a callback."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.company import parse_company
from vaihde.flows import inbound as flow
from vaihde.flows.answering import Answering, Recording
from vaihde.flows.inbound import Ring, TakeMessage, ToOperator, bulletins, check_reach, inbound
from vaihde.presence.model import Availability, State

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en]}
numbers:
  "0201234567": {label: Main, menu: main}
hours:
  mon-sun: 00:00-24:00
  closed_action: {operator: true}
announcements:
  portal: {en: Our portal is open, sound: portal-rec, from: 2026-06-01, until: 2026-06-30}
  strike: {en: A strike, sound: strike-rec, until: 2026-05-31}
  summer: {en: Summer hours, sound: summer-rec, from: "2026-07-01 08:00"}
  prices: {en: Our prices, sound: prices-rec}
menus:
  main:
    greeting: {en: Welcome, sound: hello-world}
    announce: [strike, portal, summer]
    prompt: {en: Press 1 for Anna, sound: main-prompt}
    attempts: 2
    options:
      1: {employee: anna}
      2: {menu: sub}
      3: {team: complaints, human_only: true, label: Complaints}
      4: {announcement: prices, then: hangup}
      5: {announcement: prices}
      6: {message: anna}
      7: {dial_by_name: true}
  sub:
    prompt: {en: Sub, sound: sub-prompt}
    options:
      1: {employee: bob}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  complaints: {name: Complaints, members: [bob]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], delegates: [bob]}
  bob: {name: Bob Berg, devices: [desk: PJSIP/bob]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/olga]}
"""
CLOSED = COMPANY.replace(
    "  mon-sun: 00:00-24:00\n  closed_action: {operator: true}\n",
    "  closed_action: {announcement: closed, menu: after}\n",
).replace(
    "announcements:\n",
    "announcements:\n  closed: {en: We are closed, sound: closed-rec}\n",
).replace(
    "menus:\n",
    "menus:\n  after:\n    prompt: {en: After hours, sound: after-prompt}\n    options:\n"
    "      1: {employee: anna}\n",
)
JUNE = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
DID = "inbound?did=0201234567"


@dataclass
class Caller(SimulatedChannel):
    """A simulated channel whose caller presses `keys[sound]` while `sound` is being played."""

    keys: dict[str, str] = field(default_factory=dict)

    def reply(self, line: str) -> str:
        if line.upper().startswith("STREAM FILE"):
            self.commands.append(line)
            _, _, sound, escape = shlex.split(line)
            key = self.keys.pop(sound, "")
            assert not key or key in escape, f"{key!r} pressed during {sound}: not listened for"
            return f"200 result={ord(key) if key else 0} endpos=100"
        if line.upper().startswith("RECORD FILE"):
            self.commands.append(line)
            return "200 result=35 (dtmf) endpos=8000"  # the caller talked, then pressed #
        return super().reply(line)

    def played(self) -> list[str]:
        return [shlex.split(c)[2] for c in self.commands
                if c.upper().startswith(("STREAM FILE", "GET DATA"))]


async def run(company, chan, script=DID, **kwargs):
    router = Router()
    out = {}

    @router.route("inbound")
    async def handler(channel):
        out["decision"] = await inbound(channel, company, **kwargs)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        await play_session("127.0.0.1", server.port, script, chan)
    finally:
        await server.stop()
    return out.get("decision")


@pytest.fixture(scope="module")
def company():
    return parse_company(COMPANY, "company.yaml")


@pytest.fixture(scope="module")
def closed():
    return parse_company(CLOSED, "company.yaml")


# --- bulletins ------------------------------------------------------------------------------

def test_bulletins_valid_now_in_the_admins_order(company):
    main = company.menus["main"]
    assert [b.id for b in bulletins(company, main, JUNE)] == ["portal"]
    assert [b.id for b in bulletins(company, main, datetime(2026, 5, 2, tzinfo=UTC))] == [
        "strike"]
    july = datetime(2026, 7, 1, 6, tzinfo=UTC)  # 09:00 in Helsinki
    assert [b.id for b in bulletins(company, main, july)] == ["summer"]
    assert bulletins(company, company.menus["sub"], JUNE) == []


async def test_a_valid_bulletin_is_said_after_the_greeting_an_expired_one_is_not(company):
    chan = Caller(digits=["1"])
    await run(company, chan, now=JUNE)
    assert chan.played()[:3] == ["hello-world", "portal-rec", "main-prompt"]
    assert "strike-rec" not in chan.played() and "summer-rec" not in chan.played()
    # Said listening for the menu's keys, like the greeting.
    assert 'STREAM FILE "portal-rec" "#*01234567"' in chan.commands


async def test_a_key_during_a_bulletin_is_the_callers_choice(company):
    chan = Caller(keys={"portal-rec": "1"})
    decision = await run(company, chan, now=JUNE)
    assert decision == Ring("PJSIP/anna", 20, "menu-main-1", "anna")
    assert "main-prompt" not in chan.played()


async def test_bulletins_are_said_again_when_the_caller_comes_back(company):
    chan = Caller(digits=["2", "#", "1"])
    await run(company, chan, now=JUNE)
    assert chan.played().count("portal-rec") == 2


# --- 0 during everything said ---------------------------------------------------------------

async def test_zero_during_the_closed_announcement_reaches_the_operator(closed):
    chan = Caller(keys={"closed-rec": "0"})
    decision = await run(closed, chan, now=JUNE)
    assert isinstance(decision, ToOperator) and decision.reason.startswith("closed-")
    assert decision.reason.endswith("-0")
    assert chan.variables[contract.ROUTE] == "operator"
    assert chan.played() == ["closed-rec"]


async def test_closed_announcement_without_a_key_leads_to_the_closed_menu(closed):
    chan = Caller(digits=["1"])
    decision = await run(closed, chan, now=JUNE)
    assert chan.played() == ["closed-rec", "after-prompt"]
    assert isinstance(decision, Ring) and decision.employee == "anna"


async def test_a_key_of_the_closed_menu_during_the_announcement_chooses_there(closed):
    chan = Caller(keys={"closed-rec": "1"})
    decision = await run(closed, chan, now=JUNE)
    assert chan.played() == ["closed-rec"]
    assert isinstance(decision, Ring) and decision.reason == "menu-after-1"


async def test_closed_announcement_before_goodbye_listens_for_zero():
    company = parse_company(CLOSED.replace("closed_action: {announcement: closed, menu: after}",
                                           "closed_action: {announcement: closed, hangup: true}"),
                            "company.yaml")
    chan = Caller(keys={"closed-rec": "0"})
    decision = await run(company, chan, now=JUNE)
    assert isinstance(decision, ToOperator)
    assert 'STREAM FILE "closed-rec" "0"' in chan.commands
    chan = Caller()
    assert (await run(company, chan, now=JUNE)).reason.startswith("closed-")
    assert chan.variables[contract.ROUTE] == "hangup"


async def test_zero_during_an_announcement_before_goodbye_reaches_the_operator(company):
    chan = Caller(digits=["4"], keys={"prices-rec": "0"})
    decision = await run(company, chan, now=JUNE)
    assert decision == ToOperator("menu-main-4-0")
    assert 'STREAM FILE "prices-rec" "0"' in chan.commands


async def test_a_key_during_an_announcement_back_to_the_menu_chooses_there(company):
    chan = Caller(digits=["5"], keys={"prices-rec": "1"})
    decision = await run(company, chan, now=JUNE)
    assert isinstance(decision, Ring) and decision.employee == "anna"
    assert chan.played().count("main-prompt") == 1


async def test_zero_during_the_wrong_key_notice_reaches_the_operator(company):
    chan = Caller(digits=["9"], keys={"pm-invalid-option": "0"})
    assert await run(company, chan, now=JUNE) == ToOperator("menu-main-0")


async def test_zero_during_the_greeting_by_name_reaches_the_operator(company):
    async def speak(text, language):
        return "hello-" + text.split()[-1].lower()

    chan = Caller(keys={"hello-maija": "0"})
    decision = await run(company, chan, speak=speak, greet_name="Maija", now=JUNE)
    assert decision == ToOperator("menu-main-0")
    assert chan.played() == ["hello-maija"]


async def test_zero_while_told_no_one_was_found_reaches_the_operator(company):
    async def speak(text, language):
        return "nobody" if text.startswith("No one") else "spell-the-name"

    chan = Caller(digits=["7", "999"], keys={"nobody": "0"})
    assert await run(company, chan, speak=speak, now=JUNE) == ToOperator("menu-main-7-operator")
    assert chan.played() == ["hello-world", "portal-rec", "main-prompt", "spell-the-name",
                             "nobody"]


def answering(stored: list):
    async def store_message(kind, target, path):
        stored.append(("message", kind, target))
        return True

    async def store_callback(kind, target):
        stored.append(("callback", kind, target))
        return True

    return Answering(lambda call_id: Recording("/tmp/rec", "/tmp/rec.wav"),
                     store_message, store_callback)


async def test_zero_during_the_message_instructions_records_nothing(company):
    stored: list = []
    chan = Caller(digits=["6"], keys={"vm-intro": "0"})
    decision = await run(company, chan, answering=answering(stored), now=JUNE)
    assert decision == ToOperator("menu-main-6-0")
    assert stored == [] and not any(c.startswith("RECORD FILE") for c in chan.commands)


async def test_zero_during_the_message_confirmation_reaches_the_operator(company):
    stored: list = []
    chan = Caller(digits=["6"], keys={"vm-msgsaved": "0"})
    decision = await run(company, chan, answering=answering(stored), now=JUNE)
    assert stored == [("message", "employee", "anna")]
    assert decision == ToOperator("menu-main-6-0")


# --- human_only -----------------------------------------------------------------------------

def available(employee: str, state: str = "available") -> Availability:
    return Availability(employee, State(state), None, "", "", None, None, None, None, False,
                        "", None)


async def test_human_only_never_offers_a_message_or_a_callback(company):
    """Keys 2 and 3 after the absent-employee sentence are not heard under human_only."""
    got = {}

    async def speak(text, language):
        got.setdefault("said", text)
        return "away-sentence"

    router = Router()

    @router.route("inbound")
    async def handler(channel):
        decision = Ring("PJSIP/anna", 20, "menu-main-3", "anna")
        got["decision"] = await check_reach(
            channel, company, decision, available("anna", "meeting"),
            lookup=lambda e: available(e, "vacation"), speak=speak, language="en",
            mobile_dial="", human_only=True,
        )

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        for key in ("2", "3", "0"):  # 0 is the switchboard, as everywhere
            got.clear()
            await play_session("127.0.0.1", server.port, "inbound", Caller(digits=[key]))
            assert got["decision"] == ToOperator("menu-main-3-meeting")
            assert got["said"] == "Anna Virtanen is in a meeting. For the switchboard, press 0."
    finally:
        await server.stop()


async def test_human_only_choice_is_never_handed_to_the_answering_service(company, monkeypatch):
    # Whatever would take a message for a human_only choice (a team whose members are all
    # away offers one to other callers), the caller goes to a person instead.
    monkeypatch.setattr(flow, "ring_team", lambda company, team, reason, mobile_dial="":
                        TakeMessage("team", team.id, f"{reason}-nobody"))
    stored: list = []
    chan = Caller(digits=["3"])
    decision = await run(company, chan, answering=answering(stored), now=JUNE)
    assert decision == ToOperator("menu-main-3-nobody-human-only")
    assert stored == [] and "vm-intro" not in chan.played()
    assert chan.variables[contract.ROUTE] == "operator"
    # The same option without human_only takes the message.
    chan = Caller(digits=["3"])
    plain = parse_company(COMPANY.replace(", human_only: true", ""), "company.yaml")
    await run(plain, chan, answering=answering(stored), now=JUNE)
    assert stored == [("message", "team", "complaints")]
