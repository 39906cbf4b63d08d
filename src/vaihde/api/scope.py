"""Roles per company over HTTP: every route declares how to find the company of what it touches
(`company=` on the route, one of the rules here), and `check` — called for every request by
vaihde.api.route before the handler runs — refuses what lies outside the principal's companies.

A resource of a company outside the caller's scope is answered exactly like one that does not
exist: 404 `not_found` (an id in the path, `?company=`, a message's recipient), so the answer
never tells whether another company has it. Lists, searches and the console's board and stream
hold only the caller's companies' things: their routes declare `FILTERED`, and their handlers
narrow with `companies_of` / `sees` (the same pure checks, vaihde.auth.model).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vaihde.api.context import ctx
from vaihde.api.errors import ApiError, invalid, not_found
from vaihde.auth.middleware import PRINCIPAL
from vaihde.auth.model import Principal, Scope, covers, in_scope
from vaihde.db import auth_models as a
from vaihde.db import dispatch_models as dm
from vaihde.db import message_models as mm
from vaihde.db import models as m

# What a resolver answers: the resource's companies (a set; None: a service-wide thing, such
# as a user for every company), or MISSING (no such resource: the handler gives its own 404).
MISSING: Any = object()
Resolver = Callable[[web.Request, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class CompanyRule:
    """How a route finds the company of what it touches; `describe` is for the document."""

    kind: str  # "none", "filtered", "path", "query", "body"
    describe: str
    resolve: Resolver | None = None
    noun: str = ""  # for the 404: "no {noun} {value!r}"
    param: str = ""


# A route that touches nothing of any company (logging in, the API document).
NONE = CompanyRule("none", "no company's data")
# A route whose reply lists several companies' things: the handler keeps the caller's.
FILTERED = CompanyRule("filtered", "only the caller's companies' items are listed")


def scope(request: web.Request) -> Scope:
    """The companies the request's principal acts for (None: every company)."""
    principal: Principal | None = request.get(PRINCIPAL)
    return principal.companies if principal is not None else frozenset()


def sees(request: web.Request, company_id: str | None) -> bool:
    principal: Principal | None = request.get(PRINCIPAL)
    return principal is not None and in_scope(principal, company_id)


def companies_of(request: web.Request, known: list[str]) -> list[str]:
    """Of `known` (every company id, in order), those the principal acts for."""
    return [c for c in known if sees(request, c)]


async def _scalar(request: web.Request, query: Any) -> Any:
    session: AsyncSession
    async with ctx(request).sessions() as session:
        return await session.scalar(query)


def _one(company: str | None) -> Any:
    return MISSING if company is None else frozenset({company})


def _by_column(column: Any, key: Any) -> Callable[[str], Resolver]:
    def rule(param: str) -> Resolver:
        async def resolve(request: web.Request, values: dict[str, Any]) -> Any:
            ident = getattr(values["path"], param)
            return _one(await _scalar(request, select(column).where(key == ident)))

        return resolve

    return rule


def _path_rule(noun: str, column: Any, key: Any) -> Callable[[str], CompanyRule]:
    def make(param: str) -> CompanyRule:
        return CompanyRule("path", f"the company of the {noun} in `{param}`",
                           _by_column(column, key)(param), noun, param)

    return make


employee = _path_rule("employee", m.Employee.company_id, m.Employee.id)
team = _path_rule("team", m.Team.company_id, m.Team.id)
message = _path_rule("message", mm.Message.company_id, mm.Message.id)
callback = _path_rule("callback request", mm.Callback.company_id, mm.Callback.id)
urgent = _path_rule("urgent message", dm.UrgentDispatch.company, dm.UrgentDispatch.id)


def entry(param: str) -> CompanyRule:
    """An availability entry: its employee's company."""

    async def resolve(request: web.Request, values: dict[str, Any]) -> Any:
        ident = getattr(values["path"], param)
        return _one(await _scalar(request, select(m.Employee.company_id)
                                  .join(m.AvailabilityEntry,
                                        m.AvailabilityEntry.employee_id == m.Employee.id)
                                  .where(m.AvailabilityEntry.id == ident)))

    return CompanyRule("path", f"the company of the entry's employee (`{param}`)", resolve,
                       "entry", param)


def call(param: str) -> CompanyRule:
    """A call on the console's board: the company it belongs to (the board's card says)."""

    async def resolve(request: web.Request, values: dict[str, Any]) -> Any:
        console = ctx(request).console
        found = console.board.calls.get(request.match_info[param]) if console else None
        if found is None:
            return MISSING  # the console answers 404 (or 503 without a console)
        company = found.get("company")
        return frozenset({company["id"] if company else m.MAIN})

    return CompanyRule("path", f"the company of the call `{param}` (its card's)", resolve,
                       "call", param)


def user(param: str) -> CompanyRule:
    """A user: every company they act for (a company admin sees only users wholly within
    their own companies)."""

    async def resolve(request: web.Request, values: dict[str, Any]) -> Any:
        from vaihde.auth import store

        name = request.match_info[param].strip().lower()
        async with ctx(request).sessions() as session:
            user_id = await session.scalar(select(a.User.id).where(a.User.username == name))
            if user_id is None:
                return MISSING
            return await store.scope_for(session, user_id)

    return CompanyRule("path", f"the companies of the user `{param}`", resolve, "user", param)


def query(param: str = "company", *, every: bool = False) -> CompanyRule:
    """`?company=ID`. Without it: a caller who acts for one company means that one; with
    `every`, no company (or `*`) means all of the caller's (the handler narrows with
    `companies_of`); otherwise a caller who acts for several must say which (400)."""

    async def resolve(request: web.Request, values: dict[str, Any]) -> Any:
        given = request.query.get(param)
        mine = scope(request)
        if given is None or given == "*":
            if every or mine is None:
                return None if mine is None else mine  # handler narrows (or uses its default)
            if len(mine) == 1:
                (only,) = mine
                values["query"] = values["query"].model_copy(update={param: only})
                return mine
            raise invalid(param, "you act for several companies: say which one "
                          f"({', '.join(sorted(mine))})", "missing_field")
        return frozenset({given})

    return CompanyRule("query", f"`?{param}=` (the company asked for)"
                       + ("; none or `*`: every company of the caller's" if every else ""),
                       resolve, "company", param)


def body(find: Callable[[Any], tuple[str, str] | None]) -> CompanyRule:
    """The company of what the body names: `find(body)` gives ("employee"|"team", id), or
    None (the body names nobody: the caller's own company if they act for one)."""

    async def resolve(request: web.Request, values: dict[str, Any]) -> Any:
        named = find(values.get("body"))
        if named is None:
            return scope(request)
        kind, ident = named
        table = m.Employee if kind == "employee" else m.Team
        found = await _scalar(request, select(table.company_id).where(table.id == ident))
        # Unknown: the handler's own answer (422); another company's: told the same.
        return frozenset({found}) if found is not None else MISSING

    return CompanyRule("body", "the company of the employee or team the body names", resolve,
                       "recipient")


async def check(rule: CompanyRule | None, request: web.Request, values: dict[str, Any]) -> None:
    """Refuse (404, as for something that does not exist) what lies outside the principal's
    companies. Routes without credentials, and rules that only filter, pass."""
    principal: Principal | None = request.get(PRINCIPAL)
    if rule is None or rule.resolve is None or principal is None:
        return
    found = await rule.resolve(request, values)
    if found is MISSING or covers(principal, found):
        return
    if rule.kind == "body":
        raise _unknown_recipient(values.get("body"))
    value = request.match_info.get(rule.param) if rule.kind == "path" else \
        request.query.get(rule.param)
    raise not_found(f"no {rule.noun} {value!r}", rule.param or None)


def _unknown_recipient(body: Any) -> ApiError:
    # As messages/http.py answers an unknown recipient (422 unknown_recipient).
    recipient = getattr(getattr(body, "for_", None), "recipient", None)
    kind = getattr(recipient, "kind", "employee")
    ident = getattr(recipient, "id", "")
    return ApiError(422, "unknown_recipient",
                    f"there is no {kind} {ident!r} in the directory", f"for.{kind}")


async def ids_in_scope(request: web.Request, table: Any) -> set[str] | None:
    """The ids of `table`'s rows (employees, teams) of the principal's companies; None for a
    principal who acts for every company (nothing to narrow)."""
    mine = scope(request)
    if mine is None:
        return None
    async with ctx(request).sessions() as session:
        rows = await session.scalars(select(table.id).where(table.company_id.in_(sorted(mine))))
        return set(rows.all())
