"""What the route modules share: the API's context on the application, permission checks that
raise 403, and the JSON shapes of availability, entries and employees (times ISO 8601 with the
company's UTC offset).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vaihde.api.errors import ApiError, forbidden, not_found
from vaihde.auth.middleware import PRINCIPAL
from vaihde.auth.model import Action, Principal, allowed
from vaihde.config.patterns import ID
from vaihde.presence.model import Availability, Entry
from vaihde.presence.store import AuditRecord

if TYPE_CHECKING:
    from vaihde.api.app import ApiContext
    from vaihde.company.schema import CompanyConfig

CTX: web.AppKey[ApiContext] = web.AppKey("vaihde.api.context")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]  # method, path under /api/v1, handler

MAX_INT32 = 2**31 - 1  # ids are INTEGER columns on PostgreSQL

_FORBIDDEN = {
    Action.CHANGE_AVAILABILITY: "you may change only your own availability (operators and "
    "admins may change anyone's)",
    Action.READ_PRIVATE: "internal notes and history are for the employee themselves, "
    "operators and admins",
    Action.USE_CALLERS: "the caller register is for operators and admins",
    Action.CONSOLE: "the operator console is for operators and admins",
    Action.CONFIGURE: "configuration is for admins",
    Action.MANAGE_USERS: "managing users is for admins",
}


def ctx(request: web.Request) -> ApiContext:
    return request.config_dict[CTX]


def who(request: web.Request) -> Principal:
    principal = request.get(PRINCIPAL)
    if principal is None:  # only for routes the middleware lets through without credentials
        raise ApiError(401, "unauthenticated", "log in or give an API token")
    return principal


def require(request: web.Request, action: Action, employee_id: str | None = None) -> Principal:
    principal = who(request)
    if not allowed(principal, action, employee_id):
        raise forbidden(_FORBIDDEN.get(action, "your role does not allow this"))
    return principal


def may(request: web.Request, action: Action, employee_id: str | None = None) -> bool:
    principal = request.get(PRINCIPAL)
    return principal is not None and allowed(principal, action, employee_id)


def employee_id_param(request: web.Request) -> str:
    value = request.match_info["employee_id"]
    if not ID.match(value):
        raise not_found(f"no employee {value!r}", "employee_id")
    return value


def int_param(request: web.Request, name: str, what: str) -> int:
    value = request.match_info[name]
    if not value.isdigit() or int(value) > MAX_INT32:
        raise not_found(f"no {what} {value!r}", name)
    return int(value)


def company_of(request: web.Request) -> CompanyConfig | None:
    """The running configuration, or None (none applied yet, or the service has none)."""
    try:
        return ctx(request).company()
    except Exception:
        return None


def iso(at: datetime | None, tz: tzinfo) -> str | None:
    return at.astimezone(tz).isoformat() if at is not None else None


def summary_json(av: Availability, tz: tzinfo) -> dict[str, Any]:
    """The short form shown in lists."""
    return {
        "state": av.state.value,
        "until": iso(av.until, tz),
        "on_call": av.on_call,
        "reachable": av.reachable,
        "note_for_callers": av.note_for_callers,
    }


def availability_json(av: Availability, tz: tzinfo, *, private: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "employee_id": av.employee_id,
        "state": av.state.value,
        "until": iso(av.until, tz),
        "on_call": av.on_call,
        "reachable": av.reachable,
        "note_for_callers": av.note_for_callers,
        "source": av.source.value if av.source is not None else None,
        "set_by": av.set_by,
        "since": iso(av.since, tz),
        "entry_id": av.entry_id,
        "explanation": av.explanation,
        "next_change": iso(av.next_change, tz),
    }
    if private:
        out["internal_note"] = av.internal_note
    return out


def entry_json(entry: Entry, tz: tzinfo, *, private: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": entry.id,
        "employee_id": entry.employee_id,
        "state": entry.state.value,
        "starts_at": iso(entry.starts_at, tz),
        "until": iso(entry.until, tz),
        "note_for_callers": entry.note_for_callers,
        "source": entry.source.value,
        "set_by": entry.set_by,
        "created_at": iso(entry.created_at, tz),
        "cancelled_at": iso(entry.cancelled_at, tz),
        "cancelled_by": entry.cancelled_by,
    }
    if private:
        out["internal_note"] = entry.internal_note
    return out


def audit_json(record: AuditRecord, tz: tzinfo) -> dict[str, Any]:
    return {
        "id": record.id,
        "entry_id": record.entry_id,
        "action": record.action,
        "actor": record.actor,
        "at": iso(record.at, tz),
        "details": record.details,
    }

