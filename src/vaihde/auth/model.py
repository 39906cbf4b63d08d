"""Who is asking and what they may do: roles, the Principal a request runs as, input rules for
users, and the permission checks (pure: no I/O, no clock).

The rule in one sentence: everyone may read the directory and availability; an employee may
change only their own availability (their user's employee_id) and read messages taken for them;
an operator may change anyone's, use the caller register and take and read every message; an
admin may do everything, including configuration and users.

Roles per company (issue 12): each principal also carries the companies its role applies to
(`companies`; None: every company, which is what users without any are, so a single-company site
changes nothing). An employee's are their own employee's company. Whatever a route touches that
belongs to a company is checked against them (`in_scope`, `covers`); a company admin manages
only users within their own companies and cannot create service-wide ones (`user_refusal`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from vaihde.config.patterns import DEVICE, USERNAME
from vaihde.errors import FieldError, one_of


class Role(StrEnum):
    EMPLOYEE = "employee"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    READ_DIRECTORY = "directory.read"  # employees, teams, search
    READ_AVAILABILITY = "availability.read"  # states, notes for callers, upcoming entries
    CHANGE_AVAILABILITY = "availability.change"  # set, schedule, cancel
    READ_PRIVATE = "availability.private"  # internal notes, history and audit trail
    USE_CALLERS = "callers"  # the caller register and contact history
    READ_MESSAGES = "messages.read"  # messages and callback requests taken for someone
    TAKE_MESSAGES = "messages.take"  # take messages and callbacks, retry deliveries
    CONSOLE = "console"  # the operator console: live calls, answer, transfer, park, hang up
    CONFIGURE = "config"  # check, diff, apply and read the company configuration
    MANAGE_USERS = "users"
    READ_REPORTS = "reports.read"  # usage per company and month (what clients are billed by)


class Access(StrEnum):
    """Who may call a route that needs no particular action."""

    PUBLIC = "public"  # anyone: credentials are not even looked at
    OPTIONAL = "optional"  # anyone; a working credential gives a principal (CSRF still checked)
    USER = "user"  # any logged-in user


# Why a role is refused an action, in the words the API answers 403 with.
FORBIDDEN: dict[Action, str] = {
    Action.CHANGE_AVAILABILITY: "you may change only your own availability (operators and "
    "admins may change anyone's)",
    Action.READ_PRIVATE: "internal notes and history are for the employee themselves, "
    "operators and admins",
    Action.USE_CALLERS: "the caller register is for operators and admins",
    Action.CONSOLE: "the operator console is for operators and admins",
    Action.CONFIGURE: "configuration is for admins",
    Action.MANAGE_USERS: "managing users is for admins",
    Action.READ_REPORTS: "reports are for admins",
}

_EVERYONE = frozenset({Action.READ_DIRECTORY, Action.READ_AVAILABILITY})
_STAFF = _EVERYONE | {
    Action.CHANGE_AVAILABILITY, Action.READ_PRIVATE, Action.USE_CALLERS, Action.READ_MESSAGES,
    Action.TAKE_MESSAGES, Action.CONSOLE,
}
GRANTS: dict[Role, frozenset[Action]] = {
    Role.EMPLOYEE: _EVERYONE, Role.OPERATOR: _STAFF, Role.ADMIN: frozenset(Action)}
# What a user may do for the employee they are, whatever their role.
SELF = frozenset({Action.CHANGE_AVAILABILITY, Action.READ_PRIVATE, Action.READ_MESSAGES})

MIN_PASSWORD = 10
# argon2 takes any length, but nobody types more; a cap keeps request bodies small.
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 200
MAX_LABEL = 200


class AuthError(FieldError, ValueError):
    """Bad input for a user or token change, in plain words; nothing was written."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The user a request acts as, and how it proved it ("token" or "session")."""

    user_id: int
    username: str
    role: Role
    employee_id: str | None
    display_name: str = ""
    sip_endpoint: str | None = None
    via: str = "token"
    # The companies the role applies to; None: every company (a service-wide user).
    companies: frozenset[str] | None = None


Scope = frozenset[str] | None  # a set of company ids, or None: every company


def scope_of(role: Role | str, employee_company: str | None, linked: Iterable[str]) -> Scope:
    """A user's companies: an employee's own employee's company; else the companies linked to
    the user (user_companies); none linked: every company."""
    if Role(role) is Role.EMPLOYEE and employee_company is not None:
        return frozenset({employee_company})
    chosen = frozenset(linked)
    return chosen or None


def in_scope(principal: Principal, company_id: str | None) -> bool:
    """May `principal` see what belongs to `company_id`? (None: a company nobody knows of,
    which only service-wide principals may look for.)"""
    if principal.companies is None:
        return True
    return company_id is not None and company_id in principal.companies


def covers(principal: Principal, companies: Scope) -> bool:
    """Does `principal`'s scope include all of `companies` (None: every company, which only a
    service-wide principal's does)?"""
    if principal.companies is None:
        return True
    return companies is not None and companies <= principal.companies


def visible(principal: Principal, company_ids: Iterable[str]) -> list[str]:
    """The companies of `company_ids` (in their order) that `principal` may see."""
    return [c for c in company_ids if in_scope(principal, c)]


def user_refusal(manager: Principal, after: Scope, *, before: Scope = None,
                 new: bool = False) -> str | None:
    """Why `manager` may not give a user (`new`, or one whose scope is `before`) the scope
    `after`, or None if they may. A service-wide admin may do anything; a company admin only
    to users wholly within their own companies, and never make a user service-wide or give one
    a company that is not theirs (so never widen their own scope either)."""
    if manager.companies is None:
        return None
    if not new and not covers(manager, before):
        return "no such user"  # not theirs to see: told exactly as if it did not exist
    if after is None:
        return ("only a service-wide admin may make a user for every company; give the "
                "companies (companies: [...] or --company)")
    if not covers(manager, after):
        outside = ", ".join(sorted(after - manager.companies))
        return f"you may give only your own companies, not {outside}"
    return None


def allowed(principal: Principal, action: Action, employee_id: str | None = None) -> bool:
    """May `principal` do `action` (to `employee_id`'s data, for per-employee actions)?"""
    if action in GRANTS[principal.role]:
        return True
    return action in SELF and employee_id is not None and principal.employee_id == employee_id


def roles_allowed(action: Action, *, own: bool = False) -> list[Role]:
    """The roles that may do `action` (`own`: to their own employee's data too)."""
    return [r for r in Role if action in GRANTS[r] or (own and action in SELF)]


def availability_source(principal: Principal, employee_id: str) -> str:
    """`manual` when people set their own availability, `operator` when someone else's."""
    return "manual" if principal.employee_id == employee_id else "operator"


# --- input rules ---------------------------------------------------------------------------


def parse_role(value: str | Role) -> Role:
    return one_of(Role, "role", value, AuthError)


def check_username(value: str) -> str:
    """The username as stored (lower case); AuthError if it cannot be one."""
    if not isinstance(value, str):
        raise AuthError("username", "must be text")
    name = value.strip().lower()
    if not USERNAME.match(name):
        raise AuthError("username", "must be 1-64 letters a-z, digits, '.', '_', '-' or '@', "
                        "starting with a letter or digit")
    return name


def check_password(value: str) -> None:
    if not isinstance(value, str):
        raise AuthError("password", "must be text")
    if len(value) < MIN_PASSWORD:
        raise AuthError("password", f"is too short: at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise AuthError("password", f"is too long: at most {MAX_PASSWORD} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise AuthError("password", "contains a control character")


def check_text(field: str, value: str, limit: int) -> str:
    if not isinstance(value, str):
        raise AuthError(field, "must be text")
    value = value.strip()
    if len(value) > limit:
        raise AuthError(field, f"is {len(value)} characters long; at most {limit} allowed")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise AuthError(field, "contains a control character")
    return value


def check_sip_endpoint(value: str | None) -> str | None:
    """An operator's phone: a device string like the employees' (it reaches Dial())."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not DEVICE.match(value):
        raise AuthError("sip_endpoint", f"{value!r} is not a device like PJSIP/operator1 "
                        "(technology/name; letters, digits and _ . + @ - / only)")
    return value
