"""First end-to-end flow through real Asterisk: company number → greeting → menu → a phone that
rings and answers, or the operator. Outcomes are asserted from Asterisk's own AMI events.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import time

import aiohttp
import pytest
from company import COMPANY, COMPANY_NUMBER, PHONES  # tests/integration is on sys.path

from vaihde.presence.store import history

pytestmark = pytest.mark.asterisk

_ids = itertools.count(1)


async def call(
    ami, digits: str = "", *, delay: float = 1.0, callerid: str = "0401234567", hold: int = 60,
    say: str = "", say_delay: float = 0, number: str = COMPANY_NUMBER,
):
    """Start a simulated caller; returns the Local channel name prefix of the caller's leg."""
    tag = f"t{next(_ids)}{int(time.time() * 1000) % 100000}"
    variables = [f"CALLER_DELAY={delay}", f"CALLER_TAG={tag}", f"CALLER_HOLD={hold}"]
    if say:
        variables += [f"CALLER_SAY={say}", f"CALLER_SAY_DELAY={say_delay}"]
    if digits:
        variables.append(f"CALLER_DIGITS={digits}")
    response = await ami.action(
        {
            "Action": "Originate",
            "Channel": f"Local/{number}@vaihde-inbound/n",
            "Context": "vaihde-test-caller",
            "Exten": "s",
            "Priority": "1",
            "Async": "true",
            "CallerID": callerid,
            "Variable": ",".join(variables),
        }
    )
    assert response.get("Response") == "Success", response
    return f"Local/{number}@vaihde-inbound-"


def device(channel: str) -> str:
    """`Local/anna@vaihde-test-phones-0000002a;1` → `Local/anna@vaihde-test-phones`."""
    return re.sub(r"-[0-9a-f]{8}(;\d)?$", "", channel)


def phones_dialled(ami) -> list[str]:
    """Devices the company-number leg dialled (the Originate's own dial is not one)."""
    return [
        device(e["DestChannel"])
        for e in ami.events
        if e.get("Event") == "DialBegin"
        and e.get("Channel", "").startswith(f"Local/{COMPANY_NUMBER}@vaihde-inbound-")
    ]


def dial_to(prefix: str):
    return lambda e: e.get("Event") == "DialBegin" and e.get("DestChannel", "").startswith(prefix)


async def assert_bridged_with(ami, dest_prefix: str, timeout: float = 10):
    """The destination phone answered and is bridged with the caller's leg."""
    begin = await ami.wait_for(dial_to(dest_prefix), timeout)
    caller, dest = begin["Channel"], begin["DestChannel"]
    enter = await ami.wait_for(
        lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == dest, timeout
    )
    await ami.wait_for(
        lambda e: e.get("Event") == "BridgeEnter"
        and e.get("Channel") == caller
        and e.get("BridgeUniqueid") == enter["BridgeUniqueid"],
        timeout,
    )
    return begin


async def test_menu_1_rings_anna_who_answers(asterisk, ami, vaihde):
    await call(ami, "1")
    begin = await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    assert begin["Channel"].startswith(f"Local/{COMPANY_NUMBER}@vaihde-inbound-")
    # No other phone was dialled for this call.
    assert phones_dialled(ami) == [f"Local/anna@{PHONES}"]
    assert vaihde.agi.outcomes["done"] >= 1


async def test_menu_0_reaches_operator(asterisk, ami, vaihde):
    await call(ami, "0")
    await assert_bridged_with(ami, f"Local/operator@{PHONES}")


async def test_sipp_phone_rings_and_answers(asterisk, ami, vaihde, sipp_phone):
    await call(ami, "4")
    begin = await assert_bridged_with(ami, "PJSIP/sipp-phone-")
    up = await ami.wait_for(
        lambda e: e.get("Channel") == begin["DestChannel"] and e.get("ChannelStateDesc") == "Up",
        5,
    )
    assert up


async def test_no_answer_goes_to_operator(asterisk, ami, vaihde):
    await call(ami, "2")
    end = await ami.wait_for(
        lambda e: e.get("Event") == "DialEnd" and e.get("DestChannel", "").startswith(
            f"Local/noanswer@{PHONES}"
        ),
        10,
    )
    assert end["DialStatus"] == "NOANSWER"
    await assert_bridged_with(ami, f"Local/operator@{PHONES}")


async def test_busy_goes_to_operator(asterisk, ami, vaihde):
    await call(ami, "3")
    end = await ami.wait_for(
        lambda e: e.get("Event") == "DialEnd"
        and e.get("DestChannel", "").startswith(f"Local/busy@{PHONES}"),
        10,
    )
    assert end["DialStatus"] == "BUSY"
    await assert_bridged_with(ami, f"Local/operator@{PHONES}")


async def test_silent_caller_reaches_operator(asterisk, ami, vaihde):
    await call(ami, "")
    await assert_bridged_with(ami, f"Local/operator@{PHONES}", timeout=15)


@pytest.mark.parametrize(
    "callerid",
    [
        '"Evil & Co, ${EVAL(${SHELL(touch /tmp/pwn)})}" <123&PJSIP/x>',
        '"a|b;c\\"d" <1;2|3>',
        "<'$(reboot)'>",
    ],
)
async def test_hostile_caller_id_is_routed_without_extra_legs(asterisk, ami, vaihde, callerid):
    await call(ami, "1", callerid=callerid)
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    assert phones_dialled(ami) == [f"Local/anna@{PHONES}"]


async def test_a_line_break_in_the_caller_name_cannot_forge_the_agi_environment(
    asterisk, ami, vaihde
):
    """The review's injection: Asterisk writes the caller ID name into the AGI environment as it
    is, so a newline in it adds a line; a repeated agi_network_script used to overwrite the real
    one and run an employee's feature code (*74 set Anna "off work") from an outside call."""
    forged = "Mallory\nagi_network_script: feature?code=*74&device=Local/anna@" + PHONES
    response = await ami.action({
        "Action": "Originate", "Channel": f"Local/{COMPANY_NUMBER}@vaihde-test-forged-name/n",
        "Context": "vaihde-test-caller", "Exten": "s", "Priority": "1", "Async": "true",
        "CallerID": "0401234567",
        "Variable": f"FORGED_NAME={base64.b64encode(forged.encode()).decode()},CALLER_DIGITS=1",
    })
    assert response.get("Response") == "Success", response
    # An ordinary caller: the menu, then Anna's phone for the key they pressed.
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    # Nobody stated anything about Anna's availability (the forged code would have, as her phone).
    async with vaihde.db.sessions() as session:
        assert await history(session, "anna") == []
    # The name reached the service in one line, without the line break.
    story = next(s for s in vaihde.stories.stories() if s.caller_name.startswith("Mallory"))
    assert "\n" not in story.caller_name and "agi_network_script" in story.caller_name


async def test_fifty_digit_dtmf_first_key_chooses(asterisk, ami, vaihde):
    await call(ami, "1" * 50, delay=1.0)
    # A caller leaning on a key: the first press is the choice, the rest change nothing.
    await assert_bridged_with(ami, f"Local/anna@{PHONES}", timeout=15)
    assert phones_dialled(ami) == [f"Local/anna@{PHONES}"]


async def test_fifty_invalid_digits_reach_operator(asterisk, ami, vaihde):
    await call(ami, "7" * 50, delay=1.0)
    # No valid choice in fifty presses; the caller must still end up with a person.
    await assert_bridged_with(ami, f"Local/operator@{PHONES}", timeout=15)
    assert phones_dialled(ami) == [f"Local/operator@{PHONES}"]


async def test_fastagi_down_reaches_operator_within_two_seconds(asterisk, ami):
    # No vaihde service running: Asterisk's connect is refused and the dialplan goes to a human.
    await call(ami, "1")
    first = await ami.wait_for(
        lambda e: e.get("Event") == "Newchannel"
        and e.get("Channel", "").startswith(f"Local/{COMPANY_NUMBER}@vaihde-inbound-"),
        5,
    )
    started = time.monotonic()
    begin = await ami.wait_for(dial_to(f"Local/operator@{PHONES}"), 5)
    assert time.monotonic() - started < 2.0
    assert begin["Channel"].startswith(f"Local/{COMPANY_NUMBER}@vaihde-inbound-")
    del first


async def test_health_and_call_tracking(asterisk, ami, vaihde):
    from vaihde.auth.store import add_user, create_token

    async with vaihde.db.sessions.begin() as session:
        await add_user(session, "health-admin", role="admin")
        token, _ = await create_token(session, "health-admin", label="test")
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{vaihde.http_port}/health"
        async with http.get(url) as resp:
            public = await resp.json()
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.json()
    # Anyone sees whether the service is up; the details are for operators and admins.
    assert public == {"status": "ok"}
    assert resp.status == 200
    assert body["status"] == "ok"
    assert body["fastagi"]["listening"] and body["ami"]["connected"]
    await call(ami, "1")
    begin = await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    # The service's own tracker, fed by AMI, sees the answered employee leg (its connection
    # may be a few events behind the probe's: it also reads the dialplan class).
    def names() -> list[str]:
        return [c["name"] for c in vaihde.tracker.snapshot()["channels"].values()]

    for _ in range(100):
        if begin["DestChannel"] in names():
            break
        await asyncio.sleep(0.05)
    assert begin["DestChannel"] in names()



async def test_applied_change_reaches_the_next_caller_without_restart(asterisk, ami, vaihde):
    from vaihde.company import parse_company
    from vaihde.company.apply import apply_company

    before = vaihde.company_version
    changed = parse_company(COMPANY.replace("1: {employee: anna}", "1: {employee: sipp}"))
    result = await apply_company(
        vaihde.db.sessions, changed, applied_by="test", source_name="company.yaml"
    )
    assert result.applied and [c.path for c in result.changes] == ["menus.main.options.1"]
    for _ in range(60):
        if vaihde.company_version > before:
            break
        await asyncio.sleep(0.05)
    assert vaihde.company.menus["main"].options["1"].target.ref == "sipp"
    await call(ami, "1")
    await ami.wait_for(dial_to("PJSIP/sipp-phone-"), 10)
    assert phones_dialled(ami) == ["PJSIP/sipp-phone"]


async def test_story_becomes_the_callers_contact_history(asterisk, ami, vaihde):
    from vaihde.directory.store import contacts_for

    await call(ami, "1", callerid="0409998888")
    begin = await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    story = vaihde.stories.get(begin["Uniqueid"])
    assert story is not None and (story.sought_kind, story.sought_id) == ("employee", "anna")
    assert story.path == "menu_option"
    asterisk.rx("channel request hangup all")
    for _ in range(100):
        async with vaihde.db.sessions() as session:
            contacts = await contacts_for(session, "0409998888")
        if contacts:
            break
        await asyncio.sleep(0.05)
    (contact,) = contacts
    got = (contact.path, contact.employee_id, contact.outcome)
    assert got == ("menu_option", "anna", "answered")
    kinds = [step["kind"] for step in contact.details["steps"]]
    assert kinds[:2] == ["entered", "menu"] and "availability" in kinds and "dial" in kinds
