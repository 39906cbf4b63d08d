"""The service's root application and its health endpoint.

`GET /health` without credentials says only whether the service is up, for load balancers and
monitors: `{"status": "ok"}` (200), `"degraded"` (200: Asterisk's AMI is not connected, calls
still flow) or `"down"` (503: the FastAGI server is not listening). With an operator's or an
admin's API token (or console session) it adds the details: FastAGI sessions and outcomes,
the AMI connection and its last error, the company and the settings file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.auth.middleware import request_principal
from vaihde.auth.model import Role
from vaihde.db.clock import utcnow
from vaihde.http.middleware import request_limits
from vaihde.http.settings import HttpSettings

if TYPE_CHECKING:
    from vaihde.service import Service

SERVICE_KEY: web.AppKey[Service] = web.AppKey("service")
SESSIONS_KEY: web.AppKey[async_sessionmaker[AsyncSession] | None] = web.AppKey(
    "vaihde.health.sessions")
CLOCK_KEY: web.AppKey[Callable[[], datetime]] = web.AppKey("vaihde.health.clock")

DETAILS_FOR = (Role.OPERATOR, Role.ADMIN)
# Details only users of every company see (roles per company, issue 12).
SERVICE_WIDE = ("company", "companies")


def public_status(status: dict[str, Any]) -> tuple[dict[str, str], int]:
    """What anyone may see of the service's status, and the HTTP status for it."""
    # FastAGI is what callers depend on; AMI being down only degrades (calls still flow).
    if not status.get("fastagi", {}).get("listening", False):
        return {"status": "down"}, 503
    return {"status": "degraded" if status.get("status") == "degraded" else "ok"}, 200


async def health(request: web.Request) -> web.Response:
    status = request.app[SERVICE_KEY].status()
    body: dict[str, Any]
    body, code = public_status(status)
    sessions = request.app[SESSIONS_KEY]
    if sessions is not None and ("Authorization" in request.headers or request.cookies):
        who = await request_principal(request, sessions, now=request.app[CLOCK_KEY]())
        if who is not None and who.role in DETAILS_FOR:
            if who.companies is not None:
                # Which companies the service answers for is not a company operator's to see.
                status = {k: v for k, v in status.items() if k not in SERVICE_WIDE}
            body = {**status, **body}
    return web.json_response(body, status=code, headers={"Cache-Control": "no-store"})


def make_app(
    service: Service,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    http: HttpSettings | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> web.Application:
    """The root application: /health here, the API and pages are added by the service.
    `sessions` checks credentials for /health's details (None: never shown); `http` gives the
    body limits and trusted proxies (defaults: HttpSettings())."""
    settings = http or HttpSettings()
    app = web.Application(client_max_size=64 * 1024, middlewares=[request_limits(settings)])
    app[SERVICE_KEY] = service
    app[SESSIONS_KEY] = sessions
    app[CLOCK_KEY] = clock
    app.router.add_get("/health", health)
    return app
