"""`vaihde user …` (add, passwd, list, disable, enable, companies) and `vaihde token …`
(create, list, revoke): the people who may use the REST API and the web console, the companies
each acts for, and their API tokens. The commands act for every company (whoever runs them
has the database); company admins manage their own users through the API (/users).

Like `vaihde presence`, every error is one line on stderr and exit status 2 (vaihde.commands).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from vaihde.commands import Command, CommandError, add, command, local, session, zone

MAX_TOKEN_DAYS = 3650


def _read_password(args: argparse.Namespace, *, required: bool) -> str | None:
    """From stdin (--password-stdin, first line), else asked twice on a terminal."""
    from vaihde.auth.model import check_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if not password and not required:
            return None
        if getpass.getpass("Again: ") != password:
            raise CommandError("the passwords differ; nothing was changed")
    elif required:
        raise CommandError("no terminal to ask the password on: give it with --password-stdin")
    else:
        return None
    check_password(password)
    return password


# --- users ---------------------------------------------------------------------------------


@command("user add")
async def cmd_user_add(args: argparse.Namespace) -> int:
    from vaihde.auth import passwords, store

    password = _read_password(args, required=False)
    password_hash = await passwords.hash_password_async(password) if password else None
    async with session(args, write=True) as s:
        user = await store.add_user(s, args.username, role=args.role,
                                    display_name=args.display_name, employee_id=args.employee,
                                    sip_endpoint=args.sip_endpoint, password_hash=password_hash,
                                    companies=args.company or ())
        acts_for = await store.user_scope(s, user)
    login = "with a password" if user.has_password else "without a password (tokens only)"
    employee = f", employee {user.employee_id}" if user.employee_id else ""
    print(f"added {user.username}: {user.role}{employee}, {login}, {_companies(acts_for)}")
    return 0


def _companies(acts_for: frozenset[str] | None) -> str:
    return "every company" if acts_for is None else "companies " + ", ".join(sorted(acts_for))


@command("user companies")
async def cmd_user_companies(args: argparse.Namespace) -> int:
    from vaihde.auth import store

    async with session(args, write=True) as s:
        user = await store.update_user(s, args.username, companies=args.company_ids)
        acts_for = await store.user_scope(s, user)
    print(f"{user.username}: {_companies(acts_for)}")
    return 0


@command("user passwd")
async def cmd_user_passwd(args: argparse.Namespace) -> int:
    from vaihde.auth import passwords, store

    password = None if args.remove else _read_password(args, required=True)
    password_hash = await passwords.hash_password_async(password) if password else None
    async with session(args, write=True) as s:
        user = await store.set_password(s, args.username, password_hash)
    what = "password set" if user.has_password else "password removed"
    print(f"{user.username}: {what}; their web sessions have ended")
    return 0


@command("user list")
async def cmd_user_list(args: argparse.Namespace) -> int:
    from vaihde.auth import store

    tz = zone(args.tz)
    async with session(args) as s:
        users = await store.list_users(s)
    if not users:
        print("no users: add one with `vaihde user add USERNAME --role admin`")
        return 0
    print(f"{'username':<20} {'role':<9} {'employee':<14} {'phone':<20} "
          f"{'password':<8} {'active':<6} {'last login':<16} companies")
    for u in users:
        print(
            f"{u.username:<20} {u.role:<9} {u.employee_id or '-':<14} "
            f"{u.sip_endpoint or '-':<20} {'yes' if u.has_password else 'no':<8} "
            f"{'yes' if u.active else 'no':<6} {local(u.last_login_at, tz):<16} "
            f"{','.join(u.companies) or '*'}"
        )
    return 0


def _set_active(active: bool) -> Command:
    @command("user enable" if active else "user disable")
    async def go(args: argparse.Namespace) -> int:
        from vaihde.auth import store

        async with session(args, write=True) as s:
            user = await store.set_active(s, args.username, active)
        if active:
            print(f"{user.username}: enabled (create new tokens; old ones stay revoked)")
        else:
            print(f"{user.username}: disabled; their tokens are revoked and sessions ended")
        return 0

    return go


# --- tokens --------------------------------------------------------------------------------


@command("token create")
async def cmd_token_create(args: argparse.Namespace) -> int:
    from vaihde.auth import store

    tz = zone(args.tz)
    now = datetime.now(UTC)
    expires = None
    if args.expires_days is not None:
        if not 1 <= args.expires_days <= MAX_TOKEN_DAYS:
            raise CommandError(f"--expires-days: give 1 to {MAX_TOKEN_DAYS} days")
        expires = now + timedelta(days=args.expires_days)
    async with session(args, write=True) as s:
        secret, token = await store.create_token(s, args.username, label=args.label,
                                                 expires_at=expires, now=now)
    until = f"expires {local(token.expires_at, tz)}" if token.expires_at else "no expiry"
    # The secret alone on stdout (scripts capture it); the rest on stderr.
    print(secret)
    print(
        f"token #{token.id} for {token.username} ({until}). It is shown only this once: "
        "keep it somewhere safe.",
        file=sys.stderr,
    )
    return 0


@command("token list")
async def cmd_token_list(args: argparse.Namespace) -> int:
    from vaihde.auth import store

    tz = zone(args.tz)
    now = datetime.now(UTC)
    async with session(args) as s:
        tokens = await store.list_tokens(s, args.username)
    if not tokens:
        print("no tokens")
        return 0
    print(f"{'id':>4} {'user':<20} {'state':<8} {'created':<16} {'expires':<16} "
          f"{'last used':<16} label")
    for t in tokens:
        print(
            f"{t.id:>4} {t.username:<20} {t.state(now):<8} {local(t.created_at, tz):<16} "
            f"{local(t.expires_at, tz):<16} {local(t.last_used_at, tz):<16} {t.label}"
        )
    return 0


@command("token revoke")
async def cmd_token_revoke(args: argparse.Namespace) -> int:
    from vaihde.auth import store

    async with session(args, write=True) as s:
        token = await store.revoke_token(s, args.token_id)
    print(f"token #{token.id} of {token.username} revoked")
    return 0


def register(subparsers: Any) -> None:
    """Add `user` and `token` to the `vaihde` command's subparsers."""
    user = subparsers.add_parser("user", help="people who may use the REST API and web console")
    sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    p = add(sub, "add", cmd_user_add, "add a user", tz=False,
            description="Without --password-stdin the password is asked on a terminal (empty: no "
            "password, the user can only use API tokens); without a terminal none is set.")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["employee", "operator", "admin"])
    p.add_argument("--employee", metavar="ID", help="the directory employee this user is")
    p.add_argument("--sip-endpoint", metavar="DEVICE", help="the operator's phone, e.g. PJSIP/op1")
    p.add_argument("--display-name", default="", help="name shown in the console")
    p.add_argument("--company", action="append", metavar="ID",
                   help="a company the user acts for (repeat for several; none: every company; "
                   "an employee acts for their employee's company)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    p = add(sub, "companies", cmd_user_companies, "set the companies a user acts for",
            tz=False, description="With no company the user acts for every company.")
    p.add_argument("username")
    p.add_argument("company_ids", nargs="*", metavar="ID")

    p = add(sub, "passwd", cmd_user_passwd, "set a user's password (their web sessions end)",
            tz=False)
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--remove", action="store_true", help="remove the password (tokens only)")

    add(sub, "list", cmd_user_list, "every user")
    p = add(sub, "disable", _set_active(False), "disable a user: tokens revoked, sessions ended",
            tz=False)
    p.add_argument("username")
    p = add(sub, "enable", _set_active(True), "enable a disabled user again", tz=False)
    p.add_argument("username")

    token = subparsers.add_parser("token", help="API tokens (Authorization: Bearer …)")
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    p = add(tsub, "create", cmd_token_create, "create a token for a user and print it (only once)")
    p.add_argument("username")
    p.add_argument("--label", default="", help="what it is for, e.g. 'intranet widget'")
    p.add_argument("--expires-days", type=int, metavar="N", help="valid for N days (default: "
                   "until revoked)")

    p = add(tsub, "list", cmd_token_list, "tokens (never their secrets)")
    p.add_argument("username", nargs="?")

    p = add(tsub, "revoke", cmd_token_revoke, "revoke a token at once", tz=False)
    p.add_argument("token_id", type=int, metavar="ID", help="as shown by token list")
