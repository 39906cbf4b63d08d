"""The other ways a caller reaches someone, through real Asterisk: an extension keyed during the
greeting, a name spelled on the keypad, an outside number, the answering-service queue carrying
whom the caller wanted; and a message taken while the mail server is down, delivered later.
Asserted from Asterisk's AMI events and from the service's call story and message store.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from company import COMPANY, PHONES, TEAM_QUEUE, start_vaihde  # tests/integration: sys.path
from test_first_call import assert_bridged_with, call, phones_dialled
from test_messages_delivery import SmtpServer, free_port
from test_presence_live import messages_for

pytestmark = pytest.mark.asterisk

QUEUE = "vaihde-switchboard"
OPERATOR = f"Local/operator@{PHONES}"

PATHS_COMPANY = COMPANY.replace(
    "anna: {name: Anna Virtanen, ", 'anna: {name: Anna Virtanen, extension: "101", '
    "email: anna@testi.fi, "
).replace(
    "      5: {message: anna}\n",
    '      5: {message: anna}\n      6: {dial_by_name: true}\n'
    '      7: {external: "+358401110000"}\n      8: {employee: dora}\n',
).replace(
    "employees:\n",
    "employees:\n  dora: {name: Dora Desk, strategy: in_order, devices: ["
    f"{{desk: Local/noanswer@{PHONES}, seconds: 5}}, "
    f"{{desk: Local/anna@{PHONES}, seconds: 10}}]}}\n",
).replace(
    "teams:\n",
    # A team with a queue of its own (the sandbox defines it from the vaihde-team template;
    # vaihde adds the members).
    f"teams:\n  help: {{name: Help, members: [anna], queue: {TEAM_QUEUE}, ring_seconds: 30}}\n",
).replace("      8: {employee: dora}\n", "      8: {employee: dora}\n      9: {team: help}\n")
assert PATHS_COMPANY.count("extension") == 1 and "dial_by_name" in PATHS_COMPANY


@pytest.fixture
async def paths(asterisk, monkeypatch, tmp_path):
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    smtp_port = free_port()
    service = await start_vaihde(
        asterisk, tmp_path, PATHS_COMPANY,
        service_extra=f"  mobile_dial: Local/{{number}}@{PHONES}",
        settings_extra=(
            "messages:\n  poll_interval_s: 1\n"
            f"  email: {{host: 127.0.0.1, port: {smtp_port}, security: none, "
            "from: vaihde@testi.fi, timeout_s: 2}\n"
        ),
    )
    service.smtp_port = smtp_port
    try:
        yield service
    finally:
        await service.stop()


def story_of(service, predicate):
    for story in service.stories.stories():
        if predicate(story):
            return story
    return None


async def wait_story(service, predicate, timeout: float = 15):
    for _ in range(int(timeout * 10)):
        found = story_of(service, predicate)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("no such call story")


async def test_extension_keyed_during_the_greeting_rings_that_person(asterisk, ami, paths):
    await call(ami, "101", delay=0.5)
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    assert phones_dialled(ami) == [f"Local/anna@{PHONES}"]
    story = await wait_story(paths, lambda s: s.path == "extension")
    assert story.sought_id == "anna"


async def test_unknown_extension_reaches_a_person_not_a_phone(asterisk, ami, paths):
    await call(ami, "109", delay=0.5)
    await ami.wait_for(
        lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Queue") == QUEUE, 20
    )
    assert f"Local/anna@{PHONES}" not in phones_dialled(ami)


async def test_dial_by_name_rings_the_chosen_person(asterisk, ami, paths):
    # 6 = dial by name; after the spoken instructions "ANNA" (2662) and #; then 1 = the first
    # (and only) match. Each w is half a second.
    await call(ami, "6" + "w" * 8 + "2662#" + "w" * 10 + "1", delay=1)
    await assert_bridged_with(ami, f"Local/anna@{PHONES}", timeout=30)
    story = await wait_story(paths, lambda s: s.path == "dial_by_name")
    assert story.sought_id == "anna"
    assert any(s.kind == "dial_by_name" and s.detail["letters"] == "2662" for s in story.steps)


async def test_external_number_rings_through_the_trunk_template(asterisk, ami, paths):
    await call(ami, "7")
    await assert_bridged_with(ami, f"Local/358401110000@{PHONES}")


async def test_in_order_rings_the_next_device_when_the_first_does_not_answer(
    asterisk, ami, paths
):
    await call(ami, "8")
    first = await ami.wait_for(
        lambda e: e.get("Event") == "DialBegin"
        and e.get("DestChannel", "").startswith(f"Local/noanswer@{PHONES}"), 15,
    )
    second = await assert_bridged_with(ami, f"Local/anna@{PHONES}", timeout=20)
    gap = ami.time_of(second) - ami.time_of(first)
    assert 4.5 < gap < 8, f"the second device rang {gap:.1f}s after the first"
    assert phones_dialled(ami) == [f"Local/noanswer@{PHONES}", f"Local/anna@{PHONES}"]


async def test_team_with_its_own_queue_queues_the_caller(asterisk, ami, paths):
    await call(ami, "9")
    joined = await ami.wait_for(
        lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Queue") == TEAM_QUEUE, 15
    )
    assert "VAIHDE_REASON=menu-main-9" in joined.get("ChanVariable", "")
    assert "VAIHDE_SOUGHT=team:help" in joined.get("ChanVariable", "")


async def test_unanswered_caller_waits_in_the_queue_saying_whom_they_wanted(asterisk, ami, paths):
    # Bob's phone rings out (5 s); the caller joins the answering-service queue, and the queue's
    # own events say whom they wanted and why it failed; then an operator answers.
    await call(ami, "2")
    joined = await ami.wait_for(
        lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Queue") == QUEUE, 20
    )
    variables = joined.get("ChanVariable", "")
    assert "VAIHDE_SOUGHT=employee:bob" in variables
    assert "VAIHDE_REASON=dial-NOANSWER" in variables
    call_id = next(v.split("=", 1)[1] for v in variables.split("\n")
                   if v.startswith("VAIHDE_CALL_ID="))
    story = paths.stories.get(call_id)
    assert story is not None and story.sought_id == "bob"
    await ami.wait_for(
        lambda e: e.get("Event") == "AgentConnect" and e.get("Queue") == QUEUE
        and e.get("DestChannel", "").startswith(OPERATOR), 20,
    )


async def test_message_taken_while_mail_is_down_is_delivered_when_it_is_back(
    asterisk, ami, paths
):
    from vaihde.messages.store import get_message

    paths.sender.backoff = (timedelta(seconds=1),)  # retry soon rather than in a minute
    await call(ami, "5", say="hello-world", say_delay=6, hold=3)
    # Held on to: the book lets go of a story when its call ends.
    story = await wait_story(paths, lambda s: s.path == "menu_option" and s.sought_id == "anna")
    (message,) = await messages_for(paths, "anna")
    # Stored although mail is down; the caller hung up to end it, as the instructions allow.
    assert any(s.kind == "message" and s.detail["target"] == "employee:anna"
               for s in story.steps)
    assert message.call_id == story.call_id
    # Mail is down: the first attempt fails and is recorded, the message stays.
    for _ in range(100):
        async with paths.db.sessions() as session:
            found = await get_message(session, message.id)
        email = next(d for d in found.deliveries if d.channel == "email")
        if email.attempts >= 1:
            break
        await asyncio.sleep(0.1)
    assert email.attempts >= 1 and email.status != "sent", email
    server = await SmtpServer(paths.smtp_port).start()
    try:
        for _ in range(150):
            if server.inbox.envelopes:
                break
            await asyncio.sleep(0.1)
        assert [e.rcpt_tos for e in server.inbox.envelopes] == [["anna@testi.fi"]]
        for _ in range(50):
            async with paths.db.sessions() as session:
                found = await get_message(session, message.id)
            email = next(d for d in found.deliveries if d.channel == "email")
            if email.status == "sent":
                break
            await asyncio.sleep(0.1)
        assert email.status == "sent"
    finally:
        await server.stop()
