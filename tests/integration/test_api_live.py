"""The REST API as the running service serves it: an employee marks themselves in a meeting with
their token, the next caller hears why, and an operator sees it; roles are enforced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from company import PHONES
from test_first_call import assert_bridged_with, call, phones_dialled

from vaihde.auth.store import add_user, create_token


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
