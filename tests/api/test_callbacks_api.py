"""Callback requests over the REST API, on SQLite and PostgreSQL: operators take them (validated,
nothing stored on any error), lists oldest first with filters and paging, employees see and
close their own and their teams', closing records who and when and happens once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vaihde.auth import store as auth_store
from vaihde.messages import store
from vaihde.messages.model import CallbackDraft

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
TAKE = {
    "for": {"employee": "anna"},
    "caller_number": "+358 40 123 4567",
    "caller_name": "Pekka Pelkonen",
    "text": "Tarjouksesta",
}


@pytest.fixture
async def capi(api):
    async with api.db.sessions.begin() as session:
        await auth_store.add_user(session, "nobody", role="employee")
        api.tokens["nobody"], _ = await auth_store.create_token(session, "nobody", label="t")
    return api


async def put_callback(api: Any, kind: str | None, ident: str | None, at: datetime) -> int:
    """A callback request as the caller flow stores it (at a chosen time)."""
    async with api.db.sessions.begin() as session:
        cb = await store.create_callback(
            session, CallbackDraft("0401234567", for_kind=kind, for_id=ident), now=at
        )
    return cb.id


async def test_operator_takes_a_callback_request(capi):
    reply = await capi.call("POST", "/callbacks", json=TAKE, as_="olli")
    assert reply.status == 201, reply.text
    body = reply.json
    assert body["for"] == {"kind": "employee", "id": "anna", "name": "anna"}  # no company
    assert body["caller_number"] == "358401234567"
    assert body["caller_name"] == "Pekka Pelkonen" and body["text"] == "Tarjouksesta"
    assert body["taken_by"] == "olli" and body["status"] == "open"
    assert body["handled_by"] is None and body["handled_at"] is None
    async with capi.db.sessions() as session:
        stored = await store.get_callback(session, body["id"])
    assert stored is not None and stored.for_id == "anna" and stored.taken_by == "olli"
    # For whoever is free, and for a team.
    anyone = await capi.call("POST", "/callbacks", json={"caller_number": "0401234567"},
                             as_="root")
    assert anyone.status == 201 and anyone.json["for"] is None
    team = await capi.call("POST", "/callbacks", as_="olli",
                           json={**TAKE, "for": {"team": "sales"}})
    assert team.status == 201 and team.json["for"]["kind"] == "team"


BAD = [
    ({k: v for k, v in TAKE.items() if k != "caller_number"}, 400, "caller_number"),
    ({**TAKE, "caller_number": None}, 400, "caller_number"),
    ({**TAKE, "caller_number": "040|123"}, 400, "caller_number"),
    ({**TAKE, "caller_number": "anonymous"}, 400, "caller_number"),
    ({**TAKE, "for": {"employee": "nobody"}}, 422, "for.employee"),
    ({**TAKE, "for": {"team": "nosuch"}}, 422, "for.team"),
    ({**TAKE, "for": {"desk": "anna"}}, 400, "for.desk"),
    ({**TAKE, "text": "x" * 2001}, 400, "text"),
    ({**TAKE, "caller_name": "x" * 201}, 400, "caller_name"),
    ({**TAKE, "call_id": "a b"}, 400, "call_id"),
    ({**TAKE, "when": "now"}, 400, "when"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD,
                         ids=[f"{s}-{f}-{n}" for n, (_, s, f) in enumerate(BAD)])
async def test_bad_callback_requests_name_the_field_and_store_nothing(capi, body, status, field):
    before = await capi.counts()
    reply = await capi.call("POST", "/callbacks", json=body, as_="olli")
    assert reply.status == status, reply.text
    assert reply.error["field"] == field
    assert await capi.counts() == before


async def test_only_staff_take_callback_requests_and_cookies_need_csrf(capi):
    cookie, csrf = await capi.login("olli")
    before = await capi.counts()
    assert (await capi.call("POST", "/callbacks", json=TAKE)).status == 401
    assert (await capi.call("POST", "/callbacks", json=TAKE, as_="anna")).status == 403
    refused = await capi.call("POST", "/callbacks", json=TAKE, headers={"Cookie": cookie})
    assert refused.status == 403 and refused.error["code"] == "csrf"
    assert await capi.counts() == before
    ok = await capi.call("POST", "/callbacks", json=TAKE,
                         headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert ok.status == 201


async def _some(capi: Any) -> dict[str, list[int]]:
    plan = [("employee", "anna"), ("employee", "matti"), ("team", "sales"), (None, None),
            ("employee", "anna"), ("team", "operators")]
    out: dict[str, list[int]] = {}
    for n, (kind, ident) in enumerate(plan):
        cid = await put_callback(capi, kind, ident, T0 + timedelta(minutes=n))
        out.setdefault(ident or "anyone", []).append(cid)
    return out


async def _pages(capi: Any, as_: str, **params: str) -> list[int]:
    ids: list[int] = []
    cursor = None
    for _ in range(20):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        reply = await capi.call("GET", "/callbacks", params=query, as_=as_)
        assert reply.status == 200, reply.text
        ids += [c["id"] for c in reply.json["callbacks"]]
        cursor = reply.json["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("paging does not end")


async def test_list_oldest_first_with_filters_and_paging(capi):
    made = await _some(capi)
    everything = sorted(i for ids in made.values() for i in ids)
    assert await _pages(capi, "olli") == everything
    assert await _pages(capi, "olli", limit="2") == everything
    assert await _pages(capi, "olli", employee="anna", limit="1") == made["anna"]
    assert await _pages(capi, "olli", team="sales") == made["sales"]
    for params, field in (({"status": "later"}, "status"), ({"cursor": "x"}, "cursor"),
                          ({"limit": "0"}, "limit"), ({"since": "x"}, "since")):
        bad = await capi.call("GET", "/callbacks", params=params, as_="olli")
        assert bad.status == 400 and bad.error["field"] == field


async def test_employees_see_and_close_their_own_and_their_teams(capi):
    made = await _some(capi)
    assert await _pages(capi, "anna") == sorted(made["anna"] + made["sales"])
    assert await _pages(capi, "matti") == sorted(made["matti"] + made["sales"])
    assert (await capi.call("GET", "/callbacks", params={"employee": "matti"},
                            as_="anna")).status == 403
    assert (await capi.call("GET", "/callbacks", as_="nobody")).status == 403
    assert (await capi.call("GET", "/callbacks")).status == 401

    before = await capi.counts()
    for cid in (made["matti"][0], made["anyone"][0], made["operators"][0]):
        refused = await capi.call("POST", f"/callbacks/{cid}/done", as_="anna")
        assert refused.status == 403, cid
    assert await capi.counts() == before

    start = capi.clock()
    done = await capi.call("POST", f"/callbacks/{made['sales'][0]}/done", as_="anna")
    assert done.status == 200, done.text
    assert done.json["status"] == "done" and done.json["handled_by"] == "anna"
    handled_at = datetime.fromisoformat(done.json["handled_at"])
    assert start - timedelta(seconds=1) <= handled_at <= capi.clock() + timedelta(seconds=1)
    again = await capi.call("POST", f"/callbacks/{made['sales'][0]}/done", as_="olli")
    assert again.status == 409 and again.error["code"] == "conflict"
    # Done ones leave the open list and show under status=done / all.
    assert made["sales"][0] not in await _pages(capi, "matti")
    assert await _pages(capi, "matti", status="done") == made["sales"]
    assert await _pages(capi, "olli", status="all") == sorted(
        i for ids in made.values() for i in ids
    )
    # Staff close anyone's, also those for nobody in particular.
    closed = await capi.call("POST", f"/callbacks/{made['anyone'][0]}/done", as_="olli",
                             json={})
    assert closed.status == 200 and closed.json["handled_by"] == "olli"


async def test_done_refuses_bodies_unknown_ids_and_cookie_without_csrf(capi):
    cid = await put_callback(capi, "employee", "anna", T0)
    cookie, csrf = await capi.login("anna")
    before = await capi.counts()
    typo = await capi.call("POST", f"/callbacks/{cid}/done", as_="olli", json={"by": "x"})
    assert typo.status == 400 and typo.error["field"] == "by"
    for ident in ("999999", "abc", "99999999999"):
        assert (await capi.call("POST", f"/callbacks/{ident}/done", as_="olli")).status == 404
    refused = await capi.call("POST", f"/callbacks/{cid}/done", headers={"Cookie": cookie})
    assert refused.status == 403 and refused.error["code"] == "csrf"
    assert await capi.counts() == before
    ok = await capi.call("POST", f"/callbacks/{cid}/done",
                         headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert ok.status == 200 and ok.json["handled_by"] == "anna"
