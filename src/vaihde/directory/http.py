"""The directory as stored: GET /employees, /employees/{employee_id}, /teams, /teams/{team_id},
each with availability from the presence cache (the same truth routing reads).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from vaihde.api.errors import Query, not_found
from vaihde.api.routes_common import (
    Route,
    availability_json,
    company_of,
    ctx,
    employee_id_param,
    iso,
    may,
    require,
    summary_json,
)
from vaihde.auth.model import Action
from vaihde.config.patterns import ID
from vaihde.db import models as m
from vaihde.directory import EmployeeRecord
from vaihde.directory import store as directory


def _title(request: web.Request, employee_id: str) -> str:
    company = company_of(request)
    employee = company.employees.get(employee_id) if company is not None else None
    return employee.title if employee is not None else ""


def employee_summary(request: web.Request, e: EmployeeRecord) -> dict[str, Any]:
    api = ctx(request)
    return {
        "id": e.id,
        "name": e.name,
        "title": _title(request, e.id),
        "extension": e.extension,
        "teams": list(e.teams),
        "availability": summary_json(api.cache.lookup(e.id), api.tz),
    }


async def list_employees(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    Query(request, ())
    async with ctx(request).sessions() as session:
        employees = await directory.list_employees(session)
    return web.json_response({"employees": [employee_summary(request, e) for e in employees]})


async def _team_names(session: Any, team_ids: set[str]) -> dict[str, str]:
    if not team_ids:
        return {}
    rows = await session.execute(select(m.Team.id, m.Team.name).where(m.Team.id.in_(team_ids)))
    return dict(rows.all())


async def get_employee(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    Query(request, ())
    employee_id = employee_id_param(request)
    api = ctx(request)
    async with api.sessions() as session:
        e = await directory.get_employee(session, employee_id)
        if e is None:
            raise not_found(f"no employee {employee_id!r}", "employee_id")
        teams = await _team_names(session, set(e.teams))
        names = dict(
            (
                await session.execute(
                    select(m.Employee.id, m.Employee.name).where(m.Employee.id.in_(e.delegates))
                )
            ).all()
        ) if e.delegates else {}
    private = may(request, Action.READ_PRIVATE, employee_id)
    return web.json_response(
        {
            "id": e.id,
            "name": e.name,
            "title": _title(request, e.id),
            "active": e.active,
            "extension": e.extension,
            "email": e.email,
            "sms_number": e.sms_number,
            "languages": list(e.languages),
            "numbers": list(e.numbers),
            "devices": [
                {"dial": d.dial, "kind": d.kind,
                 "reach": api.device_reach(d.dial)
                 if api.device_reach is not None and d.kind != "mobile" else "unknown"}
                for d in e.devices
            ],
            "teams": [{"id": t, "name": teams.get(t, t)} for t in e.teams],
            "delegates": [
                {
                    "id": d,
                    "name": names.get(d, d),
                    "availability": summary_json(api.cache.lookup(d), api.tz),
                }
                for d in e.delegates
            ],
            "availability": availability_json(api.cache.lookup(e.id), api.tz, private=private),
            "updated_at": iso(e.updated_at, api.tz),
        }
    )


def _team_query() -> Any:
    return (
        select(m.Team)
        .options(selectinload(m.Team.members))
        .execution_options(populate_existing=True)
    )


async def list_teams(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    Query(request, ())
    async with ctx(request).sessions() as session:
        teams = (
            await session.scalars(_team_query().where(m.Team.active.is_(True)).order_by(m.Team.id))
        ).all()
    return web.json_response(
        {
            "teams": [
                {
                    "id": t.id,
                    "name": t.name,
                    "kind": t.kind,
                    "members": [mb.employee_id for mb in t.members],
                }
                for t in teams
            ]
        }
    )


async def get_team(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    Query(request, ())
    team_id = request.match_info["team_id"]
    if not ID.match(team_id):
        raise not_found(f"no team {team_id!r}", "team_id")
    api = ctx(request)
    async with api.sessions() as session:
        team = (await session.scalars(_team_query().where(m.Team.id == team_id))).one_or_none()
        if team is None:
            raise not_found(f"no team {team_id!r}", "team_id")
        member_ids = [mb.employee_id for mb in team.members]
        names = dict(
            (
                await session.execute(
                    select(m.Employee.id, m.Employee.name).where(m.Employee.id.in_(member_ids))
                )
            ).all()
        ) if member_ids else {}
    company = company_of(request)
    configured = company.teams.get(team_id) if company is not None else None
    return web.json_response(
        {
            "id": team.id,
            "name": team.name,
            "kind": team.kind,
            "active": team.active,
            "strategy": configured.strategy if configured is not None else None,
            "ring_seconds": configured.ring_seconds if configured is not None else None,
            "queue": (configured.queue or None) if configured is not None else None,
            "members": [
                {
                    "id": eid,
                    "name": names.get(eid, eid),
                    "availability": summary_json(api.cache.lookup(eid), api.tz),
                }
                for eid in member_ids
            ],
            "updated_at": iso(team.updated_at, api.tz),
        }
    )


ROUTES: list[Route] = [
    ("GET", "/employees", list_employees),
    ("GET", "/employees/{employee_id}", get_employee),
    ("GET", "/teams", list_teams),
    ("GET", "/teams/{team_id}", get_team),
]
