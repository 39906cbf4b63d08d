"""Availability from the sources nobody types: the phone's device state from AMI, and the
employee's calendar feed, both seen by the running service."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from company import COMPANY, PHONES
from test_first_call import assert_bridged_with, call

from vaihde.calendar.policy import CalendarPolicy
from vaihde.company import company_from_document, parse_company
from vaihde.company.apply import apply_company


async def eventually(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_answered_call_shows_employee_on_a_call(asterisk, ami, vaihde):
    assert vaihde.presence.lookup("anna").on_call is False
    await call(ami, "1")
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    await eventually(lambda: vaihde.presence.lookup("anna").on_call)
    assert vaihde.presence.lookup("anna").state == "on_call"
    asterisk.rx("channel request hangup all")
    await eventually(lambda: not vaihde.presence.lookup("anna").on_call)
    assert vaihde.presence.lookup("anna").state == "available"


def ics(start: datetime, end: datetime, uid: str = "m1@test") -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{start.strftime(fmt)}\r\nDTSTART:{start.strftime(fmt)}\r\n"
        f"DTEND:{end.strftime(fmt)}\r\nSUMMARY:Budget review\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def calendar_file(vaihde, name: str = "anna.ics"):
    """A file in the service's calendar.files_dir (by default calendars/ beside its company
    file), where an applied company may name calendars."""
    directory = Path(vaihde.settings.calendar.files_dir)
    directory.mkdir(exist_ok=True)
    return directory / name


def with_calendar(source: str) -> str:
    return COMPANY.replace(
        "anna: {name: Anna Virtanen,", f"anna: {{name: Anna Virtanen, calendar: '{source}',"
    )


async def test_calendar_meeting_becomes_availability_and_removal_clears_it(vaihde):
    now = datetime.now(UTC).replace(microsecond=0)
    feed = calendar_file(vaihde)
    feed.write_text(ics(now - timedelta(minutes=10), now + timedelta(minutes=50)))
    company = parse_company(with_calendar("anna.ics"), calendars=vaihde.settings.calendar)
    await apply_company(vaihde.db.sessions, company, applied_by="test",
                        source_name="company.yaml")
    await vaihde.live.check_for_changes()
    (result,) = await vaihde.calendars.sync_all()
    assert result.created == 1
    got = vaihde.presence.lookup("anna")
    assert got.state == "meeting" and got.source == "calendar"
    assert got.until == now + timedelta(minutes=50)
    assert "Budget review" in got.internal_note and got.note_for_callers == ""

    feed.write_text(ics(now + timedelta(days=1), now + timedelta(days=1, hours=1), uid="m2@x"))
    (result,) = await vaihde.calendars.sync_all()
    assert result.cancelled == 1 and result.created == 1
    assert vaihde.presence.lookup("anna").state == "available"


async def test_broken_feed_keeps_previous_entries(vaihde):
    now = datetime.now(UTC).replace(microsecond=0)
    feed = calendar_file(vaihde)
    feed.write_text(ics(now - timedelta(minutes=5), now + timedelta(minutes=30)))
    company = parse_company(with_calendar(str(feed)), calendars=vaihde.settings.calendar)
    await apply_company(vaihde.db.sessions, company, applied_by="test",
                        source_name="company.yaml")
    await vaihde.live.check_for_changes()
    await vaihde.calendars.sync_all()
    feed.write_text("<html>Please log in</html>")
    (result,) = await vaihde.calendars.sync_all()
    assert result.error and "anna.ics" in result.error
    assert vaihde.presence.lookup("anna").state == "meeting"


async def test_a_stored_calendar_outside_the_allowed_is_not_read(vaihde, tmp_path):
    """Defence in depth: a company stored before the rules (or by a mistake in them) names a
    file outside calendar.files_dir, and a link inside it points out: neither is read."""
    now = datetime.now(UTC).replace(microsecond=0)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.ics"  # a calendar even: only where it is matters
    secret.write_text(ics(now - timedelta(minutes=5), now + timedelta(minutes=30)))
    calendar_file(vaihde, "link.ics").symlink_to(secret)
    lenient = CalendarPolicy(files_dir=str(tmp_path))  # not the service's rules
    for source in (str(secret), "link.ics", "../elsewhere/secret.ics"):
        if ".." in source:  # no policy lets that through: store it as an old document would be
            company = company_from_document(_with_source(source))
        else:
            company = parse_company(with_calendar(source), calendars=lenient)
        await apply_company(vaihde.db.sessions, company, applied_by="test",
                            source_name="company.yaml")
        await vaihde.live.check_for_changes()
        (result,) = await vaihde.calendars.sync_all()
        assert result.error and ("not in" in result.error or "'..'" in result.error), result
        assert result.created == 0
        assert vaihde.presence.lookup("anna").state == "available"


def _with_source(source: str) -> dict:
    doc = parse_company(with_calendar("https://calendar.example.fi/x.ics")).to_document()
    doc["employees"]["anna"]["calendar"] = source
    return doc


async def test_caller_hears_why_an_absent_employee_is_not_rung(asterisk, ami, vaihde):
    from pathlib import Path

    from vaihde.presence.store import set_availability

    until = datetime.now(UTC) + timedelta(hours=2)
    async with vaihde.db.sessions() as session, session.begin():
        await set_availability(session, "anna", "meeting", source="operator",
                               set_by="test", until=until)
    await vaihde.presence.invalidate("anna")
    await call(ami, "1")
    # Not rung: after the spoken explanation and no further key, the switchboard answers.
    await assert_bridged_with(ami, f"Local/operator@{PHONES}", timeout=20)
    from test_first_call import phones_dialled

    assert phones_dialled(ami) == [f"Local/operator@{PHONES}"]
    # What the caller heard was synthesized speech from the instance's sounds directory.
    log = await asyncio.to_thread(Path(asterisk.full_log_path).read_text, errors="replace")
    assert f"Playing '{asterisk.sounds_dir_in_asterisk}/vaihde-en-" in log


async def test_caller_leaves_a_message_that_is_stored_with_its_recording(asterisk, ami, vaihde):
    from pathlib import Path


    # The caller chooses "leave a message for Anna", talks after the tone, and hangs up.
    await call(ami, "5", say="hello-world", say_delay=6, hold=3)
    (message,) = await messages_for(vaihde, "anna")
    assert message.caller_number == "0401234567" and message.taken_by == "caller"
    assert "menu_option" in message.path
    recording = Path(message.recording_path)

    def size() -> int:
        return recording.stat().st_size if recording.exists() else 0

    for _ in range(50):
        if size() > 44:
            break
        await asyncio.sleep(0.1)
    assert size() > 44  # more than a WAV header: the caller's audio
    assert phones_dialled_none(ami)


async def messages_for(service, employee: str, timeout: float = 30) -> list:
    """The messages stored for `employee`, once there is one (or [] after `timeout`)."""
    from vaihde.messages.model import Recipient
    from vaihde.messages.store import list_messages

    messages: list = []
    for _ in range(int(timeout * 10)):
        async with service.db.sessions() as session:
            messages = await list_messages(session, recipient=Recipient("employee", employee))
        if messages:
            break
        await asyncio.sleep(0.1)
    return messages


def phones_dialled_none(ami) -> bool:
    from test_first_call import phones_dialled

    return phones_dialled(ami) == []


async def test_known_caller_who_agreed_is_greeted_by_first_name(asterisk, ami, vaihde):
    from pathlib import Path

    from vaihde.directory.store import upsert_caller

    async with vaihde.db.sessions() as session, session.begin():
        await upsert_caller(session, "0405556666", name="Maija Meikäläinen", greet_by_name=True)
        await upsert_caller(session, "0407778888", name="Pekka Puup", greet_by_name=False)
    await vaihde.live.check_for_changes()
    assert vaihde.greetings == {"0405556666": "Maija"}
    await call(ami, "1", callerid="0407778888", delay=3)
    await assert_bridged_with(ami, f"Local/anna@{PHONES}", timeout=15)
    asterisk.rx("channel request hangup all")
    mark = ami.mark()
    await call(ami, "1", callerid="0405556666", delay=3)
    await ami.wait_for(
        lambda e: e.get("Event") == "BridgeEnter"
        and e.get("Channel", "").startswith(f"Local/anna@{PHONES}"), 15, since=mark,
    )
    hello = await vaihde.prompts.text("Hello Maija", "en")
    assert hello is not None
    log = await asyncio.to_thread(Path(asterisk.full_log_path).read_text, errors="replace")
    assert f"Playing '{hello}." in log
    # Pekka, who did not agree, heard no name (had he, this cached file would be in the log).
    pekka = await vaihde.prompts.text("Hello Pekka", "en")
    assert pekka is not None and f"Playing '{pekka}." not in log
