"""Who is on call on a rota at an instant: its dated exceptions first, else its weekly shift,
in the company's time zone (wall-clock shifts, so a daylight-saving change makes a night one
hour shorter or longer, never moves it). Pure: the rota, the zone and the instant come in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from vaihde.company.schema import CompanyConfig, Rota, Shift

DAY = 1440  # minutes


@dataclass(frozen=True, slots=True)
class OnCall:
    """The people on call (in the order they are rung: the first is asked first), from what
    (`exception`, `weekly`, or `none`), and until when that holds (None: no change ahead)."""

    rota: str
    people: tuple[str, ...]
    source: str  # exception | weekly | none
    until: datetime | None
    note: str = ""  # an exception's note for operators

    @property
    def nobody(self) -> bool:
        return not self.people


def _local(zone: ZoneInfo, day: datetime, minutes: int) -> datetime:
    """Wall-clock `minutes` after midnight of the local date `day`, as an aware instant."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    naive = midnight.replace(tzinfo=None) + timedelta(minutes=minutes)
    return naive.replace(tzinfo=zone)


def shift_at(rota: Rota, zone: ZoneInfo, at: datetime) -> tuple[Shift, datetime] | None:
    """The weekly shift holding instant `at`, and the instant it ends."""
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    weekday = local.weekday()
    for shift in rota.weekly:
        start, end = shift.hours
        if not shift.overnight:
            if weekday in shift.days and start <= minute < end:
                return shift, _local(zone, local, end)
            continue
        if weekday in shift.days and minute >= start:  # the evening it started
            return shift, _local(zone, local, DAY + end)
        if (weekday - 1) % 7 in shift.days and minute < end:  # the morning after
            return shift, _local(zone, local, end)
    return None


def on_call(rota: Rota, zone: ZoneInfo, at: datetime) -> OnCall:
    """Who is on call on `rota` at `at` (aware). An exception covering `at` decides alone (its
    people, or nobody); else the weekly shift that holds `at`; else nobody."""
    for exception in rota.exceptions:
        if exception.start <= at < exception.end:
            return OnCall(rota.id, exception.people, "exception", exception.end, exception.note)
    # The next exception ends whatever the weekly pattern says now.
    upcoming = next((e.start for e in rota.exceptions if e.start > at), None)
    found = shift_at(rota, zone, at)
    if found is None:
        until = _next_start(rota, zone, at)
        if upcoming is not None and (until is None or upcoming < until):
            until = upcoming
        return OnCall(rota.id, (), "none", until)
    shift, ends = found
    if upcoming is not None and upcoming < ends:
        ends = upcoming
    return OnCall(rota.id, shift.people, "weekly", ends)


def _next_start(rota: Rota, zone: ZoneInfo, at: datetime) -> datetime | None:
    """When the next weekly shift starts after `at` (within a week)."""
    local = at.astimezone(zone)
    best: datetime | None = None
    for ahead in range(8):
        day = local + timedelta(days=ahead)
        for shift in rota.weekly:
            if day.weekday() in shift.days:
                start = _local(zone, day, shift.hours[0])
                if start > at and (best is None or start < best):
                    best = start
        if best is not None:
            return best
    return None


def on_call_now(company: CompanyConfig, rota_id: str, at: datetime) -> OnCall:
    """`on_call` for one of the company's rotas, in the company's zone."""
    return on_call(company.oncall[rota_id], company.zone, at)
