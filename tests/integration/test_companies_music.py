"""The caller waits to their own company's music (issue 12, "the caller never notices"): a caller
of Beeta Ab, whose company file names the music-on-hold class `vaihde-client-b`, hears that class
in the operators' queue; a caller of Alfa Oy, which names none, hears Asterisk's default. Also
when the service is not there to route the call (the number's class is a dialplan global the
service keeps: vaihde.ami.music), and no longer once Beeta's file drops its class. Asserted from
Asterisk's own MusicOnHoldStart events on each caller's channel, through real Asterisk.
"""

from __future__ import annotations

import asyncio

import pytest
from company import COMPANY_NUMBER, PHONES, serving_companies
from test_first_call import call

from vaihde.company import parse_company
from vaihde.company.apply import apply_company

pytestmark = pytest.mark.asterisk

BETA_NUMBER = "0201234568"
QUEUE = "vaihde-switchboard"


def company(cid: str, name: str, number: str, extra: str = "") -> str:
    return f"""\
company: {{id: {cid}, name: {name}, language: fi, languages: [fi]{extra}}}
numbers:
  "{number}": {{label: {name}, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: {{fi: Valitse, sound: beep}}
    options:
      1: {{employee: {cid}-anna}}
teams:
  {cid}-ops: {{name: Vaihde, kind: operators, members: [{cid}-olga]}}
employees:
  {cid}-anna: {{name: Anna {name}, devices: [desk: Local/anna@{PHONES}]}}
  {cid}-olga: {{name: Olga {name}, devices: [desk: Local/noanswer@{PHONES}]}}
"""


@pytest.fixture
async def centre(asterisk, monkeypatch, tmp_path):
    files = {"alfa.yaml": company("alfa", "Alfa Oy", COMPANY_NUMBER),
             "beta.yaml": company("beta", "Beeta Ab", BETA_NUMBER,
                                  ", music_on_hold: vaihde-client-b")}
    async with serving_companies(asterisk, monkeypatch, tmp_path, files) as service:
        assert service.live.tenants["beta"].config.company.music_on_hold == "vaihde-client-b"
        yield service


async def music_heard(ami, caller: str, mark: int) -> str:
    """The music-on-hold class Asterisk started for the caller once they joined the queue."""
    joined = await ami.wait_for(
        lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Queue") == QUEUE
        and e.get("Channel", "").startswith(caller), 20, since=mark)
    started = await ami.wait_for(
        lambda e: e.get("Event") == "MusicOnHoldStart"
        and e.get("Channel") == joined["Channel"], 10, since=mark)
    return str(started.get("Class", ""))


async def test_each_company_s_callers_wait_to_its_own_music(asterisk, ami, centre):
    mark = ami.mark()
    beta_caller = await call(ami, "0", number=BETA_NUMBER, delay=0.5, hold=15)
    assert await music_heard(ami, beta_caller, mark) == "vaihde-client-b"

    mark = ami.mark()
    alfa_caller = await call(ami, "0", number=COMPANY_NUMBER, delay=0.5, hold=15)
    assert await music_heard(ami, alfa_caller, mark) == "default"


async def global_value(ami, name: str) -> str:
    reply = await ami.action({"Action": "Getvar", "Variable": name})
    return str(reply.get("Value", ""))


async def until_global(ami, name: str, value: str, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.1)):
        if await global_value(ami, name) == value:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} is {await global_value(ami, name)!r}, not {value!r}")


async def test_a_caller_the_service_does_not_route_still_hears_the_company_s_music(
    asterisk, ami, centre
):
    await until_global(ami, f"VAIHDE_MOH_{BETA_NUMBER}", "vaihde-client-b")
    assert await global_value(ami, f"VAIHDE_MOH_{COMPANY_NUMBER}") == ""
    # The service is gone: Asterisk's AGI() finds nobody and the operators' queue takes the
    # caller on from the dialplan alone.
    await centre.stop()
    mark = ami.mark()
    beta_caller = await call(ami, "", number=BETA_NUMBER, delay=0.5, hold=15)
    assert await music_heard(ami, beta_caller, mark) == "vaihde-client-b"
    failed = await ami.wait_for(
        lambda e: e.get("Event") == "VarSet" and e.get("Variable") == "VAIHDE_REASON"
        and e.get("Value", "").startswith("agi-")
        and e.get("Channel", "").startswith(beta_caller), 10, since=mark)
    assert failed["Value"] == "agi-FAILURE"

    mark = ami.mark()
    alfa_caller = await call(ami, "", number=COMPANY_NUMBER, delay=0.5, hold=15)
    assert await music_heard(ami, alfa_caller, mark) == "default"


async def test_a_company_that_drops_its_music_is_no_longer_heard_with_it(asterisk, ami, centre):
    name = f"VAIHDE_MOH_{BETA_NUMBER}"
    await until_global(ami, name, "vaihde-client-b")
    plain = parse_company(company("beta", "Beeta Ab", BETA_NUMBER))
    await apply_company(centre.db.sessions, plain, applied_by="test", source_name="beta.yaml")
    await centre.live.check_for_changes()
    await until_global(ami, name, "")

    mark = ami.mark()
    beta_caller = await call(ami, "0", number=BETA_NUMBER, delay=0.5, hold=15)
    assert await music_heard(ami, beta_caller, mark) == "default"
