"""Logging in and out of the web console: POST/GET/DELETE /session. A login sets the HttpOnly
`vaihde_session` cookie and returns the CSRF token that cookie-authenticated changes must send.
"""

from __future__ import annotations

import math

from aiohttp import web

from vaihde.api import scope as company_scope
from vaihde.api.context import ctx, who
from vaihde.api.errors import ApiError
from vaihde.api.route import Routes, respond
from vaihde.auth import passwords, store
from vaihde.auth.middleware import (
    COOKIE,
    PRINCIPAL,
    SESSION,
    LoginThrottle,
    Throttled,
    client_address,
)
from vaihde.auth.model import Access, Principal
from vaihde.auth.schemas import Login, Session, User

routes = Routes("session")
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("vaihde.api.login_throttle")

_WRONG = "wrong username or password"


def session_of(principal: Principal, record: store.SessionRecord | None) -> Session:
    user = User.model_validate(principal)
    if record is None:
        return Session(user=user, via=principal.via)
    return Session(user=user, via=principal.via, csrf_token=record.csrf_token,
                   expires_at=record.expires_at, idle_expires_at=record.ends_at())


@routes.post("/session", "Log in (web console)", allow=Access.PUBLIC, body=Login,
             company=company_scope.NONE,
             ok=(200, "Logged in: the vaihde_session cookie is set (HttpOnly, SameSite=Strict); "
                 "keep csrf_token for changes", Session),
             errors=(401, 429),
             description="Wrong username, wrong password, a disabled user and a user without "
             "a password all get the same 401. Failed logins are limited per username and "
             "client address, counted before the password is checked, and so are logins in "
             "progress per address and overall (429 with Retry-After).")
async def login(request: web.Request, body: Login) -> web.StreamResponse:
    username, password = body.username, body.password
    throttle = request.app[THROTTLE]
    address = client_address(request)
    try:
        # Counted as a failure from here on (a success takes it back): simultaneous guesses
        # meet the limit exactly as the same guesses one after another would.
        attempt = throttle.begin(username, address)
    except Throttled as exc:
        seconds = max(1, math.ceil(exc.retry_after))
        message = ("too many logins in progress; try again in a moment" if exc.why == "busy"
                   else f"too many failed logins; try again in {math.ceil(seconds / 60)} minute(s)")
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
            session, candidate.user.id, user_agent=request.headers.get("User-Agent", ""), now=now)
        await store.record_login(session, candidate.user.id, now=now, new_hash=new_hash)
        scope = await store.user_scope(session, candidate.user)
    principal = store.principal_of(candidate.user, "session", scope)
    response = respond(request, session_of(principal, record))
    response.set_cookie(COOKIE, secret, path="/", httponly=True, samesite="Strict",
                        secure=request.secure, max_age=int(store.SESSION_ABSOLUTE.total_seconds()))
    return response


@routes.get("/session", "Who am I", allow=Access.USER, company=company_scope.NONE,
            ok=(200, "The user and how they authenticated", Session))
async def whoami(request: web.Request) -> Session:
    return session_of(who(request), request.get(SESSION))


@routes.delete("/session", "Log out", allow=Access.OPTIONAL, company=company_scope.NONE,
               ok=(204, "Logged out; the cookie is cleared", None),
               description="Ends the cookie's session. Succeeds without credentials too (the "
               "cookie is cleared); with a live session cookie it needs X-CSRF-Token.")
async def logout(request: web.Request) -> web.StreamResponse:
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
