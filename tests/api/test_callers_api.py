"""The caller register over HTTP (operators and admins): read, create and change a caller,
earlier contacts; numbers with separators; bad input refused with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vaihde.directory import store as directory


async def test_create_read_and_change_a_caller(api):
    missing = await api.call("GET", "/callers/0401234567", as_="olli")
    assert missing.status == 404 and missing.error["field"] == "number"
    created = await api.call(
        "PUT",
        "/callers/+358 40 123 4567",
        json={"name": "Pekka Pelkonen", "organisation": "Pelkonen Oy", "greet_by_name": True,
              "preferred_channel": "email", "email": "pekka@example.fi"},
        as_="olli",
    )
    assert created.status == 201
    assert created.json["number"] == "358401234567"
    assert created.json["greet_by_name"] is True
    changed = await api.call("PUT", "/callers/358401234567",
                             json={"notes": "Soittaa laskuista", "email": None}, as_="root")
    assert changed.status == 200
    # Fields not sent keep their value; null clears.
    assert changed.json["name"] == "Pekka Pelkonen"
    assert changed.json["email"] is None
    assert changed.json["notes"] == "Soittaa laskuista"
    read = await api.call("GET", "/callers/+358-40-1234567", as_="olli")
    assert read.status == 200 and read.json == changed.json


async def test_contacts_of_a_number(api):
    now = datetime.now(UTC)
    async with api.db.sessions.begin() as session:
        for days, outcome in ((1, "answered"), (10, "message"), (45, "answered")):
            await directory.add_contact(
                session, caller_number="0401234567", direction="in", path="menu",
                employee_id="anna", outcome=outcome, at=now - timedelta(days=days),
            )
    reply = await api.call("GET", "/callers/0401234567/contacts", as_="olli")
    assert reply.status == 200
    assert [c["outcome"] for c in reply.json["contacts"]] == ["answered", "message"]
    assert reply.json["days"] == 30
    longer = await api.call("GET", "/callers/0401234567/contacts?days=60&limit=2", as_="olli")
    assert len(longer.json["contacts"]) == 2
    for query in ("days=0", "days=3651", "limit=0", "days=x", "since=1"):
        bad = await api.call("GET", f"/callers/0401234567/contacts?{query}", as_="olli")
        assert bad.status == 400, query


@pytest.mark.parametrize(
    ("number", "body", "field"),
    [
        ("12", {"name": "x"}, "number"),
        ("abc", {"name": "x"}, "number"),
        ("0401234567", {}, "body"),
        ("0401234567", {"name": None}, "name"),
        ("0401234567", {"name": 5}, "name"),
        ("0401234567", {"name": "x" * 201}, "name"),
        ("0401234567", {"greet_by_name": "yes"}, "greet_by_name"),
        ("0401234567", {"preferred_channel": "fax"}, "preferred_channel"),
        ("0401234567", {"email": "not-an-address"}, "email"),
        ("0401234567", {"phone": "x"}, "phone"),
    ],
)
async def test_bad_caller_input(api, number, body, field):
    before = await api.counts()
    reply = await api.call("PUT", f"/callers/{number}", json=body, as_="olli")
    assert reply.status == 400, reply.text
    assert reply.error["field"] == field
    assert await api.counts() == before
