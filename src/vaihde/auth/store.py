"""Users, API tokens and web sessions in the database. Functions work inside the caller's
transaction (they flush, never commit). Tokens and session ids are random secrets shown once;
only their SHA-256 is stored, and a lookup by that digest leaks nothing about the secret.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from pydantic import AliasChoices, BeforeValidator, Field
from sqlalchemy import CursorResult, Result, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from vaihde.auth.model import (
    MAX_DISPLAY_NAME,
    MAX_LABEL,
    AuthError,
    Principal,
    Role,
    Scope,
    check_sip_endpoint,
    check_text,
    check_username,
    parse_role,
    scope_of,
)
from vaihde.db import auth_models as a
from vaihde.db import models as m
from vaihde.db.clock import aware_now as _now
from vaihde.records import Record, Time, of_row

SESSION_IDLE = timedelta(hours=12)  # a session unused this long has ended
SESSION_ABSOLUTE = timedelta(days=7)  # and none lasts longer than this
# last_used_at / last_seen_at are written at most this often: not a write per request.
TOUCH_EVERY = timedelta(minutes=1)
TOKEN_PREFIX = "vaihde_"  # recognisable in logs and by secret scanners
_SECRET_BYTES = 32
_MAX_SECRET = 200  # anything longer is not ours; refused before any hashing or query
MAX_USER_AGENT = 300


class UserRecord(Record):
    """A user of the API and the console, as stored (never the password hash)."""

    id: int
    username: str
    display_name: str
    role: Role
    employee_id: str | None
    sip_endpoint: str | None
    has_password: Annotated[bool, BeforeValidator(lambda h: h is not None)] = Field(
        validation_alias=AliasChoices("has_password", "password_hash")
    )
    active: bool
    created_at: Time
    last_login_at: Time | None
    # The companies linked to the user (none: every company; an employee acts for their
    # employee's company whatever is linked).
    companies: list[str] = Field(default_factory=list)


class TokenRecord(Record):
    """An API token as stored (never the secret)."""

    id: int
    user_id: int
    username: str
    label: str
    created_at: Time
    expires_at: Time | None
    last_used_at: Time | None
    revoked_at: Time | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class SessionRecord(Record):
    """A web console session as stored (never its secret)."""

    user_id: int
    csrf_token: str
    created_at: Time
    expires_at: Time  # absolute end
    last_seen_at: Time

    def ends_at(self) -> datetime:
        """When it ends if it stays unused: the idle limit or the absolute one."""
        return min(self.expires_at, self.last_seen_at + SESSION_IDLE)


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    """What a login needs to know about a username (never shown to the client)."""

    user: UserRecord
    password_hash: str | None


def _rowcount(result: Result[Any]) -> int:
    """Rows a DELETE or UPDATE touched (its result is a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def principal_of(user: UserRecord, via: str, companies: Scope = None) -> Principal:
    return Principal(user_id=user.id, username=user.username, role=user.role,
                     employee_id=user.employee_id, display_name=user.display_name,
                     sip_endpoint=user.sip_endpoint, via=via, companies=companies)


async def scope_for(db: AsyncSession | AsyncConnection, user_id: int) -> Scope:
    """The companies a user acts for now (vaihde.auth.model.scope_of)."""
    row = (await db.execute(
        select(a.User.role, m.Employee.company_id)
        .outerjoin(m.Employee, m.Employee.id == a.User.employee_id)
        .where(a.User.id == user_id))).one_or_none()
    if row is None:
        return frozenset()
    return scope_of(row[0], row[1], await _linked(db, user_id))


async def _linked(db: AsyncSession | AsyncConnection, user_id: int) -> list[str]:
    rows = await db.execute(_LINKED, {"user_id": user_id})
    return [cid for (cid,) in rows.all()]


async def _companies_check(session: AsyncSession, companies: Sequence[str]) -> list[str]:
    """The companies as given, each one that exists (AuthError naming the first that does
    not)."""
    wanted = sorted(set(companies))
    if not wanted:
        return []
    known = set((await session.scalars(
        select(m.Company.id).where(m.Company.id.in_(wanted)))).all())
    for cid in wanted:
        if cid not in known:
            raise AuthError("companies", f"no company {cid!r}")
    return wanted


async def set_companies(session: AsyncSession, user_id: int, companies: Sequence[str]) -> None:
    """Link the user to exactly these companies (none: every company)."""
    wanted = await _companies_check(session, companies)
    await session.execute(delete(a.UserCompany).where(a.UserCompany.user_id == user_id))
    session.add_all(a.UserCompany(user_id=user_id, company_id=c) for c in wanted)
    await session.flush()


async def _record(session: AsyncSession, row: a.User) -> UserRecord:
    return of_row(UserRecord, row, companies=await _linked(session, row.id))


# --- users ---------------------------------------------------------------------------------


async def _employee_check(session: AsyncSession, employee_id: str | None) -> str | None:
    if employee_id is None or employee_id == "":
        return None
    active = (
        await session.execute(select(m.Employee.active).where(m.Employee.id == employee_id))
    ).scalar_one_or_none()
    if active is None:
        raise AuthError("employee_id", f"no employee {employee_id!r} in the directory")
    if not active:
        raise AuthError("employee_id", f"{employee_id!r} is no longer in the directory")
    return employee_id


async def _user_row(session: AsyncSession, username: str) -> a.User:
    name = check_username(username)
    row = (await session.scalars(select(a.User).where(a.User.username == name))).one_or_none()
    if row is None:
        raise AuthError("username", f"no user {name!r}")
    return row


async def add_user(
    session: AsyncSession,
    username: str,
    *,
    role: str | Role,
    display_name: str = "",
    employee_id: str | None = None,
    sip_endpoint: str | None = None,
    password_hash: str | None = None,
    now: datetime | None = None,
    companies: Sequence[str] = (),
) -> UserRecord:
    """A new user; `companies`: those their role applies to (none: every company)."""
    name = check_username(username)
    role_ = parse_role(role)
    display = check_text("display_name", display_name, MAX_DISPLAY_NAME)
    endpoint = check_sip_endpoint(sip_endpoint)
    employee = await _employee_check(session, employee_id)
    taken = await session.scalar(select(a.User.id).where(a.User.username == name))
    if taken is not None:
        raise AuthError("username", f"{name!r} is already taken")
    row = a.User(username=name, display_name=display, role=role_.value, employee_id=employee,
                 sip_endpoint=endpoint, password_hash=password_hash, active=True,
                 created_at=_now(now))
    session.add(row)
    await session.flush()
    await set_companies(session, row.id, companies)
    return await _record(session, row)


async def get_user(session: AsyncSession, username: str) -> UserRecord | None:
    try:
        row = await _user_row(session, username)
    except AuthError:
        return None
    return await _record(session, row)


async def list_users(session: AsyncSession) -> list[UserRecord]:
    rows = (await session.scalars(select(a.User).order_by(a.User.username))).all()
    linked: dict[int, list[str]] = {}
    for user_id, cid in await session.execute(
            select(a.UserCompany.user_id, a.UserCompany.company_id)
            .order_by(a.UserCompany.company_id)):
        linked.setdefault(user_id, []).append(cid)
    return [of_row(UserRecord, r, companies=linked.get(r.id, [])) for r in rows]


async def user_scope(session: AsyncSession, user: UserRecord) -> Scope:
    """The companies `user` acts for (their employee's for an employee)."""
    company = None
    if user.employee_id is not None:
        company = await session.scalar(
            select(m.Employee.company_id).where(m.Employee.id == user.employee_id))
    return scope_of(user.role, company, user.companies)


async def withdrawn(session: AsyncSession) -> None:
    """Credentials stopped working or a role changed: bump the `auth` revision, so that every
    instance checks its open console streams again when this transaction commits."""
    await m.bump_revision(session, m.AUTH)


async def end_sessions_of(session: AsyncSession, user_id: int) -> int:
    result = await session.execute(delete(a.WebSession).where(a.WebSession.user_id == user_id))
    ended = _rowcount(result)
    if ended:
        await withdrawn(session)
    return ended


async def set_password(
    session: AsyncSession, username: str, password_hash: str | None
) -> UserRecord:
    """Set (or with None remove) the password; the user's web sessions end."""
    row = await _user_row(session, username)
    row.password_hash = password_hash
    await end_sessions_of(session, row.id)
    await session.flush()
    return await _record(session, row)


async def set_active(
    session: AsyncSession, username: str, active: bool, *, now: datetime | None = None
) -> UserRecord:
    """Disable (tokens are revoked and sessions end, so that enabling again does not bring old
    secrets back) or enable a user."""
    at = _now(now)
    row = await _user_row(session, username)
    row.active = active
    if not active:
        await session.execute(
            update(a.ApiToken)
            .where(a.ApiToken.user_id == row.id, a.ApiToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        await end_sessions_of(session, row.id)
        await withdrawn(session)
    await session.flush()
    return await _record(session, row)


async def update_user(
    session: AsyncSession,
    username: str,
    *,
    role: str | Role | None = None,
    display_name: str | None = None,
    employee_id: str | None = None,
    sip_endpoint: str | None = None,
    companies: Sequence[str] | None = None,
) -> UserRecord:
    """Change the given fields (None = keep; "" clears employee_id and sip_endpoint; an empty
    `companies` makes the user act for every company)."""
    row = await _user_row(session, username)
    if role is not None:
        new_role = parse_role(role).value
        if new_role != row.role:
            await withdrawn(session)
        row.role = new_role
    if display_name is not None:
        row.display_name = check_text("display_name", display_name, MAX_DISPLAY_NAME)
    if employee_id is not None:
        row.employee_id = await _employee_check(session, employee_id)
    if sip_endpoint is not None:
        row.sip_endpoint = check_sip_endpoint(sip_endpoint)
    if companies is not None:
        if sorted(set(companies)) != sorted(await _linked(session, row.id)):
            await withdrawn(session)  # open console streams are filtered again
        await set_companies(session, row.id, companies)
    if employee_id is not None:
        await withdrawn(session)  # an employee's company is their scope
    await session.flush()
    return await _record(session, row)


async def login_candidate(session: AsyncSession, username: str) -> LoginCandidate | None:
    """The active user with this name and their password hash, or None (no such user, or
    disabled): the caller must answer both the same way."""
    try:
        name = check_username(username)
    except AuthError:
        return None
    row = (await session.scalars(
        select(a.User).where(a.User.username == name, a.User.active.is_(True)))).one_or_none()
    if row is None:
        return None
    return LoginCandidate(await _record(session, row), row.password_hash)


async def record_login(
    session: AsyncSession,
    user_id: int,
    *,
    now: datetime | None = None,
    new_hash: str | None = None,
) -> None:
    """Remember the login; `new_hash` replaces a hash made with older parameters."""
    values: dict[str, object] = {"last_login_at": _now(now)}
    if new_hash is not None:
        values["password_hash"] = new_hash
    await session.execute(update(a.User).where(a.User.id == user_id).values(**values))


# --- API tokens ----------------------------------------------------------------------------


async def create_token(
    session: AsyncSession,
    username: str,
    *,
    label: str = "",
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[str, TokenRecord]:
    """A new token for the user: (the secret, shown once; its record)."""
    at = _now(now)
    user = await _user_row(session, username)
    if not user.active:
        raise AuthError("username", f"{user.username!r} is disabled")
    text = check_text("label", label, MAX_LABEL)
    if expires_at is not None:
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise AuthError("expires_at", "must include a time zone")
        if expires_at <= at:
            raise AuthError("expires_at", "is already in the past")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    row = a.ApiToken(user_id=user.id, token_sha256=digest(secret), label=text, created_at=at,
                     expires_at=expires_at)
    session.add(row)
    await session.flush()
    return secret, of_row(TokenRecord, row, username=user.username)


async def list_tokens(session: AsyncSession, username: str | None = None) -> list[TokenRecord]:
    query = select(a.ApiToken, a.User.username).join(a.User, a.User.id == a.ApiToken.user_id)
    if username is not None:
        query = query.where(a.User.username == check_username(username))
    rows = await session.execute(query.order_by(a.ApiToken.id))
    return [of_row(TokenRecord, row, username=name) for row, name in rows.all()]


async def revoke_token(
    session: AsyncSession, token_id: int, *, now: datetime | None = None
) -> TokenRecord:
    row = await session.get(a.ApiToken, token_id)
    if row is None:
        raise AuthError("token", f"no token #{token_id}")
    if row.revoked_at is not None:
        raise AuthError("token", f"#{token_id} was already revoked")
    row.revoked_at = _now(now)
    await withdrawn(session)
    await session.flush()
    user = await session.get(a.User, row.user_id)
    return of_row(TokenRecord, row, username=user.username if user else "?")


def _plausible(secret: str) -> bool:
    return 0 < len(secret) <= _MAX_SECRET and secret.isascii()


# Built once: these run on every API request (a statement object costs more to build than the
# lookup by its unique index costs to run).
_USER_COLUMNS = (a.User.id, a.User.username, a.User.role, a.User.employee_id,
                 a.User.display_name, a.User.sip_endpoint, m.Employee.company_id)
_EMPLOYEE = (m.Employee, m.Employee.id == a.User.employee_id)
_LINKED = select(a.UserCompany.company_id).where(a.UserCompany.user_id == bindparam("user_id"))
_TOKEN_LOOKUP = (
    select(a.ApiToken.id, a.ApiToken.expires_at, a.ApiToken.last_used_at, *_USER_COLUMNS)
    .join(a.User, a.User.id == a.ApiToken.user_id)
    .outerjoin(*_EMPLOYEE)
    .where(a.ApiToken.token_sha256 == bindparam("digest"), a.ApiToken.revoked_at.is_(None),
           a.User.active.is_(True))
)
_SESSION_LOOKUP = (
    select(a.WebSession.user_id, a.WebSession.csrf_token, a.WebSession.created_at,
           a.WebSession.expires_at, a.WebSession.last_seen_at, *_USER_COLUMNS)
    .join(a.User, a.User.id == a.WebSession.user_id)
    .outerjoin(*_EMPLOYEE)
    .where(a.WebSession.id_sha256 == bindparam("digest"), a.User.active.is_(True))
)


async def _principal(
    db: AsyncSession | AsyncConnection, columns: Sequence[Any], via: str
) -> Principal:
    user_id, username, role, employee_id, display_name, sip_endpoint, company = columns
    # One more indexed lookup per request: the companies linked to the user.
    scope = scope_of(role, company, await _linked(db, user_id))
    return Principal(user_id=user_id, username=username, role=Role(role), employee_id=employee_id,
                     display_name=display_name, sip_endpoint=sip_endpoint, via=via,
                     companies=scope)


async def principal_for_token(
    db: AsyncSession | AsyncConnection, token: str, *, now: datetime | None = None
) -> tuple[Principal, int, bool] | None:
    """(who, token id, whether last_used_at is due for an update) for a working token; None if
    the token is unknown, expired or revoked, or its user is disabled. `db` may be a session
    or, cheaper for the per-request check, a plain connection."""
    if not token.startswith(TOKEN_PREFIX) or not _plausible(token):
        return None
    at = _now(now)
    row = (await db.execute(_TOKEN_LOOKUP, {"digest": digest(token)})).one_or_none()
    if row is None:
        return None
    token_id, expires_at, last_used_at = row[:3]
    if expires_at is not None and expires_at <= at:
        return None
    due = last_used_at is None or at - last_used_at >= TOUCH_EVERY
    return await _principal(db, row[3:], "token"), token_id, due


async def touch_token(session: AsyncSession, token_id: int, *, now: datetime | None = None) -> None:
    await session.execute(update(a.ApiToken).where(a.ApiToken.id == token_id)
                          .values(last_used_at=_now(now)))


# --- web sessions --------------------------------------------------------------------------


async def purge_sessions(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete sessions that have ended (absolute or idle limit)."""
    at = _now(now)
    result = await session.execute(
        delete(a.WebSession).where(
            or_(a.WebSession.expires_at <= at, a.WebSession.last_seen_at <= at - SESSION_IDLE)
        )
    )
    return _rowcount(result)


async def create_session(
    session: AsyncSession,
    user_id: int,
    *,
    user_agent: str = "",
    now: datetime | None = None,
) -> tuple[str, SessionRecord]:
    """A new web session: (the cookie value, shown once; its record with the CSRF token)."""
    at = _now(now)
    await purge_sessions(session, now=at)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    agent = "".join(ch for ch in user_agent if ch.isprintable())[:MAX_USER_AGENT]
    row = a.WebSession(id_sha256=digest(secret), user_id=user_id,
                       csrf_token=secrets.token_urlsafe(_SECRET_BYTES), created_at=at,
                       expires_at=at + SESSION_ABSOLUTE, last_seen_at=at, user_agent=agent)
    session.add(row)
    await session.flush()
    return secret, of_row(SessionRecord, row)


async def principal_for_session(
    db: AsyncSession | AsyncConnection, secret: str, *, now: datetime | None = None
) -> tuple[Principal, SessionRecord, bool] | None:
    """(who, the session, whether last_seen_at is due for an update) for a live session; None
    if unknown, ended (idle or absolute limit) or its user is disabled."""
    if not _plausible(secret):
        return None
    at = _now(now)
    row = (await db.execute(_SESSION_LOOKUP, {"digest": digest(secret)})).one_or_none()
    if row is None:
        return None
    record = SessionRecord.model_validate(row._mapping)
    if at >= record.ends_at():
        return None
    due = at - record.last_seen_at >= TOUCH_EVERY
    return await _principal(db, row[5:], "session"), record, due


async def touch_session(session: AsyncSession, secret: str, *, now: datetime | None = None) -> None:
    await session.execute(update(a.WebSession).where(a.WebSession.id_sha256 == digest(secret))
                          .values(last_seen_at=_now(now)))


async def end_session(session: AsyncSession, secret: str) -> bool:
    if not _plausible(secret):
        return False
    ended = delete(a.WebSession).where(a.WebSession.id_sha256 == digest(secret))
    result = await session.execute(ended)
    if _rowcount(result) == 0:
        return False
    await withdrawn(session)
    return True


# --- credentials of long-lived requests ----------------------------------------------------


async def live_roles(
    db: AsyncSession | AsyncConnection,
    credentials: Sequence[tuple[str, str]],
    *,
    now: datetime | None = None,
) -> dict[tuple[str, str], tuple[Role, Scope]]:
    """Which of these (kind, digest) credentials ("session" or "token", and the SHA-256 of
    the secret) still work, and their user's role and companies now. A session that ended
    (logout, idle or absolute limit, password change), a token expired or revoked, and any
    credential of a disabled user are missing from the answer. Three indexed lookups, whatever
    the count."""
    at = _now(now)
    found: dict[tuple[str, str], tuple[int, str, str | None]] = {}
    sessions = sorted({d for kind, d in credentials if kind == "session"})
    tokens = sorted({d for kind, d in credentials if kind == "token"})
    if sessions:
        rows = await db.execute(
            select(a.WebSession.id_sha256, a.WebSession.expires_at, a.WebSession.last_seen_at,
                   a.User.id, a.User.role, m.Employee.company_id)
            .join(a.User, a.User.id == a.WebSession.user_id)
            .outerjoin(*_EMPLOYEE)
            .where(a.WebSession.id_sha256.in_(sessions), a.User.active.is_(True))
        )
        for digest_, expires_at, last_seen_at, user_id, role, company in rows:
            if at < min(expires_at, last_seen_at + SESSION_IDLE):
                found[("session", digest_)] = (user_id, role, company)
    if tokens:
        token_rows = await db.execute(
            select(a.ApiToken.token_sha256, a.ApiToken.expires_at, a.User.id, a.User.role,
                   m.Employee.company_id)
            .join(a.User, a.User.id == a.ApiToken.user_id)
            .outerjoin(*_EMPLOYEE)
            .where(a.ApiToken.token_sha256.in_(tokens), a.ApiToken.revoked_at.is_(None),
                   a.User.active.is_(True))
        )
        for digest_, token_expires, user_id, role, company in token_rows:
            if token_expires is None or at < token_expires:
                found[("token", digest_)] = (user_id, role, company)
    linked: dict[int, list[str]] = {}
    users = sorted({user_id for user_id, _, _ in found.values()})
    if users:
        for user_id, cid in await db.execute(
                select(a.UserCompany.user_id, a.UserCompany.company_id)
                .where(a.UserCompany.user_id.in_(users))):
            linked.setdefault(user_id, []).append(cid)
    return {key: (Role(role), scope_of(role, company, linked.get(user_id, ())))
            for key, (user_id, role, company) in found.items()}
