"""Calendar (iCalendar/ICS) feeds as an availability source: fetch a feed, parse it into busy
periods; `importer` makes the stored entries follow it (rules in vaihde.presence.store).
"""

from vaihde.calendar.fetch import FeedResult, fetch_feed, mask_source
from vaihde.calendar.ics import (
    BusyPeriod,
    CalendarError,
    ParsedCalendar,
    parse_busy,
    parse_calendar,
)

__all__ = [
    "BusyPeriod",
    "CalendarError",
    "FeedResult",
    "ParsedCalendar",
    "fetch_feed",
    "mask_source",
    "parse_busy",
    "parse_calendar",
]
