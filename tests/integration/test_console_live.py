"""The operator console against the real sandbox Asterisk: simulated callers appear on the board
and in the SSE stream with whom they sought and how; the operator's actions (answer, transfer
with bounce-back, park, hang up) are carried out by Asterisk, asserted from its AMI events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from company import PHONES
from test_first_call import call

from vaihde.auth.store import add_user, create_token

pytestmark = pytest.mark.asterisk

NEVER_ANSWERS = f"Local/noanswer@{PHONES}"
OPERATOR_PHONE = f"Local/operator@{PHONES}"
QUEUE = "vaihde-switchboard"


@pytest.fixture
async def operators_never_answer(ami) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """Callers stay waiting for the console: the queue's operator phone is paused and the
    operator group (after the queue) is a phone nobody answers; both restored afterwards."""
    old = await ami.action("Getvar", Variable="VAIHDE_OPERATORS")
    await ami.action("Setvar", Variable="VAIHDE_OPERATORS", Value=NEVER_ANSWERS)
    await ami.action("QueuePause", Queue=QUEUE, Interface=OPERATOR_PHONE, Paused="true")
    try:
        yield
    finally:
        await ami.action("QueuePause", Queue=QUEUE, Interface=OPERATOR_PHONE, Paused="false")
        await ami.action("Setvar", Variable="VAIHDE_OPERATORS", Value=old.get("Value", ""))


async def operator_token(vaihde, name: str = "olli", phone: str = OPERATOR_PHONE) -> str:  # type: ignore[no-untyped-def]
    async with vaihde.db.sessions() as session, session.begin():
        await add_user(session, name, role="operator", sip_endpoint=phone)
        secret, _ = await create_token(session, name, label="test")
    return secret


class Stream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def until(self, kind: str, match: Any = lambda _d: True, timeout: float = 15) -> Any:
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
            if event.get("event") == kind:
                data = json.loads(event["data"])
                if match(data):
                    return data
            event = {}


async def test_waiting_caller_on_the_board_with_sought_and_path(
    asterisk, ami, vaihde, operators_never_answer
):
    token = await operator_token(vaihde)
    base = f"http://127.0.0.1:{vaihde.http_port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{base}/console/stream", headers=headers)
        assert response.status == 200
        stream = Stream(response)
        board = await stream.until("board")
        assert board["ami"] == {"connected": True}
        # Menu 2 is Bob, whose phone rings 5 s unanswered; then the operator group.
        await call(ami, "2", callerid="0407654321")
        waiting = await stream.until(
            "call", lambda c: c["state"] == "waiting" and c["caller"]["number"] == "0407654321",
            timeout=20,
        )
        assert waiting["sought"]["kind"] == "employee" and waiting["sought"]["id"] == "bob"
        assert waiting["sought"]["name"] == "Bob Ringing"
        assert waiting["sought"]["path"] == "menu_option"
        assert waiting["sought"]["detail"].startswith("menu main, key 2")
        assert waiting["what_happened"].startswith("no answer after ")
        seconds = int(waiting["what_happened"].split()[3])
        assert 4 <= seconds <= 7
        assert waiting["availability"]["state"] in ("available", "on_call")
        # The id is the caller channel's Uniqueid, as Asterisk reports it.
        joined = await ami.wait_for(
            lambda e: e.get("Event") == "QueueCallerJoin" and e.get("Uniqueid") == waiting["id"],
            5,
        )
        assert joined["Queue"] == QUEUE and waiting["queue"] == QUEUE
        assert waiting["position"] == 1
        async with http.get(f"{base}/console/board", headers=headers) as reply:
            body = await reply.json()
        assert [c["id"] for c in body["waiting"]] == [waiting["id"]]
        asterisk.rx("channel request hangup all")
        gone = await stream.until("gone", lambda d: d["id"] == waiting["id"])
        assert gone == {"id": waiting["id"]}
        response.close()


# --- actions --------------------------------------------------------------------------------


class Desk:
    """An operator at the console: HTTP with their token, and the service's board."""

    def __init__(self, vaihde, http: aiohttp.ClientSession, token: str) -> None:  # type: ignore[no-untyped-def]
        self.vaihde = vaihde
        self.http = http
        self.base = f"http://127.0.0.1:{vaihde.http_port}/api/v1/console"
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.post(self.base + path, json=body, headers=self.headers) as reply:
            return reply.status, await reply.json()

    async def call_where(self, check: Any, timeout: float = 15) -> dict[str, Any]:
        """The first call on the board (as GET /console/board says) for which check is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            async with self.http.get(self.base + "/board", headers=self.headers) as reply:
                board = await reply.json()
            for name in ("waiting", "active", "parked"):
                for c in board[name]:
                    if check(c):
                        return c
            if loop.time() > deadline:
                raise TimeoutError(f"no such call on the board: {board}")
            await asyncio.sleep(0.1)


async def waiting_caller(ami, desk: Desk, number: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    await call(ami, "0", callerid=number)
    return await desk.call_where(
        lambda c: c["state"] == "waiting" and c["caller"]["number"] == number)


def dial_from(uid: str, dest_prefix: str, context: str):  # type: ignore[no-untyped-def]
    return lambda e: (e.get("Event") == "DialBegin" and e.get("Uniqueid") == uid
                      and e.get("DestChannel", "").startswith(dest_prefix)
                      and e.get("Context") == context)


async def bridged(ami, uid: str, dest: str, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    """The caller's channel and `dest` are in the same bridge (from BridgeEnter events)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        bridges: dict[str, str] = {}
        for e in ami.events:
            if e.get("Event") == "BridgeEnter":
                bridges[e.get("Uniqueid", "")] = e.get("BridgeUniqueid", "")
            elif e.get("Event") == "BridgeLeave" and bridges.get(e.get("Uniqueid", "")) == e.get(
                    "BridgeUniqueid"):
                del bridges[e.get("Uniqueid", "")]
        dest_uids = {e.get("Uniqueid") for e in ami.events if e.get("Channel") == dest}
        if uid in bridges and any(bridges.get(d) == bridges[uid] for d in dest_uids):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{uid} not bridged with {dest}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def desk(vaihde, operators_never_answer) -> AsyncIterator[Desk]:  # type: ignore[no-untyped-def]
    token = await operator_token(vaihde)
    async with aiohttp.ClientSession() as http:
        yield Desk(vaihde, http, token)


async def answer(ami, desk: Desk, number: str) -> tuple[dict[str, Any], dict[str, str]]:  # type: ignore[no-untyped-def]
    waiting = await waiting_caller(ami, desk, number)
    mark = ami.mark()
    status, reply = await desk.post("/answer-next")
    assert status == 202 and reply == {"ok": True, "action": "answer-next",
                                       "call_id": waiting["id"]}
    begin = await ami.wait_for(
        dial_from(waiting["id"], OPERATOR_PHONE, "vaihde-console-answer"), 10, since=mark)
    await bridged(ami, waiting["id"], begin["DestChannel"])
    return waiting, begin


async def test_answer_next_rings_the_operators_phone(asterisk, ami, vaihde, desk):
    waiting, begin = await answer(ami, desk, "0401110001")
    active = await desk.call_where(lambda c: c["id"] == waiting["id"] and c["state"] == "active")
    assert [p["channel"] for p in active["parties"]] == [begin["DestChannel"]]
    assert active["parties"][0]["name"] == "Olga Operator"  # her desk phone, by the company
    assert active["answered_at"] is not None
    # Nobody waits any more: the next answer-next is refused, and so is answering it again.
    status, reply = await desk.post("/answer-next")
    assert status == 409 and reply["error"]["code"] == "conflict"
    status, reply = await desk.post(f"/calls/{waiting['id']}/answer")
    assert status == 409 and "active" in reply["error"]["message"], (waiting["id"], reply)


async def test_blind_transfer_to_a_phone_that_answers(asterisk, ami, vaihde, desk):
    waiting, _ = await answer(ami, desk, "0401110002")
    mark = ami.mark()
    status, reply = await desk.post(f"/calls/{waiting['id']}/transfer",
                                    {"to": {"employee": "anna"}, "mode": "blind"})
    assert status == 202 and reply["action"] == "transfer"
    begin = await ami.wait_for(
        dial_from(waiting["id"], f"Local/anna@{PHONES}", "vaihde-console-transfer"), 10,
        since=mark)
    await bridged(ami, waiting["id"], begin["DestChannel"])
    active = await desk.call_where(
        lambda c: c["id"] == waiting["id"] and c["state"] == "active"
        and [p["name"] for p in c["parties"]] == ["Anna Virtanen"])
    assert active["bounced"] is None


async def test_blind_transfer_unanswered_bounces_back_marked(asterisk, ami, vaihde, desk):
    from dataclasses import replace

    vaihde.settings = replace(vaihde.settings, console_bounce_s=5)
    waiting, _ = await answer(ami, desk, "0401110003")
    mark = ami.mark()
    status, _reply = await desk.post(f"/calls/{waiting['id']}/transfer",
                                     {"to": {"employee": "bob"}})
    assert status == 202
    transferring = await desk.call_where(
        lambda c: c["id"] == waiting["id"] and c["state"] == "transferring")
    assert transferring["transfer"]["name"] == "Bob Ringing"
    end = await ami.wait_for(
        lambda e: e.get("Event") == "DialEnd" and e.get("Uniqueid") == waiting["id"]
        and e.get("DestChannel", "").startswith(NEVER_ANSWERS), 15, since=mark)
    assert end["DialStatus"] == "NOANSWER"
    bounce = await ami.wait_for(
        lambda e: e.get("Event") == "UserEvent" and e.get("UserEvent") == "VaihdeConsole"
        and e.get("Uniqueid") == waiting["id"], 5, since=mark)
    assert bounce["Kind"] == "bounced" and bounce["Why"] == "NOANSWER"
    back = await ami.wait_for(
        dial_from(waiting["id"], OPERATOR_PHONE, "vaihde-console-bounce"), 5, since=mark)
    await bridged(ami, waiting["id"], back["DestChannel"])
    bounced = await desk.call_where(lambda c: c["id"] == waiting["id"] and c["bounced"])
    assert bounced["bounced"] == {"target": "Bob Ringing", "why": "noanswer", "by": "olli"}
    assert bounced["what_happened"].startswith("transfer to Bob Ringing: no answer after ")


async def test_hangup(asterisk, ami, vaihde, desk):
    waiting = await waiting_caller(ami, desk, "0401110004")
    mark = ami.mark()
    status, _reply = await desk.post(f"/calls/{waiting['id']}/hangup")
    assert status == 202
    await ami.wait_for(lambda e: e.get("Event") == "Hangup"
                       and e.get("Uniqueid") == waiting["id"], 5, since=mark)
    for _ in range(50):
        if waiting["id"] not in vaihde.console.board.calls:
            break
        await asyncio.sleep(0.05)
    assert waiting["id"] not in vaihde.console.board.calls


async def test_park_and_retrieve(asterisk, ami, vaihde, desk):
    waiting = await waiting_caller(ami, desk, "0401110005")
    status, reply = await desk.post(f"/calls/{waiting['id']}/retrieve")
    assert status == 409  # not parked
    mark = ami.mark()
    status, reply = await desk.post(f"/calls/{waiting['id']}/park")
    assert status == 202 and reply["space"] is not None
    parked_ev = await ami.wait_for(lambda e: e.get("Event") == "ParkedCall"
                                   and e.get("ParkeeUniqueid") == waiting["id"], 5, since=mark)
    assert parked_ev["ParkingSpace"] == reply["space"]
    parked = await desk.call_where(lambda c: c["id"] == waiting["id"] and c["state"] == "parked")
    assert parked["parking"]["space"] == reply["space"]
    status, reply = await desk.post(f"/calls/{waiting['id']}/park")
    assert status == 409  # already parked
    mark = ami.mark()
    status, reply = await desk.post(f"/calls/{waiting['id']}/retrieve")
    assert status == 202
    begin = await ami.wait_for(
        dial_from(waiting["id"], OPERATOR_PHONE, "vaihde-console-answer"), 10, since=mark)
    await bridged(ami, waiting["id"], begin["DestChannel"])
    await desk.call_where(lambda c: c["id"] == waiting["id"] and c["state"] == "active")


async def test_attended_transfer_complete(asterisk, ami, vaihde, desk):
    waiting, op = await answer(ami, desk, "0401110006")
    status, _reply = await desk.post(f"/calls/{waiting['id']}/transfer/complete")
    assert status == 409  # no transfer in progress
    mark = ami.mark()
    status, _reply = await desk.post(f"/calls/{waiting['id']}/transfer",
                                     {"to": {"employee": "anna"}, "mode": "attended"})
    assert status == 202
    consult = await ami.wait_for(
        lambda e: e.get("Event") == "DialBegin" and e.get("Channel") == op["DestChannel"]
        and e.get("DestChannel", "").startswith(f"Local/anna@{PHONES}"), 10, since=mark)
    assert consult["Context"] == "vaihde-console-consult"
    ready = await desk.call_where(
        lambda c: c["id"] == waiting["id"] and c["state"] == "transferring"
        and c["transfer"] and c["transfer"]["answered"])
    assert ready["transfer"]["mode"] == "attended"
    mark = ami.mark()
    status, _reply = await desk.post(f"/calls/{waiting['id']}/transfer/complete")
    assert status == 202
    await bridged(ami, waiting["id"], consult["DestChannel"])
    done = await desk.call_where(
        lambda c: c["id"] == waiting["id"] and c["state"] == "active"
        and [p["name"] for p in c["parties"]] == ["Anna Virtanen"])
    assert done["transfer"] is None
    # The operator's phone is free again.
    await ami.wait_for(lambda e: e.get("Event") == "Hangup"
                       and e.get("Channel") == op["DestChannel"], 10, since=mark)
