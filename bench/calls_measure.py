"""The calls benchmark's measurements, as pure functions of Asterisk's AMI events and the stored
call stories: the callers' plan, per-call timelines, silence, digit-to-ringing, routing checks.

No sockets and no clock here: bench/calls_bench.py runs the calls, tests/unit checks this.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaihde.ami.devicestate import device_of_channel
from vaihde.company.schema import EmployeeTarget, MenuTarget

Event = Mapping[str, Any]

# Availability states in which the flow rings the employee (vaihde.presence.model: REACHABLE,
# plus "on a call": a second call may still ring the phone).
REACHABLE_STATES = frozenset({"available", "busy", "on_call"})

# AGI commands during which the caller hears a sound or the service waits for their key: the
# time they run is not silence. Everything else (SET VARIABLE, ANSWER, the service thinking
# between commands) is.
AUDIBLE_COMMANDS = (
    "STREAM FILE", "CONTROL STREAM FILE", "GET DATA", "GET OPTION", "WAIT FOR DIGIT",
    "RECORD FILE", "SAY ",
)  # fmt: skip


# --- the callers' plan --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallPlan:
    """One simulated caller: the keys they press, and where that must take them."""

    index: int
    keys: tuple[str, ...]  # menu keys, entry menu first
    target: str  # the employee chosen
    state: str  # the availability the benchmark set for them
    reply: str  # the key pressed at the "is away" offer ("" when they are rung directly)
    expect: str  # employee | delegate | operator
    expect_device: str  # the one device Dial() must ring
    expect_phone: str  # the bench-phones extension that must answer
    expect_queue: str = ""  # the switchboard queue the caller must join first (operator route)

    @property
    def presses(self) -> tuple[str, ...]:
        return (*self.keys, self.reply) if self.reply else self.keys


def menu_targets(company: Any, entry: str = "main") -> list[tuple[tuple[str, ...], str]]:
    """(keys, employee id) for every employee reachable from `entry` through menu options, in
    menu order (depth first, each menu visited once)."""
    out: list[tuple[tuple[str, ...], str]] = []
    seen: set[str] = set()

    def walk(menu_id: str, keys: tuple[str, ...]) -> None:
        if menu_id in seen:
            return
        seen.add(menu_id)
        menu = company.menus[menu_id]
        for digit in sorted(menu.options):
            match menu.options[digit].target:
                case EmployeeTarget(id=employee):
                    out.append(((*keys, digit), employee))
                case MenuTarget(id=submenu):
                    walk(submenu, (*keys, digit))

    walk(entry, ())
    return out


def phone_of(device: str, context: str) -> str:
    """`Local/s1@bench-phones` → `s1` (the extension a bench phone announces), else ""."""
    if device.startswith("Local/") and device.endswith("@" + context):
        return device[len("Local/") : -len(context) - 1]
    return ""


def plan_calls(
    company: Any,
    states: Mapping[str, str],
    count: int,
    *,
    operators: str,
    phones_context: str,
    entry: str = "main",
    operator_queue: str = "",
) -> list[CallPlan]:
    """`count` callers cycling through every employee in the menus. An employee who is away is
    answered with their delegate (key 1) when they have a reachable one, else with 0 (operator).
    The expectation follows the configuration and `states` (employee → state; absent means
    available), never the service's code. With an `operator_queue` (the dialplan's
    VAIHDE_QUEUE) the operator route joins that queue, which then rings the operators."""
    targets = menu_targets(company, entry)
    if not targets:
        raise ValueError(f"no employee is reachable from menu {entry!r}")
    plans = []
    for i in range(count):
        keys, target = targets[i % len(targets)]
        employee = company.employees[target]
        state = states.get(target, "available")
        reply, expect, ringing = "", "employee", employee
        if state not in REACHABLE_STATES:
            delegate = next(
                (d for d in employee.delegates if states.get(d, "available") in REACHABLE_STATES),
                None,
            )
            if delegate is not None:
                reply, expect, ringing = "1", "delegate", company.employees[delegate]
            else:
                reply, expect, ringing = "0", "operator", None
        if ringing is None:
            device = operators
        else:
            devices = [d.address for d in ringing.devices if d.kind != "mobile"]
            if len(devices) != 1:
                raise ValueError(f"employee {ringing.id}: the benchmark needs exactly one phone")
            device = devices[0]
        phone = phone_of(device, phones_context)
        if not phone:
            raise ValueError(f"{device} is not a phone of [{phones_context}]")
        queue = operator_queue if expect == "operator" else ""
        plans.append(CallPlan(i, keys, target, state, reply, expect, device, phone, queue))
    return plans


# --- per-call timelines from AMI events ----------------------------------------------------------


def event_time(event: Event) -> float:
    """When Asterisk sent the event (manager.conf timestampevents), else when it was received."""
    stamp = event.get("Timestamp")
    if stamp:
        return float(stamp)
    return float(event["_received"])


@dataclass(slots=True)
class Command:
    start: float
    end: float | None
    text: str

    @property
    def audible(self) -> bool:
        return self.text.upper().startswith(AUDIBLE_COMMANDS)


@dataclass(slots=True)
class Timeline:
    """What Asterisk reported about one caller's channel (the leg running vaihde's dialplan)."""

    call_id: str
    linkedid: str = ""
    created: float | None = None
    answered: float | None = None
    hangup: float | None = None
    commands: list[Command] = field(default_factory=list)
    digits: list[tuple[float, str]] = field(default_factory=list)  # DTMF received
    dials: list[tuple[float, str]] = field(default_factory=list)  # DialBegin: time, device
    dial_status: list[str] = field(default_factory=list)  # DialEnd
    queued: list[tuple[float, str]] = field(default_factory=list)  # QueueCallerJoin: time, queue
    phones: list[str] = field(default_factory=list)  # bench phones that announced this call


def timelines(events: Iterable[Event], call_ids: Iterable[str]) -> dict[str, Timeline]:
    """Timelines of the calls whose leg into vaihde has these Uniqueids."""
    out = {cid: Timeline(cid) for cid in call_ids}
    pending: dict[tuple[str, str], Command] = {}
    phones: list[tuple[str, str]] = []  # (linkedid, phone)
    for e in events:
        name = e.get("Event", "")
        if name == "UserEvent" and e.get("UserEvent") == "BenchPhone":
            phones.append((str(e.get("Linkedid", "")), str(e.get("Phone", ""))))
            continue
        tl = out.get(str(e.get("Uniqueid", "")))
        if tl is None:
            continue
        t = event_time(e)
        if name == "Newchannel":
            tl.created, tl.linkedid = t, str(e.get("Linkedid", ""))
        elif name == "Newstate" and e.get("ChannelState") == "6" and tl.answered is None:
            tl.answered = t
        elif name == "AGIExecStart":
            command = Command(t, None, str(e.get("Command", "")))
            tl.commands.append(command)
            pending[(tl.call_id, str(e.get("CommandId", "")))] = command
        elif name == "AGIExecEnd":
            started = pending.pop((tl.call_id, str(e.get("CommandId", ""))), None)
            if started is not None:
                started.end = t
        elif name == "DTMFEnd" and e.get("Direction") == "Received":
            tl.digits.append((t, str(e.get("Digit", ""))))
        elif name == "DialBegin":
            tl.dials.append((t, device_of_channel(str(e.get("DestChannel", "")))))
        elif name == "QueueCallerJoin":
            tl.queued.append((t, str(e.get("Queue", ""))))
        elif name == "DialEnd":
            tl.dial_status.append(str(e.get("DialStatus", "")))
        elif name == "Hangup":
            tl.hangup = t
    by_link: dict[str, list[str]] = {}
    for linkedid, phone in phones:
        by_link.setdefault(linkedid, []).append(phone)
    for tl in out.values():
        if tl.linkedid:
            tl.phones = by_link.get(tl.linkedid, [])
    return out


def routed_at(tl: Timeline) -> float | None:
    """When the caller left the service's hands: Dial() started ringing a phone, or the caller
    joined the switchboard queue (where they hear music while the operators' phones ring)."""
    times = [t for t, _ in tl.dials[:1]] + [t for t, _ in tl.queued[:1]]
    return min(times) if times else None


def silence_gaps(tl: Timeline) -> list[tuple[float, float]]:
    """Stretches from the answer until the call is routed (`routed_at`; else its end) in which
    no sound played and the service was not waiting for a key: the answer-to-first-command gap,
    the service's think time between commands, SET VARIABLEs, the way from the last command to
    Dial() or the queue."""
    start = tl.answered if tl.answered is not None else (
        tl.commands[0].start if tl.commands else None
    )
    if start is None:
        return []
    routed = routed_at(tl)
    ends = [routed] if routed is not None else []
    if not ends and tl.hangup is not None:
        ends = [tl.hangup]
    if not ends:
        ends = [max((c.end or c.start for c in tl.commands), default=start)]
    stop = ends[0]
    covered = sorted((c.start, c.end if c.end is not None else stop) for c in tl.commands
                     if c.audible)
    gaps, cursor = [], start
    for begin, end in covered:
        if begin >= stop:
            break
        if begin > cursor:
            gaps.append((cursor, begin))
        cursor = max(cursor, end)
    if cursor < stop:
        gaps.append((cursor, stop))
    return gaps


def longest_silence(tl: Timeline) -> float:
    return max((b - a for a, b in silence_gaps(tl)), default=0.0)


def digit_to_ringing(tl: Timeline) -> float | None:
    """Seconds from the caller's last key to the call being routed: Dial() ringing the first
    device, or (operator route) joining the switchboard queue."""
    rang = routed_at(tl)
    if rang is None:
        return None
    before = [t for t, _ in tl.digits if t <= rang]
    return rang - before[-1] if before else None


def peak_concurrency(intervals: Iterable[tuple[float, float | None]]) -> int:
    """Most intervals open at one instant (an open end counts as still open)."""
    edges: list[tuple[float, int]] = []
    for begin, end in intervals:
        edges.append((begin, 1))
        edges.append((end if end is not None else math.inf, -1))
    peak = level = 0
    for _, step in sorted(edges, key=lambda x: (x[0], x[1])):  # ends before starts at a tie
        level += step
        peak = max(peak, level)
    return peak


# --- routing checks -----------------------------------------------------------------------------


def check_call(plan: CallPlan, tl: Timeline, story: Mapping[str, Any] | None) -> list[str]:
    """Everything wrong with where this call went, by Asterisk's events and by the service's
    stored story; [] when both say it went where the configuration and presence say."""
    problems = []
    keys = "".join(d for _, d in tl.digits)
    if keys != "".join(plan.presses):
        problems.append(f"Asterisk received keys {keys!r}, the caller pressed {plan.presses}")
    devices = [d for _, d in tl.dials]
    queues = [q for _, q in tl.queued]
    if plan.expect_queue:
        # The queue rings the operators (again after its retry) and may not reach one before
        # the caller gives up: every leg must be an operator's, and the caller must be queued.
        if queues != [plan.expect_queue]:
            problems.append(f"queues joined {queues or 'none'}, expected {plan.expect_queue}")
        if any(d != plan.expect_device for d in devices):
            problems.append(f"dialled {devices}, expected only {plan.expect_device}")
        if any(p != plan.expect_phone for p in tl.phones):
            problems.append(f"phones reached {tl.phones}, expected only {plan.expect_phone}")
    else:
        if queues:
            problems.append(f"joined queue {queues}, expected {plan.expect_device} rung")
        if devices != [plan.expect_device]:
            problems.append(f"dialled {devices or 'nothing'}, expected {plan.expect_device}")
        if tl.phones != [plan.expect_phone]:
            problems.append(f"phones reached {tl.phones or 'none'}, "
                            f"expected {plan.expect_phone}")
        if tl.dial_status[:1] != ["ANSWER"]:
            problems.append(f"dial status {tl.dial_status or 'none'}, expected ANSWER")
    if story is None:
        problems.append("no call story stored")
        return problems
    if story.get("sought") != f"employee:{plan.target}" or story.get("path") != "menu_option":
        problems.append(
            f"story: sought {story.get('sought')!r} via {story.get('path')!r}, "
            f"expected employee:{plan.target} via menu_option"
        )
    steps = list(story.get("steps", ()))
    menu_keys = tuple(str(s.get("key", "")) for s in steps if s.get("kind") == "menu")
    if menu_keys != plan.keys:
        problems.append(f"story: menu keys {menu_keys}, pressed {plan.keys}")
    states = [s.get("state") for s in steps
              if s.get("kind") == "availability" and s.get("employee") == plan.target]
    want_reachable = plan.state in REACHABLE_STATES
    if not states or (states[0] in REACHABLE_STATES) != want_reachable or (
        not want_reachable and states[0] != plan.state
    ):
        problems.append(f"story: availability {states or 'not read'}, set {plan.state}")
    routes = [s.get("route") for s in steps if s.get("kind") == "routed"]
    want_route = "tooperator" if plan.expect == "operator" else "ring"
    if routes[-1:] != [want_route]:
        problems.append(f"story: routed {routes or 'nowhere'}, expected {want_route}")
    dialled = [(device_of_channel(str(s.get("device", ""))), s.get("status"))
               for s in steps if s.get("kind") == "dial"]
    if plan.expect_queue:
        if any(device != plan.expect_device for device, _ in dialled):
            problems.append(f"story: dial {dialled}, expected only {plan.expect_device}")
    elif dialled != [(plan.expect_device, "answer")]:
        problems.append(f"story: dial {dialled or 'none'}, expected {plan.expect_device} answered")
    return problems


# --- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    """n, median, p95 and max in milliseconds (None when there are no values)."""
    if not values_s:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    return {
        "n": len(values_s),
        "median_ms": round(statistics.median(values_s) * 1000, 1),
        "p95_ms": round(percentile(values_s, 0.95) * 1000, 1),
        "max_ms": round(max(values_s) * 1000, 1),
    }
