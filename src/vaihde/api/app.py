"""The REST API as an aiohttp sub-application (`make_api`), mounted by the service at /api/v1,
and what it needs from the service (`ApiContext`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.api import (
    openapi,
    routes_availability,
    routes_callers,
    routes_config,
    routes_console,
    routes_directory,
    routes_employees,
    routes_messages,
    routes_session,
)
from vaihde.api.errors import error_middleware, error_response
from vaihde.api.routes_common import CTX, Route
from vaihde.auth.middleware import make_auth_middleware
from vaihde.company.offloop import ConfigChecker
from vaihde.company.schema import CompanyConfig
from vaihde.db.clock import utcnow as _utcnow
from vaihde.db.models import DIRECTORY, current_revisions
from vaihde.directory.search import DirectoryIndex
from vaihde.directory.store import search_records
from vaihde.messages.model import CHANNELS
from vaihde.presence.cache import PresenceCache

if TYPE_CHECKING:
    from vaihde.console.stream import Console

log = logging.getLogger("vaihde.api")

PREFIX = "/api/v1"
ROUTE_MODULES = (
    routes_session,
    routes_employees,
    routes_availability,
    routes_directory,
    routes_callers,
    routes_config,
    routes_messages,
    routes_console,
)




@dataclass(frozen=True)
class ApiContext:
    """What the API reads and writes through; the service owns all of it.

    `directory()` and `company()` are called per request, so swapping in a rebuilt index or a
    newly applied configuration needs no restart. `config_applied` (optional) runs after a
    successful POST /config/apply, e.g. to reload the company and rebuild the index at once
    instead of at the next poll. Messages taken through the API are planned for
    `message_channels` (those the service has settings for), and `message_taken` (the sender's
    wake) runs after one is stored; message recordings are served only from `recordings_dir`.
    """

    sessions: async_sessionmaker[AsyncSession]
    cache: PresenceCache
    directory: Callable[[], DirectoryIndex]
    company: Callable[[], CompanyConfig | None]
    tz: tzinfo = UTC
    config_applied: Callable[[], Awaitable[None]] | None = None
    clock: Callable[[], datetime] = field(default=_utcnow)
    message_channels: tuple[str, ...] = CHANNELS
    message_taken: Callable[[], None] | None = None
    recordings_dir: Path | None = None
    console: Console | None = None  # the operator console's live board; None: 503s
    # Checks company files sent to /config/* off the event loop, with the settings' calendar rules.
    config_checker: ConfigChecker = field(default_factory=ConfigChecker)
    # A phone's reach now (reachable, in_use, unreachable, unknown) from Asterisk's device state.
    device_reach: Callable[[str], str] | None = None


def routes() -> list[Route]:
    """Every route of the API (method, path under /api/v1, handler)."""
    out: list[Route] = [("GET", "/openapi.json", openapi.serve)]
    for module in ROUTE_MODULES:
        out.extend(module.ROUTES)
    return out


def make_api(ctx: ApiContext) -> web.Application:
    """The API application; mount it with `root.add_subapp("/api/v1", make_api(ctx))`."""
    auth = make_auth_middleware(
        ctx.sessions,
        clock=ctx.clock,
        error=lambda status, code, message: error_response(status, code, message),
    )
    # The error middleware is outermost so that whatever fails inside becomes a JSON error.
    app = web.Application(middlewares=[error_middleware, auth])
    app[CTX] = ctx
    routes_session.setup(app)
    for method, path, handler in routes():
        app.router.add_route(method, path, handler)
    return app


class LiveDirectory:
    """The search index of the stored directory, rebuilt when its revision counter moves.

    Call the object for the current index (what ApiContext.directory wants); `refresh()` (or
    `run()`, which polls) rebuilds it in a worker thread, so the event loop keeps serving calls
    while 10,000 employees are indexed.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._index = DirectoryIndex.build([])
        self._revision = -1

    def __call__(self) -> DirectoryIndex:
        return self._index

    async def refresh(self) -> bool:
        """Rebuild if the directory changed since the last build; True if it did."""
        async with self._sessions() as session:
            revision = (await current_revisions(session))[DIRECTORY]
            if revision == self._revision:
                return False
            records = await search_records(session)
        self._index = await asyncio.to_thread(DirectoryIndex.build, records)
        self._revision = revision
        return True

    async def run(self, poll_interval: float = 1.0) -> None:
        failing = False
        while True:
            try:
                await self.refresh()
                failing = False
            except Exception:
                # A database hiccup keeps the last index; the next poll tries again.
                if not failing:
                    log.exception("directory index refresh failed; searching the last one")
                failing = True
            await asyncio.sleep(poll_interval)
