"""Two companies in one service, through real Asterisk (issue 12): each company's number is
answered with that company's own greeting in its own language, and a call forwarded from company
B's employee's mobile to company A's number is company B's call (B's flow, B's language).

Both companies come from the settings' `company_files` (a fresh database). What the caller heard
is read from Asterisk's own log, as in test_callers_hear.py: a synthesized prompt's file name is a
hash of its words and language, in the directory of its company's prompts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from company import COMPANY_NUMBER, PHONES, serving_companies
from test_callers_hear import Log, call
from test_presence_routing import SWITCHBOARD, sipp_trunk_call, wait_story

from vaihde.presence.store import set_availability

pytestmark = pytest.mark.asterisk

ALFA_NUMBER, BETA_NUMBER = COMPANY_NUMBER, "0201234568"
BEA_MOBILE = "+358401234599"
ALFA_GREETING = "Tervetuloa, olet soittanut Alfa Oy:lle."

ALFA = f"""\
company: {{id: alfa, name: Alfa Oy, language: fi, languages: [fi]}}
numbers:
  "{ALFA_NUMBER}": {{label: Alfa, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    greeting: {{fi: "{ALFA_GREETING}"}}
    prompt: {{fi: Valitse, sound: beep}}
    timeout: 2
    attempts: 1
    options:
      1: {{employee: aino}}
teams:
  alfa-ops: {{name: Vaihde, kind: operators, members: [olga]}}
employees:
  aino: {{name: Aino Alfa, devices: [desk: Local/anna@{PHONES}]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""

BETA = f"""\
company: {{id: beta, name: Beeta Ab, language: en, languages: [en]}}
numbers:
  "{BETA_NUMBER}": {{label: Beeta, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    greeting: {{en: Hello, sound: hello-world}}
    prompt: {{en: Choose, sound: beep}}
    timeout: 2
    attempts: 1
    options:
      1: {{employee: bea}}
teams:
  beta-ops: {{name: Switchboard, kind: operators, members: [otto]}}
employees:
  bea:
    name: Bea Beeta
    devices: [{{desk: "Local/noanswer@{PHONES}"}}, {{mobile: "{BEA_MOBILE}"}}]
  otto: {{name: Otto Operator, devices: [desk: Local/answers@{PHONES}]}}
"""


@pytest.fixture
async def centre(asterisk, monkeypatch, tmp_path):
    """One service answering for Alfa Oy and Beeta Ab, both from `company_files`."""
    async with serving_companies(asterisk, monkeypatch, tmp_path,
                                 {"alfa.yaml": ALFA, "beta.yaml": BETA}) as service:
        yield service


async def test_each_number_is_answered_by_its_own_company(asterisk, ami, centre):
    assert list(centre.live.tenants) == ["alfa", "beta"]
    alfa = centre.live.tenant("alfa")
    assert alfa is not None
    # Alfa's greeting, synthesized in Finnish into Alfa's own prompts directory, made ahead so
    # that a loaded machine never turns it into the silent fallback.
    report = await alfa.prompts.prefetch(alfa.config)
    assert report.failed == 0
    greeting = alfa.prompts.sound_for(alfa.config.menus["main"].greeting, "fi")
    assert greeting is not None and "/companies/alfa/vaihde-fi-" in greeting
    alfa_sound = greeting.rsplit("/", 1)[1]

    log = Log(asterisk)
    await call(ami, ALFA_NUMBER)
    await log.wait_played(greeting)
    await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                       and e.get("Queue") == SWITCHBOARD, 30)
    heard_alfa = log.played()
    asterisk.hang_up_all()
    assert heard_alfa[0] == greeting, heard_alfa
    assert "hello-world" not in heard_alfa  # Beeta's greeting is Beeta's alone
    story = await wait_story(centre, lambda s: s.dialled == ALFA_NUMBER)
    assert story.company == "alfa"

    log = Log(asterisk)
    await call(ami, BETA_NUMBER)
    await log.wait_played("hello-world")
    await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                       and e.get("Queue") == SWITCHBOARD, 30)
    heard_beta = log.played()
    asterisk.hang_up_all()
    assert heard_beta[0] == "hello-world", heard_beta
    assert not any(alfa_sound in sound for sound in heard_beta)
    story = await wait_story(centre, lambda s: s.dialled == BETA_NUMBER)
    assert story.company == "beta"
    # The operator's card says whose call it is.
    card = None
    for _ in range(50):
        card = next((c for lists in centre.console.board.lists().values() for c in lists
                     if c["id"] == story.call_id), None)
        if card is not None:
            break
        await asyncio.sleep(0.1)
    if card is not None:  # the call may already be gone from the board after the hangup
        assert card["company"] == {"id": "beta", "name": "Beeta Ab"}


async def test_a_call_forwarded_from_beta_s_employee_is_beta_s_call(
    asterisk, ami, centre, tmp_path
):
    beta = centre.live.tenant("beta")
    assert beta is not None
    async with centre.db.sessions() as session, session.begin():
        await set_availability(session, "bea", "meeting", source="operator", set_by="test",
                               until=datetime.now(UTC) + timedelta(hours=2))
    await centre.presence.invalidate("bea")
    until = centre.presence.lookup("bea").until
    assert until is not None
    # Beeta's sentence in Beeta's language (English), though Alfa's number (Finnish) was dialled.
    sentence = ("Bea Beeta is in a meeting until "
                f"{until.astimezone(centre.presence.tz).strftime('%H.%M')}. "
                "To leave a message, press 2. To be called back, press 3. "
                "For the switchboard, press 0.")
    sound = await beta.prompts.text(sentence, "en", deadline=30)
    assert sound is not None and "/companies/beta/" in sound
    mark = ami.mark()
    # The carrier sends Alfa's number, forwarded from Bea's mobile (national form: 040…).
    sipp_trunk_call(asterisk, "forwarded.xml", tmp_path, ["0401112222;0401234599;no-answer"],
                    hold_ms=40000)
    joined = await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                and e.get("Queue") == SWITCHBOARD
                                and e.get("Channel", "").startswith("PJSIP/trunk-"), 35,
                                since=mark)
    variables = joined.get("ChanVariable", "")
    assert "VAIHDE_REASON=forwarded-bea-no_answer" in variables
    assert "VAIHDE_SOUGHT=employee:bea" in variables
    for _ in range(50):
        log = await asyncio.to_thread(Path(asterisk.full_log_path).read_text, errors="replace")
        if f"Playing '{sound}." in log:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the caller did not hear {sentence!r}")
    story = await wait_story(centre, lambda s: s.path == "forwarded")
    assert story.company == "beta" and story.dialled == ALFA_NUMBER
    assert story.forwarded["text"] == "for Bea Beeta, forwarded from their mobile, no answer"
    asterisk.hang_up_all()
