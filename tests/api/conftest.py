"""REST API fixtures: `api` is the API mounted at /api/v1 on the service's root application,
served on 127.0.0.1 by aiohttp's test server, over a migrated database on SQLite and on
PostgreSQL (each test runs on both), with the tests/db directory and four users:

| user  | role     | employee |
| ----- | -------- | -------- |
| root  | admin    | -        |
| olli  | operator | asa      |
| anna  | employee | anna     |
| matti | employee | matti    |

Messages are planned for e-mail only, taken messages call `api.message_hooks` (the sender's
wake-up, where a test has a sender) and recordings are served from `api.recordings`.

Every response `api.call` gets is checked against the OpenAPI document: its status must be
documented for the operation, and a JSON body must match the schema.

The PostgreSQL cluster and helpers are tests/db/conftest.py's (loaded as a module under
another name, so nothing there changes); this directory uses its own database in the cluster
(`<tests/db's database>_api`), so both directories can run in one session.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_schema_validator import OAS31Validator

from vaihde.api import ApiContext, make_api
from vaihde.api.openapi import document
from vaihde.auth import passwords
from vaihde.auth import store as auth_store
from vaihde.calendar.policy import CalendarPolicy
from vaihde.company.offloop import ConfigChecker
from vaihde.db import Database, migrate, open_database
from vaihde.directory.search import DirectoryIndex
from vaihde.directory.store import search_records, sync_directory
from vaihde.http.health import make_app
from vaihde.http.settings import HttpSettings
from vaihde.presence.cache import PresenceCache

PASSWORD = "correct horse battery"
HELSINKI = ZoneInfo("Europe/Helsinki")  # times in responses carry its offset
PREFIX = "/api/v1"

# The tests/db directory as a company file (line numbers matter to tests that name them).
COMPANY = """\
company:
  name: Testi Oy
numbers:
  "+358201234567": {label: Vaihde, menu: main}
hours:
  mon-fri: 08:00-16:30
  closed_action: {operator: true}
menus:
  main:
    prompt: Paina 1.
    options:
      1: {team: sales}
teams:
  operators: {name: Vaihde, kind: operators, members: [asa]}
  sales: {name: Myynti, members: [anna, matti]}
employees:
  anna:
    name: Anna Virtanen
    title: Myyntipäällikkö
    extension: 101
    direct: ["+358912345010"]
    devices:
      - desk: PJSIP/anna
    delegates: [matti]
  matti:
    name: Matti Mäkinen
    extension: 102
    devices:
      - desk: PJSIP/matti
  asa:
    name: Åsa Järvinen
    extension: 103
    devices:
      - desk: PJSIP/asa
"""


def _load_db_fixtures() -> ModuleType:
    here = Path(__file__).resolve().parents[1] / "db"
    # tests/db/conftest.py imports its neighbour dbdata.py, as pytest's sys.path has it.
    if str(here) not in sys.path:
        sys.path.append(str(here))
    spec = importlib.util.spec_from_file_location("vaihde_tests_db_conftest", here / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dbfix = _load_db_fixtures()
dbdata = sys.modules["dbdata"]
DIRECTORY = dbdata.DIRECTORY
row_counts = dbdata.row_counts
API_DB = f"{dbfix.SESSION_DB}_api"
_SESSION_DB = re.compile(r"^vaihde_s\d+_(\d+)(_[a-z]+)?$")


@pytest.fixture(scope="session", autouse=True)
def cheap_passwords() -> Iterator[None]:
    """argon2 at its cheapest: the tests check how hashes are used, not how slow they are."""
    passwords.configure(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords.configure()


async def _databases(server_url: str) -> list[str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(server_url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port, user=u.username, database="postgres", timeout=10
    )
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"vaihde\\_s{dbfix.SLOT}\\_%"
        )
    finally:
        await conn.close()
    return [r["datname"] for r in rows]


def _pid_of(name: str) -> int | None:
    found = _SESSION_DB.match(name)
    return int(found[1]) if found else None


@pytest.fixture(scope="session")
def api_pg_url() -> Iterator[str]:
    """This session's API database in the private cluster (started if needed), migrated."""
    was_running = dbfix._script("status").returncode == 0
    started = dbfix._script("start")
    if started.returncode != 0:
        pytest.fail(
            "PostgreSQL could not be started with scripts/postgres (these tests never skip):\n"
            f"{started.stderr}",
            pytrace=False,
        )
    server = dbfix._script("url").stdout.strip()
    names = dbfix._in_thread(lambda: asyncio.run(_databases(server)))
    stale = [
        n for n in names
        if n.endswith("_api") and (pid := _pid_of(n)) is not None and pid != os.getpid()
        and not dbfix._alive(pid)
    ]
    statements = [f"DROP DATABASE IF EXISTS {n} WITH (FORCE)" for n in stale]
    statements += [f"DROP DATABASE IF EXISTS {API_DB}", f"CREATE DATABASE {API_DB}"]
    dbfix._in_thread(lambda: asyncio.run(dbfix._admin(server, *statements)))
    url = dbfix._pg_database_url(server, API_DB)
    dbfix._in_thread(lambda: migrate.upgrade(url))
    yield url
    drop = f"DROP DATABASE IF EXISTS {API_DB} WITH (FORCE)"
    dbfix._in_thread(lambda: asyncio.run(dbfix._admin(server, drop)))
    names = dbfix._in_thread(lambda: asyncio.run(_databases(server)))
    others = [pid for n in names if (pid := _pid_of(n)) is not None and pid != os.getpid()]
    if not was_running and not any(dbfix._alive(pid) for pid in others):
        dbfix._script("stop")


@pytest.fixture(scope="session")
def api_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-sqlite") / "template.db"
    dbfix._in_thread(lambda: migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=dbfix.BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "vaihde.db"
        shutil.copyfile(request.getfixturevalue("api_sqlite_template"), path)
        database = open_database(f"sqlite+aiosqlite:///{path}")
    else:
        database = open_database(request.getfixturevalue("api_pg_url"))
        await dbfix._empty(database)
    try:
        yield database
    finally:
        await database.close()


# --- the API under test --------------------------------------------------------------------


@dataclass
class Clock:
    """Real time plus an offset the test may move (session expiry)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Reply:
    status: int
    json: Any
    headers: Any
    text: str
    data: bytes = b""  # the body as sent (audio files)

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.json, dict) and "error" in self.json, self.text
        return self.json["error"]


SPEC = document()
_TEMPLATES = [
    (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path) for path in SPEC["paths"]
]


def check_against_spec(method: str, path: str, status: int, body: Any, content_type: str) -> None:
    """The response must be documented: status listed for the operation, JSON body valid."""
    local = path[len(PREFIX):] if path.startswith(PREFIX) else path
    templates = [t for rx, t in _TEMPLATES if rx.match(local)]
    if not templates:
        assert status in (404, 405), f"{method} {path}: {status} for a path not in the spec"
        return
    # Literal paths win over templated ones (/availability/entries/… vs /employees/{id}).
    template = min(templates, key=lambda t: t.count("{"))
    operation = SPEC["paths"][template].get(method.lower())
    if operation is None:
        assert status == 405, f"{method} {template} is not in the spec but answered {status}"
        return
    documented = operation["responses"].get(str(status))
    assert documented is not None, (
        f"{method} {template} answered {status}, which its spec does not list: {body}"
    )
    schema = documented.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    assert content_type == "application/json", f"{method} {template}: {content_type}"
    validator = OAS31Validator({**schema, "components": SPEC["components"]})
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, f"{method} {template} {status}: {errors[0].message} in {body}"


def service_status() -> dict[str, Any]:
    """What Service.status() says of a healthy service (the stub's starting point)."""
    return {
        "status": "ok",
        "fastagi": {"listening": True, "port": 4573, "active_sessions": 0, "outcomes": {}},
        "ami": {"connected": True, "last_error": None},
        "channels": 0,
        "company": {"name": "Testi Oy", "version": 1},
        "settings": "/etc/vaihde/settings.yaml",
    }


@dataclass
class Api:
    client: TestClient
    db: Database
    cache: PresenceCache
    clock: Clock
    tokens: dict[str, str] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    password: str = PASSWORD
    company_yaml: str = COMPANY
    # What ApiContext.company() returns (the service's running configuration).
    running: dict[str, Any] = field(default_factory=lambda: {"company": None})
    message_hooks: list[Any] = field(default_factory=list)
    recordings: Path | None = None
    service: dict[str, Any] = field(default_factory=service_status)  # what /health reads
    # What ApiContext.directory() returns: tests may put a rebuilt index under "index".
    directory: dict[str, Any] = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        """A request to /api/v1`path`; `as_` sends that user's API token."""
        all_headers = dict(headers or {})
        if as_ is not None:
            all_headers["Authorization"] = f"Bearer {self.tokens[as_]}"
        url = PREFIX + path
        async with self.client.request(
            method, url, json=json, data=data, headers=all_headers, params=params
        ) as response:
            data = await response.read()
            text = data.decode("utf-8", "replace")
            content_type = response.content_type
            body: Any = None
            if content_type == "application/json":
                body = await response.json()
            assert "Traceback" not in text
            check_against_spec(method, response.url.path, response.status, body, content_type)
            return Reply(response.status, body, response.headers, text, data)

    async def counts(self) -> dict[str, int]:
        """Rows per table and revision counters: equal before and after = nothing written."""
        return await row_counts(self.db)

    async def login(self, username: str, password: str = PASSWORD) -> tuple[str, str]:
        """Log in; (cookie header value, CSRF token)."""
        reply = await self.call("POST", "/session", json={"username": username,
                                                          "password": password})
        assert reply.status == 200, reply.text
        morsel = _cookie(reply.headers)
        return f"vaihde_session={morsel}", reply.json["csrf_token"]


def _cookie(headers: Any) -> str:
    for value in headers.getall("Set-Cookie", []):
        if value.startswith("vaihde_session="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("no vaihde_session cookie set")


async def add_user(
    db: Database,
    username: str,
    role: str,
    employee_id: str | None = None,
    password: str | None = PASSWORD,
) -> str:
    """The user, with a password, and an API token for them (returned)."""
    password_hash = passwords.hash_password(password) if password else None
    async with db.sessions.begin() as session:
        await auth_store.add_user(
            session, username, role=role, employee_id=employee_id, password_hash=password_hash
        )
        secret, _ = await auth_store.create_token(session, username, label="tests")
    return secret


class _StubService:
    """What health.make_app needs of the service: only /health uses it; a test may change
    `state` (Api.service)."""

    def __init__(self) -> None:
        self.state = service_status()

    def status(self) -> dict[str, Any]:
        return self.state


@pytest.fixture
def http_settings() -> HttpSettings:
    """The root application's `service.http` settings; a test module may override this."""
    return HttpSettings()


@pytest.fixture
def api_context_options() -> dict[str, Any]:
    """More ApiContext arguments (the SMS channel, the webhook's secret); a test module may
    override this."""
    return {}


@pytest.fixture
async def api(
    db: Database, tmp_path: Path, http_settings: HttpSettings,
    api_context_options: dict[str, Any],
) -> AsyncIterator[Api]:
    async with db.sessions.begin() as session:
        await sync_directory(session, DIRECTORY)
    tokens = {
        "root": await add_user(db, "root", "admin"),
        "olli": await add_user(db, "olli", "operator", "asa"),
        "anna": await add_user(db, "anna", "employee", "anna"),
        "matti": await add_user(db, "matti", "employee", "matti"),
    }
    cache = PresenceCache(db.sessions)
    await cache.load()
    async with db.sessions() as session:
        index = DirectoryIndex.build(await search_records(session))
    clock = Clock()
    applied: list[str] = []
    running: dict[str, Any] = {"company": None}
    directory = {"index": index}
    hooks: list[Any] = []
    recordings = tmp_path / "prompts" / "recordings"
    recordings.mkdir(parents=True)

    async def config_applied() -> None:
        applied.append("applied")

    options: dict[str, Any] = {
        "message_channels": ("email",),
        # As the service does: the settings' calendar rules (default: files in calendars/).
        "config_checker": ConfigChecker(CalendarPolicy(files_dir=str(tmp_path / "calendars"))),
        **api_context_options,
    }
    ctx = ApiContext(
        sessions=db.sessions,
        cache=cache,
        directory=lambda: directory["index"],
        company=lambda: running["company"],
        tz=HELSINKI,
        config_applied=config_applied,
        clock=clock,
        message_taken=lambda: [hook() for hook in hooks] and None,
        recordings_dir=recordings,
        **options,
        # Several companies: a test may set running["roster"] (vaihde.company.tenants.Roster).
        roster=lambda: running.get("roster"),
    )
    # The service's own root application (64 KiB body limit), with the API mounted as it is
    # in service.py.
    stub = _StubService()
    root = make_app(stub, sessions=db.sessions, http=http_settings,  # type: ignore[arg-type]
                    clock=clock)
    root.add_subapp(PREFIX, make_api(ctx))
    client = TestClient(TestServer(root, host="127.0.0.1"), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    try:
        yield Api(client, db, cache, clock, tokens, applied, running=running,
                  message_hooks=hooks, recordings=recordings, service=stub.state,
                  directory=directory)
    finally:
        await client.close()
        ctx.config_checker.close()  # the next check's process, waiting since the last one

