"""Schema migrations (Alembic with vaihde's migrations directory, no alembic.ini needed):
`upgrade(url)`, `current(url)`, `pending_changes(...)`; `python -m vaihde.db.migrate ARGS` runs
any alembic command (e.g. `revision --autogenerate -m "…"`) against $VAIHDE_DB_URL.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import CommandLine, Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from vaihde.db.engine import database_url, make_engine
from vaihde.db.models import Base

MIGRATIONS = Path(__file__).resolve().with_name("migrations")


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic Config pointing at our migrations; `url` is only used by standalone runs."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # ConfigParser interpolation: a '%' in a password must be doubled.
        rendered = database_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest migration's revision id."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None, "no migrations found"
    return rev


def _with_connection(connection: Connection, fn: Any, *args: Any) -> Any:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    return fn(cfg, *args)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision`, in one transaction where the database
    allows transactional DDL (PostgreSQL)."""
    async with engine.begin() as conn:
        await conn.run_sync(_with_connection, command.upgrade, revision)


async def current_async(engine: AsyncEngine) -> str | None:
    """The database's migration revision; None for an empty (never migrated) database."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def _diffs(connection: Connection) -> list[Any]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(ctx, Base.metadata)


async def pending_changes(engine: AsyncEngine) -> list[Any]:
    """What autogenerate would still write: differences between the models and the database
    (empty after `upgrade` when the migrations match the models, like `alembic check`)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_diffs)


async def _on_engine(url: str | URL | None, fn: Any) -> Any:
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        return await fn(engine)
    finally:
        await engine.dispose()


def upgrade(url: str | URL | None = None, revision: str = "head") -> None:
    """Synchronous wrapper for scripts and the CLI (not from inside a running event loop)."""
    asyncio.run(_on_engine(url, lambda e: upgrade_async(e, revision)))


def current(url: str | URL | None = None) -> str | None:
    return asyncio.run(_on_engine(url, current_async))


def main(argv: list[str] | None = None) -> None:
    """Any alembic command with our configuration (the URL comes from $VAIHDE_DB_URL)."""
    cli = CommandLine(prog="python -m vaihde.db.migrate")
    options = cli.parser.parse_args(argv if argv is not None else sys.argv[1:])
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(database_url()), options)


if __name__ == "__main__":
    main()
