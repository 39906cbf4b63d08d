"""The cluster benchmark's measurements, as pure functions of what Asterisk reported (AMI events
with Asterisk's own timestamps), what the consoles' event streams said and when, what the APIs
answered, what the database holds and what the SMTP server and the SMS gateway received.

No sockets and no clock here: bench/cluster_bench.py runs the calls and the faults,
tests/unit/test_cluster_bench_measure.py checks this.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faults_measure as fm  # bench/ is on sys.path
from calls_measure import percentile

# What a caller asks for (cluster_bench.py's caller kinds) and what "handled normally" means:
#   person   a menu key of an employee who is there: Dial() rings exactly that phone
#   bob      the employee whose availability the benchmark keeps changing: his phone rings, or
#            the offer comes and the caller's callback request is taken
#   message  a message for Anna (menu 5): recorded and confirmed
#   callback Erik is in a meeting: at the offer the caller asks for a callback, confirmed
#   operator the operator (0): the caller joins the operators' queue
KINDS = ("person", "bob", "message", "callback", "operator")

NORMAL = "normal"
RESCUED = "rescued"  # taken to the operators instead (a human, but not what they chose)
WRONG = "wrong"  # a phone other than the one chosen rang
STRANDED = "stranded"  # none of these: left in silence or hung up on
DIED = "died_with_asterisk"  # their Asterisk was killed under them: nobody can help that
NOT_PLACED = "not_placed"  # never reached Asterisk's dialplan (its Asterisk was down)


@dataclass(frozen=True, slots=True)
class Outcome:
    what: str
    handled: float | None  # when the caller got what they chose (or reached the operators)
    arrived: float | None  # when the call entered AGI() the first time
    dialled_twice: list[str] = field(default_factory=list)  # phones Dial() rang more than once
    acted: float | None = None  # when vaihde acted on the caller's first key


def acted_at(tl: fm.Timeline) -> float | None:
    """When vaihde acted on the caller's first key: the first AGI command, Dial() or queue
    join after it (whatever the caller chose; a message's recording or a callback's offer take
    seconds more, which are the caller's)."""
    if not tl.keys:
        return None
    key = tl.keys[0][0]
    moments = [c.start for c in tl.commands if c.start > key]
    moments += [t for t, _ in tl.dials if t > key] + [t for t, _, _ in tl.queued if t > key]
    return min(moments, default=None)


def outcome(tl: fm.Timeline, kind: str, expect: str, *, queue: str, operator_device: str,
            killed: Sequence[float] = (), menu_prompt: str = "beep",
            bob_device: str = "") -> Outcome:
    """How one caller was handled. `expect`: the phone that must ring (person); `killed`: when
    the caller's Asterisk was killed (kill -9)."""
    arrived = tl.agi_start
    dials = Counter(device for _, device in tl.dials)
    twice = sorted(d for d, n in dials.items() if n > 1 and d != operator_device)
    queued = [t for t, q, _ in tl.queued if q == queue]
    to_operator = [t for t, d in tl.dials if d == operator_device]
    done: float | None = None
    if kind == "operator":
        done = queued[0] if queued else None
    elif kind == "person":
        rang = [t for t, d in tl.dials if d == expect]
        done = rang[0] if rang else None
    elif kind == "bob":
        rang = [t for t, d in tl.dials if d == bob_device]
        told = fm.told_at(tl, "callback", menu_prompt)
        done = min([*rang, *([told] if told is not None else [])], default=None)
    elif kind in ("message", "callback"):
        done = fm.told_at(tl, kind, menu_prompt)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    if done is not None and not (queued and queued[0] < done and kind != "operator"):
        return Outcome(NORMAL, done, arrived, twice, acted_at(tl))
    others = [d for _, d in tl.dials if d not in (expect, operator_device, bob_device)]
    if kind == "person" and others:
        return Outcome(WRONG, None, arrived, twice)
    rescue = min([*queued, *to_operator], default=None)
    if rescue is not None:
        return Outcome(RESCUED, rescue, arrived, twice)
    if tl.hangup is not None and any(k - 0.5 <= tl.hangup <= k + 2.0 for k in killed):
        return Outcome(DIED, None, arrived, twice)
    if tl.hangup is None and arrived is not None and any(k >= arrived for k in killed):
        # No hangup at all: its Asterisk died under it (a kill -9 sends no more events).
        return Outcome(DIED, None, arrived, twice)
    if arrived is None and tl.hangup is None:
        return Outcome(NOT_PLACED, None, None, twice)
    return Outcome(STRANDED, None, arrived, twice)


# --- calls handled normally again after a fault -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """A call on one path (an Asterisk) for the recovery figure."""

    arrived: float
    normal: bool
    handled: float | None  # normal: vaihde acted on the choice; else the rescue (or None)


def recovery_s(calls: Iterable[Arrival], since: float, until: float,
               next_fault: float = float("inf")) -> float | None:
    """From `since` (the fault, or the restart) until calls on a path were handled normally
    again: until vaihde acted on the choice (`handled`) of the first call of the last unbroken
    run of normal calls that arrived in [since, until). Includes that call's own way through the
    greeting and the key (the baseline gives that floor). None when no call arrived in the
    window or the window ended with a call that was not handled normally. A call rescued at or
    after `next_fault` (a caller still recording a message when the next fault struck) tells of
    that fault, not this one: left out."""
    window = sorted((c for c in calls if since <= c.arrived < until and (
        c.normal or c.handled is None or c.handled < next_fault)), key=lambda c: c.arrived)
    if not window or not window[-1].normal:
        return None
    start = len(window) - 1
    while start > 0 and window[start - 1].normal:
        start -= 1
    first = window[start]
    if first.handled is None:
        return None
    return max(0.0, first.handled - since)


# --- the consoles agree with Asterisk, and with each other ---------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One console's view of one call's waiting: when the stream first showed it waiting and
    when it stopped showing it (None: still shown at the end)."""

    shown: float
    hidden: float | None


def visibility(log: Iterable[tuple[float, str, Any]]) -> dict[str, list[Seen]]:
    """A console's stream log [(received at, event, data)] → each call's waiting intervals.
    `board` replaces everything, `call` sets (waiting or not), `gone` removes, `down` (the
    stream broke) removes everything."""
    showing: dict[str, float] = {}
    out: dict[str, list[Seen]] = {}

    def hide(call_id: str, t: float) -> None:
        start = showing.pop(call_id, None)
        if start is not None:
            out.setdefault(call_id, []).append(Seen(start, t))

    for t, kind, data in log:
        if kind == "board":
            now = {str(c["id"]) for c in data.get("waiting", ())}
            for call_id in list(showing):
                if call_id not in now:
                    hide(call_id, t)
            for call_id in now:
                showing.setdefault(call_id, t)
        elif kind == "call":
            call_id = str(data["id"])
            if data.get("state") in ("waiting", "ringing"):
                showing.setdefault(call_id, t)
            else:
                hide(call_id, t)
        elif kind == "gone":
            hide(str(data.get("id")), t)
        elif kind == "down":
            for call_id in list(showing):
                hide(call_id, t)
    for call_id, start in showing.items():
        out.setdefault(call_id, []).append(Seen(start, None))
    return out


@dataclass(frozen=True, slots=True)
class Waiting:
    """A caller in the operators' queue as Asterisk said: joined, and left (or died with its
    Asterisk); left None = still there at the end."""

    call_id: str
    joined: float
    left: float | None


def agreement(truth: Iterable[Waiting], seen: Mapping[str, list[Seen]],
              live: Sequence[tuple[float, float]], end: float) -> list[tuple[str, str, float]]:
    """For one console: how long after each change of Asterisk's queue (a caller joined, a
    caller left) the console showed it: [(call id, "join" | "leave", seconds)]. Only while the
    console was live (`live`: its stream's (board received, broke) intervals); a change that
    happened while it was down counts from when it was live again. A change never shown while
    live counts until the end of that live interval."""
    out: list[tuple[str, str, float]] = []
    for w in truth:
        intervals = seen.get(w.call_id, [])
        left = w.left if w.left is not None else end
        for start, stop in live:
            # Join: the console must show the call from max(joined, start) while it waits.
            ref = max(w.joined, start)
            if ref < min(left, stop):
                shown = [s.shown for s in intervals
                         if (s.hidden is None or s.hidden > ref) and s.shown < min(left, stop)]
                first = min(shown) if shown else min(left, stop)
                out.append((w.call_id, "join", max(0.0, first - ref)))
            # Leave: the console must stop showing it.
            if w.left is not None and start <= w.left < stop:
                still = [s for s in intervals if s.shown <= w.left + 1e-6 and (
                    s.hidden is None or s.hidden > w.left)]
                if still:
                    hidden = still[-1].hidden
                    gone = min(hidden, stop) if hidden is not None else stop
                    out.append((w.call_id, "leave", max(0.0, gone - w.left)))
                else:
                    out.append((w.call_id, "leave", 0.0))
    return out


def shown(log: Iterable[tuple[float, str, Any]]) -> dict[tuple[str, str], list[Seen]]:
    """A console's stream log → when it showed each call in each state: {(call id, state):
    [intervals]}. `board` replaces everything (its `calls`: [{"id", "state"}]), `call` sets a
    call's state, `gone` removes it, `down` (the stream broke) removes everything."""
    now: dict[str, tuple[str, float]] = {}
    out: dict[tuple[str, str], list[Seen]] = {}

    def end(call_id: str, t: float) -> None:
        state, since = now.pop(call_id)
        out.setdefault((call_id, state), []).append(Seen(since, t))

    def put(call_id: str, state: str, t: float) -> None:
        if call_id in now and now[call_id][0] == state:
            return
        if call_id in now:
            end(call_id, t)
        now[call_id] = (state, t)

    for t, kind, data in log:
        if kind == "board":
            states = {str(c["id"]): str(c.get("state")) for c in data.get("calls", ())}
            for call_id in [c for c in now if c not in states]:
                end(call_id, t)
            for call_id, state in states.items():
                put(call_id, state, t)
        elif kind == "call":
            put(str(data["id"]), str(data.get("state")), t)
        elif kind in ("gone", "down"):
            for call_id in [c for c in now if kind == "down" or c == str(data.get("id"))]:
                end(call_id, t)
    for call_id, (state, since) in now.items():
        out.setdefault((call_id, state), []).append(Seen(since, None))
    return out


def _inside(intervals: Iterable[tuple[float, float]], t: float) -> bool:
    return any(lo <= t < hi for lo, hi in intervals)


def consoles_apart(views: Mapping[str, Mapping[tuple[str, str], list[Seen]]],
                   live: Mapping[str, Sequence[tuple[float, float]]], end: float,
                   ) -> list[tuple[str, str, str, float]]:
    """How long the consoles disagreed about each call: for every (call, state) and every pair
    of consoles, each stretch of time in which both were live and one showed the call in that
    state while the other did not. [(call id, state, the console that showed it, seconds)]."""
    out: list[tuple[str, str, str, float]] = []
    names = sorted(views)
    keys = sorted({k for v in views.values() for k in v})
    for key in keys:
        shows = {n: [(s.shown, s.hidden if s.hidden is not None else end)
                     for s in views[n].get(key, [])] for n in names}
        for n, a in enumerate(names):
            for b in names[n + 1:]:
                if not shows[a] and not shows[b]:
                    continue
                bounds = sorted({t for iv in (shows[a], shows[b], live.get(a, ()),
                                              live.get(b, ())) for pair in iv for t in pair})
                piece: tuple[float, str] | None = None  # (began, which console showed it)
                for lo, hi in itertools.pairwise(bounds):
                    mid = (lo + hi) / 2
                    both = _inside(live.get(a, ()), mid) and _inside(live.get(b, ()), mid)
                    in_a, in_b = _inside(shows[a], mid), _inside(shows[b], mid)
                    who = (a if in_a else b) if both and in_a != in_b else ""
                    if piece is not None and piece[1] != who:
                        out.append((*key, piece[1], lo - piece[0]))
                        piece = None
                    if who and piece is None:
                        piece = (lo, who)
                if piece is not None:
                    out.append((*key, piece[1], bounds[-1] - piece[0]))
    return out


# --- availability seen by the other instance -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """An availability change made through one instance's API."""

    entry_id: int | None  # the new entry (None: the API did not take it)
    instance: str
    sent: float
    answered: float | None
    state: str
    made: float | None = None  # the entry's created_at: stamped in its transaction


def with_made(changes: Iterable[Change], made: Mapping[int, float]) -> list[Change]:
    """The changes with each entry's created_at (as the database holds it)."""
    return [Change(c.entry_id, c.instance, c.sent, c.answered, c.state,
                   made.get(c.entry_id) if c.entry_id is not None else None) for c in changes]


def notify_ms(changes: Sequence[Change], seen: Mapping[str, Sequence[tuple[float, int | None]]],
              live: Mapping[str, Sequence[tuple[float, float]]], *, other: bool = True,
              end: float = float("inf"), from_request: bool = False,
              ) -> tuple[list[float], list[int]]:
    """For each change taken, how long from its commit until the other instance's console
    (`other=False`: its own) said the availability whose entry it made: ([ms], [entry ids
    never seen]). The commit is taken as the entry's created_at (a moment before it: the figure
    errs long); `from_request`: from when the request was sent instead, the instance's own
    answer time included. `seen[instance]`: (received, entry id) of that console's
    availability events; `live[instance]`: when its stream was up. A change is measured only if
    that console was live from its request on until the next change (the last one: until
    `end`)."""
    times: list[float] = []
    missed: list[int] = []
    taken = [c for c in changes if c.entry_id is not None]
    for n, change in enumerate(taken):
        nxt = taken[n + 1].sent if n + 1 < len(taken) else end
        for instance, events in seen.items():
            if (instance != change.instance) != other:
                continue
            if not any(a <= change.sent and b >= nxt for a, b in live.get(instance, ())):
                continue
            hits = [t for t, entry in events if entry == change.entry_id and t >= change.sent]
            since = change.sent if from_request or change.made is None else change.made
            if hits:
                times.append(max(0.0, min(hits) - since) * 1000)
            else:
                missed.append(int(change.entry_id or 0))
    return times, missed


def p99(values: Sequence[float]) -> float | None:
    return round(percentile(values, 0.99), 1) if values else None


# --- lost and done twice -------------------------------------------------------------------------

_MSGID = re.compile(r"vaihde-message-(\d+)-(\d+)")


def email_keys(message_ids: Iterable[str]) -> list[tuple[int, int]]:
    """Message-ID headers → (message id, delivery id); vaihde writes vaihde-message-M-D-T."""
    out = []
    for header in message_ids:
        m = _MSGID.search(header)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def duplicates(keys: Iterable[Any]) -> dict[str, int]:
    """Keys seen more than once, with how many times ({repr: count})."""
    counts = Counter(keys)
    return {str(k): n for k, n in sorted(counts.items(), key=str) if n > 1}


def extra_copies(keys: Iterable[Any]) -> int:
    """How many deliveries more than one each."""
    return sum(n - 1 for n in Counter(keys).values())
