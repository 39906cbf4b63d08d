"""Live call state (channels, dials, bridges, queues, calls) built from AMI events for the
operator console and bounce-back logic; pure, synchronous, never blocking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from vaihde.ami.client import AmiActionError

if TYPE_CHECKING:
    from vaihde.ami.client import AmiClient, AmiResponse

__all__ = [
    "STATE_NAMES", "Bridge", "CallTracker", "Change", "ChangeKind", "ChangeQueue", "Channel",
    "Dial", "HangupRecord", "ParkedCall", "QueueCaller"
]

log = logging.getLogger("vaihde.ami.tracker")

Event = Mapping[str, Any]

# Asterisk's enum ast_channel_state, numbered from 0; anything else in ChannelState is garbage.
STATE_NAMES: dict[int, str] = dict(enumerate((
    "Down", "Rsrvd", "OffHook", "Dialing", "Ring", "Ringing", "Up", "Busy", "Dialing Offhook",
    "Pre-ring")))
STATE_UP = 6

VAR_PREFIX = "VAIHDE_"
_MAX_DTMF = 64
# Asterisk's placeholder for an empty caller id field.
_UNKNOWN = "<unknown>"

ChangeKind = Literal[
    "channel_new", "channel_update", "channel_hangup", "variable", "dtmf", "dial_begin",
    "dial_end", "bridge_new", "bridge_enter", "bridge_leave", "bridge_merge", "bridge_destroy",
    "queue_join", "queue_leave", "queue_abandon", "parked", "unparked", "resynced", "desynced"
]


@dataclass(frozen=True, slots=True)
class Change:
    """One thing that changed. ``data`` holds the changed fields or event details."""

    kind: ChangeKind
    uniqueid: str | None = None
    linkedid: str | None = None
    bridge_id: str | None = None
    queue: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**{f: getattr(self, f) for f in self.__slots__}, "data": dict(self.data)}


@dataclass(slots=True)
class Dial:
    """One Dial() attempt from a channel to a destination channel."""

    dest_uniqueid: str
    dest_channel: str
    dial_string: str
    status: str = ""  # DialStatus from DialEnd (ANSWER, BUSY, NOANSWER...); "" while ringing
    begin_mono: float = 0.0
    begin_wall: float = 0.0
    end_wall: float | None = None


@dataclass(slots=True)
class Channel:
    """A live channel. Times: *_mono for arithmetic, *_wall (epoch seconds) for display."""

    uniqueid: str
    name: str = ""
    linkedid: str = ""
    state: int | None = None
    state_desc: str = ""
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    priority: str = ""
    application: str = ""
    created_mono: float = 0.0
    created_wall: float = 0.0
    answered: bool = False
    # None when the answer happened before we were watching (learnt from a resync).
    answered_mono: float | None = None
    answered_wall: float | None = None
    dials: list[Dial] = field(default_factory=list)  # outgoing, in order
    dialed_by: str | None = None  # uniqueid of the channel whose Dial() created this one
    dial_status: str = ""  # latest DialStatus of a dial from or to this channel
    bridge_id: str | None = None
    dtmf: str = ""  # digits received (most recent _MAX_DTMF)
    variables: dict[str, str] = field(default_factory=dict)  # VAIHDE_* only
    hangup_cause: int | None = None
    hangup_cause_txt: str = ""


@dataclass(slots=True)
class Bridge:
    bridge_id: str
    bridge_type: str = ""
    technology: str = ""
    members: list[str] = field(default_factory=list)  # uniqueids, in order of entry
    created_mono: float = 0.0
    created_wall: float = 0.0


@dataclass(slots=True)
class QueueCaller:
    uniqueid: str
    channel: str
    caller_num: str
    caller_name: str
    position: int  # 1-based, as Asterisk counts
    joined_mono: float
    joined_wall: float
    abandoned: bool = False


@dataclass(slots=True)
class ParkedCall:
    """A channel waiting in a parking lot (res_parking)."""

    uniqueid: str
    channel: str
    space: str  # the parking space (extension), e.g. 701
    lot: str
    timeout: int | None  # seconds the lot keeps it before it comes back
    parker: str  # dial string of whoever parked it ('' if parked by AMI without one)
    parked_mono: float
    parked_wall: float


@dataclass(slots=True)
class HangupRecord:
    """A channel as it was when it hung up, kept in a bounded recent list."""

    channel: Channel
    hungup_mono: float
    hungup_wall: float


class ChangeQueue(asyncio.Queue[Change]):
    """A subscriber's queue; when full the oldest change is dropped and counted."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.dropped = 0

    def push(self, change: Change) -> None:
        if self.full():
            try:
                self.get_nowait()
                self.task_done()  # keep join() accounting right for the dropped item
            except asyncio.QueueEmpty:  # pragma: no cover - maxsize > 0 guarantees an item
                pass
            self.dropped += 1
        self.put_nowait(change)


class _ActionSender(Protocol):
    async def action(
        self, action: Mapping[str, Any], timeout: float | None = None
    ) -> AmiResponse: ...


def _s(ev: Event, key: str) -> str:
    """A header as str ('' if absent); a repeated header yields its last value."""
    v = ev.get(key)
    if v is None:
        return ""
    if isinstance(v, list):
        return str(v[-1]) if v else ""
    return str(v)


def _cid(v: str) -> str:
    return "" if v == _UNKNOWN else v


def _int(v: str) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _duration(v: str) -> float | None:
    """Asterisk's HH:MM:SS (CoreShowChannel Duration) or plain seconds (QueueEntry Wait)."""
    try:
        parts = [int(p) for p in v.split(":")]
    except ValueError:
        return None
    secs = 0
    for p in parts:
        secs = secs * 60 + p
    return float(secs)


def _var_name(raw: str) -> str | None:
    # Inheritance prefixes (_X, __X) are part of the name Asterisk reports.
    name = raw.lstrip("_")
    return name if name.upper().startswith(VAR_PREFIX) else None


_NEW_CHANNEL_FIELDS = ("name", "state", "caller_num", "caller_name", "exten")
# (header, Channel attribute, is a caller-id field) copied from every channel snapshot.
_SNAPSHOT_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("Channel", "name", False),
    ("CallerIDNum", "caller_num", True),
    ("CallerIDName", "caller_name", True),
    ("ConnectedLineNum", "connected_num", True),
    ("ConnectedLineName", "connected_name", True),
    ("Context", "context", False),
    ("Exten", "exten", False),
)


class _State:
    """The swappable part of the tracker's state plus the logic that mutates it."""

    def __init__(
        self,
        gone: OrderedDict[str, None],
        gone_max: int,
        counters: dict[str, int],
        history: deque[HangupRecord] | None,
    ) -> None:
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.queues: dict[str, list[QueueCaller]] = {}
        self.parked: dict[str, ParkedCall] = {}  # by the parked channel's uniqueid
        self.calls: dict[str, dict[str, None]] = {}  # linkedid -> ordered set of uniqueids
        # Shared with the tracker: uniqueids that hung up, so late events cannot revive them.
        self.gone = gone
        self.gone_max = gone_max
        self.counters = counters
        self.history = history  # None while replaying: the live pass already recorded it

    # channels ---------------------------------------------------------------------------

    def upsert(
        self, ev: Event, mono: float, wall: float, out: list[Change], prefix: str = ""
    ) -> Channel | None:
        uid = _s(ev, prefix + "Uniqueid")
        if not uid:
            return None
        ch = self.channels.get(uid)
        if ch is None:
            if uid in self.gone:
                return None
            ch = Channel(uid, created_mono=mono, created_wall=wall)
            self.channels[uid] = ch
            self.refresh(ch, ev, mono, wall, prefix)
            if not ch.linkedid:
                self._link(ch, uid)
            data = {k: getattr(ch, k) for k in _NEW_CHANNEL_FIELDS}
            out.append(Change("channel_new", uid, ch.linkedid, data=data))
            return ch
        changed = self.refresh(ch, ev, mono, wall, prefix)
        if changed:
            out.append(Change("channel_update", uid, ch.linkedid, data=changed))
        return ch

    def refresh(
        self, ch: Channel, ev: Event, mono: float, wall: float, prefix: str = ""
    ) -> dict[str, Any]:
        """Copy the channel snapshot in ``ev`` onto ``ch``; return what changed (sans priority)."""
        changed: dict[str, Any] = {}
        for header, attr, is_cid in _SNAPSHOT_FIELDS:
            if prefix + header not in ev:
                continue
            v = _s(ev, prefix + header)
            if is_cid:
                v = _cid(v)
            if getattr(ch, attr) != v:
                setattr(ch, attr, v)
                changed[attr] = v
        if prefix + "Priority" in ev:
            # Priority moves on every dialplan step: tracked, but not worth a Change.
            ch.priority = _s(ev, prefix + "Priority")
        if prefix + "ChannelState" in ev:
            st = _int(_s(ev, prefix + "ChannelState"))
            if st is None or st not in STATE_NAMES:
                self.counters["garbled"] += 1
            elif st != ch.state:
                ch.state = st
                ch.state_desc = STATE_NAMES[st]
                changed["state"] = st
                changed["state_desc"] = ch.state_desc
                if st == STATE_UP and not ch.answered:
                    ch.answered = True
                    ch.answered_mono = mono
                    ch.answered_wall = wall
                    changed["answered_wall"] = wall
        linkedid = _s(ev, prefix + "Linkedid")
        if linkedid and linkedid != ch.linkedid:
            self._link(ch, linkedid)
            changed["linkedid"] = linkedid
        chanvars = ev.get(prefix + "ChanVariable")
        if chanvars is not None:
            for item in chanvars if isinstance(chanvars, list) else [chanvars]:
                k, sep, v = str(item).partition("=")
                name = _var_name(k) if sep else None
                if name is not None and v and ch.variables.get(name) != v:
                    ch.variables[name] = v
                    changed.setdefault("variables", {})[name] = v
        return changed

    def _link(self, ch: Channel, linkedid: str) -> None:
        if ch.linkedid:
            members = self.calls.get(ch.linkedid)
            if members is not None:
                members.pop(ch.uniqueid, None)
                if not members:
                    del self.calls[ch.linkedid]
        ch.linkedid = linkedid
        self.calls.setdefault(linkedid, {})[ch.uniqueid] = None

    def linkedid(self, uid: str) -> str | None:
        ch = self.channels.get(uid)
        return ch.linkedid if ch is not None else None

    def remove_channel(self, ch: Channel) -> None:
        uid = ch.uniqueid
        self.channels.pop(uid, None)
        members = self.calls.get(ch.linkedid)
        if members is not None:
            members.pop(uid, None)
            if not members:
                del self.calls[ch.linkedid]
        if ch.bridge_id is not None:
            br = self.bridges.get(ch.bridge_id)
            if br is not None and uid in br.members:
                br.members.remove(uid)
        for entries in self.queues.values():
            for i, qc in enumerate(entries):
                if qc.uniqueid == uid:
                    del entries[i]
                    _renumber(entries)
                    break
        self.parked.pop(uid, None)
        self.gone[uid] = None
        while len(self.gone) > self.gone_max:
            self.gone.popitem(last=False)

    # event handlers ---------------------------------------------------------------------
    # Each returns True if it understood the event, False if it was garbled.

    def on_channel(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        """Newchannel, Newstate, NewCallerid, NewConnectedLine: the snapshot says it all."""
        return self.upsert(ev, mono, wall, out) is not None or _s(ev, "Uniqueid") in self.gone

    def on_newexten(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        ch = self.upsert(ev, mono, wall, out)
        if ch is not None:
            ch.application = _s(ev, "Application")
        return ch is not None or _s(ev, "Uniqueid") in self.gone

    def on_rename(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        ch = self.upsert(ev, mono, wall, out)
        if ch is None:
            return _s(ev, "Uniqueid") in self.gone
        new = _s(ev, "Newname")
        if new and new != ch.name:
            ch.name = new
            out.append(Change("channel_update", ch.uniqueid, ch.linkedid, data={"name": new}))
        return True

    def on_varset(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        name = _var_name(_s(ev, "Variable"))
        if name is None:
            return True  # someone else's variable: expected, not garbage
        ch = self.upsert(ev, mono, wall, out)
        if ch is None:
            return _s(ev, "Uniqueid") in self.gone or not _s(ev, "Uniqueid")
        value = _s(ev, "Value")
        if value:
            if ch.variables.get(name) == value:
                return True
            ch.variables[name] = value
        elif ch.variables.pop(name, None) is None:
            return True  # Set(X=) removes a variable; nothing to remove
        out.append(
            Change("variable", ch.uniqueid, ch.linkedid, data={"name": name, "value": value})
        )
        return True

    def on_dial_begin(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        dest = self.upsert(ev, mono, wall, out, "Dest")
        if dest is None:
            return _s(ev, "DestUniqueid") in self.gone
        # No caller side when Asterisk originates the call itself.
        caller = self.upsert(ev, mono, wall, out)
        dial = _s(ev, "DialString")
        if caller is not None:
            dest.dialed_by = caller.uniqueid
            if not any(d.dest_uniqueid == dest.uniqueid for d in caller.dials):
                caller.dials.append(
                    Dial(dest.uniqueid, dest.name, dial, begin_mono=mono, begin_wall=wall))
        data = {"dest_uniqueid": dest.uniqueid, "dest_channel": dest.name, "dial_string": dial}
        out.append(Change("dial_begin", (caller or dest).uniqueid, dest.linkedid, data=data))
        return True

    def on_dial_end(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        status = _s(ev, "DialStatus")
        dest = self.upsert(ev, mono, wall, out, "Dest")
        caller = self.upsert(ev, mono, wall, out)
        dest_uid = _s(ev, "DestUniqueid")
        if dest is None and caller is None:
            return bool(dest_uid) and dest_uid in self.gone
        if dest is not None:
            dest.dial_status = status
        if caller is not None:
            caller.dial_status = status
            for d in caller.dials:
                if d.dest_uniqueid == dest_uid:
                    d.status = status
                    d.end_wall = wall
        anchor = caller or dest
        assert anchor is not None
        data = {"dest_uniqueid": dest_uid, "status": status}
        out.append(Change("dial_end", anchor.uniqueid, anchor.linkedid, data=data))
        return True

    def _bridge(self, ev: Event, mono: float, wall: float, out: list[Change]) -> Bridge | None:
        bid = _s(ev, "BridgeUniqueid")
        if not bid:
            return None
        br = self.bridges.get(bid)
        if br is None:
            br = Bridge(bid, created_mono=mono, created_wall=wall)
            self.bridges[bid] = br
            out.append(Change("bridge_new", bridge_id=bid))
        if "BridgeType" in ev:
            br.bridge_type = _s(ev, "BridgeType")
        if "BridgeTechnology" in ev:
            br.technology = _s(ev, "BridgeTechnology")
        return br

    def on_bridge_create(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        return self._bridge(ev, mono, wall, out) is not None

    def on_bridge_enter(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        br = self._bridge(ev, mono, wall, out)
        if br is None:
            return False
        ch = self.upsert(ev, mono, wall, out)
        if ch is None:
            return _s(ev, "Uniqueid") in self.gone
        if ch.bridge_id is not None and ch.bridge_id != br.bridge_id:
            old = self.bridges.get(ch.bridge_id)
            if old is not None and ch.uniqueid in old.members:
                old.members.remove(ch.uniqueid)
        ch.bridge_id = br.bridge_id
        if ch.uniqueid not in br.members:
            br.members.append(ch.uniqueid)
            data = {"members": list(br.members)}
            out.append(Change("bridge_enter", ch.uniqueid, ch.linkedid, br.bridge_id, data=data))
        return True

    def on_bridge_leave(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        bid = _s(ev, "BridgeUniqueid")
        uid = _s(ev, "Uniqueid")
        if not bid or not uid:
            return False
        br = self.bridges.get(bid)
        ch = self.channels.get(uid)
        if ch is not None:
            self.refresh(ch, ev, mono, wall)
            if ch.bridge_id == bid:
                ch.bridge_id = None
        if br is not None and uid in br.members:
            br.members.remove(uid)
            data = {"members": list(br.members)}
            out.append(Change("bridge_leave", uid, self.linkedid(uid), bid, data=data))
        return True

    def on_bridge_merge(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        to_id, from_id = _s(ev, "ToBridgeUniqueid"), _s(ev, "FromBridgeUniqueid")
        if not to_id or not from_id:
            return False
        src = self.bridges.get(from_id)
        if src is None:
            return True
        dst = self.bridges.get(to_id)
        if dst is None:
            dst = self.bridges[to_id] = Bridge(to_id, created_mono=mono, created_wall=wall)
        for uid in src.members:
            if uid not in dst.members:
                dst.members.append(uid)
            ch = self.channels.get(uid)
            if ch is not None:
                ch.bridge_id = to_id
        src.members.clear()
        data = {"from": from_id, "members": dst.members[:]}
        out.append(Change("bridge_merge", bridge_id=to_id, data=data))
        return True

    def on_bridge_destroy(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        bid = _s(ev, "BridgeUniqueid")
        if not bid:
            return False
        br = self.bridges.pop(bid, None)
        if br is None:
            return True
        for uid in br.members:
            ch = self.channels.get(uid)
            if ch is not None and ch.bridge_id == bid:
                ch.bridge_id = None
        out.append(Change("bridge_destroy", bridge_id=bid))
        return True

    def on_queue_join(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        queue = _s(ev, "Queue")
        ch = self.upsert(ev, mono, wall, out)
        if not queue or ch is None:
            return bool(queue) and _s(ev, "Uniqueid") in self.gone
        entries = self.queues.setdefault(queue, [])
        if any(qc.uniqueid == ch.uniqueid for qc in entries):
            return True
        pos = _int(_s(ev, "Position"))
        if pos is None or pos < 1:
            self.counters["garbled"] += 1
            pos = len(entries) + 1
        qc = QueueCaller(ch.uniqueid, ch.name, ch.caller_num, ch.caller_name, pos, mono, wall)
        entries.insert(min(pos, len(entries) + 1) - 1, qc)
        _renumber(entries)
        data = {"position": qc.position, "count": len(entries)}
        out.append(Change("queue_join", ch.uniqueid, ch.linkedid, queue=queue, data=data))
        return True

    def on_queue_leave(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        queue, uid = _s(ev, "Queue"), _s(ev, "Uniqueid")
        if not queue or not uid:
            return False
        entries = self.queues.get(queue, [])
        for i, qc in enumerate(entries):
            if qc.uniqueid == uid:
                del entries[i]
                _renumber(entries)
                if not entries:
                    del self.queues[queue]
                ch = self.channels.get(uid)
                if ch is not None:
                    self.refresh(ch, ev, mono, wall)
                data = {"position": i + 1, "count": len(entries), "abandoned": qc.abandoned}
                out.append(Change("queue_leave", uid, self.linkedid(uid), queue=queue, data=data))
                break
        return True

    def on_queue_abandon(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        queue, uid = _s(ev, "Queue"), _s(ev, "Uniqueid")
        if not queue or not uid:
            return False
        for qc in self.queues.get(queue, []):
            if qc.uniqueid == uid and not qc.abandoned:
                qc.abandoned = True
                data = {
                    "position": qc.position,
                    "original_position": _int(_s(ev, "OriginalPosition")),
                    "hold_time": _int(_s(ev, "HoldTime")),
                }
                out.append(Change("queue_abandon", uid, self.linkedid(uid), queue=queue, data=data))
        return True

    def on_parked(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        """ParkedCall (live, and as the ParkedCalls list when resyncing)."""
        ch = self.upsert(ev, mono, wall, out, "Parkee")
        space = _s(ev, "ParkingSpace")
        if ch is None or not space:
            return bool(space) and _s(ev, "ParkeeUniqueid") in self.gone
        duration = _int(_s(ev, "ParkingDuration")) or 0
        prev = self.parked.get(ch.uniqueid)
        pc = ParkedCall(
            ch.uniqueid, ch.name, space, _s(ev, "Parkinglot"),
            _int(_s(ev, "ParkingTimeout")), _s(ev, "ParkerDialString"),
            mono - duration, wall - duration,
        )
        if prev is not None and prev.space == space:
            pc.parked_mono, pc.parked_wall = prev.parked_mono, prev.parked_wall
        self.parked[ch.uniqueid] = pc
        out.append(Change("parked", ch.uniqueid, ch.linkedid, data={"space": space, "lot": pc.lot}))
        return True

    def on_unparked(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        """UnParkedCall, ParkedCallGiveUp, ParkedCallTimeOut: not parked any more."""
        uid = _s(ev, "ParkeeUniqueid")
        if not uid:
            return False
        self.upsert(ev, mono, wall, out, "Parkee")
        pc = self.parked.pop(uid, None)
        if pc is not None:
            data = {"space": pc.space, "why": _s(ev, "Event")}
            out.append(Change("unparked", uid, self.linkedid(uid), data=data))
        return True

    def on_dtmf_end(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        digit = _s(ev, "Digit")
        if not digit:
            return False
        if _s(ev, "Direction") != "Received":
            return True
        ch = self.upsert(ev, mono, wall, out)
        if ch is None:
            return _s(ev, "Uniqueid") in self.gone
        ch.dtmf = (ch.dtmf + digit)[-_MAX_DTMF:]
        out.append(Change("dtmf", ch.uniqueid, ch.linkedid, data={"digit": digit}))
        return True

    def on_hangup(self, ev: Event, mono: float, wall: float, out: list[Change]) -> bool:
        uid = _s(ev, "Uniqueid")
        if not uid:
            return False
        ch = self.channels.get(uid)
        if ch is None:
            if uid in self.gone:
                return True
            # Never seen (we started mid-call): still worth a history record.
            ch = Channel(uid, created_mono=mono, created_wall=wall)
        self.refresh(ch, ev, mono, wall)
        ch.hangup_cause = _int(_s(ev, "Cause"))
        ch.hangup_cause_txt = _s(ev, "Cause-txt")
        self.remove_channel(ch)
        if self.history is not None:
            self.history.append(HangupRecord(ch, mono, wall))
        data = {"cause": ch.hangup_cause, "cause_txt": ch.hangup_cause_txt, "name": ch.name,
                "answered": ch.answered}
        out.append(Change("channel_hangup", uid, ch.linkedid, data=data))
        return True

    # resync -----------------------------------------------------------------------------

    def load_channel(self, ev: Event, mono: float, wall: float) -> bool:
        """One CoreShowChannel event."""
        uid = _s(ev, "Uniqueid")
        if not uid:
            return False
        if uid in self.gone:  # its Hangup already reached us
            return True
        age = _duration(_s(ev, "Duration")) or 0.0
        ch = Channel(uid, created_mono=mono - age, created_wall=wall - age)
        self.refresh(ch, ev, mono, wall)
        if ch.answered:
            # Up before we looked: when exactly is unknown.
            ch.answered_mono = ch.answered_wall = None
        if not ch.linkedid:
            self._link(ch, uid)
        ch.application = _s(ev, "Application")
        self.channels[uid] = ch
        bid = _s(ev, "BridgeId")
        if bid:
            br = self.bridges.get(bid)
            if br is None:
                br = self.bridges[bid] = Bridge(bid, created_mono=mono, created_wall=wall)
            ch.bridge_id = bid
            if uid not in br.members:
                br.members.append(uid)
        return True

    def load_bridge(self, ev: Event, mono: float, wall: float) -> bool:
        """One BridgeListItem event."""
        return self._bridge(ev, mono, wall, []) is not None

    def load_parked(self, ev: Event, mono: float, wall: float) -> bool:
        """One ParkedCall event (from ParkedCalls)."""
        return self.on_parked(ev, mono, wall, [])

    def load_queue_entry(self, ev: Event, mono: float, wall: float) -> bool:
        """One QueueEntry event (from QueueStatus)."""
        queue, uid = _s(ev, "Queue"), _s(ev, "Uniqueid")
        if not queue or not uid:
            return False
        if uid in self.gone:
            return True
        pos = _int(_s(ev, "Position"))
        wait = _duration(_s(ev, "Wait")) or 0.0
        entries = self.queues.setdefault(queue, [])
        entries.append(
            QueueCaller(
                uid,
                _s(ev, "Channel"),
                _cid(_s(ev, "CallerIDNum")),
                _cid(_s(ev, "CallerIDName")),
                pos if pos is not None and pos > 0 else len(entries) + 1,
                mono - wait,
                wall - wait,
            )
        )
        return pos is not None

    def finish_load(self, old: _State) -> None:
        """Order queues and keep what a snapshot cannot tell but the old state knew."""
        for entries in self.queues.values():
            entries.sort(key=lambda qc: qc.position)
            _renumber(entries)
        for uid, ch in self.channels.items():
            prev = old.channels.get(uid)
            if prev is None:
                continue
            ch.created_mono, ch.created_wall = prev.created_mono, prev.created_wall
            if prev.answered and ch.answered:
                ch.answered_mono, ch.answered_wall = prev.answered_mono, prev.answered_wall
            ch.dials = prev.dials
            ch.dialed_by = prev.dialed_by
            ch.dial_status = prev.dial_status
            ch.dtmf = prev.dtmf
            ch.variables = {**prev.variables, **ch.variables}
        for bid, br in self.bridges.items():
            prev_br = old.bridges.get(bid)
            if prev_br is not None:
                br.created_mono, br.created_wall = prev_br.created_mono, prev_br.created_wall
                br.bridge_type = br.bridge_type or prev_br.bridge_type
                br.technology = br.technology or prev_br.technology
        for queue, entries in self.queues.items():
            joined = {qc.uniqueid: qc for qc in old.queues.get(queue, [])}
            for qc in entries:
                prev_qc = joined.get(qc.uniqueid)
                if prev_qc is not None:
                    qc.joined_mono, qc.joined_wall = prev_qc.joined_mono, prev_qc.joined_wall
                    qc.abandoned = prev_qc.abandoned


def _renumber(entries: list[QueueCaller]) -> None:
    for i, qc in enumerate(entries, 1):
        qc.position = i


_Handler = Callable[[_State, Event, float, float, list[Change]], bool]

_HANDLERS: dict[str, _Handler] = {
    "Newchannel": _State.on_channel,
    "Newstate": _State.on_channel,
    "NewCallerid": _State.on_channel,
    "NewConnectedLine": _State.on_channel,
    "Newexten": _State.on_newexten,
    "Rename": _State.on_rename,
    "VarSet": _State.on_varset,
    "DialBegin": _State.on_dial_begin,
    "DialEnd": _State.on_dial_end,
    "BridgeCreate": _State.on_bridge_create,
    "BridgeEnter": _State.on_bridge_enter,
    "BridgeLeave": _State.on_bridge_leave,
    "BridgeMerge": _State.on_bridge_merge,
    "BridgeDestroy": _State.on_bridge_destroy,
    "QueueCallerJoin": _State.on_queue_join,
    "QueueCallerLeave": _State.on_queue_leave,
    "QueueCallerAbandon": _State.on_queue_abandon,
    "ParkedCall": _State.on_parked,
    "UnParkedCall": _State.on_unparked,
    "ParkedCallGiveUp": _State.on_unparked,
    "ParkedCallTimeOut": _State.on_unparked,
    # Another channel (e.g. the far end of an optimised Local channel) took the space.
    "ParkedCallSwap": _State.on_parked,
    "DTMFEnd": _State.on_dtmf_end,
    "Hangup": _State.on_hangup,
}


class CallTracker:
    """Call state from AMI events. ``apply`` is synchronous and never blocks or raises.

    Read it through ``snapshot()`` (JSON-ready copies) or the accessors (live objects:
    do not mutate them). ``subscribe()`` streams Changes; after ``resynced`` or
    ``desynced`` a subscriber should re-read the snapshot.
    """

    def __init__(
        self,
        *,
        recent_hangups: int = 200,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall_clock
        self._recent: deque[HangupRecord] = deque(maxlen=recent_hangups)
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._gone_max = max(1000, recent_hangups * 10)
        self._counters = {"applied": 0, "ignored": 0, "garbled": 0, "errors": 0, "resyncs": 0}
        self._state = self._new_state(live=True)
        self._subscribers: list[ChangeQueue] = []
        self._resync_buffers: list[list[tuple[Event, float, float]]] = []
        self.synced = False
        self.generation = 0

    def _new_state(self, *, live: bool) -> _State:
        counters = self._counters if live else {"garbled": 0}
        return _State(self._gone, self._gone_max, counters, self._recent if live else None)

    # applying events ----------------------------------------------------------------------

    def apply(self, event: Event) -> list[Change]:
        """Fold one AMI event into the state; return (and publish) what changed."""
        name = event.get("Event")
        handler = _HANDLERS.get(name) if isinstance(name, str) else None
        if handler is None:
            self._counters["ignored"] += 1
            return []
        mono, wall = self._clock(), self._wall()
        for buf in self._resync_buffers:
            buf.append((event, mono, wall))
        out: list[Change] = []
        try:
            ok = handler(self._state, event, mono, wall, out)
        except Exception:
            # A bug here must not take down the AMI reader; count it and move on.
            self._counters["errors"] += 1
            log.exception("tracker failed on %s event", name)
            return []
        self._counters["applied" if ok else "garbled"] += 1
        if out:
            self._publish(out)
        return out

    def _publish(self, changes: Iterable[Change]) -> None:
        for q in self._subscribers:
            for c in changes:
                q.push(c)

    # subscriptions ------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1000, *, queue: ChangeQueue | None = None) -> ChangeQueue:
        """A queue of future Changes. A full queue loses its oldest item (see ``.dropped``).
        ``queue``: one queue that several trackers (several Asterisks) feed."""
        if queue is None:
            if maxsize < 1:
                raise ValueError("maxsize must be at least 1")
            queue = ChangeQueue(maxsize)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, q: asyncio.Queue[Change]) -> None:
        self._subscribers = [s for s in self._subscribers if s is not q]

    # resynchronisation --------------------------------------------------------------------

    def attach(self, client: AmiClient) -> None:
        """Follow ``client``: apply its events, resync after every (re)connect."""
        client.add_event_listener(self.apply)
        client.add_on_connected(self.resync)
        client.add_state_listener(self._on_client_state)

    def _on_client_state(self, connected: bool) -> None:
        if not connected and self.synced:
            # Events are being missed from now on; say so rather than show stale calls as live.
            self.synced = False
            self._publish([Change("desynced")])

    async def resync(self, client: _ActionSender) -> None:
        """Rebuild the state from CoreShowChannels, BridgeList and QueueStatus, then swap.

        Events arriving meanwhile update the old state as usual and are replayed onto the
        new one before the swap, so nothing that happens during the resync is lost.
        """
        buf: list[tuple[Event, float, float]] = []
        self._resync_buffers.append(buf)
        try:
            results = await asyncio.gather(
                client.action({"Action": "CoreShowChannels"}),
                client.action({"Action": "BridgeList"}),
                client.action({"Action": "QueueStatus"}),
                client.action({"Action": "ParkedCalls"}),
                return_exceptions=True,
            )
            names = ("CoreShowChannels", "BridgeList", "QueueStatus", "ParkedCalls")
            for what, res in zip(names, results, strict=True):
                if isinstance(res, BaseException):
                    # Channels are essential; bridges and queues may be unavailable
                    # (app_queue not loaded, or no privilege) without making us wrong.
                    if what != "CoreShowChannels" and isinstance(res, AmiActionError):
                        log.warning("resync: %s failed: %s; assuming none", what, res)
                        continue
                    if what == "ParkedCalls" and isinstance(res, Exception):
                        # Parking is an extra: without it the calls are still right.
                        log.warning("resync: ParkedCalls failed: %r; assuming none", res)
                        continue
                    raise res
            channels, bridges, queues, parked = results
            mono, wall = self._clock(), self._wall()
            new = self._new_state(live=False)
            garbled = 0
            for res, loader, wanted in (
                (bridges, _State.load_bridge, "BridgeListItem"),
                (channels, _State.load_channel, "CoreShowChannel"),
                (queues, _State.load_queue_entry, "QueueEntry"),
                (parked, _State.load_parked, "ParkedCall"),
            ):
                if isinstance(res, BaseException):
                    continue
                for ev in res.events:
                    if _s(ev, "Event") == wanted and not loader(new, ev, mono, wall):
                        garbled += 1
            new.finish_load(self._state)
            for ev, ev_mono, ev_wall in buf:
                handler = _HANDLERS[_s(ev, "Event")]
                try:
                    handler(new, ev, ev_mono, ev_wall, [])
                except Exception:
                    log.exception("tracker failed replaying %s event", _s(ev, "Event"))
        finally:
            self._resync_buffers = [b for b in self._resync_buffers if b is not buf]
        new.counters = self._counters
        new.history = self._recent
        self._counters["garbled"] += garbled
        self._counters["resyncs"] += 1
        self._state = new
        self.synced = True
        self.generation += 1
        log.info(
            "tracker resynced: %d channels, %d bridges, %d queued callers (%d events replayed)",
            len(new.channels),
            len(new.bridges),
            sum(len(e) for e in new.queues.values()),
            len(buf),
        )
        data = {"generation": self.generation, "channels": len(new.channels),
                "bridges": len(new.bridges)}
        self._publish([Change("resynced", data=data)])

    # reading ------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """applied/ignored/garbled/errors counts, resyncs, and changes dropped for subscribers."""
        return {**self._counters, "dropped": sum(q.dropped for q in self._subscribers)}

    def channel(self, uniqueid: str) -> Channel | None:
        return self._state.channels.get(uniqueid)

    @property
    def channels(self) -> Mapping[str, Channel]:
        return self._state.channels

    @property
    def bridges(self) -> Mapping[str, Bridge]:
        return self._state.bridges

    def bridge_peers(self, uniqueid: str) -> list[Channel]:
        """The other channels in the bridge ``uniqueid`` is in."""
        ch = self._state.channels.get(uniqueid)
        br = self._state.bridges.get(ch.bridge_id) if ch and ch.bridge_id else None
        if br is None:
            return []
        chans = self._state.channels
        return [chans[u] for u in br.members if u != uniqueid and u in chans]

    def queue_callers(self, queue: str) -> list[QueueCaller]:
        return list(self._state.queues.get(queue, []))

    @property
    def queues(self) -> Mapping[str, list[QueueCaller]]:
        return self._state.queues

    @property
    def parked(self) -> Mapping[str, ParkedCall]:
        """Parked channels by uniqueid."""
        return self._state.parked

    @property
    def recent_hangups(self) -> list[HangupRecord]:
        """Recently hung-up channels, oldest first (bounded)."""
        return list(self._recent)

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain JSON-serialisable data (deep copies)."""
        st = self._state
        calls: dict[str, Any] = {}
        for linkedid, uids in st.calls.items():
            chans = [st.channels[u] for u in uids if u in st.channels]
            if not chans:
                continue
            calls[linkedid] = {
                "linkedid": linkedid,
                "channels": [c.uniqueid for c in chans],
                "started_wall": min(c.created_wall for c in chans),
                "answered": any(c.answered for c in chans),
                "bridges": sorted({c.bridge_id for c in chans if c.bridge_id}),
            }
        return {
            "synced": self.synced,
            "generation": self.generation,
            "channels": {u: asdict(c) for u, c in st.channels.items()},
            "bridges": {b: asdict(br) for b, br in st.bridges.items()},
            "queues": {q: [asdict(qc) for qc in e] for q, e in st.queues.items()},
            "parked": {u: asdict(p) for u, p in st.parked.items()},
            "calls": calls,
            "recent_hangups": [asdict(h) for h in self._recent],
            "stats": self.stats,
        }
