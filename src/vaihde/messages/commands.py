"""`vaihde messages list` and `vaihde messages callbacks`: what the answering service took, and how
its delivery is going, from the command line (the same store the API and the console read).
"""

from __future__ import annotations

import argparse
from typing import Any

from vaihde.commands import CommandError, add, command, local, session, zone


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


@command("messages list")
async def cmd_list(args: argparse.Namespace) -> int:
    from vaihde.messages import store

    tz = zone(args.tz)
    recipient = _recipient(args)
    async with session(args) as s:
        found = await store.list_messages(
            s, recipient=recipient, status=args.status, limit=args.limit
        )
    for m in found:
        caller = m.caller_number or "withheld"
        if m.caller_name:
            caller = f"{m.caller_name}, {caller}"
        recording = " [recording]" if m.recording_path else ""
        print(f"#{m.id:<6} {local(m.created_at, tz)}  {m.recipient}  from {caller}  "
              f"taken by {m.taken_by}  {m.status}{recording}")
        if m.note:
            print("        " + m.note.replace("\n", "\n        "))
        for d in m.deliveries:
            extra = f", next {local(d.next_attempt_at, tz)}" if d.status in (
                "pending", "retrying") else ""
            error = f": {d.last_error}" if d.last_error and d.status != "sent" else ""
            print(f"        {d.channel} {d.address}: {d.status}, {d.attempts} attempt(s)"
                  f"{extra}{error}")
    if not found:
        print("no messages")
    return 0


@command("messages callbacks")
async def cmd_callbacks(args: argparse.Namespace) -> int:
    from vaihde.messages import store

    tz = zone(args.tz)
    recipient = _recipient(args)
    async with session(args) as s:
        found = await store.list_callbacks(
            s, status=None if args.status == "all" else args.status,
            recipients=[recipient] if recipient else None, limit=args.limit,
        )
    for c in found:
        whom = f"{c.for_kind} {c.for_id}" if c.for_kind else "anyone"
        name = f"{c.caller_name}, " if c.caller_name else ""
        handled = f" by {c.handled_by} {local(c.handled_at, tz)}" if c.handled_by else ""
        print(f"#{c.id:<6} {local(c.created_at, tz)}  call back {name}{c.caller_number}  "
              f"for {whom}  {c.status}{handled}")
        if c.note:
            print("        " + c.note.replace("\n", "\n        "))
    if not found:
        print("no callback requests")
    return 0


def register(subparsers: Any) -> None:
    """Add `messages` to the `vaihde` command's subparsers."""
    from vaihde.messages.model import CALLBACK_STATUSES, MESSAGE_STATUSES

    messages = subparsers.add_parser("messages", help="messages and callback requests taken")
    sub = messages.add_subparsers(dest="messages_command", required=True, metavar="ACTION")

    listing = add(sub, "list", cmd_list, "messages, newest first, with each delivery's status")
    listing.add_argument("--status", choices=MESSAGE_STATUSES, help="only messages in this status")
    listing.add_argument("--limit", type=_positive, default=20,
                         help="at most this many (default 20)")
    callbacks = add(sub, "callbacks", cmd_callbacks, "callback requests, oldest first (open ones)")
    callbacks.add_argument("--status", choices=[*CALLBACK_STATUSES, "all"], default="open",
                           help="open (default), done, cancelled or all")
    callbacks.add_argument("--limit", type=_positive, default=50,
                           help="at most this many (default 50)")
    for p in (listing, callbacks):
        p.add_argument("--employee", help="only those for this employee")
        p.add_argument("--team", help="only those for this team")
