"""Phone feature codes through real Asterisk: an employee dials *71 from their own phone, hears a
confirmation, and the presence database and cache say "meeting" with source phone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vaihde.presence.store import history


async def dial_code(ami, code: str, context: str = "vaihde-test-anna-phone") -> None:
    response = await ami.action(
        {
            "Action": "Originate",
            "Channel": f"Local/{code}@{context}/n",
            "Application": "Wait",
            "Data": "10",
            "Async": "true",
        }
    )
    assert response.get("Response") == "Success", response


async def played(asterisk, channel_part: str, sound: str, timeout: float = 10.0) -> None:
    """Asterisk's own log says it played `sound` on the channel that dialled the code."""
    log = Path(asterisk.full_log_path)
    for _ in range(int(timeout / 0.1)):
        text = await asyncio.to_thread(log.read_text, errors="replace")
        for line in text.splitlines():
            if f"Playing '{sound}'" in line and channel_part in line:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"Asterisk did not play {sound} for {channel_part}")


async def wait_for_state(vaihde, employee: str, state: str, timeout: float = 10.0):
    for _ in range(int(timeout / 0.05)):
        availability = vaihde.presence.lookup(employee)
        if availability.state == state:
            return availability
        await asyncio.sleep(0.05)
    raise AssertionError(f"{employee} never became {state}: {vaihde.presence.lookup(employee)}")


async def test_meeting_code_sets_availability(asterisk, ami, vaihde):
    started = datetime.now(UTC)
    await dial_code(ami, "*7145")
    got = await wait_for_state(vaihde, "anna", "meeting")
    assert got.source == "phone"
    assert timedelta(minutes=44) < got.until - started < timedelta(minutes=46)
    async with vaihde.db.sessions() as session:
        (entry, *_) = await history(session, "anna", limit=1)
    assert entry.state == "meeting" and entry.set_by.startswith("phone Local/anna@")
    await played(asterisk, "*7145", "activated.gsm")

    await dial_code(ami, "*70")
    back = await wait_for_state(vaihde, "anna", "available")
    assert back.source == "phone"
    await played(asterisk, "*70@", "de-activated.gsm")


async def test_unknown_phone_changes_nothing(asterisk, ami, vaihde):
    # vaihde-features reached without a device that belongs to anyone.
    await dial_code(ami, "*7130", context="vaihde-features")
    await played(asterisk, "*7130@vaihde-features", "im-sorry.gsm")
    assert vaihde.presence.lookup("anna").state == "available"
    async with vaihde.db.sessions() as session:
        assert await history(session, "anna", limit=5) == []


async def test_invalid_code_changes_nothing(asterisk, ami, vaihde):
    await dial_code(ami, "*733002")  # 30 February
    await played(asterisk, "*733002@", "pbx-invalid.gsm")
    async with vaihde.db.sessions() as session:
        assert await history(session, "anna", limit=5) == []
