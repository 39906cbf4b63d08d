"""`vaihde messages list` and `vaihde messages callbacks`: what the answering service took, and how
its delivery is going, from the command line (the same store the API and the console read).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from vaihde.presence.commands import CommandError, _common, _local, _open, _run, _zone


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, not {text!r}")
    return int(text)


def _recipient(args: argparse.Namespace) -> Any:
    from vaihde.config.patterns import ID
    from vaihde.messages.model import Recipient

    if args.employee and args.team:
        raise CommandError("give --employee or --team, not both")
    for kind in ("employee", "team"):
        value = getattr(args, kind)
        if value:
            if not ID.match(value):
                raise CommandError(f"--{kind}: not an {kind} id: {value!r}")
            return Recipient(kind=kind, id=value)
    return None


async def _read(
    args: argparse.Namespace, query: Callable[[Any], Awaitable[list[Any]]]
) -> list[Any]:
    """Run one read query against the command's database."""
    db = await _open(args.db)
    try:
        async with db.sessions() as session:
            return await query(session)
    finally:
        await db.close()


def cmd_list(args: argparse.Namespace) -> int:
    async def go() -> int:
        from vaihde.messages import store

        tz = _zone(args.tz)
        recipient = _recipient(args)
        found = await _read(args, lambda session: store.list_messages(
            session, recipient=recipient, status=args.status, limit=args.limit
        ))
        for m in found:
            caller = m.caller_number or "withheld"
            if m.caller_name:
                caller = f"{m.caller_name}, {caller}"
            recording = " [recording]" if m.recording_path else ""
            print(f"#{m.id:<6} {_local(m.created_at, tz)}  {m.recipient}  from {caller}  "
                  f"taken by {m.taken_by}  {m.status}{recording}")
            if m.note:
                print("        " + m.note.replace("\n", "\n        "))
            for d in m.deliveries:
                extra = f", next {_local(d.next_attempt_at, tz)}" if d.status in (
                    "pending", "retrying") else ""
                error = f": {d.last_error}" if d.last_error and d.status != "sent" else ""
                print(f"        {d.channel} {d.address}: {d.status}, {d.attempts} attempt(s)"
                      f"{extra}{error}")
        if not found:
            print("no messages")
        return 0

    return _run("messages list", go)


def cmd_callbacks(args: argparse.Namespace) -> int:
    async def go() -> int:
        from vaihde.messages import store

        tz = _zone(args.tz)
        recipient = _recipient(args)
        found = await _read(args, lambda session: store.list_callbacks(
            session, status=None if args.status == "all" else args.status,
            recipients=[recipient] if recipient else None, limit=args.limit,
        ))
        for c in found:
            whom = f"{c.for_kind} {c.for_id}" if c.for_kind else "anyone"
            name = f"{c.caller_name}, " if c.caller_name else ""
            handled = f" by {c.handled_by} {_local(c.handled_at, tz)}" if c.handled_by else ""
            print(f"#{c.id:<6} {_local(c.created_at, tz)}  call back {name}{c.caller_number}  "
                  f"for {whom}  {c.status}{handled}")
            if c.note:
                print("        " + c.note.replace("\n", "\n        "))
        if not found:
            print("no callback requests")
        return 0

    return _run("messages callbacks", go)


def register(subparsers: Any) -> None:
    """Add `messages` to the `vaihde` command's subparsers."""
    from vaihde.messages.model import CALLBACK_STATUSES, MESSAGE_STATUSES

    messages = subparsers.add_parser("messages", help="messages and callback requests taken")
    sub = messages.add_subparsers(dest="messages_command", required=True, metavar="ACTION")

    p = sub.add_parser("list", help="messages, newest first, with each delivery's status")
    p.add_argument("--employee", help="only those for this employee")
    p.add_argument("--team", help="only those for this team")
    p.add_argument("--status", choices=MESSAGE_STATUSES, help="only messages in this status")
    p.add_argument("--limit", type=_positive, default=20, help="at most this many (default 20)")
    _common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("callbacks", help="callback requests, oldest first (open ones)")
    p.add_argument("--employee", help="only those for this employee")
    p.add_argument("--team", help="only those for this team")
    p.add_argument("--status", choices=[*CALLBACK_STATUSES, "all"], default="open",
                   help="open (default), done, cancelled or all")
    p.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    _common(p)
    p.set_defaults(func=cmd_callbacks)
