"""Urgent messages over the API: an operator takes one (stored with its dispatch in one
transaction, the first person texted a code instead of the plain SMS), operators see its state,
and the SMS gateway's webhook confirms it with the right code; a wrong code, a replay, a missing
or wrong secret and malformed bodies are refused and change nothing (rows and revision counters
equal before and after)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from vaihde.company import parse_company
from vaihde.db import dispatch_models as dm

TOKEN = "gateway-shared-secret-0123456789"
HEADERS = {"X-Vaihde-Token": TOKEN}
URGENT = {"for": {"employee": "anna"}, "caller_number": "0401234567", "caller_name": "Pekka",
          "text": "Vesivahinko, soita heti", "urgent": True}


@pytest.fixture
def api_context_options() -> dict[str, Any]:
    return {"message_channels": ("email", "sms"), "sms_inbound_token": TOKEN}


@pytest.fixture
async def uapi(api):
    yaml = api.company_yaml.replace(
        "    devices:\n      - desk: PJSIP/anna\n",
        "    devices:\n      - desk: PJSIP/anna\n    email: anna@example.fi\n"
        "    sms: \"+358401111111\"\n",
    ).replace(
        "      - desk: PJSIP/matti\n",
        "      - desk: PJSIP/matti\n    sms: \"+358402222222\"\n",
    ) + ("profile: {urgent_confirm_minutes: 3}\n"
         "oncall:\n  myynti: {name: Myynnin päivystys, team: sales, weekly: "
         "[{days: mon-sun, hours: 00:00-24:00, people: [matti]}]}\n")
    api.running["company"] = parse_company(yaml, "company.yaml")
    return api


async def code_of(api: Any, employee: str) -> str:
    async with api.db.sessions() as session:
        code = await session.scalar(select(dm.UrgentStep.code).where(
            dm.UrgentStep.employee_id == employee))
    assert code is not None
    return code


async def test_an_operator_takes_an_urgent_message_and_sees_its_state(uapi):
    reply = await uapi.call("POST", "/messages", json=URGENT, as_="olli")
    assert reply.status == 201, reply.text
    # E-mail as usual; the SMS is the urgent one with the code, not the plain one.
    assert [d["channel"] for d in reply.json["deliveries"]] == ["email"]
    listed = await uapi.call("GET", "/urgent", as_="olli")
    assert listed.status == 200
    [urgent] = listed.json["urgent"]
    assert urgent["message_id"] == reply.json["id"] and urgent["status"] == "open"
    assert urgent["for"] == {"kind": "employee", "id": "anna", "name": "Anna Virtanen"}
    assert urgent["rota"] == "myynti" and urgent["confirm_minutes"] == 3
    assert [(s["employee"], s["address"], s["status"]) for s in urgent["steps"]] == [
        ("anna", "+358401111111", "pending")]
    assert "code" not in urgent["steps"][0]  # the reply code is for its person only
    one = await uapi.call("GET", f"/urgent/{urgent['id']}", as_="root")
    assert one.status == 200 and one.json == urgent
    assert (await uapi.call("GET", "/urgent", as_="anna")).status == 403
    assert (await uapi.call("GET", "/urgent/999", as_="olli")).status == 404


async def test_an_unknown_rota_stores_nothing(uapi):
    before = await uapi.counts()
    reply = await uapi.call("POST", "/messages", json={**URGENT, "rota": "nosuch"}, as_="olli")
    assert reply.status == 400 and reply.error["field"] == "rota"
    assert await uapi.counts() == before


async def test_the_right_code_confirms_everything_else_changes_nothing(uapi):
    taken = await uapi.call("POST", "/messages", json=URGENT, as_="olli")
    code = await code_of(uapi, "anna")
    before = await uapi.counts()
    refused = [
        ({"from": "+358401111111", "text": code}, {}, 401),  # no secret
        ({"from": "+358401111111", "text": code}, {"X-Vaihde-Token": TOKEN[:-1] + "x"}, 401),
        ({"from": "+358401111111", "text": code}, {"X-Vaihde-Token": ""}, 401),
        ({"from": "+358401111111", "text": "KAAAAA"}, HEADERS, 404),  # nobody's code
        ({"from": "+358401111111", "text": "kiitos"}, HEADERS, 422),  # no code at all
        ({"from": "+358401111111"}, HEADERS, 400),  # no text
        ({"from": "+358401111111", "text": code, "extra": 1}, HEADERS, 400),
        ({"from": 358401111111, "text": code}, HEADERS, 400),
        ({"from": "+358401111111", "text": code * 300}, HEADERS, 400),  # too long to be one
    ]
    for body, headers, status in refused:
        reply = await uapi.call("POST", "/sms/inbound", json=body, headers=headers)
        assert reply.status == status, (body, headers, reply.text)
    for raw, status in ((b"not json", 400), (b"[1]", 400), (b"{" + b" " * 9000 + b"}", 413)):
        reply = await uapi.call("POST", "/sms/inbound", data=raw,
                                headers={**HEADERS, "Content-Type": "application/json"})
        assert reply.status == status, (raw[:20], reply.text)
    assert await uapi.counts() == before
    listed = (await uapi.call("GET", "/urgent", as_="olli")).json["urgent"][0]
    assert listed["status"] == "open"

    ok = await uapi.call("POST", "/sms/inbound", json={"from": "+358401111111",
                                                         "text": f"ok {code.lower()}"},
                         headers=HEADERS)
    assert ok.status == 200, ok.text
    assert ok.json["confirmed"] is True and ok.json["by"] == "anna"
    assert ok.json["message_id"] == taken.json["id"]
    after = await uapi.call("GET", f"/urgent/{ok.json['urgent_id']}", as_="olli")
    assert after.json["status"] == "confirmed" and after.json["confirmed_by"] == "anna"
    assert after.json["due_at"] is None

    settled = await uapi.counts()
    replay = await uapi.call("POST", "/sms/inbound", json={"from": "+358401111111",
                                                             "text": code}, headers=HEADERS)
    assert replay.status == 409 and "already confirmed by anna" in replay.error["message"]
    assert await uapi.counts() == settled


@pytest.mark.parametrize("api_context_options", [{"message_channels": ("email",)}])
async def test_without_sms_settings_no_urgent_message_and_no_webhook(uapi):
    before = await uapi.counts()
    reply = await uapi.call("POST", "/messages", json=URGENT, as_="olli")
    assert reply.status == 400 and reply.error["field"] == "urgent"
    webhook = await uapi.call("POST", "/sms/inbound", json={"from": "+358401111111",
                                                              "text": "KAAAAA"},
                              headers=HEADERS)
    assert webhook.status == 404
    assert await uapi.counts() == before
