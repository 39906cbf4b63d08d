"""aiohttp middleware that turns `Authorization: Bearer <token>` or the `vaihde_session` cookie
into a Principal (request[PRINCIPAL]), enforces CSRF for cookie-authenticated changes, and the
in-memory throttle for failed logins.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vaihde.auth import store
from vaihde.auth.model import FORBIDDEN, Access, Action, Principal, allowed

log = logging.getLogger("vaihde.auth")

COOKIE = "vaihde_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# request[PRINCIPAL]: Principal | None; request[SESSION]: the SessionRecord of a cookie login.
# Typed keys where aiohttp has them (3.12+; it warns about plain strings there).
_RequestKey: Any = getattr(web, "RequestKey", None)
PRINCIPAL: Any = _RequestKey("vaihde.principal", object) if _RequestKey else "vaihde.principal"
SESSION: Any = _RequestKey("vaihde.session", object) if _RequestKey else "vaihde.session"
# request[CREDENTIAL]: Credential, what the request proved itself with (long-lived responses,
# the console's event stream, check it again while they last).
CREDENTIAL: Any = (_RequestKey("vaihde.credential", object) if _RequestKey
                   else "vaihde.credential")

# What aiohttp's handlers carry: their route's declaration (vaihde.api.route.Route), whose
# `allow` (an Action, or Access.PUBLIC / OPTIONAL / USER) and `owner` (the path parameter that
# names the employee whose data it is) this middleware enforces.
ROUTE_ATTRIBUTE = "__vaihde_route__"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorFactory = Callable[[int, str, str], web.Response]


def declaration_of(handler: Any) -> Any:
    # Middlewares and functools.partial wrap handlers; the declaration is on the innermost one.
    while handler is not None:
        found = getattr(handler, ROUTE_ATTRIBUTE, None)
        if found is not None:
            return found
        handler = getattr(handler, "func", None) or getattr(handler, "__wrapped__", None)
    return None


def principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


class Throttled(Exception):
    """A login refused before its password is looked at: `retry_after` seconds, and why
    ("failures": too many recent failures; "busy": too many logins in progress)."""

    def __init__(self, retry_after: float, why: str) -> None:
        super().__init__(why)
        self.retry_after = retry_after
        self.why = why


class LoginThrottle:
    """Failed logins per (username, client address) and per address, in a sliding window,
    and logins in progress per address and overall.

    After `per_user` failures for one username from one address, or `per_address` failures
    from one address, further attempts from there are refused until the oldest failure leaves
    the window, whatever the password: a correct guess must not be recognisable then either.

    `begin()` counts an attempt as failed *before* its password is verified (a success takes
    it back), so a burst of simultaneous guesses is limited exactly like the same guesses made
    one by one; and it refuses while `in_flight_per_address` logins from the address, or
    `in_flight` in all, are still being verified, so a flood of logins (each an argon2 hash:
    time and memory) cannot pile up.
    """

    def __init__(
        self,
        *,
        per_user: int = 5,
        per_address: int = 50,
        window_s: float = 900.0,
        in_flight_per_address: int = 2,
        in_flight: int = 8,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window_s = window_s
        self.in_flight_per_address = in_flight_per_address
        self.in_flight = in_flight
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._running: dict[str, int] = {}

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return (username.strip().casefold()[:100], address), ("", address)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until another attempt is accepted, or None if it is accepted now."""
        now = self._clock()
        waits = []
        for key, limit in zip(self._keys(username, address), (self.per_user, self.per_address),
                              strict=True):
            times = self._recent(key, now)
            if times is not None and len(times) >= limit:
                waits.append(times[-limit] + self.window_s - now)
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> float:
        """Record a failure; returns its time (what `succeeded` takes back)."""
        now = self._clock()
        for key in self._keys(username, address):
            times = self._recent(key, now) or deque()
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            # Memory stays bounded under a flood of made-up usernames; the oldest go first.
            self._failures.popitem(last=False)
        return now

    def succeeded(self, username: str, address: str, at: float | None = None) -> None:
        """The user's failures from this address are forgotten; with `at`, so is the failure
        recorded for this very attempt in the address's count."""
        user_key, address_key = self._keys(username, address)
        self._failures.pop(user_key, None)
        times = self._failures.get(address_key)
        if at is not None and times is not None:
            with contextlib.suppress(ValueError):
                times.remove(at)
            if not times:
                del self._failures[address_key]

    def begin(self, username: str, address: str) -> LoginAttempt:
        """Start a login: raises Throttled, or returns the attempt, already counted as a
        failure. Call its `succeeded()` if the password was right, and `end()` in any case."""
        running = self._running.get(address, 0)
        if running >= self.in_flight_per_address or sum(self._running.values()) >= self.in_flight:
            raise Throttled(1.0, "busy")
        wait = self.retry_after(username, address)
        if wait is not None:
            raise Throttled(wait, "failures")
        at = self.failed(username, address)
        self._running[address] = running + 1
        return LoginAttempt(self, username, address, at)

    def _end(self, address: str) -> None:
        left = self._running.get(address, 0) - 1
        if left > 0:
            self._running[address] = left
        else:
            self._running.pop(address, None)

    @property
    def in_progress(self) -> int:
        return sum(self._running.values())


@dataclass(slots=True)
class LoginAttempt:
    """One login between LoginThrottle.begin() and end()."""

    _throttle: LoginThrottle
    _username: str
    _address: str
    _at: float
    _ended: bool = False

    def succeeded(self) -> None:
        self._throttle.succeeded(self._username, self._address, self._at)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._throttle._end(self._address)


def client_address(request: web.Request) -> str:
    # request.remote is the client's address, also behind trusted reverse proxies: the root
    # application's first middleware (vaihde.http.middleware) puts the forwarded one there.
    return request.remote or "?"


@dataclass(frozen=True, slots=True)
class Credential:
    """A request's proof of identity as stored: `kind` "session" or "token", and the SHA-256
    of the secret (never the secret itself)."""

    kind: str
    digest: str
    user_id: int


async def request_principal(
    request: web.Request, sessions: async_sessionmaker[AsyncSession], *, now: datetime
) -> Principal | None:
    """Who a request is from (a bearer token, else the session cookie), for handlers outside
    the API's middleware that read only (no CSRF check: never use it for a change)."""
    header = request.headers.get("Authorization")
    cookie = request.cookies.get(COOKIE)
    async with sessions() as db:
        if header is not None:
            token = _bearer(header)
            found = await store.principal_for_token(db, token, now=now) if token else None
            return found[0] if found is not None else None
        if cookie is not None:
            live = await store.principal_for_session(db, cookie, now=now)
            return live[0] if live is not None else None
    return None


def _bearer(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def make_auth_middleware(
    sessions: async_sessionmaker[AsyncSession],
    *,
    clock: Callable[[], datetime],
    error: ErrorFactory,
) -> Any:
    """The middleware; `error(status, code, message)` builds the JSON error responses.

    It finds out who the request is from and enforces the route's declaration: public routes
    look at no credentials, optional ones take them if they work, every other one needs a
    working credential, and a route that needs an Action is refused (403) to a principal not
    allowed it (for the employee named by the route's `owner` path parameter, if any)."""

    # The credential check runs on every request: on a bare connection it costs about half
    # of what it does through an ORM session.
    engine = getattr(sessions, "kw", {}).get("bind")
    connect: Callable[[], Any] = engine.connect if isinstance(engine, AsyncEngine) else sessions

    async def touch(fn: Any, *args: Any) -> None:
        # Only bookkeeping (last used / last seen): a busy database must not fail the request.
        try:
            async with sessions.begin() as session:
                await fn(session, *args, now=clock())
        except Exception as exc:
            log.debug("could not record use of credentials", extra={"error": repr(exc)})

    def unauthenticated(message: str, code: str = "unauthenticated") -> web.Response:
        response = error(401, code, message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="vaihde"'
        return response

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)  # no such route: 404/405, nothing to protect

        async def as_nobody() -> web.StreamResponse:
            request[PRINCIPAL] = None
            return await handler(request)

        route = declaration_of(handler)
        access: Action | Access = route.allow if route is not None else Access.USER
        if access is Access.PUBLIC:
            return await as_nobody()
        now = clock()
        header = request.headers.get("Authorization")
        cookie = request.cookies.get(COOKIE)
        who: Principal | None = None
        if header is not None:
            # A bearer token is never sent by a browser on its own: no CSRF check needed.
            token = _bearer(header)
            found = None
            if token is not None:
                async with connect() as db:
                    found = await store.principal_for_token(db, token, now=now)
            if found is None:
                if access is Access.OPTIONAL:
                    return await as_nobody()
                return unauthenticated("the API token is not valid (unknown, expired or revoked); "
                                       "give Authorization: Bearer <token>", "invalid_token")
            who, token_id, due = found
            if due:
                await touch(store.touch_token, token_id)
            assert token is not None  # a credential was found for it
            request[CREDENTIAL] = Credential("token", store.digest(token), who.user_id)
        elif cookie is not None:
            async with connect() as db:
                live = await store.principal_for_session(db, cookie, now=now)
            if live is None:
                if access is Access.OPTIONAL:
                    return await as_nobody()
                response = unauthenticated("your session has ended; log in again",
                                           "session_expired")
                response.del_cookie(COOKIE, path="/")
                return response
            who, record, due = live
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), record.csrf_token.encode()):
                    return error(403, "csrf", f"missing or wrong {CSRF_HEADER} header: changes "
                                 "made with a login cookie must send the CSRF token the login "
                                 "returned")
            if due:
                await touch(store.touch_session, cookie)
            request[SESSION] = record
            request[CREDENTIAL] = Credential("session", store.digest(cookie), who.user_id)
        elif access is not Access.OPTIONAL:
            return unauthenticated("log in (POST /api/v1/session) or give an API token "
                                   "(Authorization: Bearer <token>)")
        request[PRINCIPAL] = who
        if isinstance(access, Action):
            owner = request.match_info.get(route.owner) if route.owner else None
            if who is None or not allowed(who, access, owner):
                why = FORBIDDEN.get(access, "your role does not allow this")
                return error(403, "forbidden", why)
        return await handler(request)

    return auth
