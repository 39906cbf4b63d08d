"""What the API needs from the service (`ApiContext`, on the application under CTX) and the
per-request helpers handlers share: who is asking, object-level permission checks, the running
company.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.api.errors import ApiError
from vaihde.auth.middleware import PRINCIPAL
from vaihde.auth.model import FORBIDDEN, Action, Principal, allowed
from vaihde.company.offloop import ConfigChecker
from vaihde.db.clock import utcnow as _utcnow
from vaihde.messages.model import CHANNELS

if TYPE_CHECKING:
    from vaihde.company.schema import CompanyConfig
    from vaihde.company.tenants import Roster
    from vaihde.console.stream import Console
    from vaihde.directory.search import DirectoryIndex
    from vaihde.presence.cache import PresenceCache


@dataclass(frozen=True)
class ApiContext:
    """What the API reads and writes through; the service owns all of it.

    `directory()` and `company()` are called per request, so swapping in a rebuilt index or a
    newly applied configuration needs no restart. `config_applied` (optional) runs after a
    successful POST /config/apply, e.g. to reload the company and rebuild the index at once
    instead of at the next poll. Messages taken through the API are planned for
    `message_channels` (those the service has settings for), and `message_taken` (the sender's
    wake) runs after one is stored; message recordings are served only from `recordings_dir`.
    """

    sessions: async_sessionmaker[AsyncSession]
    cache: PresenceCache
    directory: Callable[[], DirectoryIndex]
    company: Callable[[], CompanyConfig | None]
    tz: tzinfo = UTC
    config_applied: Callable[[], Awaitable[None]] | None = None
    clock: Callable[[], datetime] = field(default=_utcnow)
    message_channels: tuple[str, ...] = CHANNELS
    message_taken: Callable[[], None] | None = None
    recordings_dir: Path | None = None
    console: Console | None = None  # the operator console's live board; None: 503s
    # Checks company files sent to /config/* off the event loop, with the settings' calendar rules.
    config_checker: ConfigChecker = field(default_factory=ConfigChecker)
    # A phone's reach now (reachable, in_use, unreachable, unknown) from Asterisk's device state.
    device_reach: Callable[[str], str] | None = None
    # One company's directory index (GET /directory/search?company=ID); None: only `directory`.
    directory_of: Callable[[str], DirectoryIndex | None] | None = None
    # Every company's index, one per company (a search of all companies merges them); None:
    # `directory` is the whole directory.
    directories: Callable[[], Sequence[DirectoryIndex]] | None = None
    # The SMS gateway's shared secret for its inbound webhook (messages.sms.inbound_token);
    # "" = the webhook is off.
    sms_inbound_token: str = ""
    # Every company (several companies): each one's configuration by id, the first first, and
    # whose an employee or team is; None: only `company`.
    roster: Callable[[], Roster | None] | None = None
    wrap_up_max_s: int = 120  # the usage report's cap on each wrap-up (console.wrap_up_max_s)


CTX: web.AppKey[ApiContext] = web.AppKey("vaihde.api.context")


def ctx(request: web.Request) -> ApiContext:
    return request.config_dict[CTX]


def who(request: web.Request) -> Principal:
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:  # only for routes the middleware lets through without credentials
        raise ApiError(401, "unauthenticated", "log in or give an API token")
    return principal


def require(request: web.Request, action: Action, employee_id: str | None = None) -> Principal:
    """An object-level check in a handler (the route's own action is the middleware's)."""
    principal = who(request)
    if not allowed(principal, action, employee_id):
        raise ApiError(403, "forbidden", FORBIDDEN.get(action, "your role does not allow this"))
    return principal


def may(request: web.Request, action: Action, employee_id: str | None = None) -> bool:
    principal: Principal | None = request.get(PRINCIPAL)
    return principal is not None and allowed(principal, action, employee_id)


def company_of(request: web.Request, company_id: str | None = None) -> CompanyConfig | None:
    """The running configuration (the first company's, or `company_id`'s), or None (none
    applied yet, or the service has none)."""
    api = ctx(request)
    try:
        first = api.company()
    except Exception:
        first = None
    if company_id is None or (first is not None and first.id == company_id):
        return first
    roster = api.roster() if api.roster is not None else None
    return roster.companies.get(company_id) if roster is not None else None


def all_company_ids(request: web.Request) -> list[str]:
    """Every company of the service, the first first."""
    api = ctx(request)
    roster = api.roster() if api.roster is not None else None
    if roster is not None:
        return list(roster.companies)
    first = company_of(request)
    return [first.id] if first is not None else []
