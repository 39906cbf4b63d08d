"""The fault benchmark's measurements, as pure functions of Asterisk's AMI events (with Asterisk's
own timestamps), the wall-clock times of the signals the benchmark sent and what the database
holds afterwards: where in the call a fault hit, how long the caller waited for the operator path,
what the service's answer time is when healthy, which messages were told and stored, and whether
the consoles show what Asterisk has.

No sockets and no clock here: bench/faults_bench.py runs the calls, tests/unit checks this.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from calls_measure import event_time, summary_ms
from vaihde.ami.devicestate import device_of_channel

Event = Mapping[str, Any]

# Where a fault can hit a caller (see `phase_at`).
PHASES = ("arrival", "greeting", "key_wait", "after_key", "offer", "recording", "prompt",
          "between_commands")
DONE = "done"  # the service had routed the call before the fault: nothing to rescue


@dataclass(slots=True)
class Command:
    start: float
    end: float | None
    text: str

    @property
    def verb(self) -> str:
        """`STREAM FILE`, `GET DATA`, `RECORD FILE`, `EXEC`, `SET AUTOHANGUP`…"""
        words = self.text.split()
        two = " ".join(words[:2]).upper()
        return two if two in ("STREAM FILE", "GET DATA", "RECORD FILE", "SET VARIABLE",
                              "SET AUTOHANGUP", "WAIT FOR", "CONTROL STREAM") else (
            words[0].upper() if words else "")


@dataclass(slots=True)
class Timeline:
    """What Asterisk reported about one caller's leg into vaihde (the call id)."""

    call_id: str
    linkedid: str = ""
    agi_start: float | None = None  # the AGI application began (Newexten AGI)
    agi_end: float | None = None  # the channel left it (the next Newexten, or its hangup)
    commands: list[Command] = field(default_factory=list)
    keys: list[tuple[float, str]] = field(default_factory=list)  # DTMFBegin received
    queued: list[tuple[float, str, str]] = field(default_factory=list)  # time, queue, reason
    dials: list[tuple[float, str]] = field(default_factory=list)  # DialBegin: time, device
    phones: list[str] = field(default_factory=list)  # phones that announced this call
    hangup: float | None = None

    def command_at(self, t: float) -> Command | None:
        for command in self.commands:
            if command.start <= t and (command.end is None or t < command.end):
                return command
        return None


def _reason(event: Event) -> str:
    """VAIHDE_REASON from the event's ChanVariable header(s) (manager.conf channelvars)."""
    raw = event.get("ChanVariable", "")
    values = raw if isinstance(raw, list) else [raw]
    for value in values:
        key, _, reason = str(value).partition("=")
        if key == "VAIHDE_REASON":
            return reason
    return ""


def timelines(events: Iterable[Event], call_ids: Iterable[str],
              phone_event: str = "FaultsPhone") -> dict[str, Timeline]:
    out = {cid: Timeline(cid) for cid in call_ids}
    pending: dict[tuple[str, str], Command] = {}
    phones: list[tuple[str, str]] = []
    for e in events:
        name = e.get("Event", "")
        if name == "UserEvent" and e.get("UserEvent") == phone_event:
            phones.append((str(e.get("Linkedid", "")), str(e.get("Phone", ""))))
            continue
        tl = out.get(str(e.get("Uniqueid", "")))
        if tl is None:
            continue
        t = event_time(e)
        if name == "Newchannel":
            tl.linkedid = str(e.get("Linkedid", ""))
        elif name == "Newexten":
            app = str(e.get("Application", ""))
            if app.upper() in ("AGI", "EAGI"):
                if tl.agi_start is None:
                    tl.agi_start = t
            elif tl.agi_start is not None and tl.agi_end is None:
                tl.agi_end = t
        elif name == "AGIExecStart":
            command = Command(t, None, str(e.get("Command", "")))
            tl.commands.append(command)
            pending[(tl.call_id, str(e.get("CommandId", "")))] = command
        elif name == "AGIExecEnd":
            started = pending.pop((tl.call_id, str(e.get("CommandId", ""))), None)
            if started is not None:
                started.end = t
        elif name == "DTMFBegin" and e.get("Direction") == "Received":
            tl.keys.append((t, str(e.get("Digit", ""))))
        elif name == "QueueCallerJoin":
            tl.queued.append((t, str(e.get("Queue", "")), _reason(e)))
        elif name == "DialBegin":
            tl.dials.append((t, device_of_channel(str(e.get("DestChannel", "")))))
        elif name == "Hangup":
            tl.hangup = t
            if tl.agi_start is not None and tl.agi_end is None:
                tl.agi_end = t
    by_link: dict[str, list[str]] = {}
    for linkedid, phone in phones:
        by_link.setdefault(linkedid, []).append(phone)
    for tl in out.values():
        if tl.linkedid:
            tl.phones = by_link.get(tl.linkedid, [])
    return out


# --- where a fault hit ---------------------------------------------------------------------------


def phase_at(tl: Timeline, t: float, greeting: str = "hello-world",
             menu_prompt: str = "beep") -> str:
    """What the caller was doing when the service stopped at `t`:

    - `arrival`: the call had not reached the service yet, or the service had not sent its first
      prompt (Asterisk connects and waits for the first command);
    - `greeting`: the menu's greeting played (the STREAM FILE of `greeting`);
    - `key_wait`: the menu prompt played or Asterisk waited for the caller's key (the GET DATA
      of `menu_prompt`);
    - `after_key`: the caller had pressed a key that the service had not yet acted on (the key
      was received during the last command, and no command started since);
    - `offer`: the "is away" offer played or waited for its key (any other GET DATA);
    - `recording`: a message was being recorded; `prompt`: another sound played (the message
      intro, a confirmation);
    - `between_commands`: Asterisk waited for the service's next command for another reason
      (the service thinking, a SET VARIABLE, …);
    - `done`: the call had left the service before `t` (nothing to rescue).
    """
    if tl.agi_start is None or tl.agi_start > t:
        return "arrival"
    if tl.agi_end is not None and tl.agi_end <= t:
        return DONE
    key_times = [k for k, _ in tl.keys if k <= t]
    last_key = key_times[-1] if key_times else None
    started = [c for c in tl.commands if c.start <= t]
    running = tl.command_at(t)
    if running is None:
        if not started or all(c.verb == "SET AUTOHANGUP" for c in started):
            return "arrival"
        # Waiting for the service: after the caller's key, or for another reason.
        last = started[-1]
        if last_key is not None and last_key >= last.start:
            return "after_key"
        return "between_commands"
    verb = running.verb
    keyed = last_key is not None and last_key >= running.start
    if verb == "GET DATA":
        if keyed:
            return "after_key"
        return "key_wait" if _sound(running) == menu_prompt else "offer"
    if verb == "STREAM FILE":
        if _sound(running) == greeting:
            return "after_key" if keyed else "greeting"  # a key ends the greeting
        return "prompt"
    if verb == "RECORD FILE":
        return "recording"
    return "between_commands"


def _sound(command: Command) -> str:
    """The sound a STREAM FILE / GET DATA plays: `GET DATA "beep" 3000 1` → `beep`."""
    words = command.text.split()
    return words[2].strip('"') if len(words) > 2 else ""


def waiting_from(tl: Timeline, t: float, until: float) -> float | None:
    """When Asterisk began waiting for a service that stopped at `t`: the later of `t` and the
    end of the last command Asterisk ran before `until` (the rescue), or of the AGI start when
    it ran none. While a prompt plays or Asterisk waits for the caller's key the caller is not
    in dead air; after that, every moment is the service's."""
    if tl.agi_start is None:
        return None
    ends = [c.end for c in tl.commands if c.end is not None and c.end <= until]
    ends.append(tl.agi_start)
    return max(t, max(ends))


def rescued_at(tl: Timeline, after: float, queue: str, operator_device: str) -> float | None:
    """The caller reached the operator path: joined the operators' queue, or Dial() began ringing
    an operator's phone (first time after `after`)."""
    times = [q_t for q_t, q, _ in tl.queued if q == queue and q_t >= after]
    times += [d_t for d_t, device in tl.dials if device == operator_device and d_t >= after]
    return min(times) if times else None


def rescue_reason(tl: Timeline) -> str:
    return tl.queued[0][2] if tl.queued else ""


@dataclass(slots=True)
class Trial:
    call_id: str
    phase: str
    waiting_from: float | None
    rescued: float | None
    reason: str
    late: list[str]  # what the service did for the call after its rescue (must be nothing)

    @property
    def rescue_s(self) -> float | None:
        if self.rescued is None or self.waiting_from is None:
            return None
        return max(0.0, self.rescued - self.waiting_from)


def trial(tl: Timeline, t: float, *, queue: str, operator_device: str,
          greeting: str = "hello-world", menu_prompt: str = "beep",
          stored: Iterable[tuple[str, float]] = (), resumed: float | None = None) -> Trial:
    """One caller in one fault at `t`. `stored`: (what, when) the service stored for this call
    (a message, a callback request): once the caller is with the operators, the service must
    not act on the call any more. `resumed`: when the service could run again (SIGCONT)."""
    phase = phase_at(tl, t, greeting, menu_prompt)
    if phase == DONE:
        return Trial(tl.call_id, phase, None, None, "", [])
    rescued = rescued_at(tl, t, queue, operator_device)
    waited = waiting_from(tl, t, rescued if rescued is not None else float("inf"))
    late: list[str] = []
    if rescued is not None:
        late += [f"AGI {c.text[:40]}" for c in tl.commands if c.start > rescued]
        late += [f"dial {device}" for d_t, device in tl.dials
                 if d_t > rescued and device != operator_device]
        late += [f"{what} stored {at - rescued:.2f} s after the rescue" + (
                     f", {at - resumed:.3f} s after the service resumed"
                     if resumed is not None else "")
                 for what, at in stored if at > rescued]
    return Trial(tl.call_id, phase, waited, rescued, rescue_reason(tl), late)


def trials_summary(trials: Sequence[Trial]) -> dict[str, Any]:
    counted = [t for t in trials if t.phase != DONE]
    times = [t.rescue_s for t in counted if t.rescue_s is not None]
    by_phase: dict[str, list[float]] = {}
    for t in counted:
        if t.rescue_s is not None:
            by_phase.setdefault(t.phase, []).append(t.rescue_s)
    return {
        "trials": len(counted),
        "not_in_the_service": sum(1 for t in trials if t.phase == DONE),
        "phases": dict(Counter(t.phase for t in counted)),
        "rescue": summary_ms(times),
        "rescue_by_phase": {p: summary_ms(v) for p, v in sorted(by_phase.items())},
        "stranded": [t.call_id for t in counted if t.rescued is None],
        "reasons": dict(Counter(t.reason for t in counted)),
        "handled_twice": [{"call": t.call_id, "late": t.late} for t in counted if t.late],
        "requests_stored_after_rescue": sum(
            1 for t in counted if any(" stored " in what for what in t.late)),
    }


# --- the service healthy: how long Asterisk waits for its next command --------------------------


def service_gaps(tl: Timeline, before: float = float("inf")) -> list[tuple[str, float]]:
    """(what came before, seconds) for each wait of Asterisk on a healthy service that ended
    before `before`: AGI start → first command, each command's end → the next command's start,
    and the last command's end → the channel leaving AGI (the route). `what came before` is
    `arrival`, `key` (a GET DATA or greeting ended by the caller's key), or `command`."""
    if tl.agi_start is None:
        return []
    out: list[tuple[str, float]] = []
    cursor, kind = tl.agi_start, "arrival"
    for command in tl.commands:
        if command.start > before:
            return out
        out.append((kind, command.start - cursor))
        if command.end is None:
            return out
        keyed = any(command.start <= k <= command.end for k, _ in tl.keys)
        kind = "key" if keyed and command.verb in ("GET DATA", "STREAM FILE") else "command"
        cursor = command.end
    if tl.agi_end is not None and tl.agi_end <= before and tl.commands:
        out.append((kind, tl.agi_end - cursor))
    return out


def gaps_summary(gaps: Iterable[tuple[str, float]]) -> dict[str, Any]:
    every = list(gaps)
    by_kind: dict[str, list[float]] = {}
    for kind, seconds in every:
        by_kind.setdefault(kind, []).append(seconds)
    return {"all": summary_ms([s for _, s in every]),
            **{k: summary_ms(v) for k, v in sorted(by_kind.items())}}


# --- messages and callbacks under kill -9 -------------------------------------------------------


def taking(tl: Timeline, kind: str, menu_prompt: str = "beep") -> Command | None:
    """The command that ends with the caller's request made: the RECORD FILE (a message), or
    the offer's GET DATA (not the menu's `menu_prompt`) that the caller answered with 3 (a
    callback). None if the caller never got that far."""
    if kind == "message":
        return next((c for c in tl.commands if c.verb == "RECORD FILE"), None)
    for command in tl.commands:
        if command.verb == "GET DATA" and _sound(command) != menu_prompt and (
            command.end is not None
            and any(command.start <= k <= command.end and d == "3" for k, d in tl.keys)
        ):
            return command
    return None


def taken_at(tl: Timeline, kind: str, menu_prompt: str = "beep") -> float | None:
    """When the caller had made their request (the end of `taking`)."""
    command = taking(tl, kind, menu_prompt)
    return command.end if command is not None else None


def told_at(tl: Timeline, kind: str, menu_prompt: str = "beep") -> float | None:
    """When the caller began hearing that their request was taken: the first STREAM FILE after
    the request was made."""
    taken = taken_at(tl, kind, menu_prompt)
    if taken is None:
        return None
    after = [c for c in tl.commands if c.start >= taken and c.verb == "STREAM FILE"]
    return after[0].start if after else None


@dataclass(slots=True)
class Request:
    call_id: str
    kind: str  # message | callback
    told: float | None
    stored: int  # rows with this call id (messages + callbacks)
    in_flight: bool  # the call was in the service when it was killed
    taken: float | None = None  # when the caller had made the request
    killed: float | None = None  # when the service was killed
    arrived: float | None = None  # when the call reached AGI() in the dialplan

    @property
    def outcome(self) -> str:
        if self.told is not None:
            return "told_stored" if self.stored else "lost"
        return "stored_not_told" if self.stored else "not_told_not_stored"

    @property
    def stage(self) -> str:
        """Where the kill found the request: `asking` (not yet made: greeting, menu, intro,
        recording), `storing` (made, the caller not yet told), `told` (confirmation begun),
        `done` (the call had left the service) or `arrived_after` (the call reached the
        dialplan after the kill)."""
        if self.killed is None:
            return "asking"
        if self.told is not None and self.told <= self.killed:
            return "told" if self.in_flight else "done"
        if self.taken is not None and self.taken <= self.killed:
            return "storing"
        if self.in_flight:
            return "asking"
        return "arrived_after" if self.arrived is None or self.arrived > self.killed else "done"


def in_service_at(tl: Timeline, t: float) -> bool:
    return tl.agi_start is not None and tl.agi_start <= t and (
        tl.agi_end is None or tl.agi_end > t)


def requests_summary(requests: Sequence[Request]) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in requests)
    return {
        "callers": len(requests),
        "trials": sum(1 for r in requests if r.in_flight),
        "told": sum(1 for r in requests if r.told is not None),
        "not_told": sum(1 for r in requests if r.told is None),
        "stored_not_told": outcomes["stored_not_told"],
        "not_told_not_stored": outcomes["not_told_not_stored"],
        "told_stored": outcomes["told_stored"],
        "lost": outcomes["lost"],
        "duplicates": sum(1 for r in requests if r.stored > 1),
        "by_kind": {kind: dict(Counter(r.outcome for r in requests if r.kind == kind))
                    for kind in sorted({r.kind for r in requests})},
        "by_stage_at_kill": {stage: dict(Counter(r.outcome for r in requests if r.stage == stage))
                             for stage in ("asking", "storing", "told", "done",
                                           "arrived_after")},
        # How long the caller waits between making the request and hearing it was taken (the
        # service storing it): the window in which a kill finds it `storing`.
        "store_to_told": summary_ms([r.told - r.taken for r in requests
                                     if r.told is not None and r.taken is not None]),
        "lost_calls": [r.call_id for r in requests if r.outcome == "lost"][:20],
        "duplicate_calls": [r.call_id for r in requests if r.stored > 1][:20],
    }


# --- consoles against Asterisk -------------------------------------------------------------------


def board_ids(board: Mapping[str, Any]) -> dict[str, set[str]]:
    """A console Board (docs/console-api.md) as sets of call ids per list."""
    return {k: {str(c.get("id")) for c in board.get(k, ())}
            for k in ("waiting", "active", "parked")}


def matches_asterisk(view: Mapping[str, set[str]], queued: set[str]) -> bool:
    """A console view is right when its waiting calls are exactly the callers Asterisk has in
    the operators' queue and nothing else is on it (no caller is connected or parked here)."""
    return view.get("waiting", set()) == queued and not view.get("active") and not view.get(
        "parked")
