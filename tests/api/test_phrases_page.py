"""The admin page's "Phrases" view reads /admin/phrases.json: what vaihde says to callers, per
language, for admins only."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from vaihde.phrases import CATALOG, KEYS, LANGUAGES, RECORDINGS
from vaihde.web import add_web


async def test_admins_read_every_phrase_in_every_language(api):
    app = web.Application()
    add_web(app, api.db.sessions, api.clock)
    async with TestClient(TestServer(app, host="127.0.0.1"),
                          cookie_jar=aiohttp.DummyCookieJar()) as pages:
        anonymous = await pages.get("/admin/phrases.json")
        assert anonymous.status == 401
        for user in ("olli", "anna"):  # an operator, an employee
            cookie, _ = await api.login(user)
            denied = await pages.get("/admin/phrases.json", headers={"Cookie": cookie})
            assert denied.status == 403
        cookie, _ = await api.login("root")
        reply = await pages.get("/admin/phrases.json", headers={"Cookie": cookie})
        assert reply.status == 200
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        body = await reply.json()
    assert body["languages"] == list(LANGUAGES)
    assert [p["key"] for p in body["phrases"]] == list(KEYS)
    for row in body["phrases"]:
        assert all(row[lang] == CATALOG[lang][row["key"]] for lang in LANGUAGES)
    assert {r["sound"] for r in body["recordings"]} == set(RECORDINGS)
