"""What callers hear, through real Asterisk: bulletins after the greeting while they are valid,
the absent employee's sentence word for word in English, Finnish and Swedish, the offer keys
1 (delegate), 2 (message) and 3 (callback), 0 during the closed-hours announcement, and
human_only choices that never end with a recording or a callback robot.

What was played is read from Asterisk's own log ("Playing '<sound>'" lines of the caller's
channel, from where the log stood when the call began). A synthesized prompt's file name is a
hash of its text, so finding the file of the expected sentence in the log asserts the words.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from company import PHONES, start_vaihde  # tests/integration is on sys.path
from test_first_call import assert_bridged_with, device
from test_presence_live import messages_for

pytestmark = pytest.mark.asterisk

EN, FI, SV = "0201234567", "0201234568", "0201234569"
QUEUE = "vaihde-switchboard"
OPERATOR = f"Local/operator@{PHONES}"
HELSINKI = ZoneInfo("Europe/Helsinki")


def hear_company(today: date) -> str:
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    return f"""\
company: {{name: Testi Oy, language: en, languages: [en, fi, sv]}}
numbers:
  "{EN}": {{label: Main, menu: main}}
  "{FI}": {{label: Vaihde, menu: main, language: fi}}
  "{SV}": {{label: Växel, menu: main, language: sv}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
announcements:
  news: {{en: News, sound: tt-weasels, from: {yesterday}, until: {tomorrow}}}
  old: {{en: Old news, sound: tt-monkeys, until: {yesterday}}}
menus:
  main:
    greeting: {{en: Hello, sound: hello-world}}
    announce: [old, news]
    prompt: {{en: Choose, sound: beep}}
    timeout: 2
    attempts: 2
    options:
      1: {{employee: anna}}
      6: {{team: complaints, human_only: true, label: Complaints}}
teams:
  ops: {{name: Operators, kind: operators, members: [olga]}}
  complaints: {{name: Complaints, members: [bob], ring_seconds: 5}}
employees:
  anna: {{name: Anna Virtanen, devices: [desk: Local/anna@{PHONES}], ring_seconds: 10,
          delegates: [dan]}}
  bob: {{name: Bob Ringing, devices: [desk: Local/noanswer@{PHONES}], ring_seconds: 5}}
  dan: {{name: Dan Delegate, devices: [desk: Local/answers@{PHONES}]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""


CLOSED = f"""\
company: {{name: Testi Oy, language: en, languages: [en]}}
numbers:
  "{EN}": {{label: Main, menu: main}}
hours:
  closed_action: {{announcement: closed, hangup: true}}
announcements:
  closed: {{en: We are closed now, sound: demo-congrats}}
menus:
  main:
    prompt: {{en: Choose, sound: beep}}
    options:
      1: {{employee: anna}}
teams:
  ops: {{name: Operators, kind: operators, members: [olga]}}
employees:
  anna: {{name: Anna Virtanen, devices: [desk: Local/anna@{PHONES}]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""


async def _service(asterisk, monkeypatch, tmp_path, company: str):
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    return await start_vaihde(asterisk, tmp_path, company)


@pytest.fixture
async def hear(asterisk, monkeypatch, tmp_path):
    service = await _service(asterisk, monkeypatch, tmp_path,
                             hear_company(datetime.now(HELSINKI).date()))
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def closed(asterisk, monkeypatch, tmp_path):
    service = await _service(asterisk, monkeypatch, tmp_path, CLOSED)
    try:
        yield service
    finally:
        await service.stop()


_ids = itertools.count(1)


async def call(ami, number: str = EN, digits: str = "", *, delay: float = 1.0,
               callerid: str = "0401234567", hold: int = 60, say: str = "",
               say_delay: float = 0) -> None:
    """A simulated caller dialling company number `number` (see [vaihde-test-caller])."""
    variables = [f"CALLER_DELAY={delay}", f"CALLER_HOLD={hold}",
                 f"CALLER_TAG=h{next(_ids)}{int(time.time() * 1000) % 100000}"]
    if digits:
        variables.append(f"CALLER_DIGITS={digits}")
    if say:
        variables += [f"CALLER_SAY={say}", f"CALLER_SAY_DELAY={say_delay}"]
    response = await ami.action({
        "Action": "Originate", "Channel": f"Local/{number}@vaihde-inbound/n",
        "Context": "vaihde-test-caller", "Exten": "s", "Priority": "1", "Async": "true",
        "CallerID": callerid, "Variable": ",".join(variables),
    })
    assert response.get("Response") == "Success", response


def dialled(ami) -> list[str]:
    """Devices the company-number leg dialled."""
    return [device(e["DestChannel"]) for e in ami.events
            if e.get("Event") == "DialBegin" and "@vaihde-inbound-" in e.get("Channel", "")]


class Log:
    """Asterisk's full log from the moment this object was made."""

    def __init__(self, asterisk) -> None:
        self.path = Path(asterisk.full_log_path)
        self.start = self.path.stat().st_size

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def played(self) -> list[str]:
        """Sounds played to the caller's channel, in order, without their extension."""
        return [re.sub(r"\.(gsm|wav|sln|slin\d*|ulaw|alaw|g722)$", "", m) for m in re.findall(
            r"@vaihde-inbound-[0-9a-f]+;2> Playing '([^']+)'", self.text())]

    async def wait_played(self, sound: str, timeout: float = 20) -> None:
        for _ in range(int(timeout * 10)):
            if sound in self.played():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{sound} was not played; played: {self.played()}")


# --- bulletins ----------------------------------------------------------------------------

async def test_a_valid_bulletin_is_said_after_the_greeting_and_an_expired_one_is_not(
    asterisk, ami, hear
):
    log = Log(asterisk)
    await call(ami)  # a caller who presses nothing hears everything, then reaches a person
    await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                       and e.get("Queue") == QUEUE, 30)
    played = log.played()
    assert played[:4] == ["hello-world", "tt-weasels", "beep", "beep"], played
    assert "tt-monkeys" not in played  # its `until` was yesterday


# --- the absent employee: what is said -----------------------------------------------------

async def set_presence(service, employee: str, state: str, until: datetime | None) -> None:
    from vaihde.presence.store import set_availability

    async with service.db.sessions() as session, session.begin():
        await set_availability(session, employee, state, source="operator", set_by="test",
                               until=until)
    await service.presence.invalidate(employee)


OFFERS = {
    "en": "To speak with Dan Delegate, press 1. To leave a message, press 2. "
          "To be called back, press 3. For the switchboard, press 0.",
    "fi": "Jos haluat puhua henkilön Dan Delegate kanssa, paina 1. Jättääksesi viestin, "
          "paina 2. Soittopyyntö, paina 3. Vaihteeseen pääset painamalla nollaa.",
    "sv": "Om du vill tala med Dan Delegate, tryck 1. För att lämna ett meddelande, tryck 2. "
          "För att bli uppringd, tryck 3. Till växeln kommer du med noll.",
}


async def ready(service, text: str, language: str) -> str:
    """The sound of `text` (synthesized now, so the call need not wait for it)."""
    sound = await service.prompts.text(text, language, deadline=60)
    assert sound is not None, f"espeak-ng could not say {text!r}"
    return sound


async def test_caller_hears_that_anna_is_in_a_meeting_until_when(asterisk, ami, hear):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    until = now + timedelta(hours=2)
    local_until, local_now = until.astimezone(HELSINKI), now.astimezone(HELSINKI)
    when = (f"{local_until:%H.%M}" if local_until.date() == local_now.date()
            else f"{local_until.day}.{local_until.month}.")
    await set_presence(hear, "anna", "meeting", until)
    expected = f"Anna Virtanen is in a meeting until {when}. {OFFERS['en']}"
    sound = await ready(hear, expected, "en")
    log = Log(asterisk)
    await call(ami, EN, "1")
    await log.wait_played(sound)
    assert f"Local/anna@{PHONES}" not in dialled(ami)  # told, not rung


@pytest.mark.parametrize(
    ("number", "language", "sentence"),
    [
        (FI, "fi", "Anna Virtanen on lomalla 20.12. asti."),
        (SV, "sv", "Anna Virtanen är på semester till och med 20.12."),
        (EN, "en", "Anna Virtanen is on vacation until 20.12."),
    ],
)
async def test_caller_hears_the_vacation_in_the_numbers_language(
    asterisk, ami, hear, number, language, sentence
):
    # Until the end of 20 December (midnight after it), whatever year it is now.
    year = datetime.now(HELSINKI).year + 1
    await set_presence(hear, "anna", "vacation", datetime(year, 12, 21, tzinfo=HELSINKI))
    sound = await ready(hear, f"{sentence} {OFFERS[language]}", language)
    log = Log(asterisk)
    await call(ami, number, "1")
    await log.wait_played(sound)
    # Nothing was said in another language first.
    assert not [s for s in log.played() if "/vaihde-" in s and s != sound], log.played()


# --- the offer keys -------------------------------------------------------------------------

async def test_key_1_rings_the_delegates_phone(asterisk, ami, hear):
    await set_presence(hear, "anna", "away", None)
    await ready(hear, f"Anna Virtanen is away. {OFFERS['en']}", "en")
    await call(ami, EN, "1" + "w" * 4 + "1")
    await assert_bridged_with(ami, f"Local/answers@{PHONES}", timeout=20)
    assert dialled(ami) == [f"Local/answers@{PHONES}"]  # Dan's phone, and Anna's not at all
    story = next(s for s in hear.stories.stories() if s.sought_id == "anna")
    routed = [s.detail["reason"] for s in story.steps if s.kind == "routed"]
    assert routed == ["menu-main-1-away-delegate-dan"]


async def test_key_2_records_and_stores_a_message_for_anna(asterisk, ami, hear):
    from vaihde.phrases import phrase

    await set_presence(hear, "anna", "away", None)
    await ready(hear, f"Anna Virtanen is away. {OFFERS['en']}", "en")
    intro = await ready(hear, phrase("en", "message.intro"), "en")
    log = Log(asterisk)
    await call(ami, EN, "1" + "w" * 4 + "2", callerid="0405551234", say="hello-world",
               say_delay=7, hold=3)
    (message,) = await messages_for(hear, "anna")
    assert message.caller_number == "0405551234" and message.taken_by == "caller"
    assert intro in log.played()
    recording = Path(message.recording_path)

    def size() -> int:
        return recording.stat().st_size if recording.exists() else 0

    for _ in range(50):
        if size() > 44:
            break
        await asyncio.sleep(0.1)
    assert size() > 44  # more than a WAV header: what the caller said
    assert dialled(ami) == []


async def test_key_3_stores_a_callback_request_with_the_callers_number(asterisk, ami, hear):
    from vaihde.messages.store import list_callbacks

    await set_presence(hear, "anna", "away", None)
    await ready(hear, f"Anna Virtanen is away. {OFFERS['en']}", "en")
    await call(ami, EN, "1" + "w" * 4 + "3", callerid="0407770001", hold=15)
    callbacks = []
    for _ in range(200):
        async with hear.db.sessions() as session:
            callbacks = await list_callbacks(session, for_kind="employee", for_id="anna")
        if callbacks:
            break
        await asyncio.sleep(0.1)
    (callback,) = callbacks
    assert callback.caller_number == "0407770001" and callback.status == "open"
    assert dialled(ami) == []


# --- human_only -----------------------------------------------------------------------------

async def test_human_only_choice_reaches_a_person_never_a_recording_or_callback(
    asterisk, ami, hear
):
    from vaihde.messages.model import Recipient
    from vaihde.messages.store import list_callbacks, list_messages
    from vaihde.phrases import phrase

    # Complaints: Bob is on vacation. However the team route treats that, the caller keying
    # 2 (message) and 3 (callback) ends with a person: Bob's phone or the switchboard.
    await set_presence(hear, "bob", "vacation", datetime.now(UTC) + timedelta(days=3))
    automation = {await ready(hear, phrase("en", "message.intro"), "en"),
                  await ready(hear, phrase("en", "callback.taken"), "en"),
                  "vm-intro", "auth-thankyou", "vm-msgsaved"}
    log = Log(asterisk)
    await call(ami, EN, "6" + "w" * 8 + "2" + "w" * 6 + "3", callerid="0407770002")
    await assert_bridged_with(ami, OPERATOR, timeout=30)
    async with hear.db.sessions() as session:
        messages = await list_messages(session, recipient=Recipient("team", "complaints"))
        messages += await list_messages(session, recipient=Recipient("employee", "bob"))
        callbacks = await list_callbacks(session, status=None)
    assert messages == [] and callbacks == []
    assert not automation & set(log.played()), log.played()
    assert set(dialled(ami)) <= {f"Local/noanswer@{PHONES}", OPERATOR}


# --- 0 during the closed-hours announcement -------------------------------------------------

async def test_zero_during_the_closed_announcement_reaches_the_operator_queue(
    asterisk, ami, closed
):
    log = Log(asterisk)
    started = time.monotonic()
    await call(ami, EN, "0", delay=3)  # 3 s into a 30-second announcement
    joined = await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                and e.get("Queue") == QUEUE, 20)
    assert time.monotonic() - started < 15  # not after the announcement: it was cut short
    assert "demo-congrats" in log.played()
    assert re.search(r"VAIHDE_REASON=closed-[a-z_]+-0\b", joined.get("ChanVariable", "")), joined
    await ami.wait_for(lambda e: e.get("Event") == "AgentConnect" and e.get("Queue") == QUEUE
                       and e.get("DestChannel", "").startswith(OPERATOR), 20)
