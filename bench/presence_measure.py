"""The presence routing benchmark's measurements, as pure functions of what the benchmark did
(availability it set, calls it made) and what Asterisk reported (AMI events) and the service
stored (call stories): where each call had to go, which phones must never have rung, how long a
presence change took to reach app_queue.

No sockets and no clock here: bench/presence_routing_bench.py runs the calls, tests/unit checks
this.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import calls_measure as cm  # bench/ is on sys.path: it is this script's directory
from vaihde.ami.devicestate import device_of_channel
from vaihde.company.schema import EmployeeTarget, MenuTarget, TeamTarget

Event = Mapping[str, Any]
PHONES = "bench-phones"
SWITCHBOARD = "vaihde-switchboard"
OFF_PREFIX = "PJSIP/off-"  # softphones that never register: Asterisk would ring them for nothing


# --- availability as the benchmark set it --------------------------------------------------------


@dataclass
class Presence:
    """Each employee's availability over the run: (set from, set by, can take calls). A change
    is "set from" when the benchmark started it and "set by" when it was surely stored; the
    service may act on it anywhere in between, and up to `grace` seconds after (its poll)."""

    grace: float
    changes: dict[str, list[tuple[float, float, bool]]] = field(default_factory=dict)

    def set(self, employee: str, started: float, done: float, reachable: bool) -> None:
        self.changes.setdefault(employee, []).append((started, done, reachable))

    def possible(self, employee: str, at: float) -> set[bool]:
        """What the service may have believed about `employee` at `at`: {True}, {False}, or
        both while a change was on its way."""
        history = self.changes.get(employee, [])
        if not history:
            return {True}
        starts = [c[0] for c in history]
        i = bisect.bisect_right(starts, at) - 1
        if i < 0:
            return {True}  # before the first statement: nobody had said anything
        now = history[i][2]
        out = {now}
        done = history[i][1]
        if at <= done + self.grace and i > 0:
            out.add(history[i - 1][2])
        elif at <= done + self.grace and i == 0:
            out.add(True)
        return out

    def possible_between(self, employee: str, start: float, end: float) -> set[bool]:
        """Anything the service may have believed between `start` and `end` (a call's key and
        the moment the service acted on it: under load that can take a while)."""
        points = {start, max(start, end)}
        for begun, done, _ in self.changes.get(employee, []):
            points.update(t for t in (begun, done + self.grace) if start < t < end)
        out: set[bool] = set()
        for at in points:
            out |= self.possible(employee, at)
        return out

    def absent_for_sure(self, employee: str, start: float, end: float | None = None) -> bool:
        return self.possible_between(employee, start, start if end is None else end) == {False}


# --- the callers' plan ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """One simulated caller: the keys they may press (the last only if they are asked again:
    "0" at an offer), and whom they seek."""

    index: int
    kind: str  # team | person
    target: str  # team or employee id
    keys: tuple[str, ...]  # menu keys that choose the target
    reply: str = "0"  # at "nobody can answer" / "is away": the switchboard

    @property
    def presses(self) -> tuple[str, ...]:
        return (*self.keys, self.reply)


def plan_calls(company: Any, count: int) -> list[Plan]:
    """`count` callers cycling through the main menu's teams and the people menu."""
    choices: list[tuple[str, str, tuple[str, ...]]] = []
    main = company.menus["main"]
    for digit in sorted(main.options):
        match main.options[digit].target:
            case TeamTarget(id=team):
                choices.append(("team", team, (digit,)))
            case MenuTarget(id=submenu):
                sub = company.menus[submenu]
                for d2 in sorted(sub.options):
                    if isinstance(person := sub.options[d2].target, EmployeeTarget):
                        choices.append(("person", person.id, (digit, d2)))
    # Teams and people alternate, so a short run still has every kind.
    teams = [c for c in choices if c[0] == "team"]
    people = [c for c in choices if c[0] == "person"]
    mixed: list[tuple[str, str, tuple[str, ...]]] = []
    for i in range(max(len(teams), len(people))):
        if i < len(teams):
            mixed.append(teams[i])
        if i < len(people):
            mixed.append(people[i])
    return [Plan(i, *mixed[i % len(mixed)]) for i in range(count)]


def desk(company: Any, employee: str) -> str:
    return next(d.address for d in company.employees[employee].devices if d.kind == "desk")


def owner(device: str) -> str:
    """`Local/s1@bench-phones` → `s1`; `PJSIP/off-s1` → `s1`; else ""."""
    if device.startswith("Local/") and device.endswith("@" + PHONES):
        name = device[len("Local/"):-len(PHONES) - 1]
        return "" if name == "operator" else name
    if device.startswith(OFF_PREFIX):
        return device[len(OFF_PREFIX):]
    return ""


# --- phones in use ---------------------------------------------------------------------------

IN_USE = frozenset({"INUSE", "BUSY", "RINGINUSE", "ONHOLD"})


class Busy:
    """When each phone was in a call, from Asterisk's DeviceStateChange events: a team skips a
    member whose phone is in use."""

    def __init__(self, events: Iterable[Event], grace: float = 0.3) -> None:
        self.grace = grace
        self.states: dict[str, list[tuple[float, bool]]] = {}
        for e in events:
            if e.get("Event") == "DeviceStateChange":
                self.states.setdefault(str(e.get("Device", "")), []).append(
                    (cm.event_time(e), str(e.get("State", "")).upper() in IN_USE))

    def possible(self, device: str, start: float, end: float | None = None) -> set[bool]:
        """Whether the phone may have been in use, as far as the service knew, from `start`
        to `end` (default: at `start`)."""
        end = start if end is None else end
        history = self.states.get(device, [])
        out: set[bool] = set()
        before = [busy for t, busy in history if t <= start - self.grace]
        out.add(before[-1] if before else False)
        out.update(busy for t, busy in history if start - self.grace < t <= end)
        return out


# --- checks --------------------------------------------------------------------------------------


OPERATOR = "Local/operator@" + PHONES


def check_call(
    plan: Plan, tl: cm.Timeline, company: Any, presence: Presence, busy: Busy,
) -> list[str]:
    """Everything wrong with where this call went; [] when it went where the configuration and
    the availability of that moment say."""
    problems: list[str] = []
    if len(tl.digits) < len(plan.keys):
        return [f"Asterisk received keys {[d for _, d in tl.digits]}, expected {plan.keys}"]
    chose = tl.digits[len(plan.keys) - 1][0]  # the key that chose the target
    acted = decided_at(tl, chose)
    devices = [d for _, d in tl.dials]
    queues = [q for _, q in tl.queued]
    # The operators' queue rings only the operator's phone.
    to_operator = queues == [SWITCHBOARD] and all(d == OPERATOR for d in devices)
    if plan.kind == "person":
        can = presence.possible_between(plan.target, chose, acted)
        rung = devices == [desk(company, plan.target)] and not queues
        if not ((True in can and rung) or (False in can and to_operator)):
            problems.append(f"{plan.target} could take calls: {sorted(can)}; dialled "
                            f"{devices or 'nothing'}, queues {queues or 'none'}")
        return problems
    team = company.teams[plan.target]
    if team.queue:
        # app_queue rings the members: that none of them was away is absent_rung's check.
        if queues[:1] != [team.queue]:
            problems.append(f"expected the queue {team.queue}; queues {queues or 'none'}")
        return problems
    # Per member: may they have been rung (available and idle), must they have been?
    may, must = {}, {}
    for mb in team.members:
        phone = desk(company, mb)
        can = presence.possible_between(mb, chose, acted)
        used = busy.possible(phone, chose, acted)
        may[phone] = True in can and False in used
        must[phone] = can == {True} and used == {False}
    if not any(must.values()) and to_operator:
        return problems  # nobody surely could: "nobody can answer" was a right answer too
    if not any(may.values()):
        if not to_operator:
            problems.append(f"nobody in {team.id} could answer; dialled {devices or 'nothing'}"
                            f", queues {queues or 'none'}")
        return problems
    if queues:
        problems.append(f"{team.id}: joined {queues}, expected its members rung")
    seen = " ".join(
        f"{mb}:{'/'.join(sorted(str(v) for v in presence.possible_between(mb, chose, acted)))}"
        f"{'(busy?)' if True in busy.possible(desk(company, mb), chose, acted) else ''}"
        for mb in team.members)
    if team.strategy == "in_order":
        allowed = []
        for phone in (desk(company, mb) for mb in team.members):
            if may[phone]:
                allowed.append(phone)
            if must[phone]:
                break
        if devices[:1] == [] or devices[0] not in allowed:
            problems.append(f"{team.id} in order: first rang {devices[:1] or 'nothing'}, "
                            f"expected one of {allowed} ({chose:.3f}-{acted:.3f}: {seen})")
    else:
        got = set(devices)
        sure = {p for p, yes in must.items() if yes}
        maybe = {p for p, yes in may.items() if yes}
        if not sure <= got or not got <= maybe:
            problems.append(f"{team.id}: rang {sorted(got)}, expected {sorted(sure)} "
                            f"(+ maybe {sorted(maybe - sure)}; {chose:.3f}-{acted:.3f}: {seen})")
    return problems


def decided_at(tl: cm.Timeline, chose: float) -> float:
    """When the service acted on the caller's choice: its first AGI command after the key (the
    route, or the offer), else the call being routed."""
    after = [c.start for c in tl.commands if c.start >= chose]
    if after:
        return after[0]
    routed = cm.routed_at(tl)
    return routed if routed is not None else chose


def rings(
    events: Iterable[Event], decided: Mapping[str, float] | None = None,
) -> list[tuple[float, float, str, str]]:
    """Every time a phone was rung: (decided, rang, device, how). app_queue's AgentCalled rings
    by the queue's own live state (decided then and there); a Dial() rings what the service
    decided for the call (`decided`: by the caller's Uniqueid), which may be a moment earlier."""
    decided = decided or {}
    events = list(events)
    by_queue = {str(e.get("DestChannel", "")) for e in events if e.get("Event") == "AgentCalled"}
    out = []
    for e in events:
        name = e.get("Event")
        at = cm.event_time(e)
        if name == "DialBegin" and str(e.get("DestChannel", "")) not in by_queue:
            start = decided.get(str(e.get("Uniqueid", "")), at)
            out.append((min(start, at), at,
                        device_of_channel(str(e.get("DestChannel", ""))), "dial"))
        elif name == "AgentCalled":
            out.append((at, at, str(e.get("Interface", "")), "queue"))
    return out


def absent_rung(
    events: Iterable[Event], presence: Presence, decided: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Phones rung while their owner was surely away, from the decision to ring to the ring
    (not while a change was on its way)."""
    out = []
    for start, at, device, how in rings(events, decided):
        employee = owner(device)
        if employee and presence.absent_for_sure(employee, start, at):
            out.append({"at": round(at, 3), "device": device, "by": how})
    return out


def unreachable_rung(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [{"at": round(at, 3), "device": device, "by": how}
            for _, at, device, how in rings(events) if device.startswith(OFF_PREFIX)]


def pause_latencies(
    changes: Sequence[tuple[float, str, bool]], events: Sequence[Event],
) -> tuple[list[float], list[dict[str, Any]]]:
    """Seconds from each change of a queue member's availability (time, interface, paused) to
    Asterisk's QueueMemberPause saying so; and the changes that never got one."""
    pauses = [(float(e["_received"]), str(e.get("Interface", "")), str(e.get("Paused", "")))
              for e in events if e.get("Event") == "QueueMemberPause"]
    out, missing = [], []
    for at, interface, paused in changes:
        want = "1" if paused else "0"
        hit = next((t for t, i, p in pauses if i == interface and p == want and t >= at), None)
        if hit is None:
            missing.append({"at": round(at, 3), "interface": interface, "paused": paused})
        else:
            out.append(hit - at)
    return out, missing


# --- forwarded calls -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forwarded:
    caller: str  # the caller's number (unique per call: how the stored story is found)
    number: str  # the forwarding number, as the carrier sends it
    reason: str  # Diversion reason or History-Info cause
    header: str  # diversion | history-info
    employee: str  # whose phone forwarded it


def forwarded_plan(company: Any, count: int) -> list[Forwarded]:
    """`count` forwarded calls: mobiles in Diversion, direct numbers (else mobiles) in
    History-Info, cycling through everyone but the operator, with varied reasons."""
    people = [e for e in company.employees.values() if e.id != "olga"]
    diversion = ("no-answer", "user-busy", "unavailable", "unconditional")
    causes = ("408", "486", "480", "302")
    out = []
    for i in range(count):
        employee = people[i % len(people)]
        mobile = next(d.address for d in employee.devices if d.kind == "mobile")
        caller = f"0409{i:06d}"
        if i % 2 == 0:
            out.append(Forwarded(caller, mobile, diversion[i // 2 % 4], "diversion", employee.id))
        else:
            number = employee.direct[0] if employee.direct else mobile
            out.append(Forwarded(caller, number, causes[i // 2 % 4], "history-info",
                                 employee.id))
    return out


def check_forwarded(
    call: Forwarded, story: Mapping[str, Any] | None, events: Iterable[Event], company: Any,
) -> list[str]:
    problems = []
    if story is None:
        return ["no call story stored"]
    forwarded = story.get("forwarded") or {}
    if forwarded.get("employee") != call.employee:
        problems.append(f"forwarded from {forwarded or 'nobody'}, expected {call.employee}")
    if story.get("sought") != f"employee:{call.employee}" or story.get("path") != "forwarded":
        problems.append(f"sought {story.get('sought')!r} via {story.get('path')!r}")
    theirs = {d.address for d in company.employees[call.employee].devices}
    for e in events:
        if (e.get("Event") == "DialBegin" and str(e.get("CallerIDNum", "")) == call.caller
                and device_of_channel(str(e.get("DestChannel", ""))) in theirs):
            problems.append(f"rang {e.get('DestChannel')} again")
    return problems
