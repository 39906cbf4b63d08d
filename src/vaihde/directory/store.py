"""Directory, callers and configuration versions in the database. Every function works inside the
caller's transaction (`async with sessions.begin() as session:`) and never commits, so that
config apply can write the directory and its config_versions row atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from vaihde.db import models as m
from vaihde.db.clock import aware_now as _now
from vaihde.directory import (
    CallerRecord,
    ConfigVersionRecord,
    ContactRecord,
    DirectoryDescription,
    DirectoryError,
    EmployeeDescription,
    EmployeeRecord,
    SyncReport,
    TeamDescription,
    TeamRecord,
    digits,
)
from vaihde.directory.search import (
    EMPLOYEE_RECORD,
    TEAM_RECORD,
    Record,
    fold,
    records_from_description,
)
from vaihde.records import of_row

D = TypeVar("D", EmployeeDescription, TeamDescription)


def _normalised(e: EmployeeDescription) -> EmployeeDescription:
    return EmployeeDescription(
        id=e.id,
        name=e.name.strip(),
        extension=e.extension,
        email=e.email,
        sms_number=e.sms_number.replace(" ", "").replace("-", "") if e.sms_number else None,
        languages=tuple(e.languages),
        numbers=tuple(sorted({digits(n) for n in e.numbers})),
        devices=tuple(e.devices),
        delegates=tuple(e.delegates),
        title=e.title.strip(),
        topics=tuple(t.strip() for t in e.topics),
    )


# --- directory sync -------------------------------------------------------------------------


async def ensure_company(
    session: AsyncSession, company_id: str, name: str | None = None, *,
    now: datetime | None = None,
) -> None:
    """The company's row exists (and has `name`, when given)."""
    row = await session.get(m.Company, company_id)
    if row is None:
        session.add(m.Company(id=company_id, name=(name or company_id)[:200],
                              created_at=_now(now)))
        await session.flush()
    elif name and row.name != name[:200]:
        row.name = name[:200]


async def list_companies(session: AsyncSession) -> list[tuple[str, str]]:
    """(id, name) of every company, the first (created first) first."""
    rows = await session.execute(
        select(m.Company.id, m.Company.name).order_by(m.Company.created_at, m.Company.id)
    )
    return [(cid, name) for cid, name in rows.all()]


async def sync_directory(
    session: AsyncSession, description: DirectoryDescription, *, now: datetime | None = None,
    company_id: str = m.MAIN, company_name: str | None = None,
) -> SyncReport:
    """Make the stored directory of `company_id` equal to `description`, inside the caller's
    transaction. Other companies' employees and teams are left alone; an id one of them
    already uses is refused (ids are unique across the service).

    Employees and teams missing from it are deactivated (never deleted: history keeps its
    owner); their extension, numbers, devices, memberships and delegates are released. Raises
    DirectoryError (nothing written) if the description is inconsistent. A failure part-way
    raises too: the caller's transaction must then be rolled back, leaving the previous
    directory intact.
    """
    problems = description.problems()
    if problems:
        raise DirectoryError(problems)
    at = _now(now)
    await m.bump_revision(session, m.DIRECTORY)
    await ensure_company(session, company_id, company_name, now=at)
    await _refuse_other_companies(session, description, company_id)

    wanted = {e.id: _normalised(e) for e in description.employees}
    wanted_teams = {t.id: t for t in description.teams}
    rows = {
        e.id: e
        for e in (
            await session.scalars(
                select(m.Employee)
                .options(
                    selectinload(m.Employee.numbers),
                    selectinload(m.Employee.devices),
                    selectinload(m.Employee.delegates),
                )
                .where(m.Employee.company_id == company_id)
                .execution_options(populate_existing=True)
            )
        ).all()
    }
    team_rows = {
        t.id: t
        for t in (
            await session.scalars(
                select(m.Team)
                .options(selectinload(m.Team.members))
                .where(m.Team.company_id == company_id)
                .execution_options(populate_existing=True)
            )
        ).all()
    }
    changed: set[str] = set()

    # 1. Release what moves or goes away first: unique numbers and extensions may pass from one
    # employee to another in the same apply, and rows are checked statement by statement.
    for eid, row in rows.items():
        want = wanted.get(eid)
        want_numbers = set(want.numbers) if want else set()
        for n in row.numbers:
            if n.number not in want_numbers:
                await session.delete(n)
                changed.add(eid)
        want_devices = [(i, d.kind, d.dial) for i, d in enumerate(want.devices)] if want else []
        if [(d.position, d.kind, d.dial) for d in row.devices] != want_devices:
            for d in row.devices:
                await session.delete(d)
            changed.add(eid)
        want_delegates = list(want.delegates) if want else []
        if [d.delegate_id for d in row.delegates] != want_delegates:
            for delegate in row.delegates:
                await session.delete(delegate)
            changed.add(eid)
        want_extension = want.extension if want else None
        if row.extension is not None and row.extension != want_extension:
            row.extension = None
            changed.add(eid)
    member_of: dict[str, list[str]] = {}
    for tid, team in team_rows.items():
        want_members = list(wanted_teams[tid].members) if tid in wanted_teams else []
        if [mb.employee_id for mb in team.members] != want_members:
            for mb in team.members:
                await session.delete(mb)
                changed.add(mb.employee_id)
            changed.update(want_members)
            member_of[tid] = want_members
    for tid, t in wanted_teams.items():
        if tid not in team_rows:
            member_of[tid] = list(t.members)
            changed.update(t.members)
    await session.flush()

    # 2. Employees: insert, update, reactivate, deactivate.
    added: list[str] = []
    updated: list[str] = []
    deactivated: list[str] = []
    reactivated: list[str] = []
    for eid, want in wanted.items():
        found = rows.get(eid)
        fields = {
            "name": want.name,
            "name_folded": fold(want.name),
            "extension": want.extension,
            "email": want.email,
            "sms_number": want.sms_number,
            "languages": list(want.languages),
            "title": want.title,
            "topics": list(want.topics),
        }
        if found is None:
            session.add(m.Employee(id=eid, active=True, updated_at=at, company_id=company_id,
                                   **fields))
            added.append(eid)
            continue
        differs = [k for k, v in fields.items() if getattr(found, k) != v]
        for k in differs:
            setattr(found, k, fields[k])
        if not found.active:
            found.active = True
            reactivated.append(eid)
        elif differs or eid in changed:
            updated.append(eid)
        if differs or eid in changed or eid in reactivated:
            found.updated_at = at
    for eid, row in rows.items():
        if eid not in wanted and row.active:
            row.active = False
            row.updated_at = at
            deactivated.append(eid)
        elif eid not in wanted and eid in changed:
            row.updated_at = at

    teams_added: list[str] = []
    teams_updated: list[str] = []
    teams_deactivated: list[str] = []
    for tid, want_team in wanted_teams.items():
        known = team_rows.get(tid)
        title, topics = want_team.title.strip(), [t.strip() for t in want_team.topics]
        if known is None:
            session.add(
                m.Team(id=tid, name=want_team.name, kind=want_team.kind, active=True,
                       updated_at=at, title=title, topics=topics, company_id=company_id)
            )
            teams_added.append(tid)
            continue
        if (
            known.name != want_team.name
            or known.kind != want_team.kind
            or known.title != title
            or list(known.topics or ()) != topics
            or not known.active
            or tid in member_of
        ):
            known.name, known.kind, known.active, known.updated_at = (
                want_team.name,
                want_team.kind,
                True,
                at,
            )
            known.title, known.topics = title, topics
            teams_updated.append(tid)
    for tid, team in team_rows.items():
        if tid not in wanted_teams and team.active:
            team.active = False
            team.updated_at = at
            teams_deactivated.append(tid)
    await session.flush()

    # 3. What belongs to employees and teams, now that every row it points to exists.
    for eid, want in wanted.items():
        stored = rows.get(eid)
        have_numbers = {n.number for n in stored.numbers} if stored is not None else set()
        for number in want.numbers:
            if number not in have_numbers:
                session.add(m.EmployeeNumber(number=number, employee_id=eid,
                                             company_id=company_id))
        have_devices = [(d.position, d.kind, d.dial) for d in stored.devices] if stored else []
        if have_devices != [(i, d.kind, d.dial) for i, d in enumerate(want.devices)]:
            for i, device in enumerate(want.devices):
                session.add(m.Device(employee_id=eid, position=i, kind=device.kind,
                                     dial=device.dial))
        have_delegates = [d.delegate_id for d in stored.delegates] if stored else []
        if have_delegates != list(want.delegates):
            for i, d_id in enumerate(want.delegates):
                session.add(m.Delegate(employee_id=eid, delegate_id=d_id, position=i))
    for tid, members in member_of.items():
        for i, eid in enumerate(members):
            session.add(m.TeamMember(team_id=tid, employee_id=eid, position=i))
    await session.flush()

    # The relationship lists loaded above are stale now: reads re-load with populate_existing.
    touched = set(added) | set(updated) | set(deactivated) | set(reactivated)
    return SyncReport(
        added=tuple(added),
        updated=tuple(updated),
        deactivated=tuple(deactivated),
        reactivated=tuple(reactivated),
        teams_added=tuple(teams_added),
        teams_updated=tuple(teams_updated),
        teams_deactivated=tuple(teams_deactivated),
        unchanged=len(wanted) - len(touched & set(wanted)),
    )


async def _refuse_other_companies(
    session: AsyncSession, description: DirectoryDescription, company_id: str
) -> None:
    """Ids, extensions and direct numbers are unique across the service (issue 12): refuse, with
    nothing written, what another company already holds. The company file check says the same
    with file:line first (vaihde.company.tenants); this is the guard at the database."""
    problems: list[str] = []
    for table, kind, ids in (
        (m.Employee, "employees", [e.id for e in description.employees]),
        (m.Team, "teams", [t.id for t in description.teams]),
    ):
        rows = await session.execute(
            select(table.id, table.company_id).where(
                table.id.in_(ids), table.company_id != company_id)
        )
        problems.extend(f"{kind}.{ident}: id already used by company {owner!r}"
                        for ident, owner in rows.all())
    extensions = {e.extension: e.id for e in description.employees if e.extension}
    rows = await session.execute(
        select(m.Employee.extension, m.Employee.company_id).where(
            m.Employee.extension.in_(list(extensions)), m.Employee.company_id != company_id)
    )
    problems.extend(f"employees.{extensions[ext]}.extension: {ext} already used by company "
                    f"{owner!r}" for ext, owner in rows.all())
    numbers = {digits(n): e.id for e in description.employees for n in e.numbers}
    rows = await session.execute(
        select(m.EmployeeNumber.number, m.EmployeeNumber.company_id).where(
            m.EmployeeNumber.number.in_(list(numbers)),
            m.EmployeeNumber.company_id != company_id)
    )
    problems.extend(f"employees.{numbers[n]}.direct: {n} already used by company {owner!r}"
                    for n, owner in rows.all())
    if problems:
        raise DirectoryError(sorted(problems))


async def sync_company_numbers(
    session: AsyncSession, company_id: str, numbers: Iterable[str]
) -> None:
    """The numbers `company_id` answers become exactly `numbers` (digits); one another company
    answers is refused (DirectoryError, nothing written)."""
    wanted = {digits(n) for n in numbers}
    rows = dict((await session.execute(
        select(m.CompanyNumber.number, m.CompanyNumber.company_id).where(
            (m.CompanyNumber.number.in_(wanted)) | (m.CompanyNumber.company_id == company_id))
    )).all())
    taken = sorted(f"numbers.{n}: already answered by company {owner!r}"
                   for n, owner in rows.items() if owner != company_id)
    if taken:
        raise DirectoryError(taken)
    for number, owner in rows.items():
        if owner == company_id and number not in wanted:
            await session.delete(await session.get(m.CompanyNumber, number))
    for number in wanted - set(rows):
        session.add(m.CompanyNumber(number=number, company_id=company_id))
    await session.flush()


# --- directory reads ------------------------------------------------------------------------


def _employee_query() -> Any:
    # populate_existing: rows already in the session (e.g. after sync_directory in the same
    # transaction) get fresh relationship lists.
    return (
        select(m.Employee)
        .options(
            selectinload(m.Employee.numbers),
            selectinload(m.Employee.devices),
            selectinload(m.Employee.delegates),
            selectinload(m.Employee.memberships),
        )
        .execution_options(populate_existing=True)
    )


async def get_employee(session: AsyncSession, employee_id: str) -> EmployeeRecord | None:
    row = (
        await session.scalars(_employee_query().where(m.Employee.id == employee_id))
    ).one_or_none()
    return of_row(EmployeeRecord, row) if row is not None else None


async def list_employees(
    session: AsyncSession, *, include_inactive: bool = False, company_id: str | None = None
) -> list[EmployeeRecord]:
    """Employees in name order (accent-insensitive); of one company, or of all (None)."""
    query = _employee_query().order_by(m.Employee.name_folded, m.Employee.id)
    if company_id is not None:
        query = query.where(m.Employee.company_id == company_id)
    if not include_inactive:
        query = query.where(m.Employee.active.is_(True))
    return [of_row(EmployeeRecord, row) for row in (await session.scalars(query)).all()]


def _team_query() -> Any:
    return (
        select(m.Team)
        .options(selectinload(m.Team.members))
        .execution_options(populate_existing=True)
    )


async def list_teams(session: AsyncSession, company_id: str | None = None) -> list[TeamRecord]:
    """Active teams by id; of one company, or of all (None)."""
    query = _team_query().where(m.Team.active.is_(True)).order_by(m.Team.id)
    if company_id is not None:
        query = query.where(m.Team.company_id == company_id)
    return [of_row(TeamRecord, row) for row in (await session.scalars(query)).all()]


async def get_team(session: AsyncSession, team_id: str) -> TeamRecord | None:
    row = (await session.scalars(_team_query().where(m.Team.id == team_id))).one_or_none()
    return of_row(TeamRecord, row) if row is not None else None


async def names_of(session: AsyncSession, table: Any, ids: Iterable[str]) -> dict[str, str]:
    """The names of these employees (table m.Employee) or teams (m.Team), by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(table.id, table.name).where(table.id.in_(wanted)))
    return {ident: name for ident, name in rows.all()}


async def load_directory(
    session: AsyncSession, company_id: str | None = None
) -> DirectoryDescription:
    """The active directory as a description (what the last sync stored, numbers as digits);
    of one company, or of all (None)."""
    employees = sorted(await list_employees(session, company_id=company_id), key=lambda e: e.id)
    teams = await list_teams(session, company_id)
    return DirectoryDescription(
        employees=tuple(_described(EmployeeDescription, e) for e in employees),
        teams=tuple(_described(TeamDescription, t) for t in teams),
    )


def _described(cls: type[D], record: object) -> D:
    """A stored record as the description it was synced from (the fields they share)."""
    return cls(**{f.name: getattr(record, f.name) for f in dataclasses.fields(cls)})


async def search_records(session: AsyncSession) -> list[Record]:
    """Records for `search.DirectoryIndex.build`: the active employees with their team names,
    titles and topics, then the active teams themselves (kind "team")."""
    return records_from_description(await load_directory(session))


async def directory_stamps(session: AsyncSession) -> dict[str, tuple[object, ...]]:
    """Per company, what changes whenever its stored directory does: the number of its
    employees and teams (active or not: rows are never deleted) and the latest time any of
    them changed (sync_directory stamps every row it touches). A search index compares these
    to re-read only the companies that changed."""
    out: dict[str, tuple[object, ...]] = {}
    for table in (m.Employee, m.Team):
        rows = await session.execute(
            select(table.company_id, func.count(), func.max(table.updated_at))
            .group_by(table.company_id))
        for cid, count, latest in rows.all():
            out[cid] = (*out.get(cid, ()), table.__tablename__, count, str(latest))
    return out


async def record_companies(session: AsyncSession) -> dict[tuple[str, str], str]:
    """(kind, id) → company id of every active employee ("employee") and team ("team"), as
    search records name them."""
    out: dict[tuple[str, str], str] = {}
    for kind, table in ((EMPLOYEE_RECORD, m.Employee), (TEAM_RECORD, m.Team)):
        rows = await session.execute(
            select(table.id, table.company_id).where(table.active.is_(True)))
        out.update({(kind, ident): cid for ident, cid in rows.all()})
    return out


async def employee_for_number(session: AsyncSession, number: str) -> str | None:
    """Whose direct number this is (active employees only), or None."""
    try:
        wanted = digits(number)
    except ValueError:
        return None
    return (
        await session.scalars(
            select(m.EmployeeNumber.employee_id)
            .join(m.Employee)
            .where(m.EmployeeNumber.number == wanted, m.Employee.active.is_(True))
        )
    ).one_or_none()


# --- callers and contacts -------------------------------------------------------------------


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
CHANNELS = m.CHANNELS
DIRECTIONS = m.DIRECTIONS


def _caller_number(number: str, field: str = "number") -> str:
    try:
        d = digits(number)
    except ValueError:
        raise DirectoryError([f"{field}: not a phone number: {number!r}"]) from None
    if not 3 <= len(d) <= 32:
        raise DirectoryError([f"{field}: {number!r} must have 3-32 digits"])
    return d


async def get_caller(
    session: AsyncSession, number: str, company_id: str = m.MAIN
) -> CallerRecord | None:
    row = await session.get(m.Caller, (company_id, _caller_number(number)))
    return of_row(CallerRecord, row) if row is not None else None


async def upsert_caller(
    session: AsyncSession,
    number: str,
    *,
    name: str | _Unchanged = UNCHANGED,
    organisation: str | _Unchanged = UNCHANGED,
    greet_by_name: bool | _Unchanged = UNCHANGED,
    preferred_channel: str | _Unchanged | None = UNCHANGED,
    email: str | _Unchanged | None = UNCHANGED,
    notes: str | _Unchanged = UNCHANGED,
    now: datetime | None = None,
    company_id: str = m.MAIN,
) -> CallerRecord:
    """Create or change what `company_id` knows about a caller (consent to be greeted by name is
    given to one company); fields left UNCHANGED keep their value."""
    key = _caller_number(number)
    problems = []
    for field, value, limit in (
        ("name", name, 200),
        ("organisation", organisation, 200),
        ("notes", notes, 5000),
    ):
        if not isinstance(value, _Unchanged) and (not isinstance(value, str) or len(value) > limit):
            problems.append(f"{field}: must be text of at most {limit} characters")
    if not isinstance(greet_by_name, _Unchanged | bool):
        problems.append("greet_by_name: must be true or false")
    if not isinstance(preferred_channel, _Unchanged) and preferred_channel not in (
        None,
        *CHANNELS,
    ):
        problems.append(f"preferred_channel: must be one of {', '.join(CHANNELS)}")
    if (
        not isinstance(email, _Unchanged)
        and email is not None
        and (not isinstance(email, str) or "@" not in email or len(email) > 254)
    ):
        problems.append(f"email: not an e-mail address: {email!r}")
    if problems:
        raise DirectoryError(problems)
    at = _now(now)
    await m.bump_revision(session, m.CALLERS)
    row = await session.get(m.Caller, (company_id, key))
    if row is None:
        row = m.Caller(company_id=company_id, number=key, name="", organisation="",
                       greet_by_name=False, notes="")
        session.add(row)
    given: tuple[tuple[str, object], ...] = (
        ("name", name),
        ("organisation", organisation),
        ("greet_by_name", greet_by_name),
        ("preferred_channel", preferred_channel),
        ("email", email),
        ("notes", notes),
    )
    for field, change in given:
        if not isinstance(change, _Unchanged):
            setattr(row, field, change)
    row.updated_at = at
    await session.flush()
    return of_row(CallerRecord, row)


async def add_contact(
    session: AsyncSession,
    *,
    caller_number: str | None,
    direction: str,
    path: str,
    employee_id: str | None = None,
    outcome: str = "",
    call_id: str = "",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
    company_id: str = m.MAIN,
) -> ContactRecord:
    """Log one call with a caller (`caller_number=None`: withheld). Not a revision bump: contacts
    are a log, read on demand."""
    problems = []
    number = None
    if caller_number is not None:
        try:
            number = _caller_number(caller_number, "caller_number")
        except DirectoryError as exc:
            problems.extend(exc.problems)
    if direction not in DIRECTIONS:
        problems.append(f"direction: must be one of {', '.join(DIRECTIONS)}")
    if not path or len(path) > 32 or not path.replace("_", "").isalnum():
        problems.append(f"path: must be a short word like menu or direct_number, not {path!r}")
    if len(outcome) > 64:
        problems.append("outcome: at most 64 characters")
    if len(call_id) > 64:
        problems.append("call_id: at most 64 characters")
    if employee_id is not None and await session.get(m.Employee, employee_id) is None:
        problems.append(f"employee_id: no employee {employee_id!r}")
    if problems:
        raise DirectoryError(problems)
    row = m.Contact(
        caller_number=number,
        at=_now(at),
        direction=direction,
        path=path,
        employee_id=employee_id,
        outcome=outcome,
        call_id=call_id,
        details=dict(details or {}),
        company_id=company_id,
    )
    session.add(row)
    await session.flush()
    return of_row(ContactRecord, row)


async def contacts_for(
    session: AsyncSession, number: str, *, since: datetime | None = None, limit: int = 50,
    company_id: str | None = None,
) -> list[ContactRecord]:
    """Earlier calls with this number, newest first; with one company, or with all (None)."""
    query = select(m.Contact).where(m.Contact.caller_number == _caller_number(number))
    if company_id is not None:
        query = query.where(m.Contact.company_id == company_id)
    if since is not None:
        query = query.where(m.Contact.at >= since)
    query = query.order_by(m.Contact.at.desc(), m.Contact.id.desc()).limit(limit)
    return [of_row(ContactRecord, row) for row in (await session.scalars(query)).all()]


# --- configuration versions ----------------------------------------------------------------


async def record_config(
    session: AsyncSession,
    *,
    document: str,
    source_name: str,
    applied_by: str,
    now: datetime | None = None,
    company_id: str = m.MAIN,
) -> ConfigVersionRecord:
    """Remember the configuration document as applied (in the caller's transaction, typically
    together with `sync_directory`)."""
    row = m.ConfigVersion(
        applied_at=_now(now),
        applied_by=applied_by[:200],
        sha256=hashlib.sha256(document.encode("utf-8")).hexdigest(),
        source_name=source_name[:500],
        document=document,
        company_id=company_id,
    )
    await m.bump_revision(session, m.CONFIG)
    session.add(row)
    await session.flush()
    return of_row(ConfigVersionRecord, row)


async def latest_config(
    session: AsyncSession, company_id: str = m.MAIN
) -> ConfigVersionRecord | None:
    """The version of `company_id`'s file applied last."""
    row = (
        await session.scalars(
            select(m.ConfigVersion).where(m.ConfigVersion.company_id == company_id)
            .order_by(m.ConfigVersion.id.desc()).limit(1))
    ).one_or_none()
    return of_row(ConfigVersionRecord, row) if row is not None else None


async def latest_versions(session: AsyncSession) -> dict[str, int]:
    """Each company's current config version id (what a running service compares)."""
    rows = await session.execute(
        select(m.ConfigVersion.company_id, func.max(m.ConfigVersion.id))
        .group_by(m.ConfigVersion.company_id)
    )
    return {cid: int(vid) for cid, vid in rows.all()}
