"""Where the database is and how we connect: URL resolution, the async engine and sessionmaker,
and SQLite's pragmas (WAL, foreign keys, busy timeout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Relative to the working directory, like the other files under var/.
DEFAULT_URL = "sqlite+aiosqlite:///var/vaihde.db"
URL_ENV = "VAIHDE_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 5000

# Plain scheme names people write by habit, mapped to the async drivers we ship.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
_SUPPORTED = ("sqlite+aiosqlite", "postgresql+asyncpg")


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; the message says why in plain words."""


def database_url(url: str | URL | None = None) -> URL:
    """The URL to use: the argument, else $VAIHDE_DB_URL, else var/vaihde.db (SQLite).

    `sqlite:///…` and `postgresql://…` get their async driver; other drivers are refused.
    """
    raw = url if url is not None else (os.environ.get(URL_ENV) or DEFAULT_URL)
    try:
        parsed = make_url(raw) if isinstance(raw, str) else raw
    except ArgumentError:
        raise DatabaseUrlError(
            f"not a database URL: {raw!r} (expected e.g. {DEFAULT_URL} or "
            "postgresql+asyncpg://user@host/dbname)"
        ) from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in _SUPPORTED:
        raise DatabaseUrlError(
            f"unsupported database driver {parsed.drivername!r}: use sqlite+aiosqlite or "
            "postgresql+asyncpg"
        )
    return parsed.set(drivername=driver)


def display_url(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    return database_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("mode") == "memory" or str(url.database).startswith("file:"):
        return None
    return Path(url.database)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # First: the journal mode below may have to wait for another process's lock (the service
    # writing while an admin's CLI connects) instead of failing at once.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL: readers (the service's cache) never block the writer (CLI, web) and vice versa.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL makes NORMAL durable against application crashes; only a power cut may lose the last
    # transactions, never corrupt the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_path(url: str | URL | None = None) -> Path | None:
    """The file behind an SQLite URL (None for PostgreSQL or in-memory SQLite)."""
    return _sqlite_file(database_url(url))


def make_engine(
    url: str | URL | None = None, *, create_dir: bool = True, **kwargs: Any
) -> AsyncEngine:
    """An async engine for `url` (see database_url). Creates the SQLite file's directory unless
    `create_dir=False`."""
    resolved = database_url(url)
    path = _sqlite_file(resolved)
    if path is not None and create_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
    if resolved.get_backend_name() == "postgresql":
        # A dead server must not hang callers for the OS TCP timeout.
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", 10)
        kwargs["connect_args"] = connect_args
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(resolved, **kwargs)
    if resolved.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit without a (forbidden in async)
    # lazy reload.
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """An engine and its sessionmaker; `async with db.sessions.begin() as s:` is one transaction."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def url(self) -> URL:
        return self.engine.url

    async def close(self) -> None:
        await self.engine.dispose()


def open_database(
    url: str | URL | None = None, *, create_dir: bool = True, **kwargs: Any
) -> Database:
    engine = make_engine(url, create_dir=create_dir, **kwargs)
    return Database(engine, make_sessionmaker(engine))
