"""The page routes: /login, /console (operators and admins), /admin (admins), /me (anyone logged
in), their static assets, and the strict security headers every one of them is sent with.

Pages are static shells: whatever they show comes from /api/v1 (which checks roles again), so
a page handler only decides who may open it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.auth import store
from vaihde.auth.middleware import COOKIE
from vaihde.auth.model import Principal, Role, in_scope
from vaihde.db.clock import utcnow
from vaihde.directory.store import latest_config

STATIC = Path(__file__).with_name("static")
MAIN = "main"
COMPANY_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,60}\.(css|js|svg|png|ico)$")
_TYPES = {
    "css": "text/css",
    "js": "text/javascript",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
    "html": "text/html",
}

# Nothing inline, nothing from elsewhere: a caller name that slipped into the markup could
# still not run (script-src 'self'), and the pages talk only to this service.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# Which roles may open which page, and where each role lands after logging in.
RANK = {Role.EMPLOYEE: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
PAGES: dict[str, Role] = {"/console": Role.OPERATOR, "/admin": Role.ADMIN, "/me": Role.EMPLOYEE}
HOME = {Role.ADMIN: "/admin", Role.OPERATOR: "/console", Role.EMPLOYEE: "/me"}
COMPANY_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")  # as the API's ?company=
_TOP_LEVEL_ORDER = ("company", "numbers", "hours", "menus", "announcements", "teams", "employees")

SESSIONS: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("vaihde.web.sessions")
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("vaihde.web.clock")


def may_open(role: Role, path: str) -> bool:
    needed = PAGES.get(path)
    return needed is not None and RANK[role] >= RANK[needed]


def landing(role: Role, wanted: str | None = None) -> str:
    """Where a user goes after logging in: the page they asked for if they may open it."""
    if wanted is not None and may_open(role, wanted):
        return wanted
    return HOME[role]


def _secure(response: web.StreamResponse, *, cache: bool = False) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-cache" if cache else "no-store"
    return response


def _html(name: str, status: int = 200) -> web.StreamResponse:
    body = (STATIC / name).read_bytes()
    return _secure(web.Response(body=body, status=status, content_type="text/html",
                                charset="utf-8"))


async def principal_of(request: web.Request) -> Principal | None:
    """The user of the request's session cookie, or None (no cookie, ended, disabled)."""
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        return None
    async with request.app[SESSIONS]() as db:
        found = await store.principal_for_session(db, cookie, now=request.app[CLOCK]())
    return found[0] if found is not None else None


def _redirect(location: str) -> web.StreamResponse:
    return _secure(web.Response(status=302, headers={"Location": location}))


def _page(path: str, file: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        who = await principal_of(request)
        if who is None:
            return _redirect(f"/login?next={path}")
        if not may_open(who.role, path):
            return _html("forbidden.html", status=403)
        return _html(file)

    return handler


async def root(request: web.Request) -> web.StreamResponse:
    who = await principal_of(request)
    return _redirect(HOME[who.role] if who is not None else "/login")


async def login(request: web.Request) -> web.StreamResponse:
    return _html("login.html")


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    found = _ASSET.match(name)
    path = STATIC / name
    if found is None or not path.is_file():
        raise web.HTTPNotFound()
    return _secure(
        web.Response(body=path.read_bytes(), content_type=_TYPES[found[1]],
                     charset="utf-8" if found[1] in ("css", "js", "svg") else None),
        cache=True,
    )


def company_yaml(document: dict[str, Any]) -> str:
    """The applied configuration as a company file to edit (its canonical form, defaults
    filled in, top-level sections in reading order)."""
    ordered = {k: document[k] for k in _TOP_LEVEL_ORDER if k in document}
    ordered.update((k, v) for k, v in document.items() if k not in ordered)
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)


# Pages that show one company's data, and the query parameter naming it (the authorisation
# walk, tests/authwalk.py, asks each for another company's too).
COMPANY_PAGES = {"/admin/company.yaml": "company"}


async def applied_yaml(request: web.Request) -> web.StreamResponse:
    """GET /admin/company.yaml[?company=ID]: what the editor starts from (admins of that
    company only). Without `company`: the admin's own company if they have one, else `main`.
    Another company's is answered like a company with nothing applied."""
    who = await principal_of(request)
    if who is None or who.role is not Role.ADMIN:
        return _secure(web.Response(status=403 if who else 401, text="admins only\n"))
    wanted = request.query.get("company")
    if wanted is None:
        wanted = min(who.companies) if who.companies else MAIN
    record = None
    if in_scope(who, wanted) and COMPANY_ID.match(wanted):
        async with request.app[SESSIONS]() as session:
            record = await latest_config(session, wanted)
    if record is None:
        return _secure(web.Response(status=404, text="no configuration has been applied to "
                                    f"company {wanted[:40]!r} yet\n"))
    response = web.Response(text=company_yaml(json.loads(record.document)),
                            content_type="application/yaml", charset="utf-8")
    response.headers["X-Config-Version"] = str(record.id)
    return _secure(response)


async def phrases_json(request: web.Request) -> web.StreamResponse:
    """GET /admin/phrases.json: what vaihde says to callers, per language (admins only)."""
    from vaihde.phrases import CATALOG, KEYS, LANGUAGES, RECORDINGS

    who = await principal_of(request)
    if who is None or who.role is not Role.ADMIN:
        return _secure(web.Response(status=403 if who else 401, text="admins only\n"))
    body = {
        "languages": list(LANGUAGES),
        "phrases": [{"key": key, **{lang: CATALOG[lang][key] for lang in LANGUAGES}}
                    for key in KEYS],
        "recordings": [{"sound": sound, "when": when} for sound, when in RECORDINGS.items()],
    }
    return _secure(web.json_response(body))


def add_web(
    app: web.Application,
    sessions: async_sessionmaker[AsyncSession],
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Register the pages on the service's root application (the API is mounted at /api/v1)."""
    app[SESSIONS] = sessions
    app[CLOCK] = clock
    app.router.add_get("/", root)
    app.router.add_get("/login", login)
    app.router.add_get("/console", _page("/console", "console.html"))
    app.router.add_get("/admin", _page("/admin", "admin.html"))
    app.router.add_get("/me", _page("/me", "me.html"))
    app.router.add_get("/admin/company.yaml", applied_yaml)
    app.router.add_get("/admin/phrases.json", phrases_json)
    app.router.add_get("/static/{name}", asset)
