"""aiohttp middleware that turns `Authorization: Bearer <token>` or the `vaihde_session` cookie
into a Principal (request[PRINCIPAL]), enforces CSRF for cookie-authenticated changes, and the
in-memory throttle for failed logins.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vaihde.auth import store
from vaihde.auth.model import Principal

log = logging.getLogger("vaihde.auth")

COOKIE = "vaihde_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# request[PRINCIPAL]: Principal | None; request[SESSION]: the SessionRecord of a cookie login.
# Typed keys where aiohttp has them (3.12+; it warns about plain strings there).
_RequestKey: Any = getattr(web, "RequestKey", None)
PRINCIPAL: Any = _RequestKey("vaihde.principal", object) if _RequestKey else "vaihde.principal"
SESSION: Any = _RequestKey("vaihde.session", object) if _RequestKey else "vaihde.session"

# Handler markers: PUBLIC handlers never look at credentials; OPTIONAL ones get a principal if
# the request has a working one (and CSRF is still enforced for a live cookie session).
_ACCESS = "vaihde_access"
PUBLIC, OPTIONAL = "public", "optional"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorFactory = Callable[[int, str, str], web.Response]


def public(handler: Handler) -> Handler:
    setattr(handler, _ACCESS, PUBLIC)
    return handler


def optional_auth(handler: Handler) -> Handler:
    setattr(handler, _ACCESS, OPTIONAL)
    return handler


def access_of(handler: Any) -> str | None:
    # Middlewares and functools.partial wrap handlers; the marker is on the innermost one.
    while handler is not None:
        marker = getattr(handler, _ACCESS, None)
        if marker is not None:
            return str(marker)
        handler = getattr(handler, "func", None) or getattr(handler, "__wrapped__", None)
    return None


def principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


class LoginThrottle:
    """Failed logins per (username, client address) and per address, in a sliding window.

    After `per_user` failures for one username from one address, or `per_address` failures
    from one address, further attempts from there are refused until the oldest failure leaves
    the window, whatever the password: a correct guess must not be recognisable then either.
    """

    def __init__(
        self,
        *,
        per_user: int = 5,
        per_address: int = 50,
        window_s: float = 900.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

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

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        for key in self._keys(username, address):
            times = self._recent(key, now) or deque()
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            # Memory stays bounded under a flood of made-up usernames; the oldest go first.
            self._failures.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop(self._keys(username, address)[0], None)


def client_address(request: web.Request) -> str:
    # Behind a reverse proxy this is the proxy; aiohttp-remotes or a trusted X-Forwarded-For
    # would be needed to tell clients apart there.
    return request.remote or "?"


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
    """The middleware; `error(status, code, message)` builds the JSON error responses."""

    # The credential check runs on every request: on a bare connection it costs about half
    # of what it does through an ORM session.
    engine = getattr(sessions, "kw", {}).get("bind")
    connect: Callable[[], Any] = (
        engine.connect if isinstance(engine, AsyncEngine) else sessions
    )

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
        access = access_of(handler)
        if access == PUBLIC:
            request[PRINCIPAL] = None
            return await handler(request)
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
                if access == OPTIONAL:
                    request[PRINCIPAL] = None
                    return await handler(request)
                return unauthenticated(
                    "the API token is not valid (unknown, expired or revoked); give "
                    "Authorization: Bearer <token>",
                    "invalid_token",
                )
            who, token_id, due = found
            if due:
                await touch(store.touch_token, token_id)
        elif cookie is not None:
            async with connect() as db:
                live = await store.principal_for_session(db, cookie, now=now)
            if live is None:
                if access == OPTIONAL:
                    request[PRINCIPAL] = None
                    return await handler(request)
                response = unauthenticated(
                    "your session has ended; log in again", "session_expired"
                )
                response.del_cookie(COOKIE, path="/")
                return response
            who, record, due = live
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), record.csrf_token.encode()):
                    return error(
                        403,
                        "csrf",
                        f"missing or wrong {CSRF_HEADER} header: changes made with a login "
                        "cookie must send the CSRF token the login returned",
                    )
            if due:
                await touch(store.touch_session, cookie)
            request[SESSION] = record
        elif access != OPTIONAL:
            return unauthenticated(
                "log in (POST /api/v1/session) or give an API token "
                "(Authorization: Bearer <token>)"
            )
        request[PRINCIPAL] = who
        return await handler(request)

    return auth
