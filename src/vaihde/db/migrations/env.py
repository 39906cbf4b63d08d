"""Alembic environment for vaihde: runs migrations on the connection vaihde.db.migrate hands over,
or on an async engine of its own (sqlite+aiosqlite or postgresql+asyncpg) when run standalone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection

from vaihde.db.engine import database_url, make_engine
from vaihde.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: future migrations get batch (copy-and-move) mode.
        render_as_batch=True,
        **kwargs,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url") or None
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on)
            await connection.commit()
    finally:
        await engine.dispose()


def run() -> None:
    if context.is_offline_mode():
        _configure(
            url=database_url(config.get_main_option("sqlalchemy.url") or None), literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
    else:
        asyncio.run(_run_async())


run()
