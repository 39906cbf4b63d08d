"""Each company's music on hold, known to Asterisk itself: one dialplan global per company
number (`VAIHDE_MOH_<digits>`, the digits the dialplan takes from the dialled number), so that a
caller the service does not route (it is stopped, frozen or slow, and [vaihde-operator] takes
the caller on) still waits to their company's own music rather than the centre's default.

For the calls the service routes, the route's own class (contract.MUSIC_CLASS) still wins: the
service knows the company of a forwarded call, which the dialled number alone does not say.

`wanted` and `changes` decide (pure); `NumberMusic` is the thin AMI edge: every number's global
on each login (an Asterisk restart forgets globals), then only what a company change changed.
A number removed while the service was stopped keeps its global until Asterisk restarts; such a
number is no company's any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from vaihde import contract
from vaihde.company.schema import CompanyConfig

log = logging.getLogger("vaihde.ami.music")

PREFIX = contract.NUMBER_MUSIC  # + the dialled number's digits: [vaihde-main] reads GLOBAL(...)
_AT_ONCE = 50  # Setvar actions in flight at a time on one AMI session


def wanted(companies: Iterable[CompanyConfig]) -> dict[str, str]:
    """Dialled number (digits) → the music class its callers wait to ("" for Asterisk's
    default). A number two companies claim (refused when applying) stays the first one's."""
    out: dict[str, str] = {}
    for config in companies:
        for number in config.numbers.values():
            if number.digits:
                out.setdefault(number.digits, config.company.music_on_hold)
    return out


def changes(sent: Mapping[str, str], want: Mapping[str, str]) -> dict[str, str]:
    """The globals to set so that Asterisk has `want`, given it has `sent`: changed and new
    numbers, and numbers no longer anyone's emptied (the default music)."""
    out = {digits: cls for digits, cls in want.items() if sent.get(digits) != cls}
    out.update((digits, "") for digits, cls in sent.items() if digits not in want and cls)
    return out


class _Client(Protocol):
    @property
    def connected(self) -> bool: ...
    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any: ...
    def add_on_connected(self, hook: Callable[[Any], Any]) -> None: ...


class NumberMusic:
    """Keeps one Asterisk's `VAIHDE_MOH_<digits>` globals as `wanted` says: all of them after
    each login (an on_connected hook: a failure drops the session and the login is retried, as
    for the team queues), what changed after each company change (`changed`)."""

    def __init__(self, client: _Client,
                 companies: Callable[[], Iterable[CompanyConfig]]) -> None:
        self.client = client
        self.companies = companies
        self.sent: dict[str, str] = {}  # what this Asterisk has, as far as we know
        self._lock = asyncio.Lock()

    def attach(self) -> None:
        self.client.add_on_connected(self.resync)

    async def resync(self, client: Any = None) -> None:
        """Every number's global: Asterisk may have restarted since the last login."""
        async with self._lock:
            self.sent = {}
            await self._send(wanted(self.companies()))

    async def changed(self) -> None:
        """After a company change: only the numbers whose music changed, appeared or went.
        Failures are logged; the next login sets everything again."""
        if not self.client.connected:
            return
        async with self._lock:
            try:
                await self._send(changes(self.sent, wanted(self.companies())))
            except Exception as exc:
                log.warning("music on hold per number not updated", extra={"error": repr(exc)})

    async def _send(self, todo: Mapping[str, str]) -> None:
        items = list(todo.items())
        for start in range(0, len(items), _AT_ONCE):
            chunk = items[start:start + _AT_ONCE]
            # Setvar without a Channel sets a global (manager.c, action_setvar).
            await asyncio.gather(*(self.client.action(
                {"Action": "Setvar", "Variable": PREFIX + digits, "Value": cls})
                for digits, cls in chunk))
            self.sent.update(chunk)
        if items:
            log.info("music on hold per number set", extra={"numbers": len(items)})
