"""Time per client, decided purely: from stored calls, operators' talks and messages taken, each
company's usage in one month of its own time zone (what a service centre bills by).

Definitions (docs/reports.md says the same to users):
- **calls**: the company's calls that ended (contacts stored from call stories), counted in the
  month in which they started, in the company's time zone.
- **talk**: the time an operator's phone was bridged with the caller (one talk per bridge; a
  call taken twice, e.g. a bounced transfer, counts both).
- **wrap-up**: after a talk, the time until the operator marks it done (the console's
  "done"), or their next talk starts, whichever is first, at most `wrap_cap_s` (a site
  setting); an operator who does neither is charged the cap. A talk whose end was never seen
  (the service was down when it ended) counts as `unfinished`, with no time.
- **handling** = talk + wrap-up; **messages** and **callbacks** taken for the company.
Each talk belongs to the month its start falls in.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# The widest distance of any time zone from UTC: a query window that holds every company's
# month whatever its zone.
ZONE_SLACK = timedelta(hours=15)


class BadMonth(ValueError):
    """A month that is not YYYY-MM."""


def parse_month(text: str) -> tuple[int, int]:
    found = MONTH.match(text)
    if found is None:
        raise BadMonth(f"must be a month as YYYY-MM (e.g. 2027-03), not {text!r}")
    return int(found[1]), int(found[2])


def month_bounds(month: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in `tz`, as UTC."""
    year, mon = parse_month(month)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def query_window(month: str, wrap_cap_s: float) -> tuple[datetime, datetime]:
    """What to read from the database for `month` in any zone: talks after the month's end are
    needed to end the last wrap-ups."""
    start, end = month_bounds(month, UTC)
    return start - ZONE_SLACK, end + ZONE_SLACK + timedelta(seconds=wrap_cap_s)


@dataclass(frozen=True, slots=True)
class Talk:
    company_id: str
    call_id: str
    operator: str  # the operator's phone
    started_at: datetime
    ended_at: datetime | None
    done_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    company_id: str
    month: str
    calls: int = 0
    operator_calls: int = 0  # calls an operator talked in
    talk_s: float = 0.0
    wrap_s: float = 0.0
    messages: int = 0
    callbacks: int = 0
    unfinished: int = 0  # talks whose end was never seen

    @property
    def handling_s(self) -> float:
        return self.talk_s + self.wrap_s


def wrap_ups(talks: Sequence[Talk], cap_s: float) -> dict[int, float]:
    """Each finished talk's wrap-up in seconds, by its index in `talks`."""
    by_operator: dict[str, list[int]] = defaultdict(list)
    for i, talk in enumerate(talks):
        by_operator[talk.operator].append(i)
    out: dict[int, float] = {}
    for indices in by_operator.values():
        indices.sort(key=lambda i: talks[i].started_at)
        for n, i in enumerate(indices):
            talk = talks[i]
            if talk.ended_at is None:
                continue
            limit = talk.ended_at + timedelta(seconds=cap_s)
            ends = [limit]
            if talk.done_at is not None:
                ends.append(max(talk.done_at, talk.ended_at))
            nxt = next((talks[j].started_at for j in indices[n + 1:]
                        if talks[j].started_at >= talk.ended_at), None)
            if nxt is not None:
                ends.append(nxt)
            out[i] = (min(ends) - talk.ended_at).total_seconds()
    return out


COUNTED = ("calls", "messages", "callbacks")


def zone_groups(
    companies: Iterable[str], zones: Mapping[str, tzinfo], default_zone: tzinfo = UTC
) -> dict[tzinfo, list[str]]:
    """Companies by time zone: one query per zone counts a month for all of its companies."""
    out: dict[tzinfo, list[str]] = defaultdict(list)
    for company in companies:
        out[zones.get(company, default_zone)].append(company)
    return dict(out)


def usage(
    month: str,
    zones: Mapping[str, tzinfo],
    *,
    counts: Mapping[str, Mapping[str, int]] | None = None,
    talks: Sequence[Talk] = (),
    wrap_cap_s: float = 120.0,
    default_zone: tzinfo = UTC,
) -> list[Usage]:
    """Each company's usage in `month` of its own zone (`default_zone` for a company not in
    `zones`), in company id order: every company in `zones` or `counts`, and any with a talk
    in the month. `counts`: company → {"calls", "messages", "callbacks"} already counted in the
    month (the store counts them in SQL). `talks` should hold every talk of the month's window
    (query_window), so that wrap-ups end where the operator's next talk began."""
    parse_month(month)
    counts = counts or {}
    bounds: dict[str, tuple[datetime, datetime]] = {}

    def inside(company: str, at: datetime) -> bool:
        if company not in bounds:
            bounds[company] = month_bounds(month, zones.get(company, default_zone))
        start, end = bounds[company]
        return start <= at < end

    fields: dict[str, dict[str, float]] = {c: defaultdict(float) for c in (*zones, *counts)}
    wraps = wrap_ups(talks, wrap_cap_s)
    answered: dict[str, set[str]] = defaultdict(set)
    for i, talk in enumerate(talks):
        if not inside(talk.company_id, talk.started_at):
            continue
        f = fields.setdefault(talk.company_id, defaultdict(float))
        answered[talk.company_id].add(talk.call_id)
        if talk.ended_at is None:
            f["unfinished"] += 1
            continue
        f["talk_s"] += max(0.0, (talk.ended_at - talk.started_at).total_seconds())
        f["wrap_s"] += wraps.get(i, 0.0)
    out = []
    for company, f in sorted(fields.items()):
        counted = counts.get(company, {})
        out.append(Usage(
            company, month, calls=int(counted.get("calls", 0)),
            operator_calls=len(answered[company]), talk_s=f["talk_s"], wrap_s=f["wrap_s"],
            messages=int(counted.get("messages", 0)),
            callbacks=int(counted.get("callbacks", 0)), unfinished=int(f["unfinished"])))
    return out


CSV_COLUMNS = ("month", "company", "company_name", "calls", "operator_calls", "talk_s",
               "wrap_up_s", "handling_s", "handling_hours", "messages", "callbacks",
               "unfinished_talks")


def csv_rows(rows: Iterable[Usage], names: Mapping[str, str]) -> list[list[str]]:
    """The report as CSV rows (header first): whole seconds, hours with two decimals."""
    out = [list(CSV_COLUMNS)]
    for u in rows:
        out.append([u.month, u.company_id, names.get(u.company_id, u.company_id), str(u.calls),
                    str(u.operator_calls), str(round(u.talk_s)), str(round(u.wrap_s)),
                    str(round(u.handling_s)), f"{u.handling_s / 3600:.2f}", str(u.messages),
                    str(u.callbacks), str(u.unfinished)])
    return out
