"""Database fixtures: `db` runs a test on SQLite (a temp file) and on PostgreSQL (a private
cluster started once per session through scripts/postgres), both migrated and empty.

PostgreSQL tests fail, never skip, when the cluster cannot be started: CI must not pass without
them. The cluster is `test` (`test<N>` with VAIHDE_TEST_SLOT=N) on port 15442 + 100·N under
var/postgres/; it is stopped at the end unless it was already running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import make_url

from vaihde.db import Database, migrate, open_database
from vaihde.db import models as m
from vaihde.directory import (
    DeviceDescription,
    DirectoryDescription,
    EmployeeDescription,
    TeamDescription,
)
from vaihde.directory.store import sync_directory

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "postgres"
SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
PG_NAME = "test" if SLOT == 0 else f"test{SLOT}"
PG_PORT = 15442 + 100 * SLOT
BACKENDS = ["sqlite", "postgresql"]

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # a Monday morning (12:00 in Helsinki)


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAIHDE_PG_PORT": str(PG_PORT)}
    return subprocess.run(
        [str(SCRIPT), "--name", PG_NAME, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # a first start may install the Debian package
        check=False,
    )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the private cluster's vaihde_test database (the cluster runs for the session)."""
    was_running = _script("status").returncode == 0
    started = _script("start")
    if started.returncode != 0:
        pytest.fail(
            f"PostgreSQL could not be started with scripts/postgres (these tests never skip):\n"
            f"{started.stderr}",
            pytrace=False,
        )
    url = _script("url").stdout.strip()
    yield url
    if not was_running:
        _script("stop")


async def _admin(url: str, *statements: str) -> None:
    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port, user=u.username, database="postgres", timeout=10
    )
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _pg_database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[str]:
    """A database for this session, migrated once; tests empty it before they run."""
    name = f"vaihde_s{SLOT}_{os.getpid()}"
    asyncio.run(_admin(pg_server, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))
    url = _pg_database_url(pg_server, name)
    migrate.upgrade(url)
    yield url
    asyncio.run(_admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _empty(db: Database) -> None:
    async with db.sessions.begin() as session:
        for table in reversed(m.Base.metadata.sorted_tables):
            if table.name != "revisions":
                await session.execute(delete(table))
        await session.execute(update(m.Revision).values(counter=0))


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "vaihde.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        database = open_database(f"sqlite+aiosqlite:///{path}")
    else:
        database = open_database(request.getfixturevalue("pg_database"))
        await _empty(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(params=BACKENDS)
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """URL of a brand-new database with no tables at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"vaihde_e{SLOT}_{os.getpid()}"
    await _admin(server, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    try:
        yield _pg_database_url(server, name)
    finally:
        await _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- shared data and helpers ---------------------------------------------------------------

DIRECTORY = DirectoryDescription(
    employees=(
        EmployeeDescription(
            id="anna",
            name="Anna Virtanen",
            extension="101",
            email="anna@example.fi",
            sms_number="+358401111111",
            languages=("fi", "en"),
            numbers=("09 123 4501",),
            devices=(
                DeviceDescription("PJSIP/anna", "desk"),
                DeviceDescription("Local/0401111111@pstn", "mobile"),
            ),
            delegates=("matti",),
        ),
        EmployeeDescription(id="matti", name="Matti Mäkinen", extension="102"),
        EmployeeDescription(
            id="asa", name="Åsa Järvinen", extension="103", numbers=("+358 9 123 4503",)
        ),
    ),
    teams=(
        TeamDescription(id="sales", name="Myynti", kind="sales", members=("anna", "matti")),
        TeamDescription(id="operators", name="Vaihde", kind="operators", members=("asa",)),
    ),
)


@pytest.fixture
async def people(db: Database) -> Database:
    """`db` with DIRECTORY stored."""
    async with db.sessions.begin() as session:
        await sync_directory(session, DIRECTORY, now=T0)
    return db


async def row_counts(db: Database) -> dict[str, int]:
    """Rows per table and the revision counters: equal before and after = nothing written."""
    out: dict[str, int] = {}
    async with db.sessions() as session:
        for table in m.Base.metadata.sorted_tables:
            out[table.name] = (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
        for name, counter in (await m.current_revisions(session)).items():
            out[f"revision:{name}"] = counter
    return out
