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
