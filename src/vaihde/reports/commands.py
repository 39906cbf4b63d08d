"""`vaihde report usage --month YYYY-MM [--company ID] [--csv]`: each company's calls, operators'
handling time (talk plus wrap-up) and messages taken in a month of its own time zone, from the
database the service uses (the same figures as GET /api/v1/reports/usage)."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

from vaihde.commands import CommandError, add, command, session, zone


def _month(text: str) -> str:
    from vaihde.reports.usage import BadMonth, parse_month

    try:
        parse_month(text)
    except BadMonth as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cap(args: argparse.Namespace) -> int:
    if args.wrap_up_max is not None:
        return int(args.wrap_up_max)
    from vaihde.company.commands import _settings

    settings = _settings(args)
    return settings.wrap_up_max_s if settings is not None else 120


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@command("report usage")
async def cmd_usage(args: argparse.Namespace) -> int:
    from vaihde.company.apply import current_company
    from vaihde.reports import store
    from vaihde.reports.usage import csv_rows, usage

    default = zone(args.tz)
    cap = _cap(args)
    async with session(args) as s:
        names = await store.companies(s)
        if args.company is not None and args.company not in names:
            raise CommandError(f"--company: no company {args.company!r} (have: "
                               f"{', '.join(sorted(names)) or 'none'})")
        only = [args.company] if args.company else sorted(names)
        zones = {}
        for cid in only:
            config = await current_company(s, cid)
            zones[cid] = config.zone if config is not None else default
        counts = await store.month_counts(s, args.month, zones, default, only)
        talks = [t for t in await store.month_talks(s, args.month, cap) if t.company_id in only]
    rows = usage(args.month, zones, counts=counts, talks=talks, wrap_cap_s=cap,
                 default_zone=default)
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\r\n")
        writer.writerows(csv_rows(rows, names))
        return 0
    print(f"{args.month} (each company's own time zone; wrap-up at most {cap} s)")
    for u in rows:
        unfinished = f", {u.unfinished} talk(s) without an end" if u.unfinished else ""
        print(f"{u.company_id:<20} {names.get(u.company_id, '')[:30]:<30} calls {u.calls:>6}  "
              f"answered by operators {u.operator_calls:>5}  talk {_hms(u.talk_s)}  "
              f"wrap-up {_hms(u.wrap_s)}  handling {_hms(u.handling_s)}  "
              f"messages {u.messages}  callbacks {u.callbacks}{unfinished}")
    if not rows:
        print("no companies")
    return 0


def register(subparsers: Any) -> None:
    """Add `report` to the `vaihde` command's subparsers."""
    report = subparsers.add_parser("report", help="reports: usage per company and month")
    sub = report.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    usage = add(sub, "usage", cmd_usage, "calls, handling time and messages per company in "
                "a month", tz=True)
    usage.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    usage.add_argument("--company", help="only this company (its id)")
    usage.add_argument("--csv", action="store_true", help="CSV with a header row")
    usage.add_argument("--wrap-up-max", type=int, metavar="SECONDS",
                       help="cap on each wrap-up (default: the settings' "
                       "console.wrap_up_max_s, else 120)")
