"""Every failure is a JSON error with the right status: malformed JSON, wrong content types,
oversized bodies, unknown paths and methods, and a crash inside a handler (500, no
traceback)."""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from vaihde.api import ApiContext, make_api
from vaihde.http.health import make_app

PATH = "/employees/anna/availability"
JSON = {"Content-Type": "application/json"}


async def test_malformed_json(api):
    before = await api.counts()
    for raw, code, field in (
        (b'{"state": "away",}', "malformed_json", "body"),
        (b"", "malformed_json", "body"),
        (b'{"state": "away"', "malformed_json", "body"),
        (b'"away"', "wrong_type", "body"),
        (b'["away"]', "wrong_type", "body"),
        (b"\xff\xfe", "malformed_json", "body"),
    ):
        reply = await api.call("PUT", PATH, data=raw, headers=JSON, as_="anna")
        assert reply.status == 400, raw
        assert reply.error["code"] == code and reply.error["field"] == field
    reply = await api.call("PUT", PATH, data=b'{"state": "away",}', headers=JSON, as_="anna")
    assert reply.error["message"].startswith("is not valid JSON: Expecting property name")
    assert "line 1 column 18" in reply.error["message"]
    assert await api.counts() == before


async def test_json_bodies_need_the_json_content_type(api):
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x"):
        reply = await api.call("PUT", PATH, data=b'{"state": "away"}',
                               headers={"Content-Type": content_type}, as_="anna")
        assert reply.status == 415, content_type
        assert reply.error["code"] == "unsupported_media_type"
    ok = await api.call("PUT", PATH, data=b'{"state": "away"}',
                        headers={"Content-Type": "application/json; charset=utf-8"}, as_="anna")
    assert ok.status == 200


async def test_oversized_bodies_are_refused(api):
    big = b'{"state": "away", "note_for_callers": "' + b"x" * (70 * 1024) + b'"}'
    reply = await api.call("PUT", PATH, data=big, headers=JSON, as_="anna")
    assert reply.status == 413 and reply.error["code"] == "too_large"

    # Chunked, without Content-Length: counted while read.
    async def chunks():
        for _ in range(100):
            yield b" " * 1024

    reply = await api.call("PUT", PATH, data=chunks(), headers=JSON, as_="anna")
    assert reply.status == 413


async def test_unknown_paths_and_methods_are_json(api):
    reply = await api.call("GET", "/nothing/here", as_="anna")
    assert reply.status == 404
    assert reply.error == {"code": "not_found", "message": "no such resource"}
    reply = await api.call("GET", "/nothing/here")  # no credentials: still just 404
    assert reply.status == 404
    reply = await api.call("PATCH", "/employees/anna/availability", json={}, as_="anna")
    assert reply.status == 405
    assert reply.error["code"] == "method_not_allowed"
    assert "PUT" in reply.headers["Allow"]


async def test_a_crash_is_a_json_500_and_the_traceback_goes_to_the_log(db, caplog):
    from vaihde.auth import store
    from vaihde.presence.cache import PresenceCache

    async with db.sessions.begin() as session:
        await store.add_user(session, "root", role="admin")
        token, _ = await store.create_token(session, "root")

    def broken_index():
        raise RuntimeError("index exploded: secret internals")

    ctx = ApiContext(sessions=db.sessions, cache=PresenceCache(db.sessions),
                     directory=broken_index, company=lambda: None)
    root = make_app(object())  # type: ignore[arg-type]
    root.add_subapp("/api/v1", make_api(ctx))
    client = TestClient(TestServer(root, host="127.0.0.1"), cookie_jar=aiohttp.DummyCookieJar())
    await client.start_server()
    try:
        with caplog.at_level(logging.ERROR, logger="vaihde.api"):
            response = await client.get("/api/v1/directory/search?q=anna",
                                        headers={"Authorization": f"Bearer {token}"})
            text = await response.text()
    finally:
        await client.close()
    assert response.status == 500
    assert response.content_type == "application/json"
    assert "secret internals" not in text and "Traceback" not in text
    assert json.loads(text) == {
        "error": {"code": "internal",
                  "message": "something went wrong on the server; see its log"}
    }
    assert any("index exploded" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_unknown_query_parameters_on_changes_are_refused(api):
    before = await api.counts()
    reply = await api.call("PUT", f"{PATH}?force=1", json={"state": "away"}, as_="anna")
    assert reply.status == 400 and reply.error["field"] == "force"
    assert await api.counts() == before


async def test_health_stays_on_the_root_application(api):
    async with api.client.get("/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
