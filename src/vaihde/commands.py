"""What every database command of `vaihde` shares (`presence`, `db`, `user`, `token`,
`messages`): declaring a subcommand with its database options, opening the database the
service uses, times in the user's zone, and the one place that turns an error into one line
on stderr and exit status 2. Heavy imports happen inside, so that `vaihde --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vaihde.errors import VaihdeError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from vaihde.db.engine import Database

DEFAULT_TZ = "Europe/Helsinki"
Command = Callable[[argparse.Namespace], int]


class CommandError(VaihdeError):
    """One line for the user; exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], Coroutine[Any, Any, int]]], Command]:
    """An async command as `args.func`: every error (a VaihdeError of any kind, the
    database's) is one line on stderr, `vaihde: NAME: what`, and exit status 2. The one place
    where commands turn errors into words."""

    def wrap(go: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Command:
        def run(args: argparse.Namespace) -> int:
            from sqlalchemy.exc import DBAPIError, SQLAlchemyError

            from vaihde.db.engine import DatabaseUrlError

            try:
                return asyncio.run(go(args))
            except VaihdeError as exc:
                message = exc.line()
            except DatabaseUrlError as exc:
                message = str(exc)
            except DBAPIError as exc:
                message = f"database error: {str(exc.orig).splitlines()[0] if exc.orig else exc}"
            except (SQLAlchemyError, OSError) as exc:
                message = f"cannot use the database: {str(exc).splitlines()[0]}"
            print(f"vaihde: {name}: {message}", file=sys.stderr)
            return 2

        return run

    return wrap


def add(
    actions: Any, name: str, func: Command, help: str, *, tz: bool = True, **options: Any
) -> argparse.ArgumentParser:
    """A subcommand that runs `func` on the database of --db or --settings (and shows times
    in --tz); the caller adds its own arguments to the parser returned."""
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help, **options)
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
    parser.set_defaults(func=func)
    return parser


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"--tz: unknown time zone {name!r} (e.g. Europe/Helsinki)") from None


def local(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "-"


@asynccontextmanager
async def database(url: str | None, *, migrated: bool = True) -> AsyncIterator[Database]:
    """The database, checked to be migrated to what this vaihde expects (with `migrated`;
    `vaihde db` itself takes it as it is); closed after."""
    from vaihde.db import migrate
    from vaihde.db.engine import display_url, open_database, sqlite_path

    path = sqlite_path(url)
    if migrated and path is not None and not path.exists():
        # Opening would create an empty file: say what is missing instead.
        raise CommandError(f"no database at {path}: run `vaihde db upgrade` (or give --db URL)")
    db = open_database(url, create_dir=not migrated)
    try:
        if migrated:
            have, want = await migrate.current_async(db.engine), migrate.head()
            shown = display_url(db.url)
            if have is None:
                raise CommandError(f"{shown} has no vaihde tables yet: run `vaihde db upgrade`")
            if have != want:
                raise CommandError(
                    f"{shown} is at migration {have}, not {want}: run `vaihde db upgrade`"
                )
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def session(args: argparse.Namespace, *, write: bool = False) -> AsyncIterator[AsyncSession]:
    """One session on the command's database: a transaction committed at the end with
    `write`, else for reading."""
    async with database(args.db) as db:
        async with db.sessions.begin() if write else db.sessions() as s:
            yield s
