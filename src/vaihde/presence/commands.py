"""`vaihde presence …` (set, cancel, show, history) and `vaihde db …` (upgrade, current).

Times on the command line are local (`--tz`, default Europe/Helsinki) and stored as UTC. Every
error is one line on stderr and exit status 2 (vaihde.commands).
"""

from __future__ import annotations

import argparse
import getpass
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from vaihde.commands import CommandError, add, command, database, local, session, zone

_RELATIVE = re.compile(r"^\+(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?:in)?)?$")
_CLOCK = re.compile(r"^(?P<h>\d{1,2})[:.](?P<m>\d{2})$")
TIME_HELP = "HH:MM, +90m, +2h, +1d, 2025-06-01 or 2025-06-01T14:00 (local time)"


def parse_when(
    text: str,
    *,
    field: str,
    now: datetime,
    tz: tzinfo,
    base: datetime | None = None,
    roll_forward: bool = False,
) -> datetime:
    """A time from the command line, as an aware datetime.

    `+90m`/`+2h`/`+1d`/`+1h30m` count from `base` (default `now`); `HH:MM` is today in `tz` (the
    next such time with `roll_forward`, so `--until 09:00` in the evening means tomorrow
    morning); a date alone is its midnight; ISO date-times without an offset are in `tz`.
    """
    from vaihde.presence.model import PresenceError

    value = text.strip()
    rel = _RELATIVE.match(value)
    if rel and any(rel.groupdict().values()):
        delta = timedelta(
            days=int(rel["d"] or 0), hours=int(rel["h"] or 0), minutes=int(rel["m"] or 0)
        )
        return (base or now) + delta
    clock = _CLOCK.match(value)
    if clock:
        hour, minute = int(clock["h"]), int(clock["m"])
        if hour > 23 or minute > 59:
            raise PresenceError(field, f"not a time of day: {text!r}")
        local_now = now.astimezone(tz)
        at = datetime.combine(local_now.date(), time(hour, minute), tzinfo=tz)
        if roll_forward and at <= now:
            at = datetime.combine(local_now.date() + timedelta(days=1), time(hour, minute), tz)
        return at
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0, 0), tzinfo=tz)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PresenceError(field, f"not a time: {text!r} (use {TIME_HELP})") from None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


# --- presence ------------------------------------------------------------------------------


@command("presence set")
async def cmd_set(args: argparse.Namespace) -> int:
    from vaihde.presence import store
    from vaihde.presence.model import describe_entry, parse_state

    tz = zone(args.tz)
    now = datetime.now(UTC)
    parse_state(args.state)  # a typo is reported before the database is opened
    starts = parse_when(args.start, field="from", now=now, tz=tz) if args.start else None
    until = (
        parse_when(args.until, field="until", now=now, tz=tz, base=starts, roll_forward=True)
        if args.until
        else None
    )
    async with database(args.db) as db:
        async with db.sessions.begin() as s:
            entry = await store.set_availability(
                s,
                args.employee,
                args.state,
                source=args.source,
                set_by=args.by,
                starts_at=starts,
                until=until,
                note_for_callers=args.note,
                internal_note=args.internal_note,
                now=now,
            )
        async with db.sessions() as s:
            now_av = await store.get_availability(s, args.employee, tz=tz)
    print(f"{args.employee}: {describe_entry(entry, tz)}")
    print(f"now: {now_av.state} — {now_av.explanation}")
    return 0


@command("presence cancel")
async def cmd_cancel(args: argparse.Namespace) -> int:
    from vaihde.presence import store
    from vaihde.presence.model import describe_entry

    tz = zone(args.tz)
    async with session(args, write=True) as s:
        entry = await store.cancel_entry(s, args.entry, actor=args.by)
    print(f"{entry.employee_id}: cancelled {describe_entry(entry, tz)}")
    return 0


@command("presence show")
async def cmd_show(args: argparse.Namespace) -> int:
    from vaihde.directory import store as directory
    from vaihde.presence import store
    from vaihde.presence.model import describe_entry, resolve

    tz = zone(args.tz)
    now = datetime.now(UTC)
    async with session(args) as s:
        if args.employee is None:
            employees = await directory.list_employees(s)
            by_employee: dict[str, list[Any]] = {}
            for entry in await store.active_entries(s, since=now):
                by_employee.setdefault(entry.employee_id, []).append(entry)
            for e in employees:
                av = resolve(e.id, by_employee.get(e.id, ()), now=now, tz=tz)
                until = f" until {local(av.until, tz)}" if av.until else ""
                note = f" — {av.note_for_callers}" if av.note_for_callers else ""
                source = f" ({av.source})" if av.source else ""
                print(f"{e.id:<16} {e.name:<28} {av.state}{until}{source}{note}")
            if not employees:
                print("no employees in the directory")
            return 0
        employee = await directory.get_employee(s, args.employee)
        if employee is None:
            raise CommandError(f"no employee {args.employee!r}")
        av = await store.get_availability(s, args.employee, now=now, tz=tz)
        upcoming = await store.entries_for(
            s, args.employee, start=now, end=now + timedelta(days=60)
        )
    inactive = "" if employee.active else " (no longer in the directory)"
    print(f"{employee.id}: {employee.name}{inactive}")
    print(f"  state:        {av.state}" + (f" until {local(av.until, tz)}" if av.until else ""))
    print(f"  why:          {av.explanation}")
    if av.note_for_callers:
        print(f"  for callers:  {av.note_for_callers}")
    if av.internal_note:
        print(f"  internal:     {av.internal_note}")
    if av.next_change:
        print(f"  next change:  {local(av.next_change, tz)}")
    if upcoming:
        print("  entries (now and next 60 days):")
        for entry in upcoming:
            print(f"    {describe_entry(entry, tz)}")
    return 0


@command("presence history")
async def cmd_history(args: argparse.Namespace) -> int:
    from vaihde.directory import store as directory
    from vaihde.presence import store
    from vaihde.presence.model import describe_entry

    tz = zone(args.tz)
    async with session(args) as s:
        if await directory.get_employee(s, args.employee) is None:
            raise CommandError(f"no employee {args.employee!r}")
        entries = await store.history(s, args.employee, limit=args.limit)
        audit = await store.audit_trail(s, args.employee, limit=args.limit)
    if not entries:
        print(f"{args.employee}: no entries")
    for e in entries:
        line = f"{local(e.created_at, tz)}  {describe_entry(e, tz)}"
        if e.cancelled_at:
            line += f"  [cancelled {local(e.cancelled_at, tz)} by {e.cancelled_by}]"
        notes = " | ".join(n for n in (e.note_for_callers, e.internal_note) if n)
        print(line + (f"  “{notes}”" if notes else ""))
    if args.audit:
        print("audit:")
        for a in audit:
            print(f"  {local(a.at, tz)}  #{a.entry_id} {a.action} by {a.actor} {a.details}")
    return 0


# --- db ------------------------------------------------------------------------------------


@command("db upgrade")
async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from vaihde.db import migrate
    from vaihde.db.engine import display_url

    async with database(args.db, migrated=False) as db:
        before = await migrate.current_async(db.engine)
        await migrate.upgrade_async(db.engine)
        after = await migrate.current_async(db.engine)
    shown = display_url(db.url)
    if before == after:
        print(f"{shown}: already at {after} (newest)")
    else:
        print(f"{shown}: upgraded {before or 'empty database'} → {after}")
    return 0


@command("db current")
async def cmd_db_current(args: argparse.Namespace) -> int:
    from vaihde.db import migrate
    from vaihde.db.engine import display_url

    async with database(args.db, migrated=False) as db:
        have = await migrate.current_async(db.engine)
    want = migrate.head()
    state = "up to date" if have == want else f"needs `vaihde db upgrade` to {want}"
    print(f"{display_url(db.url)}: {have or 'empty'} ({state})")
    return 0 if have == want else 1


def register(subparsers: Any) -> None:
    """Add `presence` and `db` to the `vaihde` command's subparsers."""
    presence = subparsers.add_parser("presence", help="employees' availability")
    sub = presence.add_subparsers(dest="presence_command", required=True, metavar="ACTION")

    p = add(
        sub, "set", cmd_set, "set an employee's availability",
        description="Without --from this is the employee's status from now on: it replaces "
        "their earlier open-ended status. With --from it is scheduled.",
    )
    p.add_argument("employee")
    p.add_argument(
        "state",
        help="available, busy, meeting, video_conference, away, vacation, sick, off_work, on_call",
    )
    p.add_argument("--until", help=f"when it ends: {TIME_HELP}; +… counts from --from")
    p.add_argument("--from", dest="start", help=f"when it starts (default now): {TIME_HELP}")
    p.add_argument("--note", default="", help="said or shown to callers (at most 200 characters)")
    p.add_argument("--internal-note", default="", help="for operators only")
    p.add_argument("--by", default=getpass.getuser(), help="who sets it (default: your username)")
    p.add_argument(
        "--source",
        default="manual",
        choices=["manual", "operator", "phone"],
        help="manual (the employee) or operator (on their behalf)",
    )

    p = add(sub, "cancel", cmd_cancel, "cancel an entry (it stays in history)")
    p.add_argument("entry", type=int, help="entry number, as shown by show or history")
    p.add_argument("--by", default=getpass.getuser())

    p = add(sub, "show", cmd_show, "availability of everyone, or one employee in detail")
    p.add_argument("employee", nargs="?")

    p = add(sub, "history", cmd_history, "an employee's entries, newest first")
    p.add_argument("employee")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--audit", action="store_true", help="also show the audit trail")

    db = subparsers.add_parser("db", help="the presence database")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    add(db_sub, "upgrade", cmd_db_upgrade, "create or migrate the database's tables", tz=False)
    add(db_sub, "current", cmd_db_current, "show the database's migration (exit 1 if behind)",
        tz=False)
