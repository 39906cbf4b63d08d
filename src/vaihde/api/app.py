"""The REST API as an aiohttp sub-application (`make_api`), mounted by the service at /api/v1:
every feature's declared routes (its `http.py`), the error and auth middlewares, and the
OpenAPI document generated from the same declarations.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.api import openapi
from vaihde.api.context import CTX, ApiContext
from vaihde.api.errors import error_middleware, error_response
from vaihde.api.route import Route
from vaihde.auth.middleware import make_auth_middleware
from vaihde.db.changes import Watch
from vaihde.db.models import DIRECTORY, current_revisions
from vaihde.directory.search import DirectoryIndex, Record
from vaihde.directory.store import record_companies, search_records

log = logging.getLogger("vaihde.api")

PREFIX = "/api/v1"


def routes() -> list[Route]:
    """Every route of the API, as its feature declared it (path under /api/v1)."""
    # Imported here: the features' http modules import the API's framework (this package).
    from vaihde.auth import http as session
    from vaihde.auth import users_http as users
    from vaihde.company import http as company
    from vaihde.company import oncall_http as oncall
    from vaihde.console import http as console
    from vaihde.directory import http as directory
    from vaihde.dispatch import http as urgent
    from vaihde.messages import http as messages
    from vaihde.presence import http as presence
    from vaihde.reports import http as reports

    return [*openapi.routes.routes, *session.routes.routes, *directory.routes.routes,
            *presence.routes.routes, *directory.callers.routes, *company.routes.routes,
            *messages.messages.routes, *messages.callbacks.routes, *console.routes.routes,
            *oncall.routes.routes, *urgent.routes.routes,
            *users.routes.routes, *reports.routes.routes]


def make_api(ctx: ApiContext) -> web.Application:
    """The API application; mount it with `root.add_subapp("/api/v1", make_api(ctx))`."""
    from vaihde.auth import http as session

    auth = make_auth_middleware(ctx.sessions, clock=ctx.clock, error=error_response)
    # The error middleware is outermost so that whatever fails inside becomes a JSON error.
    app = web.Application(middlewares=[error_middleware, auth])
    app[CTX] = ctx
    session.setup(app)
    for route in routes():
        app.router.add_route(route.method, route.path, route.handler)
    return app


def _build(records: list[Record], owner: dict[tuple[str, str], str]) -> DirectoryIndex:
    """One index of every company's records, each marked with its company (by the (kind, id)
    → company map), so that `DirectoryIndex.only` finds one company's without an index of its
    own."""
    marked = [replace(r, company=owner.get((r.kind, r.employee_id), "")) for r in records]
    return DirectoryIndex.build(marked)


class LiveDirectory:
    """The search index of the stored directory, rebuilt when its revision counter moves.

    Call the object for the current index (what ApiContext.directory wants); `refresh()` (or
    `run()`, which polls or follows a watch) rebuilds it in a worker thread, so the event loop
    keeps serving calls while 10,000 employees are indexed.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._index = DirectoryIndex.build([])
        self._revision = -1

    def __call__(self) -> DirectoryIndex:
        """Every company's employees and teams."""
        return self._index

    def of(self, company_id: str) -> DirectoryIndex | None:
        """One company's: a view of the one index (None: no such company)."""
        return self._index.only(company_id)

    async def refresh(self) -> bool:
        """Rebuild if the directory changed since the last build; True if it did."""
        async with self._sessions() as session:
            revision = (await current_revisions(session))[DIRECTORY]
            if revision == self._revision:
                return False
            records = await search_records(session)
            owner = await record_companies(session)
        # One company's: the console searches the call's company by default (issue 12).
        self._index = await asyncio.to_thread(_build, records, owner)
        self._revision = revision
        return True

    async def run(self, poll_interval: float = 1.0, *, watch: Watch | None = None) -> None:
        """Rebuild when the directory changed, until cancelled: looked at every
        `poll_interval`, or whenever `watch` wakes (PostgreSQL tells at commit)."""
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
            if watch is None:
                await asyncio.sleep(poll_interval)
            else:
                await watch.wait(poll_interval)
