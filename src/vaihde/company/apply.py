"""Applying the admin's company file to the database: the directory and the versioned document
are written in one transaction, so either all of a new version takes effect or none of it.

The running service notices the new version through the `config` revision counter and swaps it
in for the next caller; calls in progress keep the version they started with.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from vaihde.company.diff import Change, diff_company
from vaihde.company.load import company_from_document
from vaihde.company.schema import CompanyConfig
from vaihde.company.tenants import Owners
from vaihde.db import models as m
from vaihde.db.models import MAIN
from vaihde.directory import (
    DeviceDescription,
    DirectoryDescription,
    EmployeeDescription,
    TeamDescription,
)
from vaihde.directory.store import (
    latest_config,
    list_companies,
    record_config,
    sync_company_numbers,
    sync_directory,
)

log = logging.getLogger("vaihde.company")


def to_directory(config: CompanyConfig) -> DirectoryDescription:
    """The people and teams of a company file, as the directory stores them."""
    employees = tuple(
        EmployeeDescription(
            id=e.id,
            name=e.name,
            extension=e.extension or None,
            email=e.email or None,
            sms_number=e.sms or None,
            languages=e.languages,
            numbers=e.direct,
            devices=tuple(DeviceDescription(dial=d.address, kind=d.kind) for d in e.devices),
            delegates=e.delegates,
            title=e.title,
            topics=e.topics,
        )
        for e in config.employees.values()
    )
    teams = tuple(
        TeamDescription(id=t.id, name=t.name, kind=t.kind, members=t.members, title=t.title,
                        topics=t.topics)
        for t in config.teams.values()
    )
    return DirectoryDescription(employees=employees, teams=teams)


def document_text(config: CompanyConfig) -> str:
    """The stored form: canonical JSON, so its sha256 equals `config.digest()`."""
    return json.dumps(
        config.to_document(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


@dataclass(frozen=True, slots=True)
class ApplyResult:
    changes: tuple[Change, ...]
    version: int | None  # the stored version's id; None when nothing changed
    applied: bool


async def current_company(
    session: AsyncSession, company_id: str = MAIN
) -> CompanyConfig | None:
    """The company as last applied, or None before its first apply."""
    record = await latest_config(session, company_id)
    if record is None:
        return None
    config = company_from_document(json.loads(record.document), f"config version {record.id}")
    if config.id != company_id:
        # Stored before company.id existed (an installation from before migration 0006).
        config = replace(config, company=replace(config.company, id=company_id))
    return config


async def pending_changes(
    sessions: async_sessionmaker[AsyncSession], config: CompanyConfig
) -> list[Change]:
    """What applying `config` would change (for `vaihde config diff`)."""
    async with sessions() as session:
        return diff_company(await current_company(session, config.id), config)


# A file naming at most this many employees and teams is checked against only the rows it could
# collide with (the query's parameters stay well within SQLite's and PostgreSQL's limits).
NARROW_MAX = 2_000


async def owners(
    session: AsyncSession, company_id: str, config: CompanyConfig | None = None
) -> Owners:
    """What companies other than `company_id` hold (for `tenants.check_collisions`). Team
    queue names are read from the others' applied files, only when `config` (the file to
    check; None: always) has a team queue."""
    employees: dict[str, str] = {}
    extensions: dict[str, str] = {}
    others: list[ColumnElement[bool]] = [m.Employee.company_id != company_id]
    team_others: list[ColumnElement[bool]] = [m.Team.company_id != company_id]
    if config is not None and len(config.employees) + len(config.teams) <= NARROW_MAX:
        # Only the rows this file could collide with: reading every other company's people
        # (10,000 of them) held the service's loop for tens of milliseconds per apply.
        ids = [*config.employees, *config.teams]
        extensions_named = [e.extension for e in config.employees.values() if e.extension]
        others.append(m.Employee.id.in_(ids) | m.Employee.extension.in_(extensions_named))
        team_others.append(m.Team.id.in_(ids))
    rows = await session.execute(
        select(m.Employee.id, m.Employee.extension, m.Employee.company_id).where(*others))
    for eid, extension, cid in rows.all():
        employees[eid] = cid
        if extension:
            extensions[extension] = cid
    teams = dict((await session.execute(
        select(m.Team.id, m.Team.company_id).where(*team_others))).all())
    numbers = dict((await session.execute(
        select(m.CompanyNumber.number, m.CompanyNumber.company_id)
        .where(m.CompanyNumber.company_id != company_id))).all())
    numbers.update((await session.execute(
        select(m.EmployeeNumber.number, m.EmployeeNumber.company_id)
        .where(m.EmployeeNumber.company_id != company_id))).all())
    queues: dict[str, str] = {}
    if config is None or any(t.queue for t in config.teams.values()):
        queues = await _queues_of_others(session, company_id)
    return Owners(employees, teams, extensions, numbers, queues)


async def _queues_of_others(session: AsyncSession, company_id: str) -> dict[str, str]:
    """Team queue name → company, from each other company's version applied last."""
    latest = (select(func.max(m.ConfigVersion.id))
              .where(m.ConfigVersion.company_id != company_id)
              .group_by(m.ConfigVersion.company_id))
    rows = await session.execute(
        select(m.ConfigVersion.company_id, m.ConfigVersion.document)
        .where(m.ConfigVersion.id.in_(latest)).order_by(m.ConfigVersion.id))
    out: dict[str, str] = {}
    for cid, document in rows.all():
        for team in (json.loads(document).get("teams") or {}).values():
            if isinstance(team, dict) and team.get("queue"):
                out.setdefault(str(team["queue"]), cid)
    return out


async def company_ids(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return [cid for cid, _ in await list_companies(session)]


async def apply_company(
    sessions: async_sessionmaker[AsyncSession],
    config: CompanyConfig,
    *,
    applied_by: str,
    source_name: str,
) -> ApplyResult:
    """Store `config` as the current version of its company (`config.id`; other companies are
    left alone). Raises (and writes nothing) if any part fails, e.g. DirectoryError when an
    id, extension or number is another company's."""
    company_id = config.id
    if config.company.id != company_id:
        config = replace(config, company=replace(config.company, id=company_id))
    async with sessions() as session, session.begin():
        old = await current_company(session, company_id)
        changes = tuple(diff_company(old, config))
        if old is not None and not changes:
            return ApplyResult((), None, applied=False)
        await sync_directory(session, to_directory(config), company_id=company_id,
                             company_name=config.company.name)
        await sync_company_numbers(session, company_id,
                                   (n.digits for n in config.numbers.values()))
        record = await record_config(
            session, document=document_text(config), source_name=source_name,
            applied_by=applied_by, company_id=company_id,
        )
    log.info(
        "company configuration applied",
        extra={"version": record.id, "changes": len(changes), "by": applied_by,
               "company": company_id},
    )
    return ApplyResult(changes, record.id, applied=True)
