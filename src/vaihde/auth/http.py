"""Logging in and out of the web console: POST/GET/DELETE /session. A login sets the HttpOnly
`vaihde_session` cookie and returns the CSRF token that cookie-authenticated changes must send.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from vaihde.api.errors import ApiError, Query, json_body
from vaihde.api.routes_common import Route, ctx, iso, who
from vaihde.auth import passwords, store
from vaihde.auth.middleware import (
    COOKIE,
    PRINCIPAL,
    SESSION,
    LoginThrottle,
    Throttled,
    client_address,
    optional_auth,
    public,
)
from vaihde.auth.model import MAX_PASSWORD, Principal

THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("vaihde.api.login_throttle")

_WRONG = "wrong username or password"


def user_json(principal: Principal) -> dict[str, Any]:
    return {
        "username": principal.username,
        "display_name": principal.display_name,
        "role": principal.role.value,
        "employee_id": principal.employee_id,
        "sip_endpoint": principal.sip_endpoint,
    }


def session_json(
    principal: Principal, record: store.SessionRecord | None, request: web.Request
) -> dict[str, Any]:
    tz = ctx(request).tz
    out: dict[str, Any] = {"user": user_json(principal), "via": principal.via}
    if record is not None:
        out.update(
            csrf_token=record.csrf_token,
            expires_at=iso(record.expires_at, tz),
            idle_expires_at=iso(record.ends_at(), tz),
        )
    return out


@public
async def login(request: web.Request) -> web.Response:
    Query(request, ())
    body = await json_body(request, {"username", "password"})
    username = body.text("username", required=True, max_length=200) or ""
    password = body.text("password", required=True, max_length=MAX_PASSWORD) or ""
    throttle = request.app[THROTTLE]
    address = client_address(request)
    try:
        # Counted as a failure from here on (a success takes it back): simultaneous guesses
        # meet the limit exactly as the same guesses one after another would.
        attempt = throttle.begin(username, address)
    except Throttled as exc:
        seconds = max(1, math.ceil(exc.retry_after))
        message = (
            "too many logins in progress; try again in a moment"
            if exc.why == "busy"
            else f"too many failed logins; try again in {math.ceil(seconds / 60)} minute(s)"
        )
        raise ApiError(429, "too_many_attempts", message,
                       headers={"Retry-After": str(seconds)}) from None
    try:
        api = ctx(request)
        async with api.sessions() as session:
            candidate = await store.login_candidate(session, username)
        # Unknown users, disabled ones and users without a password cost the same time as a
        # wrong password and get the same answer: the response never tells whether a username
        # exists.
        password_hash = candidate.password_hash if candidate is not None else None
        if not await passwords.verify_password_async(password_hash, password) or candidate is None:
            raise ApiError(401, "invalid_credentials", _WRONG)
        attempt.succeeded()
        new_hash = None
        if password_hash is not None and passwords.needs_rehash(password_hash):
            new_hash = await passwords.hash_password_async(password)
    finally:
        attempt.end()
    now = api.clock()
    async with api.sessions.begin() as session:
        secret, record = await store.create_session(
            session,
            candidate.user.id,
            user_agent=request.headers.get("User-Agent", ""),
            now=now,
        )
        await store.record_login(session, candidate.user.id, now=now, new_hash=new_hash)
    principal = store.principal_of(candidate.user, "session")
    response = web.json_response(session_json(principal, record, request))
    response.set_cookie(
        COOKIE,
        secret,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int(store.SESSION_ABSOLUTE.total_seconds()),
    )
    return response


async def whoami(request: web.Request) -> web.Response:
    principal = who(request)
    Query(request, ())
    return web.json_response(session_json(principal, request.get(SESSION), request))


@optional_auth
async def logout(request: web.Request) -> web.Response:
    Query(request, ())
    cookie = request.cookies.get(COOKIE)
    principal = request.get(PRINCIPAL)
    # A live session is ended only when the request proved it (the middleware checked the
    # cookie and its CSRF token); a dead cookie is just cleared.
    dead = principal is None and "Authorization" not in request.headers
    if cookie is not None and (dead or (principal is not None and principal.via == "session")):
        async with ctx(request).sessions.begin() as session:
            await store.end_session(session, cookie)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


def setup(app: web.Application) -> None:
    app[THROTTLE] = LoginThrottle()


ROUTES: list[Route] = [
    ("POST", "/session", login),
    ("GET", "/session", whoami),
    ("DELETE", "/session", logout),
]

