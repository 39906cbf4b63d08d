"""CallTracker: a recorded call step by step, queues, resync, garbage, slow subscribers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from fake_ami import FakeAmi, list_response

from vaihde.ami import AmiActionError, AmiClient, AmiResponse
from vaihde.ami.tracker import CallTracker, Change

A = "1718000000.11"  # caller: the ;2 half of a Local channel running the dialplan
B = "1718000000.12"  # callee: the desk phone


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_tracker() -> tuple[CallTracker, Clock]:
    clock = Clock()
    return CallTracker(clock=clock, wall_clock=lambda: clock.t + 1_700_000_000), clock


def snap(
    uid: str,
    chan: str,
    state: int,
    num: str,
    name: str,
    *,
    linkedid: str = A,
    conn_num: str = "<unknown>",
    conn_name: str = "<unknown>",
    context: str = "vaihde-main",
    exten: str = "200",
    priority: str = "1",
    prefix: str = "",
) -> dict[str, str]:
    """A channel snapshot block as Asterisk 22 prints it in every channel event."""
    states = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
    fields = {
        "Channel": chan,
        "ChannelState": str(state),
        "ChannelStateDesc": states.get(state, "Unknown"),
        "CallerIDNum": num,
        "CallerIDName": name,
        "ConnectedLineNum": conn_num,
        "ConnectedLineName": conn_name,
        "Language": "fi",
        "AccountCode": "",
        "Context": context,
        "Exten": exten,
        "Priority": priority,
        "Uniqueid": uid,
        "Linkedid": linkedid,
    }
    return {prefix + k: v for k, v in fields.items()}


def ev(name: str, *blocks: Mapping[str, str], **extra: str) -> dict[str, str]:
    out = {"Event": name, "Privilege": "call,all"}
    for b in blocks:
        out.update(b)
    out.update(extra)
    return out


LOCAL = "Local/200@vaihde-00000001;2"
DESK = "PJSIP/101-00000002"


def a_snap(state: int, **kw: Any) -> dict[str, str]:
    return snap(A, LOCAL, state, "0401234567", "Mäkinen Matti", **kw)


def b_snap(state: int, prefix: str = "", **kw: Any) -> dict[str, str]:
    kw.setdefault("context", "vaihde-desk")
    kw.setdefault("exten", "s")
    return snap(B, DESK, state, "101", "Anna", prefix=prefix, **kw)


BRIDGE = {
    "BridgeUniqueid": "9f3b-bridge",
    "BridgeType": "basic",
    "BridgeTechnology": "simple_bridge",
    "BridgeCreator": "<unknown>",
    "BridgeName": "<unknown>",
    "BridgeVideoSourceMode": "none",
}


def test_recorded_call_step_by_step() -> None:
    t, clock = make_tracker()

    changes = t.apply(ev("Newchannel", a_snap(4)))
    assert [c.kind for c in changes] == ["channel_new"]
    ch = t.snapshot()["channels"][A]
    assert ch["name"] == LOCAL and ch["state_desc"] == "Ring"
    assert ch["caller_name"] == "Mäkinen Matti" and ch["connected_num"] == ""
    assert ch["created_mono"] == 1000.0 and not ch["answered"]

    # Inheritable variable (reported with its underscores); other variables are ignored.
    changes = t.apply(ev("VarSet", a_snap(4), Variable="__VAIHDE_CALL_ID", Value="c-42"))
    assert [c.kind for c in changes] == ["variable"]
    assert t.apply(ev("VarSet", a_snap(4), Variable="DIALSTATUS", Value="")) == []
    t.apply(ev("Newexten", a_snap(4, priority="3"), Application="AGI", AppData="agi://x"))
    assert t.channel(A).priority == "3"
    t.apply(ev("DTMFEnd", a_snap(4), Digit="1", DurationMs="120", Direction="Received"))
    t.apply(ev("DTMFEnd", a_snap(4), Digit="9", DurationMs="120", Direction="Sent"))
    ch = t.channel(A)
    assert ch is not None
    assert ch.variables == {"VAIHDE_CALL_ID": "c-42"}
    assert ch.dtmf == "1" and ch.application == "AGI"

    clock.t += 1
    t.apply(ev("Newchannel", b_snap(0)))
    changes = t.apply(ev("DialBegin", a_snap(4), b_snap(0, prefix="Dest"), DialString="101"))
    assert changes[-1] == Change(
        "dial_begin",
        A,
        A,
        data={"dest_uniqueid": B, "dest_channel": DESK, "dial_string": "101"},
    )
    s = t.snapshot()
    assert s["channels"][B]["dialed_by"] == A
    assert s["channels"][A]["dials"] == [
        {
            "dest_uniqueid": B,
            "dest_channel": DESK,
            "dial_string": "101",
            "status": "",
            "begin_mono": 1001.0,
            "begin_wall": 1_700_001_001.0,
            "end_wall": None,
        }
    ]
    assert s["calls"][A]["channels"] == [A, B]

    t.apply(ev("Newstate", b_snap(5)))
    assert t.channel(B).state_desc == "Ringing"
    clock.t += 4
    # From here on every snapshot carries the connected line Asterisk has set.
    b_up = b_snap(6, conn_num="0401234567", conn_name="Mäkinen Matti")
    a_up = a_snap(6, conn_num="101", conn_name="Anna")
    t.apply(ev("Newstate", b_up))
    dest_up = {"Dest" + k: v for k, v in b_up.items()}
    t.apply(ev("DialEnd", a_snap(4), dest_up, DialStatus="ANSWER", Forward=""))
    t.apply(ev("Newstate", a_up))
    s = t.snapshot()
    assert s["channels"][A]["dial_status"] == "ANSWER"
    assert s["channels"][A]["dials"][0]["status"] == "ANSWER"
    assert s["channels"][B]["answered_mono"] == 1005.0
    assert s["channels"][B]["connected_name"] == "Mäkinen Matti"
    assert s["calls"][A]["answered"]

    t.apply(ev("BridgeCreate", BRIDGE, BridgeNumChannels="0"))
    t.apply(ev("BridgeEnter", BRIDGE, a_up, BridgeNumChannels="1"))
    changes = t.apply(ev("BridgeEnter", BRIDGE, b_up, BridgeNumChannels="2"))
    assert changes[-1].kind == "bridge_enter" and changes[-1].data["members"] == [A, B]
    s = t.snapshot()
    assert s["bridges"]["9f3b-bridge"]["members"] == [A, B]
    assert s["bridges"]["9f3b-bridge"]["bridge_type"] == "basic"
    assert s["channels"][A]["bridge_id"] == s["channels"][B]["bridge_id"] == "9f3b-bridge"
    assert [c.uniqueid for c in t.bridge_peers(A)] == [B]
    assert s["calls"][A]["bridges"] == ["9f3b-bridge"]

    # The callee hangs up first.
    t.apply(ev("BridgeLeave", BRIDGE, b_up, BridgeNumChannels="1"))
    changes = t.apply(ev("Hangup", b_up, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert changes[-1].kind == "channel_hangup" and changes[-1].data["cause"] == 16
    s = t.snapshot()
    assert B not in s["channels"] and s["bridges"]["9f3b-bridge"]["members"] == [A]
    assert s["calls"][A]["channels"] == [A]
    assert s["recent_hangups"][-1]["channel"]["uniqueid"] == B
    assert s["recent_hangups"][-1]["channel"]["hangup_cause_txt"] == "Normal Clearing"

    t.apply(ev("BridgeLeave", BRIDGE, a_up, BridgeNumChannels="0"))
    t.apply(ev("BridgeDestroy", BRIDGE, BridgeNumChannels="0"))
    t.apply(ev("Hangup", a_up, Cause="16", **{"Cause-txt": "Normal Clearing"}))
    s = t.snapshot()
    assert s["channels"] == {} and s["bridges"] == {} and s["calls"] == {}
    assert [h["channel"]["uniqueid"] for h in s["recent_hangups"]] == [B, A]
    assert s["recent_hangups"][-1]["channel"]["variables"] == {"VAIHDE_CALL_ID": "c-42"}
    assert s["stats"]["garbled"] == 0 and s["stats"]["errors"] == 0
    json.dumps(s)  # JSON-ready


def test_bridge_merge_moves_members() -> None:
    t, _ = make_tracker()
    b1, b2 = BRIDGE | {"BridgeUniqueid": "b1"}, BRIDGE | {"BridgeUniqueid": "b2"}
    t.apply(ev("BridgeEnter", b1, a_snap(6)))
    t.apply(ev("BridgeEnter", b2, b_snap(6)))
    changes = t.apply(ev("BridgeMerge", ToBridgeUniqueid="b2", FromBridgeUniqueid="b1"))
    assert changes[-1].kind == "bridge_merge"
    assert t.bridges["b2"].members == [B, A] and t.bridges["b1"].members == []
    assert t.channel(A).bridge_id == "b2"


def test_late_events_do_not_revive_a_hung_up_channel() -> None:
    t, _ = make_tracker()
    t.apply(ev("Newchannel", a_snap(4)))
    t.apply(ev("Hangup", a_snap(4), Cause="16", **{"Cause-txt": "Normal Clearing"}))
    assert t.apply(ev("Newstate", a_snap(6))) == []
    assert t.apply(ev("VarSet", a_snap(6), Variable="VAIHDE_X", Value="1")) == []
    assert t.channel(A) is None


def test_hangup_of_unseen_channel_is_still_recorded() -> None:
    t, _ = make_tracker()
    t.apply(ev("Hangup", b_snap(6), Cause="17", **{"Cause-txt": "User busy"}))
    assert t.recent_hangups[-1].channel.hangup_cause == 17
    assert t.channels == {}


def test_chanvariable_headers_carry_vaihde_variables() -> None:
    t, _ = make_tracker()
    # With channelvars= in manager.conf, every event repeats the variables.
    t.apply(ev("Newchannel", a_snap(4)) | {"ChanVariable": ["VAIHDE_DID=0925", "OTHER=x"]})
    assert t.channel(A).variables == {"VAIHDE_DID": "0925"}


def queue_ev(name: str, uid: str, pos: int, count: int, **extra: str) -> dict[str, str]:
    chan = f"PJSIP/trunk-{uid[-2:]}"
    return ev(
        name,
        snap(uid, chan, 6, f"04000{uid[-2:]}", "", linkedid=uid),
        Queue="myynti",
        Position=str(pos),
        Count=str(count),
        **extra,
    )


def test_queue_positions_follow_join_leave_and_abandon() -> None:
    t, clock = make_tracker()
    for i, uid in enumerate(["q.01", "q.02", "q.03"], 1):
        clock.t += 1
        changes = t.apply(queue_ev("QueueCallerJoin", uid, i, i))
        assert changes[-1].kind == "queue_join" and changes[-1].data["position"] == i

    def order() -> list[tuple[str, int]]:
        return [(qc.uniqueid, qc.position) for qc in t.queue_callers("myynti")]

    assert order() == [("q.01", 1), ("q.02", 2), ("q.03", 3)]
    assert t.snapshot()["queues"]["myynti"][0]["joined_mono"] == 1001.0

    # The middle caller is answered by an agent.
    changes = t.apply(queue_ev("QueueCallerLeave", "q.02", 2, 2))
    assert changes[-1].kind == "queue_leave" and changes[-1].data["position"] == 2
    assert order() == [("q.01", 1), ("q.03", 2)]

    # A caller with higher priority is inserted at the front.
    t.apply(queue_ev("QueueCallerJoin", "q.04", 1, 3))
    assert order() == [("q.04", 1), ("q.01", 2), ("q.03", 3)]

    # The first caller gives up: Abandon, then Leave, then Hangup.
    changes = t.apply(
        queue_ev("QueueCallerAbandon", "q.04", 1, 3, OriginalPosition="1", HoldTime="12")
    )
    assert changes[-1].kind == "queue_abandon" and changes[-1].data["hold_time"] == 12
    changes = t.apply(queue_ev("QueueCallerLeave", "q.04", 1, 2))
    assert changes[-1].data["abandoned"] is True
    assert order() == [("q.01", 1), ("q.03", 2)]

    # A hangup without a Leave still clears the entry.
    t.apply(ev("Hangup", snap("q.01", "PJSIP/trunk-01", 6, "", "", linkedid="q.01"), Cause="16"))
    assert order() == [("q.03", 1)]


class StubAmi:
    """Answers the resync actions from canned events; can pause CoreShowChannels."""

    def __init__(
        self,
        channels: list[dict[str, str]],
        bridges: list[dict[str, str]],
        queue_entries: list[dict[str, str]],
    ) -> None:
        self.lists = {
            "CoreShowChannels": (channels, "CoreShowChannelsComplete"),
            "BridgeList": (bridges, "BridgeListComplete"),
            "QueueStatus": (queue_entries, "QueueStatusComplete"),
        }
        self.fail: dict[str, Exception] = {}
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> AmiResponse:
        name = action["Action"]
        if name == "CoreShowChannels":
            self.started.set()
            if self.gate is not None:
                await self.gate.wait()
        if name in self.fail:
            raise self.fail[name]
        events, done = self.lists[name]
        first, *rows, last = list_response(events, done)
        return AmiResponse(first, rows, last)


def show(
    uid: str, chan: str, state: int, *, linkedid: str, bridge: str = "", duration: str = "00:01:05"
) -> dict[str, str]:
    return ev(
        "CoreShowChannel",
        snap(uid, chan, state, "0401", "Ville", linkedid=linkedid),
        BridgeId=bridge,
        Application="Dial",
        ApplicationData="PJSIP/101",
        Duration=duration,
    )


def resync_stub() -> StubAmi:
    return StubAmi(
        channels=[
            show("y.1", "PJSIP/trunk-1", 6, linkedid="y.1", bridge="br-1"),
            show("y.2", "PJSIP/102-1", 6, linkedid="y.1", bridge="br-1", duration="00:00:40"),
            show("z.1", "PJSIP/trunk-2", 4, linkedid="z.1"),
        ],
        bridges=[ev("BridgeListItem", BRIDGE | {"BridgeUniqueid": "br-1"}, BridgeNumChannels="2")],
        queue_entries=[
            ev("QueueParams", Queue="myynti", Max="0", Calls="1"),
            ev(
                "QueueEntry",
                Queue="myynti",
                Position="1",
                Channel="PJSIP/trunk-2",
                Uniqueid="z.1",
                CallerIDNum="0401",
                CallerIDName="Ville",
                Wait="30",
                Priority="0",
                ConnectedLineNum="<unknown>",
                ConnectedLineName="<unknown>",
            ),
        ],
    )


async def test_resync_replaces_state() -> None:
    t, clock = make_tracker()
    t.apply(ev("Newchannel", a_snap(4)))  # stale: not in Asterisk any more
    t.apply(
        ev(
            "VarSet",
            snap("y.2", "PJSIP/102-1", 6, "", "", linkedid="y.1"),
            Variable="VAIHDE_REASON",
            Value="menu-1",
        )
    )
    q = t.subscribe()
    await t.resync(resync_stub())
    s = t.snapshot()
    assert sorted(s["channels"]) == ["y.1", "y.2", "z.1"]
    assert s["channels"]["y.1"]["created_mono"] == clock.t - 65
    assert s["channels"]["y.1"]["answered"] and s["channels"]["y.1"]["answered_mono"] is None
    assert s["channels"]["y.2"]["variables"] == {"VAIHDE_REASON": "menu-1"}  # kept from before
    assert s["bridges"]["br-1"]["members"] == ["y.1", "y.2"]
    assert s["bridges"]["br-1"]["bridge_type"] == "basic"
    assert s["queues"]["myynti"][0]["uniqueid"] == "z.1"
    assert s["queues"]["myynti"][0]["joined_mono"] == clock.t - 30
    assert s["calls"]["y.1"]["channels"] == ["y.1", "y.2"]
    assert s["synced"] and s["generation"] == 1
    drained = [q.get_nowait() for _ in range(q.qsize())]
    assert drained[-1].kind == "resynced"


async def test_events_during_resync_are_not_lost() -> None:
    t, _ = make_tracker()
    stub = resync_stub()
    stub.gate = asyncio.Event()
    task = asyncio.create_task(t.resync(stub))
    await stub.started.wait()
    # While Asterisk is producing the list: one listed channel hangs up, a new one starts.
    t.apply(
        ev("Hangup", snap("z.1", "PJSIP/trunk-2", 4, "0401", "Ville", linkedid="z.1"), Cause="16")
    )
    t.apply(ev("Newchannel", snap("w.1", "PJSIP/trunk-3", 4, "0402", "Liisa", linkedid="w.1")))
    stub.gate.set()
    await task
    assert sorted(t.channels) == ["w.1", "y.1", "y.2"]
    assert t.queue_callers("myynti") == []


async def test_resync_tolerates_missing_queues_but_not_missing_channels() -> None:
    t, _ = make_tracker()
    stub = resync_stub()
    stub.fail["QueueStatus"] = AmiActionError("Invalid/unknown command", action="QueueStatus")
    await t.resync(stub)
    assert len(t.channels) == 3 and t.snapshot()["queues"] == {}

    t.apply(ev("Newchannel", a_snap(4)))
    stub.fail["CoreShowChannels"] = AmiActionError("Permission denied")
    with pytest.raises(AmiActionError):
        await t.resync(stub)
    assert A in t.channels and t.generation == 1  # untouched
    assert t._resync_buffers == []


def test_garbage_is_ignored_and_counted() -> None:
    t, _ = make_tracker()
    junk: list[Mapping[str, Any]] = [
        {},
        {"Event": ""},
        {"Event": ["Newchannel", "Hangup"]},
        {"Event": "Newchannel"},  # no Uniqueid
        {"Event": "Hangup", "Cause": "16"},
        {"Event": "DialBegin", "DialString": "101"},
        {"Event": "DialEnd"},
        {"Event": "BridgeEnter", "Uniqueid": "x.1"},
        {"Event": "BridgeLeave"},
        {"Event": "QueueCallerJoin", "Queue": "q"},
        {"Event": "DTMFEnd", "Uniqueid": "x.1"},
        {"Event": "Newstate", "Uniqueid": "x.2", "ChannelState": "42"},
        {"Event": "Newstate", "Uniqueid": "x.2", "ChannelState": "up"},
        {"Event": "QueueCallerJoin", "Queue": "q", "Uniqueid": "x.3", "Position": "first"},
        {"Event": "BridgeMerge"},
        {"Event": "Rename"},
        {"Event": "RTCPSent", "Uniqueid": "x.9"},
        {"Event": "Newchannel", "Uniqueid": "x.4", "ChanVariable": "VAIHDE_X"},
    ]
    for e in junk:
        t.apply(e)
    st = t.stats
    assert st["errors"] == 0
    assert st["garbled"] >= 12
    assert st["ignored"] >= 3
    assert t.channel("x.2") is not None and t.channel("x.2").state is None
    assert t.queue_callers("q")[0].position == 1
    json.dumps(t.snapshot())


async def test_slow_subscriber_gets_drops_counted_and_apply_never_blocks() -> None:
    t, _ = make_tracker()
    slow = t.subscribe(maxsize=5)
    fast = t.subscribe(maxsize=10_000)
    t0 = time.perf_counter()
    produced = 0
    for i in range(500):
        produced += len(t.apply(ev("Newchannel", snap(f"s.{i}", f"PJSIP/x-{i}", 4, "1", "n"))))
    elapsed = time.perf_counter() - t0
    assert produced == 500
    assert slow.qsize() == 5 and slow.dropped == 495
    assert fast.qsize() == 500 and fast.dropped == 0
    assert t.stats["dropped"] == 495
    # The slow one kept the newest changes.
    assert [slow.get_nowait().uniqueid for _ in range(5)] == [f"s.{i}" for i in range(495, 500)]
    assert elapsed < 0.5
    t.unsubscribe(slow)
    t.apply(ev("Newchannel", snap("s.x", "PJSIP/x", 4, "1", "n")))
    assert slow.qsize() == 0 and fast.qsize() == 501


async def test_attach_follows_a_client_through_reconnects() -> None:
    rows = [show("y.1", "PJSIP/trunk-1", 6, linkedid="y.1")]
    async with FakeAmi() as srv:
        srv.handlers["coreshowchannels"] = lambda a: list_response(rows, "CoreShowChannelsComplete")
        srv.handlers["bridgelist"] = lambda a: list_response([], "BridgeListComplete")
        # app_queue not loaded: QueueStatus is an unknown command (the fake's default).
        client = AmiClient(
            "127.0.0.1",
            srv.port,
            srv.username,
            srv.secret,
            ping_interval=1,
            reconnect_min=0.05,
            reconnect_max=0.1,
        )
        t = CallTracker()
        t.attach(client)
        q = t.subscribe()
        client.start()
        try:
            for _ in range(200):
                if client.connected:
                    break
                await asyncio.sleep(0.01)
            assert t.synced and list(t.channels) == ["y.1"]
            await srv.send_event(ev("Newchannel", a_snap(4)))
            for _ in range(200):
                if A in t.channels:
                    break
                await asyncio.sleep(0.01)
            assert t.channel(A).caller_name == "Mäkinen Matti"

            rows.clear()  # A and y.1 ended while we were away
            await srv.drop_all()
            for _ in range(200):
                if t.generation == 2 and client.connected:
                    break
                await asyncio.sleep(0.01)
            assert t.generation == 2 and t.synced and t.channels == {}
            kinds = [q.get_nowait().kind for _ in range(q.qsize())]
            assert kinds.count("resynced") == 2 and "desynced" in kinds
        finally:
            await client.close()
