"""The authorisation walk (issue 12, roles per company): two companies in one service, users of
each (an admin, an operator assigned to it, an employee) and users of every company (an admin,
an operator); every declared API route and every page is asked by every user, for their own
company's things, for the other company's, and for things that do not exist. A leak is

* another company's thing answered otherwise than a thing that does not exist (status and
  error code), or answered at all (a 2xx), or
* a reply (a list, a search, a board, the console's live stream, a page) that holds a word of
  the other company's (its id, its name, what its caller told it) when the request named
  nothing of it.

Routes come from the route table (vaihde.api.app.routes), so a new route is walked without
touching this file; a route that declares no company rule (`company=` on its declaration) is
reported as undeclared. Users of every company are walked too (nothing they get is a leak:
they act for both) so that every route is exercised by every kind of user.

Reusable: `await walk(db, tmp)` over a migrated, empty Database, or `await walk_sqlite(tmp)`
on a fresh SQLite file (bench/tenants_bench.py reports `cross_company_leaks` from it). Both
return a WalkReport: routes, pages, requests, leaks (and what each leak was).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from vaihde.ami.client import AmiResponse
from vaihde.ami.tracker import CallTracker
from vaihde.api import ApiContext, make_api
from vaihde.api.app import LiveDirectory, routes
from vaihde.auth import passwords
from vaihde.auth import store as auth_store
from vaihde.company import parse_company
from vaihde.company.apply import apply_company
from vaihde.company.schema import CompanyConfig
from vaihde.company.tenants import Roster
from vaihde.console.stream import Console, ConsoleDeps
from vaihde.db import Database, migrate, open_database
from vaihde.directory.store import add_contact, upsert_caller
from vaihde.dispatch import store as dispatch_store
from vaihde.http.health import make_app
from vaihde.messages import store as messages
from vaihde.messages.model import CallbackDraft, MessageDraft, Recipient
from vaihde.presence.cache import PresenceCache
from vaihde.presence.store import set_availability
from vaihde.records import as_json
from vaihde.story import StoryBook
from vaihde.web.pages import COMPANY_PAGES, add_web

PREFIX = "/api/v1"
PASSWORD = "correct horse battery"
CALLER = "0401234567"  # calls both companies; each knows them by a name of its own
COMPANIES = ("alfa", "beta")


def company_file(cid: str, name: str, number: str, ext: int) -> str:
    return f"""\
company: {{id: {cid}, name: {name}, language: fi, languages: [fi]}}
numbers:
  "{number}": {{label: Vaihde, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: Valitse.
    options:
      1: {{team: {cid}-myynti}}
teams:
  {cid}-vaihde: {{name: {name} vaihde, kind: operators, members: [{cid}-olga]}}
  {cid}-myynti: {{name: {name} myynti, members: [{cid}-aino, {cid}-arto]}}
employees:
  {cid}-aino:
    name: Aino {name}
    extension: {ext}1
    email: aino@{cid}.example
    devices: [desk: PJSIP/{cid}-aino]
  {cid}-arto:
    name: Arto {name}
    extension: {ext}2
    devices: [desk: PJSIP/{cid}-arto]
  {cid}-olga:
    name: Olga {name}
    extension: {ext}3
    devices: [desk: PJSIP/{cid}-olga]
oncall:
  {cid}-paivystys:
    name: {name} päivystys
    weekly:
      - {{days: mon-sun, hours: 00:00-24:00, people: [{cid}-arto]}}
"""


FILES = {
    "alfa": company_file("alfa", "Alfa Oy", "0201111111", 21),
    "beta": company_file("beta", "Beta Ab", "0202222222", 31),
}
NAMES = {"alfa": "Alfa Oy", "beta": "Beta Ab"}
CALLER_NAMES = {"alfa": "Asiakas Alfalainen", "beta": "Kund Betasson"}
# Words of a company that nothing of the other company's may show (case-insensitive): every id
# of the company starts with its id.
MARKERS = {cid: (cid, NAMES[cid].lower(), CALLER_NAMES[cid].lower()) for cid in COMPANIES}

# user: (role, linked companies, employee, the company they are walked for: "own")
USERS: dict[str, tuple[str, tuple[str, ...], str | None, str]] = {
    "root": ("admin", (), None, "alfa"),
    "svc-op": ("operator", (), None, "alfa"),
    "alfa-admin": ("admin", ("alfa",), None, "alfa"),
    "beta-admin": ("admin", ("beta",), None, "beta"),
    "alfa-op": ("operator", ("alfa",), None, "alfa"),
    "beta-op": ("operator", ("beta",), None, "beta"),
    "alfa-emp": ("employee", (), "alfa-aino", "alfa"),
    "beta-emp": ("employee", (), "beta-aino", "beta"),
}
GHOST = "ghost"  # the company, and the ids, that do not exist


def other(cid: str) -> str:
    return "beta" if cid == "alfa" else "alfa"


def scoped(user: str) -> bool:
    """Walked for leaks: users of one company (service-wide users act for both)."""
    _, linked, employee, _ = USERS[user]
    return bool(linked) or employee is not None


@dataclass
class WalkReport:
    routes: int = 0  # API routes walked
    pages: int = 0  # pages walked
    requests: int = 0
    leaks: int = 0
    undeclared: list[str] = field(default_factory=list)  # routes without a company rule
    errors: list[str] = field(default_factory=list)  # 5xx answers (a bug, not a leak)
    details: list[str] = field(default_factory=list)  # what each leak was

    def leak(self, what: str) -> None:
        self.leaks += 1
        self.details.append(what)


class WalkAmi:
    """Asterisk as the console sees it: connected, every action accepted."""

    connected = True

    def __init__(self) -> None:
        self.actions: list[Any] = []

    def add_state_listener(self, cb: Any) -> None: ...
    def remove_state_listener(self, cb: Any) -> None: ...
    def add_event_listener(self, cb: Any) -> None: ...
    def remove_event_listener(self, cb: Any) -> None: ...

    async def action(self, action: Any, timeout: float | None = None) -> AmiResponse:
        self.actions.append(action)
        return AmiResponse({"Response": "Success"}, [], None)


def channel(uid: str, number: str = CALLER) -> dict[str, str]:
    """A caller waiting for the operators (AMI Newchannel)."""
    return {
        "Event": "Newchannel", "Channel": f"PJSIP/trunk-{uid}", "ChannelState": "6",
        "ChannelStateDesc": "Up", "CallerIDNum": number, "CallerIDName": "",
        "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
        "Context": "vaihde-operator", "Exten": "s", "Priority": "1", "Uniqueid": uid,
        "Linkedid": uid,
    }


class _Service:
    """What /health reads of the service (as vaihde.service.Service.status() says it)."""

    def status(self) -> dict[str, Any]:
        return {"status": "ok", "fastagi": {"listening": True}, "ami": {"connected": True},
                "company": {"name": NAMES["alfa"], "version": 1}, "companies": 2}


@dataclass
class World:
    client: TestClient
    console: Console
    tracker: CallTracker
    stories: StoryBook
    configs: dict[str, CompanyConfig]
    tokens: dict[str, str]
    cookies: dict[str, str]
    ids: dict[str, dict[str, str]]  # kind -> company -> id
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def add_call(self, cid: str, uid: str) -> None:
        self.stories.open(uid, CALLER, "", "0201111111" if cid == "alfa" else "0202222222",
                          company=cid)
        self.tracker.apply(channel(uid))


async def _world(db: Database, tmp: Path) -> tuple[World, list[Any]]:
    """The two companies, their users, things and calls, served over HTTP."""
    configs = {cid: parse_company(text, f"{cid}.yaml") for cid, text in FILES.items()}
    for config in configs.values():
        await apply_company(db.sessions, config, applied_by="walk", source_name="walk")
    ids: dict[str, dict[str, str]] = {
        "employee_id": {cid: f"{cid}-aino" for cid in COMPANIES} | {GHOST: "ghost-x"},
        "team_id": {cid: f"{cid}-myynti" for cid in COMPANIES} | {GHOST: "ghost-team"},
        "call_id": {cid: f"c.{cid}1" for cid in COMPANIES} | {GHOST: "c.ghost"},
        "username": {cid: f"{cid}-op" for cid in COMPANIES} | {GHOST: "ghost-user"},
        "company": {cid: cid for cid in COMPANIES} | {GHOST: GHOST},
        "number": dict.fromkeys((*COMPANIES, GHOST), CALLER),
        "entry_id": {GHOST: "999999"}, "message_id": {GHOST: "999999"},
        "callback_id": {GHOST: "999999"}, "urgent_id": {GHOST: "999999"},
    }
    now = datetime.now(UTC)
    async with db.sessions.begin() as session:
        for cid in COMPANIES:
            entry = await set_availability(
                session, f"{cid}-arto", "meeting", source="operator", set_by="walk",
                starts_at=now + timedelta(days=1), until=now + timedelta(days=1, hours=1),
                note_for_callers=f"{cid} palaveri")
            ids["entry_id"][cid] = str(entry.id)
            await upsert_caller(session, CALLER, name=CALLER_NAMES[cid], company_id=cid)
            await add_contact(session, caller_number=CALLER, direction="in", path="menu",
                              outcome="answered", company_id=cid, at=now - timedelta(hours=1))
            callback = await messages.create_callback(
                session, CallbackDraft(CALLER, caller_name=CALLER_NAMES[cid],
                                       for_kind="employee", for_id=f"{cid}-aino",
                                       note=f"{cid} soittopyyntö"), company_id=cid)
            ids["callback_id"][cid] = str(callback.id)
    for cid in COMPANIES:
        message = await messages.take_message(
            db.sessions, MessageDraft(Recipient(kind="employee", id=f"{cid}-aino"), CALLER,
                                      caller_name=CALLER_NAMES[cid], note=f"{cid} viesti"),
            configs[cid], channels=("email",))
        ids["message_id"][cid] = str(message.id)
        async with db.sessions.begin() as session:  # an urgent one, escalating along the rota
            urgent = await messages.create_message(
                session, MessageDraft(Recipient(kind="employee", id=f"{cid}-aino"), CALLER,
                                      caller_name=CALLER_NAMES[cid], note=f"{cid} kiire"),
                configs[cid], channels=("email",))
            dispatch = await dispatch_store.start_dispatch(
                session, urgent, configs[cid], rota=f"{cid}-paivystys", company_key=cid)
        ids["urgent_id"][cid] = str(dispatch.id)
    tokens: dict[str, str] = {}
    password_hash = passwords.hash_password(PASSWORD)
    async with db.sessions.begin() as session:
        for user, (role, linked, employee, _) in USERS.items():
            await auth_store.add_user(
                session, user, role=role, employee_id=employee, companies=linked,
                password_hash=password_hash,
                sip_endpoint=f"PJSIP/{user}" if role != "employee" else None)
            tokens[user], _ = await auth_store.create_token(session, user, label="walk")

    cache = PresenceCache(db.sessions)
    await cache.load()
    directory = LiveDirectory(db.sessions)
    await directory.refresh()
    tracker, stories = CallTracker(), StoryBook()
    employees = {e: cid for cid, c in configs.items() for e in c.employees}
    console = Console(ConsoleDeps(
        tracker=tracker, ami=WalkAmi(), stories=stories, company=lambda: configs["alfa"],
        company_by_id=configs.get, presence=cache, sessions=db.sessions,
        availability_json=lambda av: as_json(av), coalesce_s=0.005, ping_s=0.5,
        employee_company=employees.get, streams_per_user=50,
    ))
    await console.start()

    async def applied() -> None:
        await directory.refresh()

    roster = Roster.build(configs)  # both companies, Alfa first
    ctx = ApiContext(
        sessions=db.sessions, cache=cache, directory=directory, company=lambda: configs["alfa"],
        config_applied=applied, message_channels=("email",), console=console,
        recordings_dir=tmp, directory_of=directory.of,
        roster=lambda: roster,
    )
    root = make_app(_Service(), sessions=db.sessions)  # type: ignore[arg-type]
    root.add_subapp(PREFIX, make_api(ctx))
    add_web(root, db.sessions)
    client = TestClient(TestServer(root, host="127.0.0.1"), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    world = World(client, console, tracker, stories, configs, tokens, {}, ids)
    for cid in COMPANIES:
        world.add_call(cid, ids["call_id"][cid])
    for _ in range(200):  # the board has both calls, with each company's caller facts
        calls = console.board.calls
        if len(calls) == 2 and all(c["caller"]["known"] for c in calls.values()):
            break
        await asyncio.sleep(0.02)
    for user in USERS:
        async with client.post(PREFIX + "/session",
                               json={"username": user, "password": PASSWORD}) as reply:
            assert reply.status == 200, await reply.text()
            cookie = reply.cookies["vaihde_session"].value
        world.cookies[user] = f"vaihde_session={cookie}"
    return world, [console.stop, client.close]


# --- requests ---------------------------------------------------------------------------------


def _body(world: World, method: str, path: str, target: str, user: str) -> dict[str, Any]:
    """A valid body for the route, naming `target`'s things (a company id or GHOST)."""
    ids = world.ids
    employee = ids["employee_id"][target]
    n = next(world.counter)
    later = (datetime.now(UTC) + timedelta(days=3, minutes=n)).isoformat()
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/session"): {"username": user, "password": PASSWORD},
        ("PUT", "/employees/{employee_id}/availability"): {"state": "meeting"},
        ("POST", "/employees/{employee_id}/availability/entries"):
            {"state": "vacation", "starts_at": later},
        ("POST", "/messages"): {"for": {"employee": employee}, "text": "walk",
                                "caller_number": CALLER},
        ("POST", "/callbacks"): {"for": {"employee": employee}, "caller_number": CALLER},
        ("PUT", "/callers/{number}"): {"notes": "walk"},
        ("POST", "/console/calls/{call_id}/transfer"): {"to": {"number": "0409999999"}},
        ("POST", "/users"): {"username": f"walk-{n}", "role": "operator",
                             "companies": [target] if target in COMPANIES else [GHOST]},
        ("PUT", "/users/{username}"): {"display_name": f"walk {n}"},
        ("POST", "/callbacks/{callback_id}/done"): {},
    }
    if path.startswith("/config/"):
        text = FILES.get(target, FILES["alfa"])
        return {"data": text.encode(), "headers": {"Content-Type": "application/yaml"}}
    found = bodies.get((method, path))
    return {"json": found} if found is not None else {}


@dataclass
class Answer:
    status: int
    text: str
    code: str | None


async def _ask(world: World, method: str, url: str, user: str, *, page: bool = False,
               **more: Any) -> Answer:
    headers = dict(more.pop("headers", {}))
    if page:
        headers["Cookie"] = world.cookies[user]
    else:
        headers["Authorization"] = f"Bearer {world.tokens[user]}"
    async with world.client.request(method, url, headers=headers, **more) as reply:
        text = await reply.text(errors="replace")
        code = None
        if reply.content_type == "application/json" and reply.status >= 400:
            try:
                code = json.loads(text)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
        return Answer(reply.status, text, code)


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values[m[1]], path)


def _holds(text: str, cid: str) -> str | None:
    low = text.lower()
    return next((word for word in MARKERS[cid] if word in low), None)


async def _route(world: World, report: WalkReport, route: Any) -> None:
    rule = route.company
    kind = rule.kind if rule is not None else "none"
    for user, (_, _, _, own) in USERS.items():
        foreign = other(own)
        targets = [own, foreign, GHOST] if kind in ("path", "query", "body") else [own]
        answers: dict[str, Answer] = {}
        for target in targets:
            values = {name: world.ids.get(name, {}).get(own, "1") for name in
                      re.findall(r"\{([^}]+)\}", route.path)}
            params: dict[str, str] = {}
            if kind == "path":
                values[rule.param] = world.ids[rule.param][target]
            elif kind == "query":
                params[rule.param] = target
            if route.path == "/directory/search":
                params["q"] = "aino"
            url = PREFIX + _url(route.path, values)
            body = _body(world, route.method, route.path, target, user)
            if route.path == "/console/stream":
                answers[target] = await _stream(world, report, user, own)
                continue
            answers[target] = await _ask(world, route.method, url, user, params=params, **body)
            report.requests += 1
            if answers[target].status >= 500:
                report.errors.append(f"{route.method} {route.path} as {user} for {target}: "
                                     f"{answers[target].status} {answers[target].text[:200]}")
        if not scoped(user):
            continue
        what = f"{route.method} {route.path} as {user}"
        for target, answer in answers.items():
            if target == own and (word := _holds(answer.text, foreign)):
                report.leak(f"{what}: the reply holds {word!r} of {foreign}")
        if foreign in answers:
            theirs, ghost = answers[foreign], answers[GHOST]
            if theirs.status < 400 or (theirs.status, theirs.code) != (ghost.status, ghost.code):
                report.leak(f"{what} for {foreign}'s: {theirs.status} {theirs.code}, but "
                            f"{ghost.status} {ghost.code} for what does not exist")


async def _stream(world: World, report: WalkReport, user: str, own: str) -> Answer:
    """The console's stream: its first board, then live events as calls of both companies
    arrive (and availability changes in both). Read until the user's own company's new call
    has come (or 3 s); the text of everything read is the answer."""
    headers = {"Authorization": f"Bearer {world.tokens[user]}"}
    report.requests += 1
    async with world.client.get(PREFIX + "/console/stream", headers=headers) as reply:
        if reply.status != 200:
            return Answer(reply.status, await reply.text(), None)
        n = next(world.counter)
        read = await _events(reply, lambda text: '"waiting"' in text, 3)  # the board
        wanted = {cid: f"c.{cid}x{n}" for cid in COMPANIES}
        # The other company's first, so that it would arrive before the own one's.
        for cid in (other(own), own):
            world.add_call(cid, wanted[cid])
            presence = world.console.deps.presence
            assert presence is not None
            world.console.publish_availability(presence.lookup(f"{cid}-arto"))
        read.extend(await _events(reply, lambda text: wanted[own] in text, 3))
        return Answer(200, "".join(read), None)


async def _events(reply: aiohttp.ClientResponse, done: Callable[[str], bool],
                  timeout: float) -> list[str]:
    """SSE lines read until one satisfies `done`, or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    read: list[str] = []
    while (left := deadline - loop.time()) > 0:
        try:
            line = await asyncio.wait_for(reply.content.readline(), left)
        except TimeoutError:
            break
        if not line:
            break
        text = line.decode("utf-8", "replace")
        read.append(text)
        if done(text):
            break
    return read


async def _pages(world: World, report: WalkReport) -> None:
    """Every page of the root application (the API and /static/ assets' files aside: a static
    asset is walked once by name), asked with each user's login cookie."""
    app = world.client.server.app
    assert app is not None
    paths = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or ""
        if not path or path.startswith(PREFIX):
            continue
        paths.add(path.replace("{name}", "console.js"))
    for path in sorted(paths):
        report.pages += 1
        param = COMPANY_PAGES.get(path)
        for user, (_, _, _, own) in USERS.items():
            foreign = other(own)
            targets = [own, foreign, GHOST] if param else [own]
            answers = {}
            for target in targets:
                params = {param: target} if param else {}
                answers[target] = await _ask(world, "GET", path, user, page=True, params=params,
                                             allow_redirects=False)
                report.requests += 1
                if answers[target].status >= 500:
                    report.errors.append(f"GET {path} as {user}: {answers[target].status}")
            if not scoped(user):
                continue
            if word := _holds(answers[own].text, foreign):
                report.leak(f"GET {path} as {user}: the page holds {word!r} of {foreign}")
            if param:
                theirs, ghost = answers[foreign], answers[GHOST]
                if theirs.status < 400 or theirs.status != ghost.status:
                    report.leak(f"GET {path}?{param}={foreign} as {user}: {theirs.status}, "
                                f"{ghost.status} for a company that does not exist")


async def walk(db: Database, tmp: Path) -> WalkReport:
    """Walk every declared API route and every page over `db` (migrated, empty)."""
    report = WalkReport()
    world, closers = await _world(db, tmp)
    try:
        for route in sorted(routes(), key=lambda r: (r.path, r.method)):
            report.routes += 1
            if route.company is None:
                report.undeclared.append(f"{route.method} {route.path}")
            await _route(world, report, route)
        await _pages(world, report)
    finally:
        for close in closers:
            await close()
    return report


async def walk_sqlite(tmp: Path) -> WalkReport:
    """The walk on a fresh SQLite database in `tmp` (for the benchmark)."""
    passwords.configure(time_cost=1, memory_cost=1024, parallelism=1)
    url = f"sqlite+aiosqlite:///{tmp / 'walk.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    db = open_database(url)
    try:
        return await walk(db, tmp)
    finally:
        await db.close()
        passwords.configure()


__all__ = ["WalkReport", "walk", "walk_sqlite"]
