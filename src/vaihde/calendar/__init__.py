"""Calendar (iCalendar/ICS) feeds as an availability source: fetch a feed, parse it into busy
periods, and plan how the stored entries follow it.
"""

from vaihde.calendar.fetch import FeedResult, fetch_feed, mask_source
from vaihde.calendar.ics import (
    BusyPeriod,
    CalendarError,
    ParsedCalendar,
    parse_busy,
    parse_calendar,
)
from vaihde.calendar.sync import StoredCalendarEntry, SyncPlan, plan_sync

__all__ = [
    "BusyPeriod",
    "CalendarError",
    "FeedResult",
    "ParsedCalendar",
    "StoredCalendarEntry",
    "SyncPlan",
    "fetch_feed",
    "mask_source",
    "parse_busy",
    "parse_calendar",
    "plan_sync",
]
