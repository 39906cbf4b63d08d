"""Presence all the way, through the real sandbox Asterisk: teams skip members who are away or on
a call, a team nobody can answer is said so with the offers, team queues are paused by
availability (and set right again after an Asterisk restart), phones that cannot ring are not
rung, and a call forwarded from an employee's own phone (SIP Diversion / History-Info from a
SIPp trunk through PJSIP) is recognised and never rings them again.

Asserted from Asterisk's AMI events and log, and from the service's stories and stores.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from amiprobe import AmiProbe
from company import (
    COMPANY_NUMBER,
    PHONES,
    REG_PASSWORD,
    REG_PORT,
    TEAM_QUEUE,
    TRUNK_MEDIA_PORT,
    TRUNK_PORT,
    start_vaihde,
)
from test_caller_paths import wait_story
from test_console_live import (  # the fixture is used by name
    Desk,
    Stream,
    bridged,
    operator_token,
    operators_never_answer,  # noqa: F401
    waiting_caller,
)
from test_first_call import assert_bridged_with, call, phones_dialled
from test_presence_live import eventually

from vaihde.company.dials import Reach
from vaihde.messages.model import Recipient
from vaihde.messages.store import list_messages
from vaihde.presence.store import set_availability

pytestmark = pytest.mark.asterisk

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "sipp"
SWITCHBOARD = "vaihde-switchboard"
ANNA = f"Local/anna@{PHONES}"
MIKKO = f"Local/answers@{PHONES}"
NINA = f"Local/noanswer@{PHONES}"
OPERATOR2 = f"Local/operator2@{PHONES}"

COMPANY = f"""\
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
      1: {{team: sales}}
      2: {{team: desk}}
      3: {{employee: dora}}
      4: {{employee: remy}}
      5: {{team: everyone}}
teams:
  ops: {{name: Operators, kind: operators, members: [olga]}}
  sales: {{name: Sales, members: [anna, mikko], strategy: in_order, ring_seconds: 10}}
  desk: {{name: Desk, members: [anna, mikko], queue: {TEAM_QUEUE}, ring_seconds: 20}}
  everyone: {{name: Everyone, members: [anna, mikko, nina], ring_seconds: 10}}
  walk: {{name: Walk, members: [anna, nina, mikko], strategy: in_order, ring_seconds: 5}}
employees:
  anna:
    name: Anna Virtanen
    devices: [{{desk: "{ANNA}"}}, {{mobile: "+358401234567"}}]
  mikko: {{name: Mikko Maki, devices: [desk: "{MIKKO}"]}}
  nina: {{name: Nina Noanswer, devices: [desk: "{NINA}"]}}
  dora:
    name: Dora Desk
    strategy: in_order
    devices: [{{softphone: PJSIP/soft-off, seconds: 10}}, {{desk: "{OPERATOR2}", seconds: 10}}]
  remy: {{name: Remy Remote, devices: [softphone: PJSIP/reg-phone]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""


@pytest.fixture
async def office(asterisk, monkeypatch, tmp_path):
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    service = await start_vaihde(asterisk, tmp_path, COMPANY)
    service.db_url = f"sqlite+aiosqlite:///{tmp_path}/vaihde.db"
    await eventually(lambda: service.queues.synced, 10)
    try:
        yield service
    finally:
        await service.stop()


async def set_state(service, employee: str, state: str, hours: float = 2) -> None:
    """As the web and the console do: write, then refresh the cache at once."""
    async with service.db.sessions() as session, session.begin():
        await set_availability(session, employee, state, source="operator", set_by="test",
                               until=datetime.now(UTC) + timedelta(hours=hours))
    await service.presence.invalidate(employee)


def cli(service, *args: str) -> None:
    """`vaihde …` in its own process, on the service's database (as an admin would)."""
    done = subprocess.run([sys.executable, "-m", "vaihde", *args, "--db", service.db_url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"vaihde {' '.join(args)}: {done.stderr.strip()}"


async def heard(asterisk, service, text: str) -> None:
    """The caller heard `text` (spoken by the service): its sound was played on the call."""
    sound = await service.prompts.text(text, "en", deadline=30)
    assert sound is not None
    for _ in range(50):
        log = await asyncio.to_thread(Path(asterisk.full_log_path).read_text, errors="replace")
        if f"Playing '{sound}." in log:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the caller did not hear {text!r}")


async def prepare(service, text: str) -> None:
    """Speech made ahead, so a loaded machine never turns the sentence into the fallback."""
    assert await service.prompts.text(text, "en", deadline=30) is not None


# --- 1. teams follow availability -------------------------------------------------------------


async def test_in_order_team_skips_a_member_on_vacation_set_from_the_cli(asterisk, ami, office):
    # The trial: Anna on vacation (from the CLI, another process); Sales rings Anna,
    # then Mikko, in order. Mikko's phone must be the first and only one to ring.
    cli(office, "presence", "set", "anna", "vacation", "--until", "+2d", "--by", "test")
    await eventually(lambda: office.presence.lookup("anna").state == "vacation", 5)
    await call(ami, "1")
    await assert_bridged_with(ami, MIKKO, timeout=15)
    assert phones_dialled(ami) == [MIKKO]
    story = await wait_story(office, lambda s: s.sought_id == "sales")
    team = next(s for s in story.steps if s.kind == "team")
    assert team.detail["skipped"] == "anna:vacation" and team.detail["ringing"] == "mikko"


async def test_ring_all_team_skips_a_member_on_a_call(asterisk, ami, office):
    # Mikko is in another call (his phone's device state says so).
    await ami.action("Originate", Channel=f"{MIKKO}/n", Application="Wait", Data="60",
                     Async="true")
    await eventually(lambda: office.presence.lookup("mikko").on_call, 10)
    mark = ami.mark()
    await call(ami, "5")
    await assert_bridged_with(ami, ANNA, timeout=15)
    await asyncio.sleep(0.5)
    dialled = [e["DestChannel"] for e in ami.events[mark:] if e.get("Event") == "DialBegin"
               and e.get("Channel", "").startswith(f"Local/{COMPANY_NUMBER}@vaihde-inbound-")]
    assert sorted(d.rsplit("-", 1)[0] for d in dialled) == sorted([ANNA, NINA])


async def test_team_nobody_can_answer_is_told_so_and_takes_a_message_for_the_team(
    asterisk, ami, office
):
    await set_state(office, "anna", "vacation")
    await set_state(office, "mikko", "meeting")
    sentence = ("Nobody in Sales can answer right now. To leave a message, press 2. "
                "To be called back, press 3. For the switchboard, press 0.")
    await prepare(office, sentence)
    # 1 = Sales; then, while the offers are said, 2 = leave a message; speak, hang up.
    await call(ami, "1" + "w" * 8 + "2", say="hello-world", say_delay=7, hold=3)
    await heard(asterisk, office, sentence)
    # Held on to: the book lets go of a story when its call ends.
    story = await wait_story(office, lambda s: s.sought_id == "sales")
    messages: list = []
    for _ in range(300):
        async with office.db.sessions() as session:
            messages = await list_messages(session, recipient=Recipient("team", "sales"))
        if messages:
            break
        await asyncio.sleep(0.1)
    assert len(messages) == 1 and messages[0].recipient.id == "sales"
    assert phones_dialled(ami) == []
    team = next(s for s in story.steps if s.kind == "team")
    assert team.detail["skipped"] == "anna:vacation mikko:meeting"
    assert any(s.kind == "message" and s.detail["target"] == "team:sales" for s in story.steps)


async def test_team_queue_pauses_the_absent_at_once_and_after_an_asterisk_restart(
    asterisk, ami, office
):
    probe = ami

    async def members() -> dict[str, tuple[str, str]]:
        response_events: list = []
        mark = probe.mark()
        await probe.action("QueueStatus", Queue=TEAM_QUEUE)
        await probe.wait_for(lambda e: e.get("Event") == "QueueStatusComplete", 5, since=mark)
        response_events = [e for e in probe.events[mark:] if e.get("Event") == "QueueMember"]
        # The reason of a member who is not paused is whatever Asterisk kept: not compared.
        return {e["Location"]: (e["Paused"], e.get("PausedReason", "") if e["Paused"] == "1"
                                else "") for e in response_events}

    # Added when vaihde connected (the queue is defined without members), nobody paused.
    assert await members() == {ANNA: ("0", ""), MIKKO: ("0", "")}
    # Anna goes on vacation (web / console path): paused with the reason within a second.
    mark, started = probe.mark(), time.monotonic()
    await set_state(office, "anna", "vacation")
    paused = await probe.wait_for(lambda e: e.get("Event") == "QueueMemberPause"
                                  and e.get("Interface") == ANNA, 5, since=mark)
    assert paused["Paused"] == "1" and paused["PausedReason"] == "vacation"
    assert probe.time_of(paused) - started <= 1.0
    # app_queue then never rings her: the caller's queue rings Mikko only.
    mark = probe.mark()
    await call(ami, "2")
    connect = await probe.wait_for(lambda e: e.get("Event") == "AgentConnect"
                                   and e.get("Queue") == TEAM_QUEUE, 20, since=mark)
    assert connect["Interface"] == MIKKO
    called = {e.get("Interface") for e in probe.events[mark:] if e.get("Event") == "AgentCalled"}
    assert called == {MIKKO}
    asterisk.hang_up_all()
    # From the CLI (another process): the service notices within its poll and unpauses her.
    mark = probe.mark()
    cli(office, "presence", "set", "anna", "available", "--by", "test")
    done = time.monotonic()
    unpaused = await probe.wait_for(lambda e: e.get("Event") == "QueueMemberPause"
                                    and e.get("Interface") == ANNA, 5, since=mark)
    assert unpaused["Paused"] == "0" and probe.time_of(unpaused) - done <= 1.0
    await set_state(office, "anna", "off_work")
    await eventually(lambda: office.queues.held.get((TEAM_QUEUE, ANNA)) is not None
                     and office.queues.held[(TEAM_QUEUE, ANNA)].paused, 5)
    # Asterisk restarts and forgets its dynamic members: vaihde adds them again, Anna paused.
    await probe.close()
    asterisk.stop()
    await eventually(lambda: not office.ami.connected, 10)
    asterisk.start(replace=True, tie_to_parent=True)
    await eventually(lambda: office.ami.connected and office.queues.synced, 20)
    s = asterisk.settings
    probe = await AmiProbe.connect(s.ami_port, s.ami_username, s.ami_secret)
    try:
        for _ in range(50):
            got = await members()
            if got.get(ANNA, ("", ""))[0] == "1":
                break
            await asyncio.sleep(0.1)
        assert got == {ANNA: ("1", "off_work"), MIKKO: ("0", "")}
    finally:
        await probe.close()


@pytest.mark.usefixtures("operators_never_answer")
async def test_console_transfer_to_a_team_follows_its_order_and_queue_skipping_the_absent(
    asterisk, ami, office
):
    await set_state(office, "anna", "vacation")
    token = await operator_token(office)
    async with aiohttp.ClientSession() as http:
        desk = Desk(office, http, token)
        # In order, Anna passed over: Nina rings her 5 s, then Mikko, who answers.
        waiting = await waiting_caller(ami, desk, "0401110101")
        mark = ami.mark()
        status, _ = await desk.post(f"/calls/{waiting['id']}/transfer",
                                    {"to": {"team": "walk"}})
        assert status == 202
        first = await ami.wait_for(lambda e: e.get("Event") == "DialBegin"
                                   and e.get("Uniqueid") == waiting["id"], 10, since=mark)
        assert first["DestChannel"].startswith(NINA)
        assert first["Context"] == "vaihde-console-transfer"
        second = await ami.wait_for(lambda e: e.get("Event") == "DialBegin"
                                    and e.get("Uniqueid") == waiting["id"]
                                    and e.get("DestChannel", "").startswith(MIKKO), 10,
                                    since=mark)
        assert 4.5 < ami.time_of(second) - ami.time_of(first) < 8
        assert not any(e.get("DestChannel", "").startswith(ANNA) for e in ami.events[mark:]
                       if e.get("Event") == "DialBegin")
        await bridged(ami, waiting["id"], second["DestChannel"])
        asterisk.hang_up_all()  # Mikko free again
        # The queue team: the caller waits in its queue, where Anna is paused.
        waiting = await waiting_caller(ami, desk, "0401110102")
        mark = ami.mark()
        status, _ = await desk.post(f"/calls/{waiting['id']}/transfer",
                                    {"to": {"team": "desk"}})
        assert status == 202
        await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                           and e.get("Queue") == TEAM_QUEUE
                           and e.get("Uniqueid") == waiting["id"], 10, since=mark)
        connect = await ami.wait_for(lambda e: e.get("Event") == "AgentConnect"
                                     and e.get("Queue") == TEAM_QUEUE, 15, since=mark)
        assert connect["Interface"] == MIKKO
        # Everyone in Sales away: refused with who and why, nothing rings.
        await set_state(office, "mikko", "meeting")
        waiting = await waiting_caller(ami, desk, "0401110103")
        status, reply = await desk.post(f"/calls/{waiting['id']}/transfer",
                                        {"to": {"team": "sales"}})
        assert status == 409, reply
        assert "Anna Virtanen (vacation)" in reply["error"]["message"]
        assert "Mikko Maki (meeting)" in reply["error"]["message"]


# --- 2. devices that can answer ---------------------------------------------------------------


async def test_a_softphone_that_is_off_is_not_rung(asterisk, ami, office):
    # PJSIP/soft-off is qualified every second and nothing answers there: unreachable.
    await eventually(lambda: office.devices.reach("PJSIP/soft-off") is Reach.UNREACHABLE, 10)
    await call(ami, "3")
    begin = await assert_bridged_with(ami, OPERATOR2, timeout=15)
    # Dora's desk phone is the first step: no ring time spent on the softphone.
    step = await ami.action("Getvar", Channel=begin["Channel"], Variable="VAIHDE_STEP")
    assert step["Value"] == "1"
    assert phones_dialled(ami) == [OPERATOR2]


def sipp_register(asterisk, expires: int, cwd: Path) -> None:
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed: apt-get install sip-tester"
    subprocess.run(
        [sipp, f"127.0.0.1:{asterisk.sip_port}", "-sf", str(SIPP_DIR / "register.xml"),
         "-s", "reg-phone", "-au", "reg-phone", "-ap", REG_PASSWORD, "-set", "expires",
         str(expires), "-m", "1", "-i", "127.0.0.1", "-p", str(REG_PORT), "-nostdin",
         "-timeout", "20s", "-timeout_error"],
        cwd=cwd, check=True, capture_output=True, timeout=30)


async def test_no_reachable_phone_the_caller_hears_why_at_once_and_registering_fixes_it(
    asterisk, ami, office, tmp_path
):
    token = await operator_token(office)
    url = f"http://127.0.0.1:{office.http_port}/api/v1/employees/remy"
    headers = {"Authorization": f"Bearer {token}"}
    await eventually(lambda: office.devices.reach("PJSIP/reg-phone") is Reach.UNREACHABLE, 10)
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        assert (await reply.json())["devices"] == [
            {"dial": "PJSIP/reg-phone", "kind": "softphone", "reach": "unreachable"}]
    sentence = ("Remy Remote cannot answer right now. To leave a message, press 2. "
                "To be called back, press 3. For the switchboard, press 0.")
    await prepare(office, sentence)
    mark = ami.mark()
    await call(ami, "4")
    joined = await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                and e.get("Queue") == SWITCHBOARD, 20, since=mark)
    await heard(asterisk, office, sentence)
    assert "VAIHDE_REASON=menu-main-4-unreachable" in joined.get("ChanVariable", "")
    assert phones_dialled(ami) == [] or "PJSIP/reg-phone" not in phones_dialled(ami)
    asterisk.hang_up_all()

    # The softphone registers: reachable at once (the consoles are told), and rung.
    try:
        async with aiohttp.ClientSession() as http:
            response = await http.get(
                f"http://127.0.0.1:{office.http_port}/api/v1/console/stream", headers=headers)
            stream = Stream(response)
            await stream.until("board")
            sipp_register(asterisk, 3600, tmp_path)
            live = await stream.until("availability", lambda d: d["employee"] == "remy"
                                      and d["devices"][0]["reach"] == "reachable")
            assert live["devices"] == [
                {"kind": "softphone", "dial": "PJSIP/reg-phone", "reach": "reachable"}]
            response.close()
        assert office.devices.reach("PJSIP/reg-phone") is Reach.REACHABLE
        async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
            assert (await reply.json())["devices"][0]["reach"] == "reachable"
        mark = ami.mark()
        await call(ami, "4")
        await ami.wait_for(lambda e: e.get("Event") == "DialBegin"
                           and e.get("DestChannel", "").startswith("PJSIP/reg-phone-"), 15,
                           since=mark)
    finally:
        asterisk.hang_up_all()  # a phone with a call ringing is not "unreachable" but ringing
        sipp_register(asterisk, 0, tmp_path)
    await eventually(lambda: office.devices.reach("PJSIP/reg-phone") is Reach.UNREACHABLE, 10)


# --- 3. forwarded calls -----------------------------------------------------------------------


def sipp_trunk_call(asterisk, scenario: str, cwd: Path, rows: list[str], hold_ms: int) -> None:
    """SIPp as the carrier: one INVITE per row (CALLER;FORWARDED_FROM;REASON) to the company
    number through the sandbox's PJSIP, answered by vaihde, hung up after `hold_ms`."""
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed: apt-get install sip-tester"
    calls = cwd / "calls.csv"
    calls.write_text("SEQUENTIAL\n" + "\n".join(rows) + "\n")
    subprocess.Popen(
        [sipp, f"127.0.0.1:{asterisk.sip_port}", "-sf", str(SIPP_DIR / scenario),
         "-s", COMPANY_NUMBER, "-inf", str(calls), "-m", str(len(rows)), "-d", str(hold_ms),
         "-i", "127.0.0.1", "-p", str(TRUNK_PORT), "-mp", str(TRUNK_MEDIA_PORT), "-nostdin",
         "-timeout", "60s"],
        cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


@pytest.mark.parametrize(("scenario", "reason", "heard_why", "words"), [
    ("forwarded.xml", "no-answer", "no_answer", "no answer"),
    ("forwarded-history-info.xml", "486", "busy", "busy"),
])
async def test_call_forwarded_from_anna_s_mobile_is_recognised_and_never_rings_her(
    asterisk, ami, office, tmp_path, scenario, reason, heard_why, words
):
    await set_state(office, "anna", "meeting")
    until = office.presence.lookup("anna").until
    assert until is not None
    sentence = ("Anna Virtanen is in a meeting until "
                f"{until.astimezone(office.presence.tz).strftime('%H.%M')}. "
                "To leave a message, press 2. To be called back, press 3. "
                "For the switchboard, press 0.")
    await prepare(office, sentence)
    mark = ami.mark()
    # The caller presses nothing: after the sentence and the offers (about 15 s), a person.
    sipp_trunk_call(asterisk, scenario, tmp_path, [f"0401112222;+358401234567;{reason}"],
                    hold_ms=40000)
    joined = await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                and e.get("Queue") == SWITCHBOARD
                                and e.get("Channel", "").startswith("PJSIP/trunk-"), 35,
                                since=mark)
    variables = joined.get("ChanVariable", "")
    assert f"VAIHDE_REASON=forwarded-anna-{heard_why}" in variables
    assert "VAIHDE_SOUGHT=employee:anna" in variables
    await heard(asterisk, office, sentence)
    story = await wait_story(office, lambda s: s.path == "forwarded")
    assert story.forwarded["text"] == f"for Anna Virtanen, forwarded from their mobile, {words}"
    assert story.sought_id == "anna" and story.caller_number == "0401112222"
    # Anna's phones were never rung: the only phone the trunk call dialled is the operator's.
    dialled = {e.get("DestChannel", "").rsplit("-", 1)[0] for e in ami.events[mark:]
               if e.get("Event") == "DialBegin"
               and e.get("Channel", "").startswith("PJSIP/trunk-")}
    assert ANNA not in dialled
    # The operator's call card carries it (the console's board JSON, story included).
    for _ in range(50):
        card = next((c for lists in (office.console.board.lists()).values() for c in lists
                     if c["id"] == story.call_id), None)
        if card is not None:
            break
        await asyncio.sleep(0.1)
    assert card is not None
    forwarded = [s for s in card["story"] if s["kind"] == "forwarded"]
    assert forwarded[0]["detail"]["text"] == story.forwarded["text"]
    asterisk.hang_up_all()


async def test_call_forwarded_from_a_stranger_goes_through_the_menu(
    asterisk, ami, office, tmp_path
):
    mark = ami.mark()
    sipp_trunk_call(asterisk, "forwarded.xml", tmp_path, ["0401112222;0409999999;user-busy"],
                    hold_ms=30000)
    # Nobody's number: the caller gets the menu (and, choosing nothing, the switchboard).
    joined = await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                and e.get("Channel", "").startswith("PJSIP/trunk-"), 25,
                                since=mark)
    assert "VAIHDE_REASON=menu-main-no-choice" in joined.get("ChanVariable", "")
    story = await wait_story(office, lambda s: s.forwarded.get("number") == "0409999999")
    assert story.forwarded["text"] == "forwarded from 0409999999, busy"
    assert any(s.kind == "menu" for s in story.steps) and story.path != "forwarded"
    asterisk.hang_up_all()


async def test_hostile_forwarding_headers_reach_the_service_as_digits_and_a_word(
    asterisk, ami, office, tmp_path
):
    # The carrier's (or a caller's) Diversion with a dial string and dialplan syntax in it.
    mark = ami.mark()
    sipp_trunk_call(asterisk, "forwarded.xml", tmp_path,
                    ['0401112222;0409999999&PJSIP/sipp-phone;"${SHELL(id)}&x"'],
                    hold_ms=20000)
    story = await wait_story(office, lambda s: s.forwarded.get("number") == "0409999999")
    assert story.forwarded["reason"] == "unknown"
    log = await asyncio.to_thread(Path(asterisk.full_log_path).read_text, errors="replace")
    agi = [line for line in log.splitlines() if "inbound?did=" in line and "fwd=" in line]
    assert agi and agi[-1].endswith(
        f'"agi://127.0.0.1:{asterisk.agi_port}/{asterisk.settings.agi_secret}'
        f'/inbound?did={COMPANY_NUMBER}&fwd=0409999999&why=idx") in new stack')
    assert not any(e.get("Event") == "DialBegin" and "sipp-phone" in e.get("DestChannel", "")
                   for e in ami.events[mark:])
    asterisk.hang_up_all()
