"""Teams' Asterisk queues follow availability: every member's phones are queue members, paused
(AMI QueuePause, the reason their availability: vacation, meeting, off_work…) while they cannot
take calls, so app_queue never rings someone who is away.

The team queues (those a team names with `queue:`) are vaihde's to fill: on every (re)connect to
AMI (and so after an Asterisk restart) and after a new company configuration, vaihde reads each
team queue (QueueStatus), adds the members' desk phones, softphones and (with a trunk template)
mobiles that are missing (QueueAdd, dynamic, paused as their availability says), removes the
dynamic members that are no longer a member's phone, and pauses or unpauses the rest. Members
written into queues.conf (static) are never removed, only paused and unpaused like the others
when they are an employee's phone. Between resyncs every availability change is sent at once.

`seats`, `wanted` and `sync_actions` decide (pure); `QueueMembers` is the thin AMI edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vaihde.ami.client import AmiActionError
from vaihde.company.dials import phones
from vaihde.company.schema import Employee, Team
from vaihde.presence.model import Availability

log = logging.getLogger("vaihde.ami.queues")

Key = tuple[str, str]  # (queue, interface)


class Staff(Protocol):
    """Whose phones fill which team queues: one company (CompanyConfig) or every company the
    service answers for (vaihde.company.tenants.Roster; queue names are unique across them)."""

    @property
    def teams(self) -> Mapping[str, Team]: ...
    @property
    def employees(self) -> Mapping[str, Employee]: ...
    def employee_by_device(self, device: str) -> Employee | None: ...


@dataclass(frozen=True, slots=True)
class Seat:
    """One queue membership vaihde wants: an employee's phone in a team's queue."""

    queue: str
    interface: str  # the Dial() string app_queue rings
    employee: str
    name: str  # MemberName: the employee's name, as app_queue's events and reports show
    state_interface: str  # where app_queue reads the device state ("" for mobiles)


@dataclass(frozen=True, slots=True)
class Held:
    """A member as Asterisk has it."""

    paused: bool
    reason: str
    dynamic: bool = True


# The state interface of a member this Asterisk rings through another one (a phone that lives
# there): a custom device state nobody sets, so always UNKNOWN, which app_queue rings. The phone's
# own name here would be INVALID (no such phone on this Asterisk) and never rung; absence still
# pauses the member.
ELSEWHERE = "Custom:vaihde-elsewhere"

Via = Callable[[str], str]


def seats(company: Staff, mobile_dial: str = "", via: Via | None = None) -> list[Seat]:
    """Every membership the team queues should have, in team and ring order. `via`: how this
    Asterisk dials a phone (several Asterisks: a phone on another one through its trunk)."""
    out: dict[Key, Seat] = {}
    for team in company.teams.values():
        if not team.queue:
            continue
        for member in team.members:
            employee = company.employees[member]
            for phone in phones(employee, mobile_dial):
                state = phone.address if phone.kind != "mobile" else ""
                interface = phone.dial
                if via is not None:
                    interface = via(phone.dial)
                    if interface != phone.dial:
                        state = ELSEWHERE
                out.setdefault((team.queue, interface),
                               Seat(team.queue, interface, employee.id, employee.name, state))
    return list(out.values())


def team_queues(company: Staff) -> list[str]:
    return sorted({t.queue for t in company.teams.values() if t.queue})


def wanted(av: Availability) -> Held:
    """Paused while their availability says they cannot take calls; the state is the reason."""
    return Held(paused=not av.reachable, reason=av.state.value)


def differs(have: Held, want: Held) -> bool:
    # An unpaused member's reason is whatever Asterisk kept; only a pause's reason matters.
    return have.paused != want.paused or (want.paused and have.reason != want.reason)


def pause_action(key: Key, want: Held) -> dict[str, str]:
    queue, interface = key
    return {"Action": "QueuePause", "Queue": queue, "Interface": interface,
            "Paused": "true" if want.paused else "false", "Reason": want.reason}


def sync_actions(
    company: Staff,
    held: Mapping[Key, Held],
    availability: Callable[[str], Availability],
    mobile_dial: str = "",
    queues: Iterable[str] | None = None,
    via: Via | None = None,
) -> list[dict[str, str]]:
    """The AMI actions that make the team queues (`queues`: those Asterisk has; default all)
    hold exactly the wanted members, each paused as their availability says."""
    managed = set(team_queues(company) if queues is None else queues)
    want_seats = [s for s in seats(company, mobile_dial, via) if s.queue in managed]
    actions: list[dict[str, str]] = []
    for seat in want_seats:
        key = (seat.queue, seat.interface)
        want = wanted(availability(seat.employee))
        have = held.get(key)
        if have is None:
            add = {"Action": "QueueAdd", "Queue": seat.queue, "Interface": seat.interface,
                   "MemberName": seat.name, "Paused": "true" if want.paused else "false"}
            if want.paused:
                add["Reason"] = want.reason
            if seat.state_interface:
                add["StateInterface"] = seat.state_interface
            actions.append(add)
        elif differs(have, want):
            actions.append(pause_action(key, want))
    wanted_keys = {(s.queue, s.interface) for s in want_seats}
    for key, have in sorted(held.items()):
        queue, interface = key
        if queue not in managed or key in wanted_keys:
            continue
        if have.dynamic:
            actions.append({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
            continue
        # A member from queues.conf: left in place, paused like the employee whose phone it is.
        employee = company.employee_by_device(interface)
        if employee is not None:
            want = wanted(availability(employee.id))
            if differs(have, want):
                actions.append(pause_action(key, want))
    return actions


def _held(event: Mapping[str, Any]) -> Held:
    """A QueueMember or QueueMember* event's member."""
    return Held(paused=str(event.get("Paused", "0")) == "1",
                reason=str(event.get("PausedReason", "")),
                dynamic=str(event.get("Membership", "dynamic")).lower() != "static")


def held_from_status(events: Iterable[Mapping[str, Any]]) -> tuple[dict[Key, Held], set[str]]:
    """QueueStatus's list: the members (by queue and interface) and the queues that exist."""
    held: dict[Key, Held] = {}
    found: set[str] = set()
    for event in events:
        kind = str(event.get("Event", ""))
        queue = str(event.get("Queue", ""))
        if kind == "QueueParams" and queue:
            found.add(queue)
        elif kind == "QueueMember" and queue:
            interface = str(event.get("Location") or event.get("Interface") or "")
            if interface:
                held[(queue, interface)] = _held(event)
    return held, found


class _Client(Protocol):
    @property
    def connected(self) -> bool: ...
    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any: ...
    def add_event_listener(self, cb: Callable[[Mapping[str, Any]], None]) -> None: ...
    def add_on_connected(self, hook: Callable[[Any], Any]) -> None: ...


class QueueMembers:
    """Keeps the team queues' members as `sync_actions` wants them: a full resync on every AMI
    login and company change, and a QueuePause as soon as someone's availability changes
    (`availability_changed`, a PresenceCache subscriber)."""

    def __init__(
        self,
        client: _Client,
        company: Callable[[], Staff | None],
        availability: Callable[[str], Availability],
        mobile_dial: str = "",
        via: Via | None = None,
    ) -> None:
        self.client = client
        self.company = company
        self.availability = availability
        self.mobile_dial = mobile_dial
        # How this Asterisk dials a phone (several Asterisks: vaihde.ami.cluster); None = as is.
        self.via = via
        self.held: dict[Key, Held] = {}
        self.queues: set[str] = set()  # team queues Asterisk has (as of the last resync)
        self.synced = False
        self.sent = 0  # actions sent (for the benchmark and tests)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._missing_logged: set[str] = set()
        self._lock = asyncio.Lock()
        # Per company version: interface → employee, and employee → their seats.
        self._index: tuple[Staff, dict[str, str], dict[str, list[Seat]]] | None = None

    def attach(self) -> None:
        self.client.add_event_listener(self.apply)
        self.client.add_on_connected(self.resync)

    # --- what Asterisk says -------------------------------------------------------------------

    def apply(self, event: Mapping[str, Any]) -> None:
        """QueueMember* events keep `held` true to Asterisk; a member someone else unpaused
        while away is paused again."""
        kind = str(event.get("Event", ""))
        if kind not in ("QueueMemberAdded", "QueueMemberPause", "QueueMemberStatus",
                        "QueueMemberRemoved"):
            return
        queue, interface = str(event.get("Queue", "")), str(event.get("Interface", ""))
        if queue not in self.queues or not interface:
            return
        key = (queue, interface)
        if kind == "QueueMemberRemoved":
            self.held.pop(key, None)
        else:
            self.held[key] = _held(event)
        if kind == "QueueMemberStatus":
            return  # device state news (in a call or not); pauses come as QueueMemberPause
        employee = self._owner(interface)
        have = self.held.get(key)
        if employee and have is not None:
            av = self.availability(employee)
            if differs(have, wanted(av)):
                log.info("queue member changed by someone else; putting it back",
                         extra={"queue": queue, "interface": interface})
                self.availability_changed(av)

    def _indexes(
        self, company: Staff
    ) -> tuple[dict[str, str], dict[str, list[Seat]]]:
        if self._index is None or self._index[0] is not company:
            every = seats(company, self.mobile_dial, self.via)
            owners = {s.interface: s.employee for s in every}
            for employee in company.employees.values():
                for phone in phones(employee, self.mobile_dial):
                    owners.setdefault(phone.dial, employee.id)
            by_employee: dict[str, list[Seat]] = {}
            for seat in every:
                by_employee.setdefault(seat.employee, []).append(seat)
            self._index = (company, owners, by_employee)
        return self._index[1], self._index[2]

    def _owner(self, interface: str) -> str:
        """The employee whose phone `interface` is ("" if nobody's)."""
        company = self.company()
        return self._indexes(company)[0].get(interface, "") if company is not None else ""

    # --- what vaihde wants --------------------------------------------------------------------

    def availability_changed(self, av: Availability) -> None:
        """Presence subscriber (sync, cheap): the worker sends what changed."""
        self._dirty.add(av.employee_id)
        self._wake.set()

    async def run(self) -> None:
        """Send pauses for changed employees until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            if not self.synced or not self.client.connected:
                continue  # the next resync sets everyone
            company = self.company()
            if company is None:
                continue
            actions = []
            by_employee = self._indexes(company)[1]
            for seat in (s for employee in dirty for s in by_employee.get(employee, ())):
                if seat.queue not in self.queues:
                    continue
                key = (seat.queue, seat.interface)
                have = self.held.get(key)
                want = wanted(self.availability(seat.employee))
                if have is not None and differs(have, want):
                    actions.append(pause_action(key, want))
            # Static members (queues.conf) that are some employee's phone.
            for key, have in list(self.held.items()):
                owner = self._owner(key[1]) if not have.dynamic else ""
                if owner in dirty:
                    want = wanted(self.availability(owner))
                    if differs(have, want):
                        actions.append(pause_action(key, want))
            await self._send(actions)

    async def resync(self, client: Any = None) -> None:
        """Read every team queue and put it right (AMI on_connected hook; company changes)."""
        company = self.company()
        if company is None:
            return
        names = team_queues(company)
        async with self._lock:
            held: dict[Key, Held] = {}
            found: set[str] = set()
            try:
                for queue in names:
                    response = await self.client.action({"Action": "QueueStatus", "Queue": queue})
                    more, exists = held_from_status(getattr(response, "events", ()))
                    held.update(more)
                    found |= exists
            except AmiActionError as exc:
                # Refused (permissions?): routing still skips the absent, only app_queue's own
                # ringing does not know. Never a reason to drop the AMI session.
                log.error("team queues not read", extra={"error": str(exc)})
                self.synced = False
                return
            for queue in set(names) - found - self._missing_logged:
                log.warning("a team's queue does not exist in Asterisk: define it in "
                            "queues.conf (see config/asterisk/queues-vaihde.conf)",
                            extra={"queue": queue})
                self._missing_logged.add(queue)
            self.queues, self.held = found, held
            if self.via is not None:
                self._index = None  # the phones' ways from this Asterisk as of now
            actions = sync_actions(company, held, self.availability, self.mobile_dial, found,
                                   self.via)
            await self._send(actions)
            self.synced = True
        if actions:
            log.info("team queues synced", extra={"queues": len(found), "actions": len(actions)})

    async def _send(self, actions: list[dict[str, str]]) -> None:
        async def one(action: dict[str, str]) -> None:
            try:
                await self.client.action(action)
                self.sent += 1
            except Exception as exc:  # the next change or resync tries again
                log.warning("queue member not updated", extra={
                    "queue": action.get("Queue"), "interface": action.get("Interface"),
                    "ami_action": action.get("Action"), "error": repr(exc)})

        if actions:
            await asyncio.gather(*(one(a) for a in actions))
