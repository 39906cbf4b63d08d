"""The console's board and SSE stream over a real aiohttp server (SQLite and PostgreSQL): roles,
the first `board`, `call`/`gone` as the tracker changes, coalesced bursts, `ami` and
`availability` events, pings, caller facts from the database, slow consoles told to
reconnect, streams ended when their session or role ends, and the cap on streams per user.
The tracker is fed recorded-style AMI events here; tests/integration has the live
Asterisk version."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from vaihde.ami.client import AmiResponse
from vaihde.ami.tracker import CallTracker
from vaihde.api import ApiContext, make_api
from vaihde.auth import store as auth_store
from vaihde.console.stream import Console, ConsoleDeps
from vaihde.db.changes import Changes
from vaihde.db.models import AUTH, Contact
from vaihde.db.peer import Peer
from vaihde.directory.search import DirectoryIndex
from vaihde.directory.store import sync_directory, upsert_caller
from vaihde.http.health import make_app
from vaihde.presence.cache import PresenceCache
from vaihde.records import as_json
from vaihde.story import StoryBook

HELSINKI = ZoneInfo("Europe/Helsinki")  # the API fixtures' time zone
PREFIX = "/api/v1"


@pytest.fixture
def fix(request: pytest.FixtureRequest) -> Any:
    """tests/api/conftest.py as pytest loaded it (`import conftest` could be another one)."""
    mine = Path(__file__).with_name("conftest.py").resolve()
    for plugin in request.config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if file and Path(file).resolve() == mine:
            return plugin
    raise RuntimeError("tests/api/conftest.py is not loaded")


class StubAmi:
    """The AMI client's connection state and listeners (nothing else is used by the hub)."""

    def __init__(self) -> None:
        self.connected = True
        self.state: list[Callable[[bool], None]] = []
        self.events: list[Callable[[Any], None]] = []

    def add_state_listener(self, cb: Callable[[bool], None]) -> None:
        self.state.append(cb)

    def remove_state_listener(self, cb: Callable[[bool], None]) -> None:
        self.state.remove(cb)

    def add_event_listener(self, cb: Callable[[Any], None]) -> None:
        self.events.append(cb)

    def remove_event_listener(self, cb: Callable[[Any], None]) -> None:
        self.events.remove(cb)

    def set(self, connected: bool) -> None:
        self.connected = connected
        for cb in self.state:
            cb(connected)


class EmptyAsterisk:
    """Answers the tracker's resync with no channels."""

    async def action(self, action: Any, timeout: float | None = None) -> AmiResponse:
        done = {"Event": f"{action['Action']}Complete", "EventList": "Complete"}
        return AmiResponse({"Response": "Success", "EventList": "start"}, [], done)


def chan(uid: str, *, context: str = "vaihde-operator", num: str = "0401234567",
         name: str = "Matti") -> dict[str, str]:
    return {
        "Channel": f"PJSIP/trunk-{uid[-4:]}", "ChannelState": "6", "ChannelStateDesc": "Up",
        "CallerIDNum": num, "CallerIDName": name, "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>", "Context": context, "Exten": "s", "Priority": "1",
        "Uniqueid": uid, "Linkedid": uid,
    }


@dataclass
class Sse:
    """A stream as the browser reads it."""

    response: aiohttp.ClientResponse
    comments: list[str] = field(default_factory=list)

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        """The next event (comments are collected on the way)."""
        event: dict[str, Any] = {}
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), timeout)
            if not raw:
                raise EOFError("stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if "event" in event or "data" in event:
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                    return event
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            name, _, value = line.partition(": ")
            event[name] = value

    async def until(self, kind: str, match: Callable[[Any], bool] = lambda _d: True,
                    timeout: float = 5) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            event = await self.next(max(left, 0.01))
            if event.get("event") == kind and match(event["data"]):
                return event


@dataclass
class ConsoleApi:
    api: Any  # conftest's Api
    console: Console
    tracker: CallTracker
    ami: StubAmi
    stories: StoryBook
    cache: PresenceCache

    def apply(self, *events: dict[str, str]) -> None:
        for e in events:
            self.tracker.apply(e)

    async def stream(self, user: str = "olli") -> Sse:
        response = await self.api.client.get(
            PREFIX + "/console/stream",
            headers={"Authorization": f"Bearer {self.api.tokens[user]}"},
        )
        return Sse(response)


@pytest.fixture
async def capi(db, fix) -> AsyncIterator[ConsoleApi]:  # type: ignore[no-untyped-def]
    add_user = fix.add_user
    async with db.sessions.begin() as session:
        await sync_directory(session, fix.DIRECTORY)
    tokens = {
        "root": await add_user(db, "root", "admin"),
        "olli": await add_user(db, "olli", "operator", "asa"),
        "anna": await add_user(db, "anna", "employee", "anna"),
    }
    cache = PresenceCache(db.sessions, tz=HELSINKI)
    await cache.load()
    tracker, ami, stories = CallTracker(), StubAmi(), StoryBook()
    # As the service does: on PostgreSQL the streams are checked again when credentials are
    # withdrawn anywhere (NOTIFY), otherwise only every few seconds; on SQLite twice a second.
    peer = Peer.for_database(db, name="vaihde console-test")
    if peer is not None:
        await peer.start()
        assert peer.up, peer.last_error
    console = Console(ConsoleDeps(
        tracker=tracker, ami=ami, stories=stories, presence=cache, sessions=db.sessions,
        tz=HELSINKI, availability_json=lambda av: as_json(av, tz=HELSINKI),
        coalesce_s=0.005, ping_s=0.3, queue_size=20,
        credentials=Changes(peer).watch(AUTH),
    ))
    await console.start()
    clock = fix.Clock()
    ctx = ApiContext(sessions=db.sessions, cache=cache, directory=lambda: DirectoryIndex.build([]),
                     company=lambda: None, tz=HELSINKI, clock=clock, console=console)
    root = make_app(type("S", (), {"status": lambda self: {}})())  # type: ignore[arg-type]
    root.add_subapp(PREFIX, make_api(ctx))
    client = TestClient(TestServer(root, host="127.0.0.1"), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    try:
        yield ConsoleApi(fix.Api(client, db, cache, clock, tokens), console, tracker, ami, stories,
                         cache)
    finally:
        await console.stop()
        await client.close()
        if peer is not None:
            await peer.stop()


async def test_board_for_operators_and_admins_only(capi):
    reply = await capi.api.call("GET", "/console/board", as_="anna")
    assert reply.status == 403
    reply = await capi.api.call("GET", "/console/stream", as_="anna")
    assert reply.status == 403
    reply = await capi.api.call("GET", "/console/board")
    assert reply.status == 401
    for user in ("olli", "root"):
        reply = await capi.api.call("GET", "/console/board", as_=user)
        assert reply.status == 200
        assert reply.json == {"seq": reply.json["seq"], "ami": {"connected": True},
                              "waiting": [], "active": [], "parked": []}


async def test_waiting_call_on_the_board_with_caller_facts_from_the_database(capi):
    now = datetime.now(UTC)
    async with capi.api.db.sessions.begin() as session:
        await upsert_caller(session, "0401234567", name="Matti Meikäläinen",
                            organisation="Oy Ab")
        for days in (0, 3, 40):
            session.add(Contact(caller_number="0401234567", at=now - timedelta(days=days),
                                direction="in", path="menu", outcome="answered", details={}))
        # Older than those, and more than a card shows: the five newest are listed.
        for hours, sought, outcome in ((50, "team:sales", "message"), (60, "", "hangup"),
                                       (70, "employee:anna", "noanswer")):
            session.add(Contact(caller_number="0401234567", at=now - timedelta(days=hours),
                                direction="in", path="menu_option", outcome=outcome,
                                employee_id="anna" if sought.startswith("employee") else None,
                                details={"sought": sought}))
    capi.apply({"Event": "Newchannel", **chan("c.1001")})
    for _ in range(100):
        reply = await capi.api.call("GET", "/console/board", as_="olli")
        waiting = reply.json["waiting"]
        if waiting and waiting[0]["caller"]["known"]:
            break
        await asyncio.sleep(0.02)
    (call,) = waiting
    assert call["id"] == "c.1001" and call["state"] == "waiting"
    assert call["caller"]["known"] == {"name": "Matti Meikäläinen", "organisation": "Oy Ab"}
    assert call["earlier"]["last_30_days"] == 2
    # "today" counts from the company's midnight: the contact made just now is one of them.
    assert call["earlier"]["today"] >= 1
    recent = call["earlier"]["recent"]
    assert [(c["outcome"], c["sought"] and c["sought"]["id"]) for c in recent] == [
        ("answered", None), ("answered", None), ("answered", None), ("message", "sales"),
        ("hangup", None)]
    # No running company here: names are the ids (with one, the team's name: unit tests).
    assert recent[3]["sought"] == {"kind": "team", "id": "sales", "name": "sales"}
    assert recent[3]["ended"] == "left a message"
    assert recent[0]["at"] > recent[1]["at"] > recent[2]["at"]


async def test_stream_starts_with_the_board_then_sends_changes(capi):
    sse = await capi.stream()
    assert sse.response.status == 200
    assert sse.response.headers["Content-Type"].startswith("text/event-stream")
    first = await sse.next()
    assert first["event"] == "board" and first["data"]["waiting"] == []
    assert int(first["id"]) == first["data"]["seq"]
    capi.apply({"Event": "Newchannel", **chan("c.2001", name="<img src=x onerror=alert(1)>")})
    event = await sse.until("call")
    assert event["data"]["id"] == "c.2001" and event["data"]["state"] == "waiting"
    assert event["data"]["caller"]["name"] == "<img src=x onerror=alert(1)>"
    assert int(event["id"]) > int(first["id"])
    capi.apply({"Event": "Hangup", **chan("c.2001"), "Cause": "16"})
    gone = await sse.until("gone")
    assert gone["data"] == {"id": "c.2001"} and int(gone["id"]) > int(event["id"])
    sse.response.close()


async def test_callers_moving_up_the_queue_get_one_positions_event(capi):
    sse = await capi.stream()
    await sse.next()
    for uid in ("c.4001", "c.4002", "c.4003"):
        capi.apply({"Event": "Newchannel", **chan(uid)})
        await sse.until("call", lambda d, uid=uid: d["id"] == uid)
    board = capi.console.board_json()
    assert [(c["id"], c["position"]) for c in board["waiting"]] == [
        ("c.4001", 1), ("c.4002", 2), ("c.4003", 3)]
    capi.apply({"Event": "Hangup", **chan("c.4001"), "Cause": "16"})
    events = {}
    while "gone" not in events:
        event = await sse.next()
        events[event["event"]] = event["data"]
    # The two behind changed only their number: one small event, no `call` for either.
    assert events == {"positions": {"c.4002": 1, "c.4003": 2}, "gone": {"id": "c.4001"}}
    sse.response.close()


async def test_a_burst_is_coalesced_into_one_recomputation(capi):
    sse = await capi.stream()
    await sse.next()
    before = capi.console.recomputed
    capi.apply({"Event": "Newchannel", **chan("c.3001", context="vaihde-main")})
    for i in range(200):  # a caller mashing keys in the menu, then to the operator
        capi.apply({"Event": "DTMFEnd", **chan("c.3001", context="vaihde-main"),
                    "Digit": str(i % 10), "Direction": "Received"})
    capi.apply({"Event": "Newstate", **chan("c.3001", context="vaihde-operator")})
    event = await sse.until("call")
    assert event["data"]["state"] == "waiting"
    assert capi.console.recomputed - before <= 2
    sse.response.close()


async def test_ami_state_and_a_fresh_board_after_resync(capi):
    sse = await capi.stream()
    await sse.next()
    capi.ami.set(False)
    event = await sse.until("ami")
    assert event["data"] == {"connected": False}
    reply = await capi.api.call("GET", "/console/board", as_="olli")
    assert reply.json["ami"] == {"connected": False}
    await capi.tracker.resync(EmptyAsterisk())
    board = await sse.until("board")
    assert board["data"]["waiting"] == [] and int(board["id"]) == board["data"]["seq"]
    capi.ami.set(True)
    assert (await sse.until("ami"))["data"] == {"connected": True}
    sse.response.close()


async def test_availability_events_from_presence(capi):
    sse = await capi.stream()
    await sse.next()
    capi.cache.set_on_call("anna", True)
    event = await sse.until("availability", lambda d: d["employee"] == "anna")
    assert event["data"]["state"] == "on_call" and event["data"]["on_call"] is True
    assert "internal_note" in event["data"]  # operators see the internal note
    sse.response.close()


async def test_pings_keep_the_stream_alive(capi):
    sse = await capi.stream()
    await sse.next()
    # Nothing happens on the board: only pings come (every 0.3 s here, 15 s in service).
    for _ in range(2):
        raw = await asyncio.wait_for(sse.response.content.readline(), 2)
        assert raw == b": ping\n"
        assert await asyncio.wait_for(sse.response.content.readline(), 2) == b"\n"
    sse.response.close()


async def test_a_slow_console_is_told_to_reconnect_and_others_carry_on(capi):
    slow, fast = await capi.stream(), await capi.stream()
    await slow.next()
    await fast.next()
    assert capi.console.subscribers == 2
    # 30 changes without the event loop running the writers: more than a queue holds (20).
    for i in range(30):
        capi.apply({"Event": "Newchannel", **chan(f"c.40{i:02d}")})
        capi.console.refresh()
    assert capi.console.subscribers == 0 and capi.console.dropped_subscribers == 2
    event = await slow.until("reconnect")
    assert "id" not in event and "too slow" in event["data"]["why"]
    with pytest.raises(EOFError):
        await slow.next()
    # Reconnecting gives the whole board at once.
    again = await capi.stream()
    board = await again.next()
    assert board["event"] == "board" and len(board["data"]["waiting"]) == 30
    for s in (slow, fast, again):
        s.response.close()


async def test_unknown_query_parameters_are_refused(capi):
    reply = await capi.api.call("GET", "/console/board", as_="olli", params={"x": "1"})
    assert reply.status == 400


async def test_actions_need_asterisk_and_csrf_and_a_valid_body(capi):
    capi.apply({"Event": "Newchannel", **chan("c.5001")})
    capi.console.refresh()
    capi.ami.set(False)
    reply = await capi.api.call("POST", "/console/answer-next", as_="olli")
    assert reply.status == 503 and reply.error["code"] == "ami_down"
    reply = await capi.api.call("POST", "/console/answer-next", as_="anna")
    assert reply.status == 403
    capi.ami.set(True)
    for body, bad in (({"to": {"employee": "anna"}, "mode": "x"}, "mode"),
                        ({"to": {"pizza": "x"}}, "to"), ({"to": "anna"}, "to"),
                        ({"to": {"number": 5}}, "to"), ({"too": 1}, "too")):
        reply = await capi.api.call("POST", "/console/calls/c.5001/transfer", as_="olli",
                                    json=body)
        assert reply.status == 400 and reply.error["field"] == bad, body
    # A cookie session must send its CSRF token with every action.
    cookie, csrf = await capi.api.login("olli")
    reply = await capi.api.call("POST", "/console/calls/c.5001/hangup",
                                headers={"Cookie": cookie})
    assert reply.status == 403 and reply.error["code"] == "csrf"
    reply = await capi.api.call("POST", "/console/calls/nope.1/hangup",
                                headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert reply.status == 404


# --- a stream lasts only as long as what opened it (security review, finding 4) -------------


async def cookie_stream(capi: ConsoleApi, cookie: str) -> Sse:
    response = await capi.api.client.get(PREFIX + "/console/stream", headers={"Cookie": cookie})
    assert response.status == 200
    return Sse(response)


async def ends_within(sse: Sse, seconds: float) -> tuple[float, dict[str, Any]]:
    """Read until the stream ends: (how long it took, the `reconnect` event it ended with)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    # One deadline for the whole wait: pings alone would keep each read going.
    event = await asyncio.wait_for(sse.until("reconnect"), seconds + 2)
    with pytest.raises(EOFError):
        await asyncio.wait_for(sse.next(), 2)
    return loop.time() - started, event


async def test_the_stream_ends_within_a_second_of_logout(capi):
    cookie, csrf = await capi.api.login("olli")
    sse = await cookie_stream(capi, cookie)
    assert (await sse.next())["event"] == "board"
    other = await capi.stream("root")  # someone else's stream is not affected
    await other.next()
    reply = await capi.api.call("DELETE", "/session",
                                headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert reply.status == 204
    took, event = await ends_within(sse, 1.0)
    assert took <= 1.0 and "log in again" in event["data"]["why"]
    # Reconnecting with the ended session is refused; the other console still gets calls.
    reply = await capi.api.call("GET", "/console/stream", headers={"Cookie": cookie})
    assert reply.status == 401
    capi.apply({"Event": "Newchannel", **chan("c.6001")})
    assert (await other.until("call"))["data"]["id"] == "c.6001"
    other.response.close()


async def test_the_stream_ends_when_another_process_disables_the_user(capi):
    cookie, _ = await capi.api.login("olli")
    by_cookie, by_token = await cookie_stream(capi, cookie), await capi.stream("olli")
    for sse in (by_cookie, by_token):
        assert (await sse.next())["event"] == "board"
    url = capi.api.db.engine.url.render_as_string(hide_password=False)
    # `vaihde user disable` in its own process, as an admin would run it.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vaihde", "user", "disable", "olli", "--db", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    for sse in (by_cookie, by_token):
        took, event = await ends_within(sse, 1.0)
        assert took <= 1.0 and "log in again" in event["data"]["why"]
    assert capi.console.subscribers == 0


async def test_the_stream_ends_when_the_user_is_demoted_to_employee(capi):
    sse = await capi.stream("olli")
    await sse.next()
    async with capi.api.db.sessions.begin() as session:
        await auth_store.update_user(session, "olli", role="employee")
    took, event = await ends_within(sse, 1.0)
    assert took <= 1.0 and "no longer allows" in event["data"]["why"]
    reply = await capi.api.call("GET", "/console/stream", as_="olli")
    assert reply.status == 403


async def test_the_stream_ends_when_the_users_companies_change(capi):
    sse = await capi.stream("olli")  # every company's calls
    await sse.next()
    other = await capi.stream("root")
    await other.next()
    async with capi.api.db.sessions.begin() as session:
        await auth_store.update_user(session, "olli", companies=["main"])
    took, event = await ends_within(sse, 1.0)
    assert took <= 1.0 and "companies you serve have changed" in event["data"]["why"]
    # A new stream starts from the board of their companies; root's carries on.
    again = await capi.stream("olli")
    assert (await again.next())["event"] == "board"
    capi.apply({"Event": "Newchannel", **chan("c.6101")})
    assert (await other.until("call"))["data"]["id"] == "c.6101"
    again.response.close()
    other.response.close()


async def test_streams_per_user_are_capped_with_a_clear_429(capi):
    streams = [await capi.stream("olli") for _ in range(5)]
    for sse in streams:
        await sse.next()
    # (Read by status first: without the cap this would be one more endless stream.)
    async with capi.api.client.get(
        PREFIX + "/console/stream", headers={"Authorization": f"Bearer {capi.api.tokens['olli']}"}
    ) as response:
        assert response.status == 429
        error = (await response.json())["error"]
        assert error["code"] == "too_many_streams"
        assert "5 console stream(s) open" in error["message"]
        assert int(response.headers["Retry-After"]) >= 1
    # Another user is not limited by olli's streams.
    root = await capi.stream("root")
    assert (await root.next())["event"] == "board"
    # A closed tab frees its place at once (not at the stream's next write).
    streams.pop().response.close()
    for _ in range(100):
        response = await capi.api.client.get(
            PREFIX + "/console/stream",
            headers={"Authorization": f"Bearer {capi.api.tokens['olli']}"})
        if response.status == 200:
            break
        response.close()
        await asyncio.sleep(0.02)
    assert response.status == 200
    for sse in [*streams, root, Sse(response)]:
        sse.response.close()
