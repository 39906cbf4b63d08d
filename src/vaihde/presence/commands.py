"""`vaihde presence …` (set, cancel, show, history) and `vaihde db …` (upgrade, current).

Times on the command line are local (`--tz`, default Europe/Helsinki) and stored as UTC. Every
error is one line on stderr and exit status 2. Heavy imports happen inside the commands so that
`vaihde --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vaihde.errors import VaihdeError

DEFAULT_TZ = "Europe/Helsinki"
_RELATIVE = re.compile(r"^\+(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?:in)?)?$")
_CLOCK = re.compile(r"^(?P<h>\d{1,2})[:.](?P<m>\d{2})$")
TIME_HELP = "HH:MM, +90m, +2h, +1d, 2025-06-01 or 2025-06-01T14:00 (local time)"


class CommandError(VaihdeError):
    """One line for the user; exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


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


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"--tz: unknown time zone {name!r} (e.g. Europe/Helsinki)") from None


def _local(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "-"


async def _open(url: str | None) -> Any:
    """The database, checked to be migrated to what this vaihde expects."""
    from vaihde.db import migrate
    from vaihde.db.engine import display_url, open_database, sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        # Opening would create an empty file: say what is missing instead.
        raise CommandError(f"no database at {path}: run `vaihde db upgrade` (or give --db URL)")
    db = open_database(url, create_dir=False)
    try:
        have = await migrate.current_async(db.engine)
    except BaseException:
        await db.close()
        raise
    want = migrate.head()
    if have != want:
        await db.close()
        shown = display_url(db.url)
        if have is None:
            raise CommandError(f"{shown} has no vaihde tables yet: run `vaihde db upgrade`")
        raise CommandError(f"{shown} is at migration {have}, not {want}: run `vaihde db upgrade`")
    return db


def _run(prefix: str, coro: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command: every error (a VaihdeError of any kind, the database's) is one line on
    stderr and exit status 2. The one place where commands turn errors into words."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from vaihde.db.engine import DatabaseUrlError

    try:
        return asyncio.run(coro())
    except VaihdeError as exc:
        message = exc.line()
    except DatabaseUrlError as exc:
        message = str(exc)
    except DBAPIError as exc:
        message = f"database error: {str(exc.orig).splitlines()[0] if exc.orig else exc}"
    except (SQLAlchemyError, OSError) as exc:
        message = f"cannot use the database: {str(exc).splitlines()[0]}"
    print(f"vaihde: {prefix}: {message}", file=sys.stderr)
    return 2


# --- presence ------------------------------------------------------------------------------


def cmd_set(args: argparse.Namespace) -> int:
    async def go() -> int:
        from datetime import UTC

        from vaihde.presence import store
        from vaihde.presence.model import describe_entry, parse_state

        tz = _zone(args.tz)
        now = datetime.now(UTC)
        parse_state(args.state)  # a typo is reported before the database is opened
        starts = parse_when(args.start, field="from", now=now, tz=tz) if args.start else None
        until = (
            parse_when(args.until, field="until", now=now, tz=tz, base=starts, roll_forward=True)
            if args.until
            else None
        )
        db = await _open(args.db)
        try:
            async with db.sessions.begin() as session:
                entry = await store.set_availability(
                    session,
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
            async with db.sessions() as session:
                now_av = await store.get_availability(session, args.employee, tz=tz)
        finally:
            await db.close()
        print(f"{args.employee}: {describe_entry(entry, tz)}")
        print(f"now: {now_av.state} — {now_av.explanation}")
        return 0

    return _run("presence set", go)


def cmd_cancel(args: argparse.Namespace) -> int:
    async def go() -> int:
        from vaihde.presence import store
        from vaihde.presence.model import describe_entry

        tz = _zone(args.tz)
        db = await _open(args.db)
        try:
            async with db.sessions.begin() as session:
                entry = await store.cancel_entry(session, args.entry, actor=args.by)
        finally:
            await db.close()
        print(f"{entry.employee_id}: cancelled {describe_entry(entry, tz)}")
        return 0

    return _run("presence cancel", go)


def cmd_show(args: argparse.Namespace) -> int:
    async def go() -> int:
        from datetime import UTC

        from vaihde.directory import store as directory
        from vaihde.presence import store
        from vaihde.presence.model import describe_entry, resolve

        tz = _zone(args.tz)
        now = datetime.now(UTC)
        db = await _open(args.db)
        try:
            async with db.sessions() as session:
                if args.employee is None:
                    employees = await directory.list_employees(session)
                    by_employee: dict[str, list[Any]] = {}
                    for entry in await store.active_entries(session, since=now):
                        by_employee.setdefault(entry.employee_id, []).append(entry)
                    for e in employees:
                        av = resolve(e.id, by_employee.get(e.id, ()), now=now, tz=tz)
                        until = f" until {_local(av.until, tz)}" if av.until else ""
                        note = f" — {av.note_for_callers}" if av.note_for_callers else ""
                        source = f" ({av.source})" if av.source else ""
                        print(f"{e.id:<16} {e.name:<28} {av.state}{until}{source}{note}")
                    if not employees:
                        print("no employees in the directory")
                    return 0
                employee = await directory.get_employee(session, args.employee)
                if employee is None:
                    raise CommandError(f"no employee {args.employee!r}")
                av = await store.get_availability(session, args.employee, now=now, tz=tz)
                upcoming = await store.entries_for(
                    session, args.employee, start=now, end=now + timedelta(days=60)
                )
        finally:
            await db.close()
        inactive = "" if employee.active else " (no longer in the directory)"
        print(f"{employee.id}: {employee.name}{inactive}")
        print(
            f"  state:        {av.state}" + (f" until {_local(av.until, tz)}" if av.until else "")
        )
        print(f"  why:          {av.explanation}")
        if av.note_for_callers:
            print(f"  for callers:  {av.note_for_callers}")
        if av.internal_note:
            print(f"  internal:     {av.internal_note}")
        if av.next_change:
            print(f"  next change:  {_local(av.next_change, tz)}")
        if upcoming:
            print("  entries (now and next 60 days):")
            for entry in upcoming:
                print(f"    {describe_entry(entry, tz)}")
        return 0

    return _run("presence show", go)


def cmd_history(args: argparse.Namespace) -> int:
    async def go() -> int:
        from vaihde.directory import store as directory
        from vaihde.presence import store
        from vaihde.presence.model import describe_entry

        tz = _zone(args.tz)
        db = await _open(args.db)
        try:
            async with db.sessions() as session:
                if await directory.get_employee(session, args.employee) is None:
                    raise CommandError(f"no employee {args.employee!r}")
                entries = await store.history(session, args.employee, limit=args.limit)
                audit = await store.audit_trail(session, args.employee, limit=args.limit)
        finally:
            await db.close()
        if not entries:
            print(f"{args.employee}: no entries")
        for e in entries:
            line = f"{_local(e.created_at, tz)}  {describe_entry(e, tz)}"
            if e.cancelled_at:
                line += f"  [cancelled {_local(e.cancelled_at, tz)} by {e.cancelled_by}]"
            notes = " | ".join(n for n in (e.note_for_callers, e.internal_note) if n)
            print(line + (f"  “{notes}”" if notes else ""))
        if args.audit:
            print("audit:")
            for a in audit:
                print(f"  {_local(a.at, tz)}  #{a.entry_id} {a.action} by {a.actor} {a.details}")
        return 0

    return _run("presence history", go)


# --- db ------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    async def go() -> int:
        from vaihde.db import migrate
        from vaihde.db.engine import display_url, open_database

        db = open_database(args.db)
        try:
            before = await migrate.current_async(db.engine)
            await migrate.upgrade_async(db.engine)
            after = await migrate.current_async(db.engine)
        finally:
            await db.close()
        shown = display_url(db.url)
        if before == after:
            print(f"{shown}: already at {after} (newest)")
        else:
            print(f"{shown}: upgraded {before or 'empty database'} → {after}")
        return 0

    return _run("db upgrade", go)


def cmd_db_current(args: argparse.Namespace) -> int:
    async def go() -> int:
        from vaihde.db import migrate
        from vaihde.db.engine import display_url, open_database

        db = open_database(args.db)
        try:
            have = await migrate.current_async(db.engine)
        finally:
            await db.close()
        want = migrate.head()
        state = "up to date" if have == want else f"needs `vaihde db upgrade` to {want}"
        print(f"{display_url(db.url)}: {have or 'empty'} ({state})")
        return 0 if have == want else 1

    return _run("db current", go)


def _common(parser: argparse.ArgumentParser, *, tz: bool = True) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (default: the --settings file's, else $VAIHDE_DB_URL, else "
        "sqlite+aiosqlite:///var/vaihde.db)",
    )
    parser.add_argument(
        "--settings", metavar="FILE",
        help="service settings whose database to use (default: $VAIHDE_CONFIG, else "
        "config/demo.yaml when run in the vaihde directory)",
    )
    if tz:
        parser.add_argument(
            "--tz", default=DEFAULT_TZ, help=f"time zone of times given and shown ({DEFAULT_TZ})"
        )


def register(subparsers: Any) -> None:
    """Add `presence` and `db` to the `vaihde` command's subparsers."""
    presence = subparsers.add_parser("presence", help="employees' availability")
    sub = presence.add_subparsers(dest="presence_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "set",
        help="set an employee's availability",
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
    _common(p)
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("cancel", help="cancel an entry (it stays in history)")
    p.add_argument("entry", type=int, help="entry number, as shown by show or history")
    p.add_argument("--by", default=getpass.getuser())
    _common(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("show", help="availability of everyone, or one employee in detail")
    p.add_argument("employee", nargs="?")
    _common(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("history", help="an employee's entries, newest first")
    p.add_argument("employee")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--audit", action="store_true", help="also show the audit trail")
    _common(p)
    p.set_defaults(func=cmd_history)

    db = subparsers.add_parser("db", help="the presence database")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_sub.add_parser("upgrade", help="create or migrate the database's tables")
    _common(p, tz=False)
    p.set_defaults(func=cmd_db_upgrade)
    p = db_sub.add_parser("current", help="show the database's migration (exit 1 if behind)")
    _common(p, tz=False)
    p.set_defaults(func=cmd_db_current)
