"""Is the company open at a given moment, by which rule, and when does that change? Pure functions
of the opening hours and an aware datetime; hours are wall-clock time in the company's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vaihde.company.fields import WEEKDAYS
from vaihde.company.schema import OpeningHours, TimeRange, ranges_text

# Searching further than this for the next opening means "not scheduled": a closed year.
HORIZON_DAYS = 400
_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class DayRule:
    """The rule deciding one date: a holiday, an exception, or the weekday's hours."""

    kind: str  # "holiday" | "exception" | "weekly"
    name: str  # the holiday's or exception's name, or the weekday ("mon")
    ranges: tuple[TimeRange, ...]  # empty = closed all day

    def __str__(self) -> str:
        if self.kind == "weekly":
            return f"{self.name} {ranges_text(self.ranges)}"
        if self.kind == "holiday":
            return f"holiday {self.name}"
        return f"exception {self.name}: {ranges_text(self.ranges)}"


@dataclass(frozen=True, slots=True)
class OpenState:
    open: bool
    rule: str  # e.g. "mon 08:00-16:30", "holiday Joulupäivä", "exception Jouluaatto: 08:00-12:00"
    kind: str  # DayRule.kind of the rule that decided
    # In the company's zone, for saying "we open on Monday at 08:00". Python subtracts datetimes
    # of one zone by wall clock: convert to UTC first for a real duration across a DST change.
    closes_at: datetime | None = None  # when open: when it closes (None: not within the horizon)
    opens_at: datetime | None = None  # when closed: the next opening (None: none scheduled)


def day_rule(hours: OpeningHours, day: date) -> DayRule:
    """Holidays win over exceptions (validation keeps them apart anyway), both over weekdays."""
    for holiday in hours.holidays:
        if holiday.first <= day <= holiday.last:
            return DayRule("holiday", holiday.name, ())
    for exception in hours.exceptions:
        if exception.first <= day <= exception.last:
            return DayRule("exception", exception.name or exception.key, exception.ranges)
    weekday = day.weekday()
    return DayRule("weekly", WEEKDAYS[weekday], hours.weekly[weekday])


def _at(
    hours: OpeningHours, at: datetime
) -> tuple[ZoneInfo, date, int, DayRule, TimeRange | None]:
    """Company-local day, seconds into it, its rule, and the range `at` falls in (if open)."""
    if at.tzinfo is None:
        raise ValueError("opening hours need an aware datetime (with a time zone)")
    tz = ZoneInfo(hours.timezone)
    local = at.astimezone(tz)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    rule = day_rule(hours, local.date())
    current = next((r for r in rule.ranges if r.start * 60 <= seconds < r.end * 60), None)
    return tz, local.date(), seconds, rule, current


def open_now(hours: OpeningHours, at: datetime) -> tuple[bool, DayRule]:
    """Just open or closed, and the rule that decided: what routing needs on every call,
    without looking ahead for the next change (is_open does that, for people)."""
    _, _, _, rule, current = _at(hours, at)
    return current is not None, rule


def is_open(hours: OpeningHours, at: datetime) -> OpenState:
    """Open or closed at `at` (any zone, must be aware); ranges include the opening minute and
    exclude the closing one, so with 08:00-16:30 08:00 is open and 16:30 closed."""
    tz, day, seconds, rule, current = _at(hours, at)
    if current is not None:
        closes = _closing(hours, day, current.end, tz)
        return OpenState(True, str(rule), rule.kind, closes_at=closes)
    opens = _next_opening(hours, day, seconds, tz)
    return OpenState(False, str(rule), rule.kind, opens_at=opens)


def _closing(hours: OpeningHours, day: date, end: int, tz: ZoneInfo) -> datetime | None:
    # Ranges that touch (…-24:00 then 00:00-…, or 12:00 then 12:00) are one stretch of opening.
    for _ in range(HORIZON_DAYS):
        if end == _DAY:
            following = day + timedelta(days=1)
            ranges = day_rule(hours, following).ranges
            if not ranges or ranges[0].start != 0:
                return _instant(following, 0, tz)
            day, end = following, ranges[0].end
            continue
        touching = next((r for r in day_rule(hours, day).ranges if r.start == end), None)
        if touching is None:
            return _instant(day, end, tz)
        end = touching.end
    return None


def _next_opening(hours: OpeningHours, day: date, seconds: int, tz: ZoneInfo) -> datetime | None:
    for offset in range(HORIZON_DAYS):
        current = day + timedelta(days=offset)
        for r in day_rule(hours, current).ranges:
            if offset > 0 or r.start * 60 > seconds:
                return _instant(current, r.start, tz)
    return None


def _instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The first moment the wall clock in `tz` shows `minutes` after midnight of `day` or later.

    A wall time skipped by a daylight-saving change (03:30 on the spring day in Helsinki) opens at
    the change itself; a repeated one (autumn) means its first occurrence.
    """
    naive = datetime.combine(day, time()) + timedelta(minutes=minutes)
    for _ in range(24 * 60):
        aware = naive.replace(tzinfo=tz)
        if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
            return aware
        naive += timedelta(minutes=1)
    return naive.replace(tzinfo=tz)
