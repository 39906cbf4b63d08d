"""Calendar (iCalendar/ICS) feeds as an availability source: fetch a feed, parse it into busy
periods; `importer` makes the stored entries follow it (rules in vaihde.presence.store);
`policy` says which sources may be read at all.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the settings and the company loader need only `policy`, and should not
# pay for aiohttp and icalendar (the company checker starts a process per check).
_WHERE = {
    "FeedResult": "fetch",
    "fetch_feed": "fetch",
    "mask_source": "fetch",
    "BusyPeriod": "ics",
    "CalendarError": "ics",
    "ParsedCalendar": "ics",
    "parse_busy": "ics",
    "parse_calendar": "ics",
    "CalendarPolicy": "policy",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
