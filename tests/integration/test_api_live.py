"""The REST API as the running service serves it: an employee marks themselves in a meeting with
their token, the next caller hears why, and an operator sees it; roles are enforced."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from company import PHONES
from test_first_call import assert_bridged_with, call, phones_dialled

from vaihde.auth.store import add_user, create_token
from vaihde.messages.store import get_message


async def tokens(vaihde) -> dict[str, str]:
    out = {}
    async with vaihde.db.sessions() as session, session.begin():
        await add_user(session, "anna", role="employee", employee_id="anna")
        await add_user(session, "olga", role="operator", employee_id="olga")
        for name in ("anna", "olga"):
            out[name], _ = await create_token(session, name, label="test")
    return out


async def test_employee_sets_own_meeting_and_caller_is_told(asterisk, ami, vaihde):
    secret = await tokens(vaihde)
    base = f"http://127.0.0.1:{vaihde.http_port}/api/v1"
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    async with aiohttp.ClientSession() as http:
        anna = {"Authorization": f"Bearer {secret['anna']}"}
        body = {"state": "meeting", "until": until.isoformat(), "note_for_callers": "Back at 3"}
        async with http.put(f"{base}/employees/anna/availability", json=body,
                            headers=anna) as resp:
            assert resp.status == 200, await resp.text()
        # Anna may not change Bob's availability.
        async with http.put(f"{base}/employees/bob/availability", json={"state": "sick"},
                            headers=anna) as resp:
            assert resp.status == 403
        olga = {"Authorization": f"Bearer {secret['olga']}"}
        async with http.get(f"{base}/employees/anna/availability", headers=olga) as resp:
            seen = await resp.json()
    assert seen["state"] == "meeting" and seen["source"] == "manual"
    assert vaihde.presence.lookup("anna").state == "meeting"
    await call(ami, "1")
    await assert_bridged_with(ami, f"Local/operator@{PHONES}", timeout=20)
    assert phones_dialled(ami) == [f"Local/operator@{PHONES}"]


async def test_openapi_is_served_without_login(vaihde):
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{vaihde.http_port}/api/v1/openapi.json"
    ) as resp:
        spec = await resp.json()
    assert resp.status == 200 and spec["openapi"].startswith("3.")
    assert "/employees/{employee_id}/availability" in spec["paths"]


async def test_callers_recorded_message_is_read_and_played_through_the_api(asterisk, ami,
                                                                           vaihde):
    """The recording the caller left is served by the running service from where the flow
    put it; an operator's message taken through the API joins the same list."""
    secret = await tokens(vaihde)
    base = f"http://127.0.0.1:{vaihde.http_port}/api/v1"
    anna = {"Authorization": f"Bearer {secret['anna']}"}
    olga = {"Authorization": f"Bearer {secret['olga']}"}
    # The caller chooses "leave a message for Anna", talks after the tone, and hangs up.
    await call(ami, "5", say="hello-world", say_delay=6, hold=3)
    async with aiohttp.ClientSession() as http:
        listed: list = []
        for _ in range(300):
            async with http.get(f"{base}/messages", headers=anna) as resp:
                assert resp.status == 200, await resp.text()
                listed = (await resp.json())["messages"]
            if listed:
                break
            await asyncio.sleep(0.1)
        (message,) = listed
        assert message["taken_by"] == "caller" and message["has_recording"] is True
        assert message["for"] == {"kind": "employee", "id": "anna", "name": "Anna Virtanen"}
        async with vaihde.db.sessions() as session:
            stored = await get_message(session, message["id"])
        assert stored is not None and stored.recording_path is not None
        recording = Path(stored.recording_path)
        url = f"{base}/messages/{message['id']}/recording"
        def size() -> int:
            return recording.stat().st_size if recording.exists() else 0

        for _ in range(50):  # Asterisk closes the file when the caller hangs up
            if size() > 44:
                break
            await asyncio.sleep(0.1)
        async with http.get(url, headers=anna) as resp:
            assert resp.status == 200
            assert resp.content_type == "audio/wav"
            audio = await resp.read()
        assert audio[:4] == b"RIFF" and len(audio) > 44
        assert audio == await asyncio.to_thread(recording.read_bytes)
        # The operator takes another one for Anna by hand.
        body = {"for": {"employee": "anna"}, "caller_number": "0407654321",
                "caller_name": "Liisa", "text": "Soita takaisin"}
        async with http.post(f"{base}/messages", json=body, headers=anna) as resp:
            assert resp.status == 403
        async with http.post(f"{base}/messages", json=body, headers=olga) as resp:
            assert resp.status == 201, await resp.text()
            taken = await resp.json()
        assert taken["taken_by"] == "olga"
        async with http.get(f"{base}/messages", headers=anna) as resp:
            ids = [m["id"] for m in (await resp.json())["messages"]]
    assert ids == [taken["id"], message["id"]]
