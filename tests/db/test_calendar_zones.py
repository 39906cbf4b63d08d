"""Calendars of several companies on SQLite and PostgreSQL: an event written without a time
zone (floating time, as many calendar programs export) is read in the zone of its owner's own
company, not in the service's first company's."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from vaihde.calendar.importer import CalendarScheduler
from vaihde.calendar.policy import CalendarPolicy
from vaihde.presence.store import history

DAY = (datetime.now(UTC) + timedelta(days=2)).date()  # inside the sync's window
FLOATING = (  # 13:00-14:00 that day, no zone
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
    f"UID:review@test\r\nDTSTAMP:20250601T000000Z\r\nDTSTART:{DAY:%Y%m%d}T130000\r\n"
    f"DTEND:{DAY:%Y%m%d}T140000\r\nSUMMARY:Budget review\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
ZONES = {"anna": "Europe/Helsinki", "matti": "America/New_York"}


async def test_a_feed_s_floating_times_are_in_its_owner_s_company_s_zone(people, tmp_path: Path):
    (tmp_path / "anna.ics").write_text(FLOATING)
    (tmp_path / "matti.ics").write_text(FLOATING)
    scheduler = CalendarScheduler(
        people.sessions, lambda: {"anna": "anna.ics", "matti": "matti.ics"},
        lambda eid: ZONES[eid], CalendarPolicy(files_dir=str(tmp_path)))
    results = await scheduler.sync_all()
    assert [(r.employee_id, r.created, r.error) for r in results] == [
        ("anna", 1, None), ("matti", 1, None)]
    async with people.sessions() as session:
        (anna,) = await history(session, "anna")
        (matti,) = await history(session, "matti")
    # 13:00 in Helsinki and 13:00 in New York: seven hours apart (six for a week or so a year).
    for entry, zone in ((anna, "Europe/Helsinki"), (matti, "America/New_York")):
        assert entry.starts_at == datetime.combine(DAY, time(13), ZoneInfo(zone))
    assert matti.starts_at - anna.starts_at >= timedelta(hours=6)
