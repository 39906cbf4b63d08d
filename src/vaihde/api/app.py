"""The REST API as an aiohttp sub-application (`make_api`), mounted by the service at /api/v1:
every feature's declared routes (its `http.py`), the error and auth middlewares, and the
OpenAPI document generated from the same declarations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.api import openapi
from vaihde.api.context import CTX, ApiContext
from vaihde.api.errors import error_middleware, error_response
from vaihde.api.route import Route
from vaihde.auth.middleware import make_auth_middleware
from vaihde.db.changes import Watch
from vaihde.db.models import DIRECTORY, current_revisions
from vaihde.directory import DirectoryDescription, EmployeeDescription, TeamDescription
from vaihde.directory.search import (
    EMPLOYEE_RECORD,
    TEAM_RECORD,
    DirectoryIndex,
    Record,
    records_from_description,
)
from vaihde.directory.store import directory_stamps, load_directory, record_companies

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


# A company's part with more records than this is indexed in a worker thread: it would hold
# the event loop for tens of milliseconds (a part of 50 takes about a millisecond).
THREAD_RECORDS = 2_000
# More changed companies than this (the first load) are read in one query, not one each.
READ_ALL_OVER = 8


def company_part(description: DirectoryDescription, company_id: str) -> DirectoryIndex | None:
    """One company's index (its records marked with its id); None when it has nobody."""
    records = [replace(r, company=company_id) for r in records_from_description(description)]
    return DirectoryIndex.build(records) if records else None


class LiveDirectory:
    """The search index of the stored directory: one index per company, each rebuilt only
    when that company's stored directory changed (the directory revision counter says that
    something did, `directory_stamps` which companies), so applying one company costs in
    proportion to that company and leaves the others' indexes as they were.

    `of(company)` is one company's index, `parts()` every company's (a search of all merges
    them: `search.merge`); calling the object gives one index of everyone, built on demand.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._parts: Mapping[str, DirectoryIndex] = MappingProxyType({})
        self._stamps: dict[str, tuple[object, ...]] = {}
        self._whole: DirectoryIndex | None = None
        self._revision = -1
        self._lock = asyncio.Lock()

    def __call__(self) -> DirectoryIndex:
        """Every company's employees and teams as one index (made when first asked after a
        change; the service's own searches use the parts)."""
        whole = self._whole
        if whole is None:
            whole = self._whole = DirectoryIndex.build(
                [r for part in self._parts.values() for r in _records_of(part)])
        return whole

    def of(self, company_id: str) -> DirectoryIndex | None:
        """One company's index (None: no such company, or nobody in it)."""
        return self._parts.get(company_id)

    def parts(self) -> Sequence[DirectoryIndex]:
        """Every company's index, the first company first."""
        return tuple(self._parts.values())

    @property
    def by_company(self) -> Mapping[str, DirectoryIndex]:
        return self._parts

    async def refresh(self) -> bool:
        """Re-index the companies whose directory changed since the last look; True if the
        directory changed at all."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> bool:
        async with self._sessions() as session:
            revision = (await current_revisions(session))[DIRECTORY]
            if revision == self._revision:
                return False
            stamps = await directory_stamps(session)
            changed = [cid for cid, stamp in stamps.items() if self._stamps.get(cid) != stamp]
            if len(changed) > READ_ALL_OVER:
                descriptions = _by_company(await load_directory(session),
                                           await record_companies(session), changed)
            else:
                descriptions = {cid: await load_directory(session, cid) for cid in changed}
        parts = {cid: part for cid, part in self._parts.items() if cid in stamps}
        for cid in changed:
            description = descriptions.get(cid, DirectoryDescription())
            if len(description.employees) + len(description.teams) > THREAD_RECORDS:
                part = await asyncio.to_thread(company_part, description, cid)
            else:
                part = company_part(description, cid)
                await asyncio.sleep(0)  # calls go on between companies
            if part is None:
                parts.pop(cid, None)
            else:
                parts[cid] = part
        self._parts = MappingProxyType(parts)
        self._whole = None
        self._stamps = stamps
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


def _records_of(part: DirectoryIndex) -> list[Record]:
    return [*part.records, *(part.teams.records if part.teams is not None else ())]


def _by_company(
    whole: DirectoryDescription, owner: dict[tuple[str, str], str], wanted: Sequence[str]
) -> dict[str, DirectoryDescription]:
    """The whole directory cut into the `wanted` companies' parts (by the (kind, id) →
    company map)."""
    keep = set(wanted)
    employees: dict[str, list[EmployeeDescription]] = {cid: [] for cid in keep}
    teams: dict[str, list[TeamDescription]] = {cid: [] for cid in keep}
    for e in whole.employees:
        cid = owner.get((EMPLOYEE_RECORD, e.id))
        if cid in keep:
            employees[cid].append(e)
    for t in whole.teams:
        cid = owner.get((TEAM_RECORD, t.id))
        if cid in keep:
            teams[cid].append(t)
    return {cid: DirectoryDescription(employees=tuple(employees[cid]), teams=tuple(teams[cid]))
            for cid in keep}
