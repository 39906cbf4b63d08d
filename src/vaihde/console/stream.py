"""The live board and its Server-Sent Events: one hub per service recomputes the board when the
tracker, presence or the console's own actions change something (bursts coalesced), and fans
`board`, `call`, `gone`, `ami` and `availability` events out to every open console.

Every subscriber has a bounded queue: a console that cannot keep up is told to reconnect (it
then starts again from a fresh `board`) instead of slowing the others or the AMI reader.

A stream shows callers' numbers and names, so it lasts only as long as what opened it: the hub
checks the credentials of every open stream in the database (one query, only while streams are
open) whenever credentials are withdrawn in any process (a logout here, `vaihde user disable`
elsewhere, another instance: PostgreSQL tells at commit) and at least every few seconds, or on
SQLite twice a second, and ends the streams whose session ended, whose token was revoked or whose
user may no longer use the console. A user may have `streams_per_user` streams open at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.ami.client import AmiActionError, AmiError
from vaihde.ami.cluster import MergedCalls
from vaihde.ami.tracker import CallTracker, Change, Channel
from vaihde.auth import store as auth_store
from vaihde.auth.middleware import Credential
from vaihde.auth.model import Action, Principal, allowed
from vaihde.company.dials import DeviceLookup
from vaihde.company.schema import CompanyConfig
from vaihde.console.actions import (
    Limits,
    Operator,
    Plan,
    Presence,
    Refusal,
    Request,
    call_company,
    decide,
    next_waiting,
)
from vaihde.console.board import (
    RECENT,
    Board,
    CallerFacts,
    Contact,
    Inputs,
    Transfer,
    build,
    facts_key,
    public,
)
from vaihde.db import models as m
from vaihde.db.changes import Watch
from vaihde.jobs import cancel_all, next_within
from vaihde.presence.cache import PresenceCache
from vaihde.presence.model import Availability
from vaihde.story import StoryBook

log = logging.getLogger("vaihde.console")

PING_S = 15.0
COALESCE_S = 0.02  # a burst of AMI events becomes one recomputation
QUEUE_SIZE = 500  # events waiting for one console before it is told to reconnect
WRITE_TIMEOUT_S = 10.0
RETRY_MS = 2000  # EventSource's reconnection delay
FACTS_TTL_S = 60.0
RECHECK_S = 0.5  # how often open streams' credentials are checked again
STREAMS_PER_USER = 5
SESSION_ENDED = "your session has ended or your access was withdrawn: log in again"
ROLE_CHANGED = "your role no longer allows the operator console"
SCOPE_CHANGED = "the companies you serve have changed: reconnect for their board"
Scope = frozenset[str] | None  # the companies a stream shows (None: every company's)


class AmiState(Protocol):
    @property
    def connected(self) -> bool: ...
    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any: ...
    def add_state_listener(self, cb: Callable[[bool], None]) -> None: ...
    def remove_state_listener(self, cb: Callable[[bool], None]) -> None: ...
    def add_event_listener(self, cb: Callable[[Mapping[str, Any]], None]) -> None: ...
    def remove_event_listener(self, cb: Callable[[Mapping[str, Any]], None]) -> None: ...


class CallRoutes(Protocol):
    """Several Asterisks (vaihde.ami.cluster.Cluster): where each call is and how to act on it."""

    def client_for(self, call_id: str) -> Any: ...
    def name_for(self, call_id: str) -> str: ...
    def channels_for(self, call_id: str) -> Mapping[str, Channel]: ...
    def dial_for(self, call_id: str) -> Callable[[str], str]: ...
    def ami_json(self) -> dict[str, Any]: ...
    async def locate(self, devices: list[str]) -> None: ...


def only_position_changed(was: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Whether two versions of a call differ in their queue position alone."""
    if was.get("position") == now.get("position") or was.keys() != now.keys():
        return False
    return all(was[k] == now[k] for k in was if k != "position")


def sse(event: str, data: Any, seq: int | None) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # json.dumps never emits a raw line break, so one data: line is always enough.
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


PING = b": ping\n\n"


class _Close:
    def __init__(self, why: str) -> None:
        self.why = why


class TooManyStreams(Exception):
    """The user already has as many console streams open as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"you already have {limit} console stream(s) open; close one (another "
                         "tab or window) and try again")
        self.limit = limit


class Subscriber:
    """One open console's queue of encoded events, and what it was opened with: the
    credential to check again, and whether the client is still connected."""

    def __init__(
        self,
        maxsize: int,
        credential: Credential | None = None,
        connected: Callable[[], bool] = lambda: True,
        companies: Scope = None,
    ) -> None:
        self.queue: asyncio.Queue[bytes | _Close] = asyncio.Queue(maxsize + 1)
        self.maxsize = maxsize
        self.closed = False
        self.credential = credential
        self.connected = connected
        self.companies = companies

    def sees(self, company: str | None) -> bool:
        """Is an event of `company` (None: of no company, for everyone) for this stream?"""
        return company is None or self.companies is None or company in self.companies

    def offer(self, message: bytes) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.maxsize:
            self.close("too slow: reconnect for a fresh board")
            return
        self.queue.put_nowait(message)

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_Close(why))


async def caller_facts(
    sessions: async_sessionmaker[AsyncSession], number: str, now: datetime, tz: tzinfo,
    company_id: str = m.MAIN,
) -> CallerFacts:
    """What `company_id`'s register and contact history say about a number (what a caller told
    one company is that company's)."""
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    c = m.Contact
    ours = (c.caller_number == number, c.company_id == company_id)
    async with sessions() as session:
        caller = await session.get(m.Caller, (company_id, number))
        today = await session.scalar(
            select(func.count()).where(*ours, c.at >= midnight)
        )
        month = await session.scalar(
            select(func.count()).where(*ours, c.at >= now - timedelta(days=30))
        )
        rows = (await session.execute(
            select(c.at, c.employee_id, c.path, c.outcome, c.details)
            .where(*ours)
            .order_by(c.at.desc(), c.id.desc()).limit(RECENT)
        )).all()
    recent = []
    for at, employee_id, path, outcome, details in rows:
        sought = details.get("sought", "") if isinstance(details, dict) else ""
        if not isinstance(sought, str) or (not sought and employee_id):
            sought = f"employee:{employee_id}" if employee_id else ""
        recent.append(Contact(at, sought, path, outcome))
    return CallerFacts(
        name=caller.name if caller is not None else "",
        organisation=caller.organisation if caller is not None else "",
        known=caller is not None and bool(caller.name or caller.organisation),
        today=int(today or 0),
        last_30_days=int(month or 0),
        recent=tuple(recent),
    )


@dataclass
class ConsoleDeps:
    """What the hub reads; the service owns all of it."""

    tracker: CallTracker | MergedCalls
    ami: AmiState
    stories: StoryBook
    company: Callable[[], CompanyConfig | None] = lambda: None
    # Several companies: each call's own (by the id its story carries); None: `company` only.
    company_by_id: Callable[[str], CompanyConfig | None] | None = None
    presence: PresenceCache | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    tz: tzinfo = UTC
    availability_json: Callable[[Availability], dict[str, Any]] | None = None
    phones: Callable[[], Mapping[str, str]] = dict
    clock: Callable[[], float] = time.time
    coalesce_s: float = COALESCE_S
    ping_s: float = PING_S
    queue_size: int = QUEUE_SIZE
    write_timeout_s: float = WRITE_TIMEOUT_S
    limits: Callable[[], Limits] = Limits
    streams_per_user: int = STREAMS_PER_USER
    recheck_s: float = RECHECK_S
    device_reach: DeviceLookup | None = None  # phones' reach (transfers skip unreachable ones)
    routes: CallRoutes | None = None  # several Asterisks; None: the one `ami` holds every call
    # Wakes when credentials are withdrawn anywhere (the `auth` revision, PostgreSQL NOTIFY):
    # streams are then checked at once, and otherwise every few seconds. None: every recheck_s.
    credentials: Watch | None = None
    # An employee's company (several companies: availability events go only to the streams of
    # that company's operators); None: every stream gets every availability.
    employee_company: Callable[[str], str | None] | None = None


class Console:
    """The live board and its subscribers."""

    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.seq = 0
        self.board = Board({})
        self.transfers: dict[str, Transfer] = {}
        self._facts: dict[str, tuple[float, CallerFacts]] = {}
        self._facts_asked: set[str] = set()  # call ids whose caller facts were requested
        self._subscribers: list[Subscriber] = []
        self._dirty = asyncio.Event()
        self._full = False  # send a whole board (after a resync) rather than differences
        self._changes = deps.tracker.subscribe(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._unsubscribe_presence: Callable[[], None] | None = None
        self.recomputed = 0
        self.dropped_subscribers = 0
        self.ended_streams = 0  # ended because their credentials stopped working
        self._recheck_failing = False

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self.deps.ami.add_state_listener(self._ami_state)
        self.deps.ami.add_event_listener(self._ami_event)
        if self.deps.presence is not None:
            self._unsubscribe_presence = self.deps.presence.subscribe(self.publish_availability)
        self.board = self._compute()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._pump(), name="vaihde-console-pump"),
            loop.create_task(self._run(), name="vaihde-console"),
            loop.create_task(self._guard(), name="vaihde-console-guard"),
        ]

    async def stop(self) -> None:
        for sub in list(self._subscribers):
            sub.close("the service is stopping")
        self.deps.ami.remove_state_listener(self._ami_state)
        self.deps.ami.remove_event_listener(self._ami_event)
        self.deps.tracker.unsubscribe(self._changes)
        if self._unsubscribe_presence is not None:
            self._unsubscribe_presence()
        await cancel_all((*self._tasks, *self._background))
        self._tasks.clear()

    # --- inputs ------------------------------------------------------------------------

    def touch(self) -> None:
        """Something the board depends on changed: recompute soon."""
        self._dirty.set()

    def _ami_state(self, connected: bool) -> None:
        routes = self.deps.routes
        self._publish("ami", routes.ami_json() if routes is not None else {"connected": connected})
        self.touch()

    def _ami_event(self, event: Mapping[str, Any]) -> None:
        """UserEvent(VaihdeConsole) from dialplan/vaihde-console.conf: a transfer came back."""
        if event.get("Event") != "UserEvent" or event.get("UserEvent") != "VaihdeConsole":
            return
        call_id = str(event.get("Uniqueid", ""))
        transfer = self.transfers.get(call_id)
        kind = str(event.get("Kind", ""))
        if kind == "bounced":
            why = "".join(ch for ch in str(event.get("Why", "")).lower() if ch.isalpha())[:20]
            if transfer is None:
                transfer = Transfer("", "", "", "blind")
            self.transfers[call_id] = replace(transfer, bounced=why or "noanswer")
            log.info("transfer bounced back", extra={"call_id": call_id, "why": why,
                                                     "by": transfer.by,
                                                     "target": transfer.target})
            self.touch()

    def publish_availability(self, av: Availability) -> None:
        """Tell every console someone's availability (or their phones' reach) changed."""
        if self.deps.availability_json is not None:
            find = self.deps.employee_company
            # "": nobody's company, so only streams of every company get it.
            company = (find(av.employee_id) or "") if find is not None else None
            self._publish("availability", {"employee": av.employee_id,
                                           **self.deps.availability_json(av)}, company)
        self.touch()

    async def _pump(self) -> None:
        while True:
            change: Change = await self._changes.get()
            if change.kind == "resynced":
                self._full = True
            self._dirty.set()

    # --- the board -----------------------------------------------------------------------

    def _compute(self) -> Board:
        deps = self.deps
        presence = deps.presence
        now = deps.clock()
        facts = {n: f for n, (_, f) in self._facts.items()}
        tracker = deps.tracker
        return build(Inputs(
            tracker=tracker.frozen() if isinstance(tracker, MergedCalls) else tracker,
            now=now, stories=deps.stories.get, company=deps.company(),
            company_by_id=deps.company_by_id,
            availability=presence.lookup if presence is not None and presence.loaded else None,
            callers=facts, transfers=self.transfers, phones=deps.phones(),
            previous=self.board.calls, tz=deps.tz,
            asterisk_of=deps.routes.name_for if deps.routes is not None else None,
        ))

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self.deps.coalesce_s:
                await asyncio.sleep(self.deps.coalesce_s)
            self._dirty.clear()
            try:
                self.refresh()
            except Exception:  # a bug in the board must not end the stream for good
                log.exception("console board failed")

    def refresh(self) -> None:
        """Recompute now and publish what changed."""
        old, new = self.board, self._compute()
        self.recomputed += 1
        self.board = new
        live = set(new.calls)
        # Forget what the console did to calls that are gone.
        for call_id in [c for c in self.transfers if c not in live
                        and self.deps.tracker.channel(c) is None]:
            del self.transfers[call_id]
        self._facts_asked &= live | set(self.deps.tracker.channels)
        for call_id, call in new.calls.items():
            if call_id not in self._facts_asked and call["caller"]["number"]:
                self._ask_facts(call_id, call["caller"]["number"])
        if self._full:
            self._full = False
            self._publish("board", None)
            return
        # Each event goes only to the streams of the call's company's operators.
        moved: dict[str, dict[str, int | None]] = {}
        for call_id, call in new.calls.items():
            before = old.calls.get(call_id)
            company = call_company(call)
            if before is None:
                self._publish("call", public(call), company)
                continue
            was, now = public(before), public(call)
            if was == now:
                continue
            if only_position_changed(was, now):
                # Everyone behind a caller who left moves up: one small event, not a call each.
                moved.setdefault(company, {})[call_id] = now["position"]
            else:
                self._publish("call", now, company)
        for company, positions in moved.items():
            self._publish("positions", positions, company)
        for call_id, call in old.calls.items():
            if call_id not in new.calls:
                self._publish("gone", {"id": call_id}, call_company(call))

    def _ask_facts(self, call_id: str, number: str) -> None:
        self._facts_asked.add(call_id)
        sessions = self.deps.sessions
        if sessions is None or not number.isdigit():
            return
        # The call's company's register: facts are kept per company and number.
        config = self._company_of_call(call_id)
        company = config.id if config is not None else m.MAIN
        key = facts_key(config, number)
        cached = self._facts.get(key)
        if cached is not None and self.deps.clock() - cached[0] < FACTS_TTL_S:
            return

        async def load() -> None:
            try:
                # "Today" is the company's day, in its own zone.
                zone = config.zone if config is not None else self.deps.tz
                facts = await caller_facts(sessions, number, datetime.now(UTC), zone, company)
            except Exception as exc:  # the board works without them
                log.warning("caller facts not loaded", extra={"error": repr(exc)})
                return
            self._facts[key] = (self.deps.clock(), facts)
            if len(self._facts) > 10_000:
                oldest = min(self._facts, key=lambda n: self._facts[n][0])
                del self._facts[oldest]
            self.touch()

        task = asyncio.get_running_loop().create_task(load(), name="vaihde-console-facts")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def board_json(self, companies: Scope = None) -> dict[str, Any]:
        """The board (of these companies' calls only; None: every company's)."""
        lists = self.board.lists()
        return {
            "seq": self.seq,
            "ami": self._ami_json(),
            **{name: [public(c) for c in calls
                      if companies is None or call_company(c) in companies]
               for name, calls in lists.items()},
        }

    def _ami_json(self) -> dict[str, Any]:
        routes = self.deps.routes
        return routes.ami_json() if routes is not None else {"connected": self.deps.ami.connected}

    # --- actions -------------------------------------------------------------------------

    def _call_of(self, request: Request, operator: Operator | None = None) -> str:
        """The board's call a request is about ("" if none); answer-next: the first in line
        of the companies the operator serves."""
        if request.action == "answer-next":
            calls = self.board.calls
            if operator is not None and operator.companies is not None:
                calls = {k: c for k, c in calls.items() if operator.serves(c)}
            first = next_waiting(calls)
            return str(first["id"]) if first is not None else ""
        return request.call_id or ""

    def plan(self, request: Request, operator: Operator) -> Plan:
        """What `request` would do now (pure; raises Refusal)."""
        presence = self.deps.presence
        reach = Presence(presence.lookup if presence is not None and presence.loaded else None,
                         self.deps.device_reach)
        routes = self.deps.routes
        call_id = self._call_of(request, operator)
        company = self._company_of_call(call_id)
        if routes is None:
            return decide(request, self.board.calls, self.deps.tracker.channels, operator,
                          company, self.deps.limits(), self.transfers, reach)
        # Several Asterisks: the call's own channels, and its Asterisk's way to every phone.
        return decide(request, self.board.calls, routes.channels_for(call_id), operator,
                      company, self.deps.limits(), self.transfers, reach,
                      routes.dial_for(call_id))

    def _company_of_call(self, call_id: str) -> CompanyConfig | None:
        """The company whose directory a call's transfer targets are looked up in: the call's
        own (several companies), else the service's first."""
        story = self.deps.stories.get(call_id) if call_id else None
        if story is not None and story.company and self.deps.company_by_id is not None:
            found = self.deps.company_by_id(story.company)
            if found is not None:
                return found
        return self.deps.company()

    async def perform(self, request: Request, operator: Operator) -> dict[str, Any]:
        """Carry out an operator's request: Refusal (409/400/404/503) or the reply."""
        routes = self.deps.routes
        ami: AmiState = self.deps.ami
        if routes is not None and operator.phone:
            # Where the operator's phone is, if no Asterisk has said yet.
            await routes.locate([operator.phone])
        # The board may lag the tracker by the coalescing delay: decide on the newest state
        # (and from here on without awaiting, so the call chosen is the call acted on).
        self.refresh()
        if routes is not None:
            call_id = self._call_of(request, operator)
            on_board = call_id in self.board.calls
            client = routes.client_for(call_id) if on_board else None
            if on_board and (client is None or not client.connected):
                raise Refusal(503, "ami_down", f"Asterisk {routes.name_for(call_id) or ''} "
                              "that holds the call is not connected; try again in a moment")
            if client is not None:
                ami = client
        elif not ami.connected:
            raise Refusal(503, "ami_down", "Asterisk is not connected; try again in a moment")
        plan = self.plan(request, operator)
        audit = {"user": operator.username, "action": plan.action, "call_id": plan.call_id,
                 **plan.detail}
        if plan.transfer is not None:
            self.transfers[plan.call_id] = replace(plan.transfer, started_wall=self.deps.clock())
        for step in plan.ami:
            try:
                await ami.action(step, timeout=5)
            except AmiActionError as exc:
                if plan.transfer is not None:
                    self.transfers.pop(plan.call_id, None)
                log.warning("console action refused by Asterisk",
                            extra={**audit, "ami": step["Action"], "error": str(exc)})
                raise Refusal(409, "conflict", f"Asterisk refused {step['Action']}: "
                              f"{exc}") from exc
            except AmiError as exc:
                if plan.transfer is not None:
                    self.transfers.pop(plan.call_id, None)
                log.warning("console action failed", extra={**audit, "error": repr(exc)})
                raise Refusal(503, "ami_down", "Asterisk did not take the action; try "
                              "again") from exc
        if plan.forget_transfer and plan.transfer is None:
            self.transfers.pop(plan.call_id, None)
        log.info("console action", extra=audit)
        self.touch()
        reply: dict[str, Any] = {"ok": True, "action": plan.action, "call_id": plan.call_id}
        if plan.wants_space:
            reply["space"] = await self._parking_space(plan.call_id)
        return reply

    async def _parking_space(self, call_id: str, wait_s: float = 3.0) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            parked = self.deps.tracker.parked.get(call_id)
            if parked is not None:
                return parked.space
            await asyncio.sleep(0.02)
        return None

    # --- subscribers ---------------------------------------------------------------------

    def _publish(self, event: str, data: Any, company: str | None = None) -> None:
        """Send an event to every stream that sees `company` (None: to every stream); a
        `board` to each stream with its own companies' calls."""
        self.seq += 1
        boards: dict[Scope, bytes] = {}
        message = b""
        if event != "board":
            message = sse(event, data, self.seq)
        for sub in list(self._subscribers):
            if event == "board":
                if sub.companies not in boards:
                    boards[sub.companies] = sse(event, self.board_json(sub.companies), self.seq)
                sub.offer(boards[sub.companies])
            elif sub.sees(company):
                sub.offer(message)
            if sub.closed:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            self.dropped_subscribers += 1
            log.warning("console stream dropped: too slow", extra={"subscribers":
                                                                   len(self._subscribers)})

    def subscribe(
        self,
        credential: Credential | None = None,
        connected: Callable[[], bool] = lambda: True,
        companies: Scope = None,
    ) -> tuple[Subscriber, bytes]:
        """A new subscriber and its first message (the whole board of `companies`' calls,
        consistent with every event queued for it afterwards). With a credential, the stream
        ends when it stops working or its companies change; raises TooManyStreams if its user
        has `streams_per_user` open already."""
        if credential is not None:
            self._forget_disconnected()
            mine = sum(1 for s in self._subscribers if s.credential is not None
                       and s.credential.user_id == credential.user_id)
            if mine >= self.deps.streams_per_user:
                raise TooManyStreams(self.deps.streams_per_user)
        sub = Subscriber(self.deps.queue_size, credential, connected, companies)
        self._subscribers.append(sub)
        self.seq += 1
        return sub, sse("board", self.board_json(companies), self.seq)

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def _end(self, sub: Subscriber, why: str) -> None:
        sub.close(why)
        self.unsubscribe(sub)

    def _forget_disconnected(self) -> None:
        """Streams whose client has gone (a reloaded page) stop counting at once, rather than
        at their next write."""
        for sub in list(self._subscribers):
            if not sub.connected():
                self._end(sub, "disconnected")

    async def recheck(self) -> None:
        """End the streams whose credentials no longer work or no longer allow the console."""
        self._forget_disconnected()
        checked = [s for s in self._subscribers if s.credential is not None]
        sessions = self.deps.sessions
        if not checked or sessions is None:
            return
        wanted = [(s.credential.kind, s.credential.digest) for s in checked
                  if s.credential is not None]
        try:
            async with sessions() as session:
                roles = await auth_store.live_roles(session, wanted)
        except Exception as exc:
            # Nobody can log out or be disabled while the database is away either; the
            # streams go on and are checked again as soon as it answers.
            if not self._recheck_failing:
                log.warning("console streams' credentials not checked",
                            extra={"error": repr(exc)})
            self._recheck_failing = True
            return
        self._recheck_failing = False
        for sub in checked:
            c = sub.credential
            if c is None or sub.closed:
                continue
            live = roles.get((c.kind, c.digest))
            if live is None:
                why = SESSION_ENDED
            elif not allowed(Principal(c.user_id, "", live[0], None), Action.CONSOLE):
                why = ROLE_CHANGED
            elif live[1] != sub.companies:
                why = SCOPE_CHANGED
            else:
                continue
            self.ended_streams += 1
            log.info("console stream ended: credentials withdrawn",
                     extra={"user_id": c.user_id, "via": c.kind, "why": why})
            self._end(sub, why)

    async def _guard(self) -> None:
        watch = self.deps.credentials
        while True:
            if watch is None:
                await asyncio.sleep(self.deps.recheck_s)
            else:
                await watch.wait(self.deps.recheck_s)
            try:
                await self.recheck()
            except Exception:  # a bug here must not end the checks for good
                log.exception("console stream check failed")

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


def _connected(request: web.Request) -> Callable[[], bool]:
    def connected() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return connected


async def serve(
    console: Console, request: web.Request, credential: Credential | None = None,
    companies: Scope = None,
) -> web.StreamResponse:
    """GET /console/stream: the board (of `companies`' calls), then its changes, until the
    client goes away or its credential stops working. Raises TooManyStreams before anything
    is sent."""
    sub, first = console.subscribe(credential, _connected(request), companies)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-store",
        "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
    })
    timeout = console.deps.write_timeout_s
    try:
        await response.prepare(request)
        await asyncio.wait_for(response.write(f"retry: {RETRY_MS}\n\n".encode() + first),
                               timeout)
        while True:
            got = await next_within(sub.queue, console.deps.ping_s)
            message = PING if got is None else got
            if isinstance(message, _Close):
                # No id: the browser's Last-Event-ID stays at the last event it really got.
                await asyncio.wait_for(response.write(sse("reconnect", {"why": message.why},
                                                          None)), timeout)
                break
            await asyncio.wait_for(response.write(message), timeout)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        # The client went away or stopped reading; it reconnects and gets a fresh board.
        log.info("console stream ended", extra={"why": repr(exc)})
    finally:
        console.unsubscribe(sub)
    return response
