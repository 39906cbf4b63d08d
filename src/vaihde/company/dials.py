"""Dial() strings of the configuration's phones, and whom a team's call rings now: one decision
shared by the caller flows (ringing) and the console (transfers), so both ring the same phones
and skip the same people.

Pure: availability and device reachability come in as lookups (the presence cache and
`vaihde.ami.devicestate.DeviceStates`); without them everyone and every phone counts as able to
answer, which is what the configuration alone says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from vaihde.company.schema import CompanyConfig, Employee, Team
from vaihde.presence.model import Availability


class Reach(StrEnum):
    """Whether a phone can ring now, from Asterisk's device state and registrations."""

    REACHABLE = "reachable"  # registered / idle (or ringing)
    IN_USE = "in_use"  # in a call (busy, on hold)
    UNREACHABLE = "unreachable"  # not registered, not answering qualify, or no such device
    UNKNOWN = "unknown"  # no state known (mobiles, or before the first look): rung


DeviceLookup = Callable[[str], Reach]
AvailabilityLookup = Callable[[str], Availability]


@dataclass(frozen=True, slots=True)
class Phone:
    """One phone of an employee as vaihde would dial it, with what is known of it now."""

    kind: str  # desk | mobile | softphone
    address: str  # as configured (a device, or a mobile number)
    dial: str  # the Dial() string
    seconds: int  # ring time when phones ring in order
    reach: Reach


def phones(
    employee: Employee, mobile_dial: str = "", device_reach: DeviceLookup | None = None
) -> list[Phone]:
    """Every phone of `employee` in ring order. Mobiles need a trunk template
    (`PJSIP/{number}@trunk`); without one they are left out rather than dialled wrong. Mobiles
    have no device state: their reach is UNKNOWN."""
    out = []
    for device in employee.devices:
        if device.kind == "mobile":
            if mobile_dial:
                dial = mobile_dial.format(number=device.address.lstrip("+"))
                out.append(Phone(device.kind, device.address, dial, device.seconds, Reach.UNKNOWN))
        else:
            reach = device_reach(device.address) if device_reach is not None else Reach.UNKNOWN
            out.append(Phone(device.kind, device.address, device.address, device.seconds, reach))
    return out


def device_dials(
    employee: Employee, mobile_dial: str = "", device_reach: DeviceLookup | None = None
) -> list[tuple[str, int]]:
    """(Dial string, seconds) of the employee's phones that may ring, in ring order: phones
    known to be unreachable are left out (no ring time wasted on a softphone that is off)."""
    return [(p.dial, p.seconds) for p in phones(employee, mobile_dial, device_reach)
            if p.reach is not Reach.UNREACHABLE]


# --- teams -------------------------------------------------------------------------------------


class Verdict(StrEnum):
    RING = "ring"
    ABSENT = "absent"  # their availability says they cannot take calls (vacation, meeting, …)
    ON_CALL = "on_call"  # in another call: skipped (ring-all) or passed over (in order)
    UNREACHABLE = "unreachable"  # none of their phones can ring now
    NO_PHONE = "no_phone"  # no phone vaihde can dial (e.g. only a mobile, without a trunk)


@dataclass(frozen=True, slots=True)
class Member:
    employee: str
    verdict: Verdict
    state: str  # their availability state ("" when availability was not consulted)
    dial: str = ""  # their phones that ring, `&`-joined ("" when skipped, or all shared)


@dataclass(frozen=True, slots=True)
class TeamPlan:
    """Whom a call to `team` rings now. `steps` are (dial string, seconds): one step with every
    member's phones (strategy all) or one step per member (in_order); a team with an Asterisk
    queue has `queue` instead (app_queue rings the members, vaihde pauses the absent ones).
    Neither: nobody in the team can answer, and `why` says why."""

    team: str
    members: tuple[Member, ...]
    steps: tuple[tuple[str, int], ...] = ()
    queue: str = ""

    @property
    def nobody(self) -> bool:
        return not self.steps and not self.queue

    @property
    def ringing(self) -> tuple[str, ...]:
        return tuple(m.employee for m in self.members if m.verdict is Verdict.RING)

    @property
    def why(self) -> str:
        """For a team nobody can answer: `busy` when someone could but is in another call,
        else `unreachable`, `absent` or `no-phones` (the most hopeful reason first)."""
        verdicts = {m.verdict for m in self.members}
        for verdict, word in ((Verdict.ON_CALL, "busy"), (Verdict.UNREACHABLE, "unreachable"),
                              (Verdict.ABSENT, "absent")):
            if verdict in verdicts:
                return word
        return "no-phones"

    def skipped(self) -> str:
        """`anna:vacation bob:on_call` for the call's story and the logs."""
        return " ".join(
            f"{m.employee}:{m.state if m.verdict is Verdict.ABSENT else m.verdict}"
            for m in self.members if m.verdict is not Verdict.RING
        )


def _member(
    employee: Employee,
    mobile_dial: str,
    availability: AvailabilityLookup | None,
    device_reach: DeviceLookup | None,
    queued: bool,
) -> tuple[Verdict, str, list[Phone]]:
    every = phones(employee, mobile_dial, device_reach)
    av = availability(employee.id) if availability is not None else None
    state = av.state.value if av is not None else ""
    if not every:
        return Verdict.NO_PHONE, state, []
    if av is not None and not av.reachable:
        return Verdict.ABSENT, state, []
    usable = [p for p in every if p.reach is not Reach.UNREACHABLE]
    if not usable:
        return Verdict.UNREACHABLE, state, []
    on_call = (av is not None and av.on_call) or any(p.reach is Reach.IN_USE for p in every)
    # In a queue a member in a call is app_queue's business (ringinuse=no): the caller waits
    # for them; ringing directly, they are skipped.
    if on_call and not queued:
        return Verdict.ON_CALL, state, []
    return Verdict.RING, state, usable


def plan_team(
    company: CompanyConfig,
    team: Team,
    mobile_dial: str = "",
    availability: AvailabilityLookup | None = None,
    device_reach: DeviceLookup | None = None,
) -> TeamPlan:
    """Whom to ring for `team` now (see TeamPlan). Members are taken in the team's order; a
    phone shared by several members rings once, with the first of them."""
    members: list[Member] = []
    seen: set[str] = set()
    queued = bool(team.queue)
    for member_id in team.members:
        employee = company.employees[member_id]
        verdict, state, usable = _member(employee, mobile_dial, availability, device_reach,
                                         queued)
        mine = [p.dial for p in usable if p.dial not in seen]
        seen.update(mine)
        members.append(Member(member_id, verdict, state, "&".join(mine)))
    rung = [m.dial for m in members if m.verdict is Verdict.RING and m.dial]
    if not rung:
        return TeamPlan(team.id, tuple(members))
    if queued:
        return TeamPlan(team.id, tuple(members), queue=team.queue)
    if team.strategy == "in_order":
        steps = tuple((dial, team.ring_seconds) for dial in rung)
    else:
        steps = (("&".join(rung), team.ring_seconds),)
    return TeamPlan(team.id, tuple(members), steps)


# --- forwarded calls ---------------------------------------------------------------------------

# The reason a call was forwarded, as Asterisk names it in REDIRECTING(reason) (the dialplan
# FILTERs it to letters and _), to the one word vaihde uses. Anything else is "unknown".
FORWARD_REASONS = {
    "cfnr": "no_answer",
    "no_answer": "no_answer",
    "cfb": "busy",
    "user_busy": "busy",
    "busy": "busy",
    "unavailable": "unavailable",
    "out_of_order": "unavailable",
    "cfu": "unconditional",
    "unconditional": "unconditional",
    "away": "away",
    "dnd": "dnd",
    "time_of_day": "time_of_day",
    "deflection": "deflection",
    "follow_me": "follow_me",
    "send_to_vm": "send_to_vm",
}


def forward_reason(raw: str) -> str:
    return FORWARD_REASONS.get(raw.strip().lower().replace("-", "_"), "unknown")


def same_number(a: str, b: str) -> bool:
    """Whether two phone numbers (digits, an optional +) are the same line: equal, or one in
    national form (0401234567) and the other international (+358401234567, 00358…). Numbers
    under 3 digits (and extensions against long numbers) never match by suffix."""
    x, y = _digits(a), _digits(b)
    if not x or not y:
        return False
    if x == y:
        return True
    for national, other in ((x, y), (y, x)):
        if national.startswith("0") and not national.startswith("00"):
            rest = national[1:]
            if len(rest) >= 6 and other.endswith(rest) and 1 <= len(other) - len(rest) <= 3:
                return True
    return False


def _digits(number: str) -> str:
    n = number.strip()
    if n.startswith("+"):
        n = n[1:]
    elif n.startswith("00"):
        n = n[2:]
    return n if n.isdigit() else ""


@dataclass(frozen=True, slots=True)
class ForwardedFrom:
    employee: str
    via: str  # mobile | direct (a direct number / desk line) | extension


def forwarded_from(company: CompanyConfig, number: str) -> ForwardedFrom | None:
    """The employee whose phone forwarded a call, by the redirecting number: a mobile, a
    direct number, or an extension."""
    if not number:
        return None
    for employee in company.employees.values():
        for device in employee.devices:
            if device.kind == "mobile" and same_number(device.address, number):
                return ForwardedFrom(employee.id, "mobile")
        if any(same_number(d, number) for d in employee.direct):
            return ForwardedFrom(employee.id, "direct")
    by_extension = company.employee_by_extension(number)
    if by_extension is not None:
        return ForwardedFrom(by_extension.id, "extension")
    return None


class HasEmployees(Protocol):
    """One company (CompanyConfig) or every company's roster (vaihde.company.tenants.Roster)."""

    @property
    def employees(self) -> Mapping[str, Employee]: ...


def devices_of(company: HasEmployees) -> Iterable[str]:
    """Every desk phone and softphone of the configuration, or of every company's roster
    (devices with a device state)."""
    for employee in company.employees.values():
        for device in employee.devices:
            if device.kind != "mobile":
                yield device.address
