"""Every company is served fully, not only the first (issue 12), through real Asterisk: the
second company's employee sets their availability with a feature code (their company's language
and time zone), their team queue holds their phone and pauses it while they are away, and their
phone in use shows them on a call. Alfa, the first company, has none of these people: each test
fails with first-company behaviour.

Both companies come from the settings' `company_files` (a fresh database), as in
test_companies_live.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from company import COMPANY_NUMBER, PHONES, TEAM_QUEUE, serving_companies
from test_feature_codes_live import dial_code, wait_for_state

from vaihde.presence.store import set_availability

pytestmark = pytest.mark.asterisk

BETA_NUMBER = "0201234568"
# Bea's desk phone is the one the test dialplan's [vaihde-test-anna-phone] dials codes from.
BEA = f"Local/anna@{PHONES}"
STOCKHOLM = ZoneInfo("Europe/Stockholm")

ALFA = f"""\
company: {{id: alfa, name: Alfa Oy, language: fi, languages: [fi], timezone: Europe/Helsinki}}
numbers:
  "{COMPANY_NUMBER}": {{label: Alfa, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: {{fi: Valitse, sound: beep}}
    options:
      1: {{employee: aino}}
teams:
  alfa-ops: {{name: Vaihde, kind: operators, members: [olga]}}
employees:
  aino: {{name: Aino Alfa, devices: [desk: Local/operator2@{PHONES}]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""

BETA = f"""\
company: {{id: beta, name: Beeta Ab, language: sv, languages: [sv],
          timezone: Europe/Stockholm}}
numbers:
  "{BETA_NUMBER}": {{label: Beeta, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: {{sv: Välj, sound: beep}}
    options:
      1: {{team: beta-desk}}
teams:
  beta-ops: {{name: Växeln, kind: operators, members: [otto]}}
  beta-desk: {{name: Kundtjänst, members: [bea], queue: {TEAM_QUEUE}}}
employees:
  bea: {{name: Bea Berg, devices: [desk: "{BEA}"]}}
  otto: {{name: Otto Operator, devices: [desk: Local/answers@{PHONES}]}}
"""


@pytest.fixture
async def centre(asterisk, monkeypatch, tmp_path):
    """One service answering for Alfa Oy (first) and Beeta Ab, both from `company_files`."""
    async with serving_companies(
        asterisk, monkeypatch, tmp_path, {"alfa.yaml": ALFA, "beta.yaml": BETA},
        ready=lambda s: s.ami.connected and s.queues.synced,
    ) as service:
        assert list(service.live.tenants) == ["alfa", "beta"]
        yield service


async def played_in(asterisk, channel_part: str, sound: str, timeout: float = 10.0) -> str:
    """The language Asterisk played `sound` in on the channel that dialled the code."""
    log = Path(asterisk.full_log_path)
    for _ in range(int(timeout / 0.1)):
        text = await asyncio.to_thread(log.read_text, errors="replace")
        for line in text.splitlines():
            if f"Playing '{sound}'" in line and channel_part in line and "(language '" in line:
                return line.rsplit("(language '", 1)[1].split("'", 1)[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"Asterisk did not play {sound} for {channel_part}")


async def test_the_second_company_s_employee_uses_feature_codes(asterisk, ami, centre):
    # *74: off work until 07:00 tomorrow, in Beeta's time zone (Stockholm), not Alfa's.
    await dial_code(ami, "*74")
    got = await wait_for_state(centre, "bea", "off_work")
    assert got.source == "phone"
    tomorrow = datetime.now(STOCKHOLM).date() + timedelta(days=1)
    assert got.until == datetime.combine(tomorrow, time(7), STOCKHOLM)
    # Confirmed in Beeta's language (English is Asterisk's fallback recording for it).
    assert await played_in(asterisk, "*74@", "activated.gsm") == "sv"
    # Her availability explains itself in her own company's zone (the presence cache).
    assert centre.presence.zone_of("bea") == STOCKHOLM
    assert centre.presence.zone_of("aino") == ZoneInfo("Europe/Helsinki")
    local_until = got.until.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")
    assert f"until {local_until}" in got.explanation and local_until.endswith("07:00")

    await dial_code(ami, "*70")
    back = await wait_for_state(centre, "bea", "available")
    assert back.source == "phone"


async def queue_members(ami) -> dict[str, tuple[str, str]]:
    mark = ami.mark()
    await ami.action("QueueStatus", Queue=TEAM_QUEUE)
    await ami.wait_for(lambda e: e.get("Event") == "QueueStatusComplete", 5, since=mark)
    found = [e for e in ami.events[mark:] if e.get("Event") == "QueueMember"]
    return {e["Location"]: (e["Paused"], e.get("PausedReason", "") if e["Paused"] == "1"
                            else "") for e in found}


async def test_the_second_company_s_team_queue_and_phones_follow_availability(
    asterisk, ami, centre
):
    # Beeta's team queue holds Bea's phone (added at login), unpaused: she is available.
    assert await queue_members(ami) == {BEA: ("0", "")}
    # Bea goes to a meeting: her queue member is paused with the reason at once.
    mark = ami.mark()
    async with centre.db.sessions() as session, session.begin():
        await set_availability(session, "bea", "meeting", source="operator", set_by="test",
                               until=datetime.now(UTC) + timedelta(hours=1))
    await centre.presence.invalidate("bea")
    paused = await ami.wait_for(lambda e: e.get("Event") == "QueueMemberPause"
                                and e.get("Interface") == BEA, 5, since=mark)
    assert paused["Paused"] == "1" and paused["PausedReason"] == "meeting"
    async with centre.db.sessions() as session, session.begin():
        await set_availability(session, "bea", "available", source="operator", set_by="test")
    await centre.presence.invalidate("bea")
    mark = ami.mark()

    # Her desk phone in a call shows her on a call (the phone's device state).
    await ami.action("Originate", Channel=f"{BEA}/n", Application="Wait", Data="30",
                     Async="true")
    for _ in range(200):
        if centre.presence.lookup("bea").on_call:
            break
        await asyncio.sleep(0.05)
    assert centre.presence.lookup("bea").state == "on_call"
    asterisk.hang_up_all()
    for _ in range(200):
        if not centre.presence.lookup("bea").on_call:
            break
        await asyncio.sleep(0.05)
    assert centre.presence.lookup("bea").state == "available"
