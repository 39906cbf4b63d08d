"""Users over HTTP, for admins: GET/POST /users, GET/PUT /users/{username}. Each user acts for
some companies (none: every company). A company admin sees and changes only users wholly
within their own companies (others are answered 404, as if they did not exist), and may give
only their own companies: never a user for every company, never widen their own scope
(vaihde.auth.model.user_refusal).
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from vaihde.api import scope
from vaihde.api.context import ctx, who
from vaihde.api.errors import ApiError, not_found
from vaihde.api.route import Body, PathParams, Routes, respond
from vaihde.auth import passwords, store
from vaihde.auth.model import (
    MAX_DISPLAY_NAME,
    MAX_PASSWORD,
    Action,
    Role,
    Scope,
    covers,
    scope_of,
    user_refusal,
)
from vaihde.auth.store import UserRecord
from vaihde.db import models as m
from vaihde.records import Record

routes = Routes("users")

CompanyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")]
COMPANIES = ("the companies the user acts for (an employee: their employee's, whatever is "
             "given); empty: every company, which only an admin of every company may give")


class UserPath(PathParams):
    username: str = Field(max_length=64)


class NewUser(Body):
    username: str = Field(max_length=64)
    role: Role
    display_name: str = Field("", max_length=MAX_DISPLAY_NAME)
    employee_id: str | None = Field(None, max_length=40)
    sip_endpoint: str | None = Field(None, max_length=120)
    companies: list[CompanyId] = Field(default_factory=list, max_length=1000,
                                       description=COMPANIES)
    password: str | None = Field(None, max_length=MAX_PASSWORD,
                                 description="none: API tokens only")


class UserChange(Body):
    """Fields not sent are kept; "" clears employee_id and sip_endpoint."""

    role: Role | None = None
    display_name: str | None = Field(None, max_length=MAX_DISPLAY_NAME)
    employee_id: str | None = Field(None, max_length=40)
    sip_endpoint: str | None = Field(None, max_length=120)
    companies: list[CompanyId] | None = Field(None, max_length=1000, description=COMPANIES)
    active: bool | None = Field(None, description="false: disabled (tokens revoked, sessions "
                                "ended)")


class UserView(Record):
    """A user as admins see them (never the password)."""

    username: str
    display_name: str
    role: Role
    employee_id: str | None
    sip_endpoint: str | None
    companies: list[str] = Field(description="linked companies; empty: every company (an "
                                 "employee: their employee's)")
    acts_for: list[str] | None = Field(description="the companies the user acts for now; "
                                       "null: every company")
    has_password: bool
    active: bool


class UserList(Record):
    users: list[UserView]


def _view(user: UserRecord, acts_for: Scope) -> UserView:
    return UserView(username=user.username, display_name=user.display_name, role=user.role,
                    employee_id=user.employee_id, sip_endpoint=user.sip_endpoint,
                    companies=user.companies,
                    acts_for=sorted(acts_for) if acts_for is not None else None,
                    has_password=user.has_password, active=user.active)


async def _employee_company(request: web.Request, employee_id: str | None) -> str | None:
    from sqlalchemy import select

    if not employee_id:
        return None
    async with ctx(request).sessions() as session:
        found: str | None = await session.scalar(
            select(m.Employee.company_id).where(m.Employee.id == employee_id))
    return found


def _refuse(why: str | None) -> None:
    if why == "no such user":
        raise not_found(why, "username")
    if why is not None:
        raise ApiError(403, "forbidden", why, "companies")


@routes.get("/users", "Users (a company admin's: those within their companies)",
            allow=Action.MANAGE_USERS, ok=(200, "Users by name", UserList),
            company=scope.FILTERED)
async def list_users(request: web.Request) -> UserList:
    manager = who(request)
    views = []
    async with ctx(request).sessions() as session:
        for user in await store.list_users(session):
            acts_for = await store.user_scope(session, user)
            if covers(manager, acts_for):
                views.append(_view(user, acts_for))
    return UserList(users=views)


@routes.get("/users/{username}", "A user", allow=Action.MANAGE_USERS, params=UserPath,
            company=scope.user("username"), ok=(200, "The user", UserView), errors=(404,))
async def get_user(request: web.Request, path: UserPath) -> UserView:
    async with ctx(request).sessions() as session:
        user = await store.get_user(session, path.username)
        if user is None:
            raise not_found(f"no user {path.username!r}", "username")
        return _view(user, await store.user_scope(session, user))


@routes.post("/users", "Add a user", allow=Action.MANAGE_USERS, body=NewUser,
             company=scope.FILTERED, ok=(201, "Added", UserView), errors=(403,),
             description="A company admin may give only their own companies, and must give "
             "some (403 otherwise); nothing is stored on any error.")
async def add_user(request: web.Request, body: NewUser) -> web.StreamResponse:
    manager = who(request)
    after = scope_of(body.role, await _employee_company(request, body.employee_id),
                     body.companies)
    _refuse(user_refusal(manager, after, new=True))
    password_hash = None
    if body.password:
        from vaihde.auth.model import check_password

        check_password(body.password)
        password_hash = await passwords.hash_password_async(body.password)
    async with ctx(request).sessions.begin() as session:
        user = await store.add_user(
            session, body.username, role=body.role, display_name=body.display_name,
            employee_id=body.employee_id, sip_endpoint=body.sip_endpoint,
            password_hash=password_hash, companies=body.companies)
        acts_for = await store.user_scope(session, user)
    return respond(request, _view(user, acts_for), 201)


@routes.put("/users/{username}", "Change a user (fields not sent are kept)",
            allow=Action.MANAGE_USERS, params=UserPath, company=scope.user("username"),
            body=UserChange, ok=(200, "Changed", UserView), errors=(403, 404),
            description="A company admin may give only their own companies (403 otherwise); "
            "nothing is changed on any error.")
async def change_user(request: web.Request, path: UserPath, body: UserChange) -> UserView:
    manager = who(request)
    async with ctx(request).sessions.begin() as session:
        user = await store.get_user(session, path.username)
        if user is None:
            raise not_found(f"no user {path.username!r}", "username")
        before = await store.user_scope(session, user)
        employee = user.employee_id if body.employee_id is None else body.employee_id or None
        after = scope_of(body.role or user.role, await _employee_company(request, employee),
                         user.companies if body.companies is None else body.companies)
        _refuse(user_refusal(manager, after, before=before))
        user = await store.update_user(
            session, path.username, role=body.role, display_name=body.display_name,
            employee_id=body.employee_id, sip_endpoint=body.sip_endpoint,
            companies=body.companies)
        if body.active is not None and body.active != user.active:
            user = await store.set_active(session, path.username, body.active)
        return _view(user, await store.user_scope(session, user))
