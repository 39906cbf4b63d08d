"""The directory over HTTP: GET /employees, /employees/{employee_id}, /teams, /teams/{team_id}
(each with availability from the presence cache, the same truth routing reads), the search
(GET /directory/search: the in-memory DirectoryIndex, accent-insensitive) and the caller
register for operators (GET/PUT /callers/{number}, GET /callers/{number}/contacts).
"""

from __future__ import annotations

import weakref
from datetime import timedelta

from aiohttp import web
from pydantic_core import to_json

from vaihde.api import scope
from vaihde.api.context import company_of, ctx
from vaihde.api.errors import JSON, not_found
from vaihde.api.route import Routes, respond
from vaihde.auth.model import Action
from vaihde.db import models as m
from vaihde.directory import store as directory
from vaihde.directory.schemas import (
    CallerPath,
    CallerQuery,
    CallerUpdate,
    ContactList,
    ContactsQuery,
    Employee,
    EmployeeList,
    EmployeeSummary,
    Person,
    Phone,
    SearchQuery,
    SearchResult,
    Team,
    TeamList,
    TeamPath,
    TeamRef,
    TeamSummary,
)
from vaihde.directory.search import EMPLOYEE_RECORD, DirectoryIndex, Hit, Record, merge
from vaihde.directory.store import CallerRecord
from vaihde.presence.model import AvailabilitySummary
from vaihde.presence.schemas import EmployeePath
from vaihde.records import of_row

routes = Routes("directory")
callers = Routes("callers")

MAX_TEAMS = 10
_SUMMARY = AvailabilitySummary.__pydantic_serializer__


def _title(request: web.Request, employee_id: str) -> str:
    # The running company's (a service without one only loses the extras).
    company = company_of(request)
    employee = company.employees.get(employee_id) if company is not None else None
    return employee.title if employee is not None else ""


def _person(request: web.Request, employee_id: str, names: dict[str, str]) -> Person:
    return Person(id=employee_id, name=names.get(employee_id, employee_id),
                  availability=ctx(request).cache.lookup(employee_id))


@routes.get("/employees", "Active employees with their availability",
            allow=Action.READ_DIRECTORY, ok=(200, "Employees by name", EmployeeList),
            company=scope.FILTERED)
async def list_employees(request: web.Request) -> EmployeeList:
    api = ctx(request)
    mine = await scope.ids_in_scope(request, m.Employee)
    async with api.sessions() as session:
        employees = await directory.list_employees(session)
    return EmployeeList(employees=[
        of_row(EmployeeSummary, e, title=_title(request, e.id), availability=api.cache.lookup(e.id))
        for e in employees if mine is None or e.id in mine
    ])


@routes.get("/employees/{employee_id}",
            "An employee: devices, numbers, teams, delegates, availability",
            allow=Action.READ_DIRECTORY, params=EmployeePath,
            company=scope.employee("employee_id"), ok=(200, "The employee", Employee),
            errors=(404,))
async def get_employee(request: web.Request, path: EmployeePath) -> Employee:
    api = ctx(request)
    async with api.sessions() as session:
        e = await directory.get_employee(session, path.employee_id)
        if e is None:
            raise not_found(f"no employee {path.employee_id!r}", "employee_id")
        teams = await directory.names_of(session, m.Team, e.teams)
        names = await directory.names_of(session, m.Employee, e.delegates)
    reach = api.device_reach
    return of_row(
        Employee, e,
        title=_title(request, e.id),
        devices=[
            Phone(dial=d.dial, kind=d.kind,
                  reach=reach(d.dial) if reach is not None and d.kind != "mobile" else "unknown")
            for d in e.devices
        ],
        teams=[TeamRef(id=t, name=teams.get(t, t)) for t in e.teams],
        delegates=[_person(request, d, names) for d in e.delegates],
        availability=api.cache.lookup(e.id),
    )


@routes.get("/teams", "Active teams", allow=Action.READ_DIRECTORY,
            ok=(200, "Teams", TeamList), company=scope.FILTERED)
async def list_teams(request: web.Request) -> TeamList:
    mine = await scope.ids_in_scope(request, m.Team)
    async with ctx(request).sessions() as session:
        teams = await directory.list_teams(session)
    return TeamList(teams=[TeamSummary.model_validate(t) for t in teams
                           if mine is None or t.id in mine])


@routes.get("/teams/{team_id}", "A team and its members' availability",
            allow=Action.READ_DIRECTORY, params=TeamPath, company=scope.team("team_id"),
            ok=(200, "The team", Team), errors=(404,))
async def get_team(request: web.Request, path: TeamPath) -> Team:
    async with ctx(request).sessions() as session:
        team = await directory.get_team(session, path.team_id)
        if team is None:
            raise not_found(f"no team {path.team_id!r}", "team_id")
        names = await directory.names_of(session, m.Employee, team.members)
    company = company_of(request)
    configured = company.teams.get(team.id) if company is not None else None
    return of_row(
        Team, team,
        strategy=configured.strategy if configured is not None else None,
        ring_seconds=configured.ring_seconds if configured is not None else None,
        queue=(configured.queue or None) if configured is not None else None,
        members=[_person(request, eid, names) for eid in team.members],
    )


# --- search ----------------------------------------------------------------------------------

# Hits carry only ids; the records behind them, by id, once per index (rebuilt indexes are new
# objects, so the old mapping goes with the old index).
_by_id: weakref.WeakKeyDictionary[DirectoryIndex, dict[str, Record]] = (
    weakref.WeakKeyDictionary()
)


def _records(index: DirectoryIndex) -> dict[str, Record]:
    found = _by_id.get(index)
    if found is None:
        found = {r.employee_id: r for r in index.records}
        if index.teams is not None:
            found.update({f"team:{r.employee_id}": r for r in index.teams.records})
        _by_id[index] = found
    return found


@routes.get("/directory/search",
            "Search employees and teams by name, title, topic, team, extension or number "
            "(ranked: exact before prefix; name before title before topic)",
            allow=Action.READ_DIRECTORY, query=SearchQuery,
            company=scope.query("company", every=True),
            ok=(200, "Hits, best first", SearchResult), errors=(404,))
async def search(request: web.Request, query: SearchQuery) -> web.StreamResponse:
    """A SearchResult, built as plain data: the search runs for every key an operator types,
    and models would cost about half of building its reply (docs/api.md). Each person's
    availability is sent by the AvailabilitySummary record's own serializer; the API tests
    check every reply against SearchResult."""
    api = ctx(request)
    indexes = _indexes(request, query)
    lookup = api.cache.lookup
    context = {"tz": api.tz}
    hits = []
    for index, hit in _merged(indexes, query.q, query.limit, EMPLOYEE_RECORD):
        record = _records(index.base).get(hit.employee_id)
        hits.append({
            "employee_id": hit.employee_id, "name": hit.name, "score": hit.score,
            "matched": hit.matched,
            "extension": record.extension if record is not None else None,
            "teams": record.teams if record is not None else (),
            "title": record.title if record is not None else "",
            "topics": record.topics if record is not None else (),
            "availability": _SUMMARY.to_python(lookup(hit.employee_id), mode="json",
                                               context=context),
        })
    teams = []
    for index, hit in _merged(indexes, query.q, MAX_TEAMS, "team"):
        record = _records(index.base).get(f"team:{hit.employee_id}")
        teams.append({
            "team_id": hit.employee_id, "name": hit.name, "score": hit.score,
            "matched": hit.matched,
            "title": record.title if record is not None else "",
            "topics": record.topics if record is not None else (),
        })
    return web.Response(body=to_json({"query": query.q, "hits": hits, "teams": teams}),
                        content_type=JSON)


def _indexes(request: web.Request, query: SearchQuery) -> list[DirectoryIndex]:
    """The indexes to search: the company asked for (404 if none such), else every company's
    (the whole index) or, for a caller who acts for some companies only, each of theirs."""
    api = ctx(request)
    wanted = query.company if query.company and query.company != "*" else None
    mine = scope.scope(request)
    if wanted is None and mine is None:
        # Every company's: the service keeps the directory in parts, one per company.
        return list(api.directories()) if api.directories is not None else [api.directory()]
    if api.directory_of is None:
        # One company's service: its index is the only one (scopes name that company).
        return [api.directory()]
    found = []
    for cid in [wanted] if wanted is not None else sorted(mine or ()):
        index = api.directory_of(cid)
        if index is None and wanted is not None:
            raise not_found(f"no company {wanted!r}", "company")
        if index is not None:
            found.append(index)
    return found


def _merged(
    indexes: list[DirectoryIndex], q: str, limit: int, kind: str
) -> list[tuple[DirectoryIndex, Hit]]:
    """The best `limit` hits of every index (one index: its own order)."""
    if len(indexes) == 1:
        return [(indexes[0], hit) for hit in indexes[0].search(q, limit, kind=kind)]
    # Ranked as one index of all their records would rank them (search.merge).
    return merge(indexes, q, limit, kind)


# --- the caller register -----------------------------------------------------------------------


CALLER_COMPANY = scope.query("company")  # one company's register (a scoped caller's own)


def _register(request: web.Request, company: str | None) -> str:
    """Whose register: the company asked for, else the first company."""
    if company is not None:
        return company
    running = company_of(request)
    return running.id if running is not None else m.MAIN


@callers.get("/callers/{number}", "What is known about a caller", allow=Action.USE_CALLERS,
             params=CallerPath, query=CallerQuery, company=CALLER_COMPANY,
             ok=(200, "The caller", CallerRecord), errors=(404,))
async def get_caller(request: web.Request, path: CallerPath, query: CallerQuery) -> CallerRecord:
    async with ctx(request).sessions() as session:
        record = await directory.get_caller(session, path.number,
                                            _register(request, query.company))
    if record is None:
        raise not_found(f"nothing is known about {path.number}", "number")
    return record


@callers.put("/callers/{number}",
             "Create or change a caller's details (fields not sent are kept)",
             allow=Action.USE_CALLERS, params=CallerPath, query=CallerQuery,
             company=CALLER_COMPANY, body=CallerUpdate,
             ok=[(200, "Changed", CallerRecord), (201, "Created", CallerRecord)])
async def put_caller(
    request: web.Request, path: CallerPath, query: CallerQuery, body: CallerUpdate
) -> web.StreamResponse:
    api = ctx(request)
    company = _register(request, query.company)
    async with api.sessions.begin() as session:
        existed = await directory.get_caller(session, path.number, company) is not None
        record = await directory.upsert_caller(
            session, path.number, now=api.clock(), company_id=company,
            **body.model_dump(exclude_unset=True)
        )
    return respond(request, record, 200 if existed else 201)


@callers.get("/callers/{number}/contacts", "Earlier calls with this number, newest first",
             allow=Action.USE_CALLERS, params=CallerPath, query=ContactsQuery,
             company=CALLER_COMPANY, ok=(200, "Contacts", ContactList))
async def contacts(request: web.Request, path: CallerPath, query: ContactsQuery) -> ContactList:
    api = ctx(request)
    async with api.sessions() as session:
        found = await directory.contacts_for(
            session, path.number, since=api.clock() - timedelta(days=query.days),
            limit=query.limit, company_id=query.company,
        )
    return ContactList(number=path.number, days=query.days, contacts=found)
