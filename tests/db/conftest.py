"""Database fixtures: `db` runs a test on SQLite (a temp file) and on PostgreSQL (a private
cluster started once per session through scripts/postgres), both migrated and empty.

PostgreSQL tests fail, never skip, when the cluster cannot be started: CI must not pass without
them. The cluster is `test` (`test<N>` with VAIHDE_TEST_SLOT=N) on port 15442 + 100·N under
var/postgres/; it is stopped at the end unless it was already running.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from dbdata import DIRECTORY, T0  # tests/db is on sys.path (no package)
from sqlalchemy import delete, update
from sqlalchemy.engine import make_url

from vaihde.db import Database, migrate, open_database
from vaihde.db import models as m
from vaihde.directory.store import sync_directory

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "postgres"
SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
PG_NAME = "test" if SLOT == 0 else f"test{SLOT}"
PG_PORT = 15442 + 100 * SLOT
BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")



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


SESSION_DB = f"vaihde_s{SLOT}_{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the private cluster's vaihde_test database (the cluster runs for the session).

    Each session owns a database named after its pid: stale ones (dead pids) are dropped, and
    the cluster is only stopped by the session that started it when no other live session on
    the same slot still uses it.
    """
    was_running = _script("status").returncode == 0
    started = _script("start")
    if started.returncode != 0:
        pytest.fail(
            f"PostgreSQL could not be started with scripts/postgres (these tests never skip):\n"
            f"{started.stderr}",
            pytrace=False,
        )
    url = _script("url").stdout.strip()
    others = _in_thread(lambda: asyncio.run(_other_sessions(url)))
    stale = [name for name, pid in others if not _alive(pid)]
    create = (f"DROP DATABASE IF EXISTS {SESSION_DB}", f"CREATE DATABASE {SESSION_DB}")
    drops = tuple(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in stale)
    _in_thread(lambda: asyncio.run(_admin(url, *drops, *create)))
    yield url
    drop = f"DROP DATABASE IF EXISTS {SESSION_DB} WITH (FORCE)"
    _in_thread(lambda: asyncio.run(_admin(url, drop)))
    others = _in_thread(lambda: asyncio.run(_other_sessions(url)))
    if not was_running and not any(_alive(pid) for _, pid in others):
        _script("stop")


async def _other_sessions(url: str) -> list[tuple[str, int]]:
    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port, user=u.username, database="postgres", timeout=10
    )
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"vaihde\\_s{SLOT}\\_%"
        )
    finally:
        await conn.close()
    out = []
    for row in rows:
        match = re.match(r"^vaihde_s\d+_(\d+)(_empty)?$", row["datname"])
        if match and int(match[1]) != os.getpid():
            out.append((row["datname"], int(match[1])))
    return out


def _in_thread(fn: Callable[[], T]) -> T:
    """Run blocking setup that uses its own event loop (asyncio.run) from anywhere, including
    session fixtures first requested inside an async fixture, where a loop is running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


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
def pg_database(pg_server: str) -> str:
    """This session's database, migrated once; tests empty it before they run."""
    url = _pg_database_url(pg_server, SESSION_DB)
    _in_thread(lambda: migrate.upgrade(url))
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    _in_thread(lambda: migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
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
    name = f"{SESSION_DB}_empty"  # "vaihde_s…_<pid>_empty": goes with the session's
    await _admin(server, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    try:
        yield _pg_database_url(server, name)
    finally:
        await _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- shared data and helpers ---------------------------------------------------------------

@pytest.fixture
async def people(db: Database) -> Database:
    """`db` with DIRECTORY stored."""
    async with db.sessions.begin() as session:
        await sync_directory(session, DIRECTORY, now=T0)
    return db
