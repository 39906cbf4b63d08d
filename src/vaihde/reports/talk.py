"""Operators' talk time as it happens: whenever the call state changes, which operator phones are
bridged with which callers (a pure reading of the tracker), and each talk stored when it starts
and when it ends (vaihde.reports.store), at once, so that the usage report survives a `kill -9`.

An operator's phone is a console user's `sip_endpoint` (operators and admins). A talk is keyed
by (caller's Uniqueid, phone, bridge): a restarted service, or a second instance following the
same Asterisk, finds the talk stored already and only closes it. A talk that ended while no
service was watching stays without an end (the report counts it as unfinished, with no time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.ami.devicestate import device_of_channel
from vaihde.ami.tracker import Bridge, ChangeQueue, Channel
from vaihde.auth.model import Role
from vaihde.db import auth_models as am
from vaihde.db.models import MAIN
from vaihde.jobs import next_within
from vaihde.reports import store
from vaihde.reports.store import TalkKey
from vaihde.story import StoryBook

log = logging.getLogger("vaihde.reports")

# Bridges that hold a channel without connecting it to anyone (as the console's board).
_HOLDING = ("holding", "parking")
RELOAD_S = 10.0  # operators' phones are read again this often (and after each failure)
FRESH_S = 1.0  # how old the phones may be when someone enters a bridge
RETRY_S = 1.0  # a talk that could not be stored is tried again this soon


class CallView(Protocol):
    @property
    def channels(self) -> Mapping[str, Channel]: ...
    @property
    def bridges(self) -> Mapping[str, Bridge]: ...


class Calls(CallView, Protocol):
    """vaihde.ami.tracker.CallTracker or vaihde.ami.cluster.MergedCalls."""

    @property
    def synced(self) -> bool: ...
    def subscribe(self, maxsize: int = 1000) -> ChangeQueue: ...
    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None: ...


def talking(view: CallView, operators: frozenset[str]) -> set[TalkKey]:
    """Every (caller, operator phone, bridge) bridged now. A caller is a channel nobody
    dialled (the call that came in) that is not itself an operator's phone."""
    out: set[TalkKey] = set()
    if not operators:
        return out
    for bridge in view.bridges.values():
        if bridge.technology in _HOLDING or bridge.bridge_type in _HOLDING:
            continue
        members = [view.channels[u] for u in bridge.members if u in view.channels]
        phones = [device_of_channel(ch.name) for ch in members]
        ours = [p for p in phones if p in operators]
        if not ours:
            continue
        for ch, phone in zip(members, phones, strict=True):
            if ch.dialed_by is None and phone not in operators:
                out.update((ch.uniqueid, op, bridge.bridge_id) for op in ours)
    return out


async def operator_phones(sessions: async_sessionmaker[AsyncSession]) -> frozenset[str]:
    """The phones of active operators and admins."""
    async with sessions() as session:
        rows = await session.scalars(
            select(am.User.sip_endpoint).where(
                am.User.active.is_(True), am.User.sip_endpoint.is_not(None),
                am.User.role.in_((Role.OPERATOR.value, Role.ADMIN.value))))
        return frozenset(p for p in rows if p)


class TalkRecorder:
    """Follows the calls and stores operators' talks; `run()` until cancelled."""

    def __init__(
        self,
        calls: Calls,
        stories: StoryBook,
        sessions: async_sessionmaker[AsyncSession],
        operators: Callable[[], Awaitable[frozenset[str]]] | None = None,
        *,
        frozen: Callable[[], CallView] | None = None,
        reload_s: float = RELOAD_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.calls = calls
        self.stories = stories
        self.sessions = sessions
        self.operators_of = operators or (lambda: operator_phones(sessions))
        self.frozen = frozen or (lambda: calls)
        self.reload_s = reload_s
        self.clock = clock
        self.operators: frozenset[str] = frozenset()
        self.live: dict[TalkKey, str] = {}  # talks in progress → their company
        self._pending: list[tuple[str, TalkKey, str, datetime]] = []  # not stored yet
        self.stored = 0

    async def run(self) -> None:
        changes = self.calls.subscribe(maxsize=10_000)
        loaded = 0.0
        entered = True  # the first round reads the phones
        try:
            while True:
                # Read again now and then, and when someone enters a bridge (a user given a
                # phone a moment ago talks at once), at most once a second.
                age = time.monotonic() - loaded
                if age >= self.reload_s or (entered and age >= FRESH_S):
                    try:
                        self.operators = await self.operators_of()
                        loaded = time.monotonic()
                    except Exception as exc:
                        log.warning("operators' phones not read", extra={"error": repr(exc)})
                await self.observe()
                wait = RETRY_S if self._pending else self.reload_s
                first = await next_within(changes, wait)
                seen = [first] if first is not None else []
                while not changes.empty():
                    seen.append(changes.get_nowait())
                entered = any(c.kind in ("bridge_enter", "resynced") for c in seen)
        finally:
            self.calls.unsubscribe(changes)

    def _company(self, call_id: str) -> str:
        story = self.stories.get(call_id)
        return story.company if story is not None and story.company else MAIN

    async def observe(self) -> None:
        """Compare the talks now with those seen before; store what started and ended."""
        if self.calls.synced:
            now = self.clock()
            current = talking(self.frozen(), self.operators)
            for key in current - self.live.keys():
                self.live[key] = self._company(key[0])
                self._pending.append(("open", key, self.live[key], now))
            for key in self.live.keys() - current:
                self._pending.append(("close", key, self.live.pop(key), now))
        if self._pending:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            async with self.sessions() as session, session.begin():
                for what, key, company, at in pending:
                    if what == "open":
                        await store.open_talk(session, key, company, at)
                    else:
                        await store.close_talk(session, key, at)
        except Exception as exc:
            # Kept, in order, for the next try: the times are those seen, not those stored.
            self._pending = pending + self._pending
            log.warning("operator talk not stored", extra={"error": repr(exc),
                                                           "pending": len(self._pending)})
            return
        self.stored += len(pending)
        for what, key, company, _ in pending:
            log.info("operator talk", extra={"talk": what, "call_id": key[0],
                                             "operator": key[1], "company": company})


__all__ = ["TalkRecorder", "operator_phones", "talking"]
