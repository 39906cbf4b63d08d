"""Several Asterisks, one service: two real sandbox Asterisks (A, the session's; B, started here),
both with the shipped dialplan and FastAGI to the one service under test, which keeps an AMI
link to each. Callers on both are on one console board; the console acts on a caller on B
through B; the operator's phone (SIPp as PJSIP/sipp-phone) lives on A only, so B reaches it
through its trunk to A and A's [vaihde-reach]; a restart of B loses and then resyncs only B's
calls. Asserted from each Asterisk's own AMI events (AmiProbe, which shares no code with
vaihde.ami) and from the console's HTTP board and stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from amiprobe import AmiProbe
from company import COMPANY, COMPANY_NUMBER, PHONES, TEAM_QUEUE
from sqlalchemy import select
from test_console_live import Stream, bridged, dial_from
from test_first_call import call

from conftest import TRUNK_TO_A, TRUNK_TO_B, peer_test_settings
from vaihde.auth.store import add_user, create_token
from vaihde.config.settings import loads
from vaihde.db.models import Contact
from vaihde.sandbox import Instance
from vaihde.service import Service

pytestmark = pytest.mark.asterisk

QUEUE = "vaihde-switchboard"
NEVER_ANSWERS = f"Local/noanswer@{PHONES}"
QUEUE_PHONE = f"Local/operator@{PHONES}"
SIPP = "PJSIP/sipp-phone"  # configured on A only
# The test company, and a team with its own queue whose members live on both Asterisks.
CLUSTER_COMPANY = COMPANY.replace(
    "teams:\n", f"teams:\n  sales: {{name: Sales, members: [anna, sipp], queue: {TEAM_QUEUE}}}\n")


@pytest.fixture(scope="module")
def asterisk_b(asterisk: Instance) -> Iterator[Instance]:
    """The second Asterisk, for this module; always stopped at the end."""
    instance = Instance(peer_test_settings(asterisk.settings))
    instance.start(replace=True, tie_to_parent=True)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
async def ami_b(asterisk_b: Instance) -> AsyncIterator[AmiProbe]:
    probe = await AmiProbe.connect(asterisk_b.ami_port, asterisk_b.driver_username,
                                   asterisk_b.driver_secret)
    try:
        yield probe
    finally:
        await probe.close()
        asterisk_b.hang_up_all()


@pytest.fixture
async def nobody_answers(ami: AmiProbe, ami_b: AmiProbe) -> AsyncIterator[None]:
    """Callers stay waiting on both Asterisks: the queues' operator phone paused, the operator
    group a phone nobody answers; restored afterwards."""
    saved = []
    for probe in (ami, ami_b):
        old = await probe.action("Getvar", Variable="VAIHDE_OPERATORS")
        saved.append((probe, old.get("Value", "")))
        await probe.action("Setvar", Variable="VAIHDE_OPERATORS", Value=NEVER_ANSWERS)
        await probe.action("QueuePause", Queue=QUEUE, Interface=QUEUE_PHONE, Paused="true")
    try:
        yield
    finally:
        for probe, value in saved:
            if probe._task is not None and probe._task.done():
                continue  # that Asterisk was restarted: its settings are fresh anyway
            await probe.action("QueuePause", Queue=QUEUE, Interface=QUEUE_PHONE, Paused="false")
            await probe.action("Setvar", Variable="VAIHDE_OPERATORS", Value=value)


def cluster_settings(a: Instance, b: Instance, tmp_path: Path) -> str:
    def entry(ast: Instance, trunk: str, secret: str) -> str:
        return (f"    - {{name: vaihde-{ast.name}, host: 127.0.0.1, port: {ast.ami_port}, "
                f"username: {ast.ami_username}, {secret}, reach: 'PJSIP/{{resource}}@{trunk}'}}")

    return "\n".join([
        "service:",
        f"  fastagi: {{host: 127.0.0.1, port: {a.agi_port}, secret: {a.settings.agi_secret}}}",
        "  http: {host: 127.0.0.1, port: 0}",
        "  asterisks:",
        # A phone on A is dialled from B through B's trunk to A, and the other way round.
        entry(a, TRUNK_TO_A, f"secret: {json.dumps(a.ami_secret)}"),
        entry(b, TRUNK_TO_B, "secret_env: VAIHDE_TEST_SECRET_B"),
        f"database: {{url: {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/vaihde.db')}}}",
        "company_file: company.yaml",
        # Both Asterisks run in the one chroot, so A's sounds path is B's too (a site shares the
        # directory the same way).
        f"prompts: {{dir: {json.dumps(str(a.sounds_dir))}, "
        f"asterisk_dir: {json.dumps(a.sounds_dir_in_asterisk)}}}",
        "guard: {mode: 'off'}",
        "",
    ])


async def eventually(check: Any, timeout: float = 10, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(what or "condition not met in time")
        await asyncio.sleep(0.05)


async def start_two(a: Instance, b: Instance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                    company: str = CLUSTER_COMPANY) -> Service:
    """The service with an AMI link to both Asterisks, once both are logged in and synced."""
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAIHDE_TEST_SECRET_B", b.ami_secret)
    (tmp_path / "company.yaml").write_text(company)
    settings = loads(cluster_settings(a, b, tmp_path), str(tmp_path / "settings.yaml"))
    service = Service(settings)
    await service.start()
    try:
        await eventually(lambda: all(link.client.connected and link.tracker.synced
                                     for link in service.links), 15, "both Asterisks up")
    except BaseException:
        await service.stop()
        raise
    return service


@pytest.fixture
async def two(asterisk: Instance, asterisk_b: Instance, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> AsyncIterator[Service]:
    service = await start_two(asterisk, asterisk_b, monkeypatch, tmp_path)
    try:
        yield service
    finally:
        await service.stop()


class Desk:
    """An operator at the console, over HTTP with a token."""

    def __init__(self, service: Service, http: aiohttp.ClientSession, token: str) -> None:
        self.http = http
        self.base = f"http://127.0.0.1:{service.http_port}/api/v1/console"
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.post(self.base + path, json=body, headers=self.headers) as reply:
            return reply.status, await reply.json()

    async def board(self) -> dict[str, Any]:
        async with self.http.get(self.base + "/board", headers=self.headers) as reply:
            assert reply.status == 200
            return await reply.json()

    async def call_where(self, check: Any, timeout: float = 15) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            board = await self.board()
            for name in ("waiting", "active", "parked"):
                for c in board[name]:
                    if check(c):
                        return c
            if loop.time() > deadline:
                raise TimeoutError(f"no such call on the board: {board}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def desk(two: Service, nobody_answers: None) -> AsyncIterator[Desk]:
    assert two.db is not None
    async with two.db.sessions() as session, session.begin():
        await add_user(session, "olli", role="operator", sip_endpoint=SIPP)
        token, _ = await create_token(session, "olli", label="test")
    async with aiohttp.ClientSession() as http:
        yield Desk(two, http, token)


class Recorded(Stream):
    """The console's stream, keeping every event read (kind, data)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        super().__init__(response)
        self.seen: list[tuple[str, Any]] = []

    async def until(self, kind: str, match: Any = lambda _d: True, timeout: float = 15) -> Any:
        def keep(data: Any) -> bool:
            return bool(match(data))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        event: dict[str, str] = {}
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {kind} event within {timeout}s")
            raw = await asyncio.wait_for(self.response.content.readline(), left)
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                event[name] = value
                continue
            if "event" in event and "data" in event:
                data = json.loads(event["data"])
                self.seen.append((event["event"], data))
                if event["event"] == kind and keep(data):
                    return data
            event = {}


def waiting_number(number: str) -> Any:
    return lambda c: c["state"] == "waiting" and c["caller"]["number"] == number


def queued_number(number: str) -> Any:
    """Waiting in the operators' queue (a caller is `waiting` a moment before joining it)."""
    return lambda c: waiting_number(number)(c) and c["queue"] == QUEUE


# --- one board ------------------------------------------------------------------------------


async def test_callers_on_both_asterisks_on_one_board_longest_waiting_first(
        asterisk, asterisk_b, ami, ami_b, two, desk):
    await call(ami_b, "0", callerid="0402220001")  # B's caller first: they wait longest
    on_b = await desk.call_where(queued_number("0402220001"))
    await call(ami, "0", callerid="0402220002")
    on_a = await desk.call_where(queued_number("0402220002"))
    # Each id is its Asterisk's own Uniqueid, which begins with its systemname.
    joined_b = await ami_b.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                    and e.get("Uniqueid") == on_b["id"], 5)
    joined_a = await ami.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                  and e.get("Uniqueid") == on_a["id"], 5)
    assert on_b["id"].startswith(f"vaihde-{asterisk_b.name}-")
    assert on_a["id"].startswith(f"vaihde-{asterisk.name}-")
    assert on_b["asterisk"] == f"vaihde-{asterisk_b.name}"
    assert on_a["asterisk"] == f"vaihde-{asterisk.name}"
    # Same-named queues on two Asterisks are apart: each caller is first in its own.
    assert joined_a["Queue"] == joined_b["Queue"] == QUEUE
    assert joined_a["Position"] == joined_b["Position"] == "1"
    assert on_a["queue"] == on_b["queue"] == QUEUE
    assert on_a["position"] == on_b["position"] == 1
    board = await desk.board()
    ids = [c["id"] for c in board["waiting"]]
    assert ids == [on_b["id"], on_a["id"]]  # by how long they have waited, not by Asterisk
    assert board["ami"] == {"connected": True, "asterisks": [
        {"name": f"vaihde-{asterisk.name}", "connected": True},
        {"name": f"vaihde-{asterisk_b.name}", "connected": True}]}
    # B's caller has its story (from its AGI session), completed by B's own events: when the
    # caller hangs up, it joins the contact history under B's call id.
    assert on_b["sought"]["kind"] == "operator"
    assert on_b["dialled"]["number"] == COMPANY_NUMBER
    asterisk_b.hang_up_all()
    assert two.db is not None
    for _ in range(100):
        async with two.db.sessions() as session:
            saved = (await session.execute(
                select(Contact.outcome).where(Contact.call_id == on_b["id"]))).scalars().all()
        if saved:
            break
        await asyncio.sleep(0.05)
    assert saved == ["hangup"]


async def test_answer_next_and_transfer_of_a_caller_on_b(
        asterisk, asterisk_b, ami, ami_b, two, desk, sipp_phone):
    await call(ami_b, "0", callerid="0402220003")
    waiting = await desk.call_where(waiting_number("0402220003"))
    mark_a, mark_b = ami.mark(), ami_b.mark()
    status, reply = await desk.post("/answer-next")
    assert status == 202 and reply["call_id"] == waiting["id"], reply
    # B rings the operator's phone, which lives on A, through its trunk to A ...
    begin = await ami_b.wait_for(
        dial_from(waiting["id"], f"PJSIP/{TRUNK_TO_A}-", "vaihde-console-answer"), 10,
        since=mark_b)
    assert begin["DialString"] == f"sipp-phone@{TRUNK_TO_A}"
    # ... and A rings it for B's call, from its [vaihde-reach].
    on_a = await ami.wait_for(
        lambda e: e.get("Event") == "DialBegin" and e.get("Context") == "vaihde-reach"
        and e.get("DestChannel", "").startswith(f"{SIPP}-"), 10, since=mark_a)
    assert on_a["Channel"].startswith(f"PJSIP/{TRUNK_TO_B}-")
    await bridged(ami_b, waiting["id"], begin["DestChannel"])
    active = await desk.call_where(lambda c: c["id"] == waiting["id"] and c["state"] == "active")
    assert [p["channel"] for p in active["parties"]] == [begin["DestChannel"]]

    # A blind transfer: B rings Anna's phone itself (B has it too) and connects them.
    mark_b = ami_b.mark()
    status, reply = await desk.post(f"/calls/{waiting['id']}/transfer",
                                    {"to": {"employee": "anna"}, "mode": "blind"})
    assert status == 202, reply
    ring = await ami_b.wait_for(
        dial_from(waiting["id"], f"Local/anna@{PHONES}", "vaihde-console-transfer"), 10,
        since=mark_b)
    await bridged(ami_b, waiting["id"], ring["DestChannel"])
    await desk.call_where(lambda c: c["id"] == waiting["id"] and c["state"] == "active"
                          and [p["name"] for p in c["parties"]] == ["Anna Virtanen"])
    # The operator's leg through A is gone.
    await ami_b.wait_for(lambda e: e.get("Event") == "Hangup"
                         and e.get("Channel") == begin["DestChannel"], 10, since=mark_b)


async def test_unanswered_transfer_of_a_caller_on_b_comes_back_through_a(
        asterisk, asterisk_b, ami, ami_b, two, desk, sipp_phone):
    from dataclasses import replace

    two.settings = replace(two.settings, console_bounce_s=5)
    await call(ami_b, "0", callerid="0402220004")
    waiting = await desk.call_where(waiting_number("0402220004"))
    mark_a, mark_b = ami.mark(), ami_b.mark()
    status, reply = await desk.post(f"/calls/{waiting['id']}/transfer",
                                    {"to": {"employee": "bob"}})
    assert status == 202, reply
    end = await ami_b.wait_for(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == waiting["id"]
        and e.get("DestChannel", "").startswith(NEVER_ANSWERS), 15, since=mark_b)
    assert end["DialStatus"] == "NOANSWER"
    back = await ami_b.wait_for(
        dial_from(waiting["id"], f"PJSIP/{TRUNK_TO_A}-", "vaihde-console-bounce"), 5,
        since=mark_b)
    assert back["DialString"] == f"sipp-phone@{TRUNK_TO_A}"
    await ami.wait_for(
        lambda e: e.get("Event") == "DialBegin" and e.get("Context") == "vaihde-reach"
        and e.get("DestChannel", "").startswith(f"{SIPP}-"), 10, since=mark_a)
    await bridged(ami_b, waiting["id"], back["DestChannel"])
    bounced = await desk.call_where(lambda c: c["id"] == waiting["id"] and c["bounced"])
    assert bounced["bounced"] == {"target": "Bob Ringing", "why": "noanswer", "by": "olli"}


async def test_a_caller_on_b_reaches_the_employee_whose_phone_is_on_a(
        asterisk, asterisk_b, ami, ami_b, two, sipp_phone):
    """The caller flow's Dial() string, too, reaches a phone where it lives."""
    mark_a = ami.mark()
    await call(ami_b, "4", callerid="0402220010")  # menu 4: Sipp Phone, PJSIP/sipp-phone on A
    begin = await ami_b.wait_for(
        lambda e: e.get("Event") == "DialBegin" and e.get("Context") == "vaihde-main"
        and e.get("DestChannel", "").startswith(f"PJSIP/{TRUNK_TO_A}-"), 15)
    assert begin["DialString"] == f"sipp-phone@{TRUNK_TO_A}"
    await ami.wait_for(
        lambda e: e.get("Event") == "DialBegin" and e.get("Context") == "vaihde-reach"
        and e.get("DestChannel", "").startswith(f"{SIPP}-"), 10, since=mark_a)
    end = await ami_b.wait_for(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == begin["Uniqueid"], 10)
    assert end["DialStatus"] == "ANSWER"


# --- each Asterisk on its own -----------------------------------------------------------------


async def test_b_lost_and_restarted_resyncs_while_a_calls_stay(
        asterisk, asterisk_b, ami, ami_b, two, desk):
    await call(ami, "0", callerid="0402220005", hold=120)
    on_a = await desk.call_where(waiting_number("0402220005"))
    await call(ami_b, "0", callerid="0402220006", hold=120)
    on_b = await desk.call_where(waiting_number("0402220006"))
    link_b = two.links[1]
    async with desk.http.get(f"{desk.base}/stream", headers=desk.headers) as response:
        stream = Recorded(response)
        await stream.until("board")
        # B's AMI link is cut (its calls go on in Asterisk): they leave the board while nobody
        # can act on them, and come back when the link is up again; A's never leave.
        assert link_b.client._session is not None
        link_b.client._session.abort("test: AMI link to B cut")
        down = await stream.until("ami", lambda d: not d["connected"])
        assert down["asterisks"][1] == {"name": f"vaihde-{asterisk_b.name}", "connected": False}
        await stream.until("gone", lambda d: d["id"] == on_b["id"])
        await stream.until("ami", lambda d: d["connected"], timeout=20)
        board = await stream.until("board", lambda b: on_b["id"] in ids(b), timeout=20)
        assert on_a["id"] in ids(board)

        # B restarts: its calls are gone for good, A's still wait.
        asterisk_b.stop()
        await stream.until("ami", lambda d: not d["connected"])
        asterisk_b.start(tie_to_parent=True)
        board = await stream.until("board", lambda b: b["ami"]["connected"], timeout=30)
        assert on_a["id"] in ids(board) and on_b["id"] not in ids(board)
        # A new caller on B is on the board again, beside A's.
        probe = await AmiProbe.connect(asterisk_b.ami_port, asterisk_b.driver_username,
                                       asterisk_b.driver_secret)
        try:
            await probe.action("Setvar", Variable="VAIHDE_OPERATORS", Value=NEVER_ANSWERS)
            await probe.action("QueuePause", Queue=QUEUE, Interface=QUEUE_PHONE, Paused="true")
            await call(probe, "0", callerid="0402220007")
            again = await stream.until(
                "call", lambda c: c["caller"]["number"] == "0402220007"
                and c["state"] == "waiting", timeout=20)
            assert again["asterisk"] == f"vaihde-{asterisk_b.name}"
        finally:
            await probe.close()
        gone_a = [e for e in stream.seen if e[0] == "gone" and e[1]["id"] == on_a["id"]]
        assert gone_a == []


def ids(board: dict[str, Any]) -> list[str]:
    return [c["id"] for name in ("waiting", "active", "parked") for c in board[name]]


async def test_team_queue_on_each_asterisk_rings_each_phone_its_way(asterisk, asterisk_b,
                                                                      ami, ami_b, two):
    """The team's queue is kept on both: A has Sipp's phone as it is; B has it through its
    trunk to A (with a state interface that app_queue rings); Anna's Local phone is on both."""
    for link in two.links:
        await eventually(lambda link=link: link.queues is not None and link.queues.synced, 10)

    async def members(probe: AmiProbe) -> dict[str, str]:
        mark = probe.mark()
        await probe.action("QueueStatus", Queue=TEAM_QUEUE)
        await probe.wait_for(lambda e: e.get("Event") == "QueueStatusComplete", 5, since=mark)
        return {e["Location"]: e.get("StateInterface", "") for e in probe.events[mark:]
                if e.get("Event") == "QueueMember" and e.get("Queue") == TEAM_QUEUE}

    want_a = {f"Local/anna@{PHONES}": f"Local/anna@{PHONES}", SIPP: SIPP}
    want_b = {f"Local/anna@{PHONES}": f"Local/anna@{PHONES}",
              f"PJSIP/sipp-phone@{TRUNK_TO_A}": "Custom:vaihde-elsewhere"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        # Once both know where Sipp's phone lives (B's queue may have been filled before A
        # said so; then it follows within a second).
        on_a, on_b = await members(ami), await members(ami_b)
        if (on_a, on_b) == (want_a, want_b) or loop.time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert on_a == want_a
    assert on_b == want_b


async def test_stopping_hands_callers_in_the_menu_to_the_operators_of_their_asterisk(
        asterisk, asterisk_b, ami, ami_b, monkeypatch, tmp_path):
    slow_menu = CLUSTER_COMPANY.replace("timeout: 2\n    attempts: 2",
                                        "timeout: 8\n    attempts: 3")
    assert slow_menu != CLUSTER_COMPANY
    service = await start_two(asterisk, asterisk_b, monkeypatch, tmp_path, slow_menu)
    stopped = False
    try:
        await call(ami, "", hold=30, callerid="0402220008")  # say nothing: the menu waits
        await call(ami_b, "", hold=30, callerid="0402220009")
        await eventually(lambda: service.agi.active == 2, 15, "both callers in the menu")
        await asyncio.sleep(0.5)
        mark_a, mark_b = ami.mark(), ami_b.mark()
        await service.stop()
        stopped = True
        for probe, mark, number in ((ami, mark_a, "0402220008"), (ami_b, mark_b, "0402220009")):
            joined = await probe.wait_for(
                lambda e, n=number: e.get("Event") == "QueueCallerJoin"
                and e.get("Queue") == QUEUE and e.get("CallerIDNum") == n, 5, since=mark)
            assert "VAIHDE_REASON=service-stopping" in joined.get("ChanVariable", "")
    finally:
        if not stopped:
            await service.stop()


async def test_an_asterisk_with_another_systemname_is_refused(asterisk, monkeypatch, tmp_path):
    """Two entries that reach the same Asterisk (a wrong port): the one whose name is not that
    Asterisk's systemname is refused at login, saying why, and never connected."""
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    (tmp_path / "company.yaml").write_text(COMPANY)
    text = "\n".join([
        "service:",
        f"  fastagi: {{host: 127.0.0.1, port: 0, secret: {asterisk.settings.agi_secret}}}",
        "  http: {host: 127.0.0.1, port: 0}",
        "  asterisks:",
        f"    - {{name: vaihde-{asterisk.name}, port: {asterisk.ami_port}, "
        f"secret: {json.dumps(asterisk.ami_secret)}}}",
        f"    - {{name: elsewhere, port: {asterisk.ami_port}, "
        f"secret: {json.dumps(asterisk.ami_secret)}}}",
        f"database: {{url: {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/vaihde.db')}}}",
        "company_file: company.yaml",
        f"prompts: {{dir: {json.dumps(str(tmp_path / 'prompts'))}}}",
        "guard: {mode: 'off'}", ""])
    service = Service(loads(text, str(tmp_path / "settings.yaml")))
    await service.start()
    try:
        first, second = service.links
        await eventually(lambda: first.client.connected and second.client.last_error, 10)
        assert not second.client.connected
        assert f"systemname is 'vaihde-{asterisk.name}'" in (second.client.last_error or "")
        status = service.status()
        assert status["status"] == "degraded"
        assert [a["connected"] for a in status["ami"]["asterisks"]] == [True, False]
        assert "systemname" in status["ami"]["asterisks"][1]["last_error"]
    finally:
        await service.stop()
