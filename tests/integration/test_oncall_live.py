"""On-call rotas through the real sandbox Asterisk: a caller choosing "Duty" rings the phone of
whoever is on call now (a dated exception puts Anna on call instead of the weekly Mikko), in the
rota's order past those who cannot take calls; when nobody on call can answer, the caller hears
so with the offers and no phone rings. Asserted from Asterisk's AMI events and log and from the
service's call stories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from company import COMPANY_NUMBER, PHONES, start_vaihde
from test_caller_paths import wait_story
from test_first_call import assert_bridged_with, call, phones_dialled
from test_presence_routing import heard, prepare, set_state

pytestmark = pytest.mark.asterisk

ANNA = f"Local/anna@{PHONES}"
MIKKO = f"Local/answers@{PHONES}"
NINA = f"Local/noanswer@{PHONES}"
HKI = ZoneInfo("Europe/Helsinki")


def company(now: datetime) -> str:
    local = now.astimezone(HKI)
    start = (local - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    end = (local + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    return f"""\
company: {{name: Testi Oy, language: en, languages: [en]}}
numbers:
  "{COMPANY_NUMBER}": {{label: Main, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    greeting: {{en: Hello, sound: hello-world}}
    prompt: {{en: Choose, sound: beep}}
    timeout: 2
    attempts: 2
    options:
      1: {{oncall: duty, label: Duty}}
teams:
  ops: {{name: Operators, kind: operators, members: [olga]}}
employees:
  anna: {{name: Anna Virtanen, devices: [desk: "{ANNA}"]}}
  mikko: {{name: Mikko Maki, devices: [desk: "{MIKKO}"]}}
  nina: {{name: Nina Noanswer, devices: [desk: "{NINA}"]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
oncall:
  duty:
    name: Duty
    ring_seconds: 10
    weekly:
      - {{days: mon-sun, hours: 00:00-24:00, people: [mikko]}}
    exceptions:
      - {{from: "{start}", until: "{end}", people: [nina, anna], note: Mikko away}}
"""


@pytest.fixture
async def duty(asterisk, monkeypatch, tmp_path):
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    service = await start_vaihde(asterisk, tmp_path, company(datetime.now(UTC)))
    try:
        yield service
    finally:
        await service.stop()


async def test_the_on_call_option_rings_who_is_on_call_now_and_not_the_one_off_rota(
    asterisk, ami, duty
):
    # On call now (the exception): Nina, then Anna. Nina is on vacation: passed over. Mikko,
    # on the weekly pattern, is off rota while the exception holds: never rung.
    await set_state(duty, "nina", "vacation")
    await call(ami, "1")
    await assert_bridged_with(ami, ANNA, timeout=15)
    assert phones_dialled(ami) == [ANNA]
    story = await wait_story(duty, lambda s: s.sought_id == "duty")
    assert (story.sought_kind, story.path) == ("oncall", "menu_option")
    step = next(s for s in story.steps if s.kind == "oncall")
    assert step.detail["people"] == "nina anna" and step.detail["source"] == "exception"
    assert step.detail["skipped"] == "nina:vacation" and step.detail["ringing"] == "anna"


async def test_nobody_on_call_can_answer_the_caller_hears_so_and_no_phone_rings(
    asterisk, ami, duty
):
    await set_state(duty, "nina", "vacation")
    await set_state(duty, "anna", "meeting")
    sentence = ("Duty: nobody on call can answer right now. To leave a message, press 2. "
                "To be called back, press 3. For the switchboard, press 0.")
    await prepare(duty, sentence)
    await call(ami, "1", hold=12)
    await heard(asterisk, duty, sentence)
    story = await wait_story(duty, lambda s: s.sought_id == "duty")
    step = next(s for s in story.steps if s.kind == "oncall")
    assert step.detail["ringing"] == "" and step.detail["skipped"] == "nina:vacation anna:meeting"
    # (After the offers the caller reaches the switchboard: only its phones may ring then.)
    assert not {ANNA, NINA, MIKKO} & set(phones_dialled(ami))
