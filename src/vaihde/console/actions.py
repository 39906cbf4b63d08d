"""What the operator does to calls, decided purely: for a request and the board as it is now,
either a Plan (the AMI actions to send, in order, and what the console should remember) or a
Refusal (409 when the call's state does not allow it, 400 for a bad target).

Nothing from the browser reaches Asterisk as it came: call ids only pick a call on the board,
targets are looked up in the company configuration (devices validated when it was applied),
numbers must be digits, and every device string is checked against DEVICE once more here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vaihde import contract
from vaihde.ami.devicestate import device_of_channel
from vaihde.ami.tracker import Channel
from vaihde.company.dials import (
    AvailabilityLookup,
    DeviceLookup,
    Verdict,
    device_dials,
    plan_team,
)
from vaihde.company.schema import CompanyConfig, Employee
from vaihde.config.patterns import DEVICE, NUMBER
from vaihde.config.patterns import UNIQUEID as CALL_ID
from vaihde.console.board import Transfer
from vaihde.errors import VaihdeError

ACTIONS = ("answer", "answer-next", "transfer", "complete", "cancel", "park", "retrieve",
           "hangup")


class Refusal(VaihdeError):
    """The request cannot be carried out; `status` and `code` for the API's error JSON."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field, code=code, status=status)


@dataclass(frozen=True, slots=True)
class Operator:
    username: str
    phone: str | None  # the user's sip_endpoint (validated when the user was saved)
    # The companies whose calls they serve (None: every company's).
    companies: frozenset[str] | None = None

    def serves(self, call: Mapping[str, Any]) -> bool:
        return self.companies is None or call_company(call) in self.companies


def call_company(call: Mapping[str, Any]) -> str:
    """The id of the company a board's call belongs to (its card's; `main` without one)."""
    company = call.get("company")
    return str(company["id"]) if company else "main"


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # employee | team | number
    ref: str


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    call_id: str | None = None
    to: Target | None = None
    mode: str = "blind"


@dataclass(frozen=True, slots=True)
class Limits:
    bounce_s: int = 20  # a blind transfer rings this long before it comes back
    ring_s: int = 30  # the operator's own phone rings this long
    mobile_dial: str = ""  # Dial() template for outside numbers, e.g. PJSIP/{number}@trunk


@dataclass(frozen=True)
class Plan:
    action: str
    call_id: str
    ami: tuple[dict[str, str], ...]
    transfer: Transfer | None = None  # remember this transfer for the call
    forget_transfer: bool = False
    wants_space: bool = False  # the reply names the parking space
    detail: dict[str, Any] = field(default_factory=dict)  # for the audit log


@dataclass(frozen=True, slots=True)
class Presence:
    """What transfers consult besides the configuration: everyone's availability and their
    phones' reach (the same lookups the caller flows use)."""

    availability: AvailabilityLookup | None = None
    device_reach: DeviceLookup | None = None


# Device → how the Asterisk that holds the call dials it (several Asterisks: a phone that lives
# on another one through its `reach` template, vaihde.ami.cluster.dial_via); None = as it is.
Via = Callable[[str], str]


def _same(device: str) -> str:
    return device


def _rewrite(dial: str, via: Via) -> str:
    return "&".join(via(part) for part in dial.split("&"))


MAX_STEPS = 8  # steps [vaihde-console-ring] walks (VAIHDE_CONSOLE_DIAL … VAIHDE_CONSOLE_DIAL8)


@dataclass(frozen=True, slots=True)
class Resolved:
    label: str  # employee:anna
    name: str
    dial: str  # the first (or only) step's Dial() string; "" for a queue
    ring_s: int | None = None  # the first step's ring time (None: the console's bounce time)
    then: tuple[tuple[str, int], ...] = ()  # a team in order: the next (dial, seconds) steps
    queue: str = ""  # a team with its own Asterisk queue

    def through(self, via: Via) -> Resolved:
        """The same target as the call's Asterisk dials it (a phone on another Asterisk
        through that one's trunk)."""
        return replace(
            self, dial=_device(_rewrite(self.dial, via), self.name) if self.dial else "",
            then=tuple((_device(_rewrite(d, via), self.name), s) for d, s in self.then))

    def ring_variables(self, channel: str, bounce_s: int) -> list[dict[str, str]]:
        """Setvars for [vaihde-console-ring]: where to ring, how long, what next; the step
        after the last is emptied so nothing from an earlier transfer is rung."""
        out = [
            setvar(channel, contract.CONSOLE_QUEUE, self.queue),
            setvar(channel, contract.CONSOLE_DIAL, self.dial),
            setvar(channel, contract.CONSOLE_RING, str(self.ring_s or bounce_s)),
        ]
        for n, (dial, seconds) in enumerate(self.then, start=2):
            out += [setvar(channel, f"{contract.CONSOLE_DIAL}{n}", dial),
                    setvar(channel, f"{contract.CONSOLE_RING}{n}", str(seconds))]
        if len(self.then) + 2 <= MAX_STEPS:
            out.append(setvar(channel, f"{contract.CONSOLE_DIAL}{len(self.then) + 2}", ""))
        return out


def setvar(channel: str, name: str, value: str) -> dict[str, str]:
    return {"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value}


def redirect(
    channel: str, context: str, extra: str = "", extra_context: str = ""
) -> dict[str, str]:
    out = {"Action": "Redirect", "Channel": channel, "Context": context, "Exten": "s",
           "Priority": "1"}
    if extra:
        out.update(ExtraChannel=extra, ExtraContext=extra_context, ExtraExten="s",
                   ExtraPriority="1")
    return out


def _device(dial: str, what: str) -> str:
    for part in dial.split("&"):
        if not DEVICE.match(part):
            raise Refusal(400, "invalid", f"{what}: {part!r} is not a device vaihde may dial", "to")
    return dial


def _employee(employee: Employee, limits: Limits, presence: Presence) -> Resolved:
    # A transfer rings all of someone's phones at once, whatever their own ring order; only
    # those that can ring now (the operator chose the person, absent or not: they see why).
    if not device_dials(employee, limits.mobile_dial):
        raise Refusal(409, "no_phone", f"{employee.name} has no phone to ring", "to")
    dials = [d for d, _ in device_dials(employee, limits.mobile_dial, presence.device_reach)]
    if not dials:
        raise Refusal(409, "unreachable", f"none of {employee.name}'s phones can ring now "
                      "(not registered or not answering)", "to")
    return Resolved(f"employee:{employee.id}", employee.name,
                    _device("&".join(dials), employee.name))


_SKIP_WORDS = {Verdict.ON_CALL: "on a call", Verdict.UNREACHABLE: "phones unreachable",
               Verdict.NO_PHONE: "no phone"}


def resolve_target(
    target: Target, company: CompanyConfig | None, limits: Limits,
    presence: Presence | None = None,
) -> Resolved:
    """Whom to ring for a transfer: the configuration, and for a team the same decision as
    the caller flow (`plan_team`: its strategy or queue, without the members who cannot
    answer now)."""
    presence = presence or Presence()
    if company is None:
        raise Refusal(503, "unavailable", "no company configuration is loaded")
    if target.kind == "employee":
        employee = company.employees.get(target.ref)
        if employee is None:
            raise Refusal(400, "invalid", f"no employee {target.ref!r}", "to")
        return _employee(employee, limits, presence)
    if target.kind == "team":
        team = company.teams.get(target.ref)
        if team is None:
            raise Refusal(400, "invalid", f"no team {target.ref!r}", "to")
        plan = plan_team(company, team, limits.mobile_dial, presence.availability,
                         presence.device_reach)
        label = f"team:{team.id}"
        if plan.queue:
            return Resolved(label, team.name, "", team.ring_seconds, queue=plan.queue)
        if plan.nobody:
            if not any(m.verdict is not Verdict.NO_PHONE for m in plan.members):
                raise Refusal(409, "no_phone", f"nobody in {team.name} has a phone to ring",
                              "to")
            why = ", ".join(
                f"{company.employees[m.employee].name} "
                f"({m.state if m.verdict is Verdict.ABSENT else _SKIP_WORDS[m.verdict]})"
                for m in plan.members)
            raise Refusal(409, "nobody_available",
                          f"nobody in {team.name} can take a call now: {why}", "to")
        steps = [(_device(d, team.name), s) for d, s in plan.steps[:MAX_STEPS]]
        (dial, seconds), *rest = steps
        return Resolved(label, team.name, dial, seconds, tuple(rest))
    if target.kind == "number":
        if not NUMBER.match(target.ref):
            raise Refusal(400, "invalid", "a number is 3-32 digits, optionally after +", "to")
        digits = target.ref.lstrip("+")
        employee = company.employee_by_extension(digits) or company.employee_by_number(digits)
        if employee is not None:
            return _employee(employee, limits, presence)
        if not limits.mobile_dial:
            raise Refusal(400, "no_outside_line", "outside numbers need an outside line "
                          "(service.mobile_dial in the settings)", "to")
        return Resolved(f"number:{digits}", digits,
                        _device(limits.mobile_dial.format(number=digits), "number"))
    raise Refusal(400, "invalid", "give one of employee, team or number", "to")


def _phone(operator: Operator, what: str) -> str:
    if not operator.phone or not DEVICE.match(operator.phone):
        raise Refusal(409, "no_phone", f"{what} needs your phone: your user has no sip_endpoint "
                      "(an admin sets it with vaihde user)")
    return operator.phone


def _to_phone(
    call: Mapping[str, Any], operator: Operator, limits: Limits, action: str, via: Via = _same
) -> Plan:
    """The caller's channel rings the operator's phone ([vaihde-console-answer])."""
    phone = _phone(operator, "answering")
    channel = call["channel"]
    return Plan(action, call["id"], (
        setvar(channel, contract.CONSOLE_DIAL, _device(via(phone), "your phone")),
        setvar(channel, contract.CONSOLE_RING, str(limits.ring_s)),
        setvar(channel, contract.CONSOLE_BY, operator.username),
        redirect(channel, contract.CONSOLE_ANSWER_CONTEXT),
    ), forget_transfer=True, detail={"phone": phone})


def _state_error(call: Mapping[str, Any], what: str) -> Refusal:
    return Refusal(409, "conflict", f"cannot {what}: the call is {call['state']} now")


def dialled_as(ch: Channel, channels: Mapping[str, Channel]) -> str:
    """The Dial() string that made this channel ("" if no Dial() did): `PJSIP/op1@to-ast1`
    for the trunk leg that rings an operator's phone on another Asterisk."""
    caller = channels.get(ch.dialed_by) if ch.dialed_by else None
    if caller is None:
        return ""
    for dial in reversed(caller.dials):
        if dial.dest_uniqueid == ch.uniqueid and dial.dial_string:
            tech = ch.name.partition("/")[0]
            return f"{tech}/{dial.dial_string}"
    return ""


def _operator_channel(
    call: Mapping[str, Any], operator: Operator, channels: Mapping[str, Channel],
    via: Via = _same,
) -> Channel | None:
    """The operator's phone among the call's parties: the phone's own channel, or the leg that
    dialled it through another Asterisk."""
    if not operator.phone:
        return None
    for party in call.get("parties", []):
        own = device_of_channel(party["channel"]) == operator.phone
        for ch in channels.values():
            if ch.name == party["channel"] and (
                    own or dialled_as(ch, channels) == via(operator.phone)):
                return ch
    return None


def next_waiting(calls: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Whom "answer next" takes: the first in line. With several Asterisks (the calls say
    which holds them) positions are each Asterisk's own, so the line is by waiting time."""
    waiting = [c for c in calls.values() if c["state"] == "waiting"]
    if not waiting:
        return None
    if any("asterisk" in c for c in waiting):
        return min(waiting, key=lambda c: (c["since"], c["position"] or 0))
    return min(waiting, key=lambda c: (c["position"] or 0, c["since"]))


def decide(
    request: Request,
    calls: Mapping[str, Mapping[str, Any]],
    channels: Mapping[str, Channel],
    operator: Operator,
    company: CompanyConfig | None,
    limits: Limits,
    transfers: Mapping[str, Transfer],
    presence: Presence | None = None,
    via: Via = _same,
) -> Plan:
    """The AMI actions for `request` on the board `calls` (by id), or a Refusal. `channels`:
    those of the Asterisk that holds the call; `via`: how that Asterisk dials a device.
    Calls of companies the operator does not serve are not on their board: answered as if
    they did not exist."""
    if operator.companies is not None:
        calls = {cid: c for cid, c in calls.items() if operator.serves(c)}
    action = request.action
    if action == "answer-next":
        first = next_waiting(calls)
        if first is None:
            raise Refusal(409, "conflict", "nobody is waiting")
        return _to_phone(first, operator, limits, action, via)
    call_id = request.call_id or ""
    call = calls.get(call_id) if CALL_ID.match(call_id) else None
    if call is None:
        raise Refusal(404, "not_found", f"no call {call_id!r} on the board", "id")
    state = call["state"]
    channel = call["channel"]
    transfer = transfers.get(call_id)
    if action == "answer":
        if state in ("waiting", "parked") or (state == "ringing" and call.get("bounced")):
            return _to_phone(call, operator, limits, action, via)
        raise _state_error(call, "answer it")
    if action == "retrieve":
        if state != "parked":
            raise _state_error(call, "retrieve it")
        return _to_phone(call, operator, limits, action, via)
    if action == "hangup":
        return Plan(action, call_id, ({"Action": "Hangup", "Channel": channel,
                                       "Cause": "16"},), forget_transfer=True)
    if action == "park":
        if state not in ("waiting", "ringing", "active"):
            raise _state_error(call, "park it")
        park = {"Action": "Park", "Channel": channel}
        op = _operator_channel(call, operator, channels, via)
        if op is not None:
            # Unanswered for too long, the lot rings whoever parked it.
            park["TimeoutChannel"] = op.name
        return Plan(action, call_id, (park,), forget_transfer=True, wants_space=True)
    if action == "transfer":
        if request.to is None:
            raise Refusal(400, "missing_field", "say whom to transfer to", "to")
        if state == "transferring":
            raise _state_error(call, "transfer it again before this transfer ends")
        target = resolve_target(request.to, company, limits, presence)
        if via is not _same:
            target = target.through(via)
        if request.mode == "attended":
            if state != "active":
                raise _state_error(call, "consult first (answer the call, then transfer)")
            op = _operator_channel(call, operator, channels, via)
            if op is None:
                raise Refusal(409, "conflict", "an attended transfer needs the call on your "
                              "phone: answer it first")
            return Plan("transfer", call_id, (
                setvar(channel, contract.CONSOLE_DONE, ""),
                *target.ring_variables(op.name, limits.bounce_s),
                setvar(op.name, contract.CONSOLE_HELD, channel),
                redirect(channel, contract.CONSOLE_HOLD_CONTEXT, op.name,
                         contract.CONSOLE_CONSULT_CONTEXT),
            ), transfer=Transfer(target.label, target.name, operator.username, "attended",
                                 operator_channel=op.uniqueid),
                detail={"to": target.label, "mode": "attended"})
        if request.mode != "blind":
            raise Refusal(400, "invalid", "mode is blind or attended", "mode")
        if state not in ("waiting", "ringing", "active", "parked"):
            raise _state_error(call, "transfer it")
        back = operator.phone if operator.phone and DEVICE.match(operator.phone) else ""
        back = _device(via(back), "your phone") if back else ""
        return Plan("transfer", call_id, (
            *target.ring_variables(channel, limits.bounce_s),
            setvar(channel, contract.CONSOLE_BACK, back),
            setvar(channel, contract.CONSOLE_BACK_RING, str(limits.ring_s)),
            setvar(channel, contract.CONSOLE_BY, operator.username),
            redirect(channel, contract.CONSOLE_TRANSFER_CONTEXT),
        ), transfer=Transfer(target.label, target.name, operator.username, "blind"),
            detail={"to": target.label, "mode": "blind"})
    if action in ("complete", "cancel"):
        if transfer is None or state != "transferring":
            raise _state_error(call, f"{action} a transfer (none is in progress)")
        if transfer.mode == "blind":
            if action == "complete":
                raise Refusal(409, "conflict", "a blind transfer completes by itself when "
                              "answered")
            return _to_phone(call, operator, limits, "cancel", via)
        op = channels.get(transfer.operator_channel)
        if op is None:
            raise Refusal(409, "conflict", "the consulting phone has hung up")
        if action == "cancel":
            return Plan(action, call_id, (redirect(op.name, contract.CONSOLE_RETURN_CONTEXT),),
                        forget_transfer=True)
        peer = None
        if call.get("transfer") and call["transfer"].get("answered"):
            peer = _consulted(op, channels)
        if peer is None:
            raise Refusal(409, "conflict", f"{transfer.name} has not answered yet")
        return Plan(action, call_id, (
            setvar(op.name, contract.CONSOLE_HELD, ""),
            setvar(channel, contract.CONSOLE_DONE, "1"),
            {"Action": "Bridge", "Channel1": channel, "Channel2": peer.name, "Tone": "no"},
        ), forget_transfer=True, detail={"to": transfer.target})
    raise Refusal(404, "not_found", f"no action {action!r}")


def _consulted(op: Channel, channels: Mapping[str, Channel]) -> Channel | None:
    """The target's channel in the operator's consultation call."""
    if op.bridge_id is None:
        return None
    for ch in channels.values():
        if ch.bridge_id == op.bridge_id and ch.uniqueid != op.uniqueid:
            return ch
    return None
