"""The presence routing benchmark's measurement logic (bench/presence_measure.py) on hand-made
AMI events: who could take calls when, which rings were wrong, where each call had to go, and
presence change → QueueMemberPause. No timing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vaihde.company import load_company

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import calls_measure as cm  # noqa: E402
import presence_measure as pm  # noqa: E402

CO = load_company(BENCH / "presence-company.yaml")
CALL = "bench.load.0001.c"


def ev(name: str, t: float, uid: str = CALL, **fields: str) -> dict[str, Any]:
    return {"Event": name, "Timestamp": f"{t:.6f}", "_received": t + 0.001, "Uniqueid": uid,
            **fields}


def timeline(*events: dict[str, Any]) -> cm.Timeline:
    return cm.timelines(events, [CALL])[CALL]


def test_presence_is_uncertain_only_while_a_change_is_on_its_way():
    p = pm.Presence(grace=1.0)
    assert p.possible("s1", 50.0) == {True}  # nobody said anything: available
    p.set("s1", 100.0, 100.2, False)
    assert p.possible("s1", 99.9) == {True}
    assert p.possible("s1", 100.1) == {True, False}
    assert p.possible("s1", 101.1) == {True, False}
    assert p.possible("s1", 101.3) == {False} and p.absent_for_sure("s1", 101.3)
    p.set("s1", 110.0, 110.1, True)
    assert p.possible("s1", 110.5) == {True, False}
    assert p.possible("s1", 112.0) == {True}


def test_plan_mixes_teams_and_people_and_presses_0_at_an_offer():
    plans = pm.plan_calls(CO, 10)
    assert [p.target for p in plans[:4]] == ["sales", "p1", "support", "p2"]
    assert plans[1].keys == ("4", "1") and plans[1].presses == ("4", "1", "0")
    assert {p.target for p in plans} == {"sales", "support", "billing", "night",
                                          *(f"p{i}" for i in range(1, 7))}


def test_ring_all_team_must_ring_every_idle_available_member_and_no_one_else():
    p = pm.Presence(grace=1.0)
    p.set("s2", 0, 0, False)
    plan = pm.Plan(0, "team", "sales", ("1",))
    busy = pm.Busy([ev("DeviceStateChange", 90.0, Device="Local/s4@bench-phones",
                       State="INUSE")])
    members = [f"Local/s{i}@bench-phones" for i in (1, 3, 5, 6)]  # s2 away, s4 on a call
    good = timeline(ev("DTMFEnd", 100.0, Direction="Received", Digit="1"),
                    *(ev("DialBegin", 100.05, DestChannel=f"{m}-0000000a;1") for m in members))
    assert pm.check_call(plan, good, CO, p, busy) == []
    # Ringing the absent member, or the one in a call, or leaving someone out: wrong.
    for extra in ("Local/s2@bench-phones", "Local/s4@bench-phones"):
        bad = timeline(ev("DTMFEnd", 100.0, Direction="Received", Digit="1"),
                       *(ev("DialBegin", 100.05, DestChannel=f"{m}-0000000a;1")
                         for m in [*members, extra]))
        assert pm.check_call(plan, bad, CO, p, busy)
    short = timeline(ev("DTMFEnd", 100.0, Direction="Received", Digit="1"),
                     *(ev("DialBegin", 100.05, DestChannel=f"{m}-0000000a;1")
                       for m in members[1:]))
    assert pm.check_call(plan, short, CO, p, busy)


def test_in_order_team_first_rings_the_first_who_can_answer():
    p = pm.Presence(grace=1.0)
    p.set("t1", 0, 0, False)
    plan = pm.Plan(0, "team", "support", ("2",))
    busy = pm.Busy([])

    def first(device: str) -> list[str]:
        tl = timeline(ev("DTMFEnd", 100.0, Direction="Received", Digit="2"),
                      ev("DialBegin", 100.05, DestChannel=f"{device}-0000000b;1"))
        return pm.check_call(plan, tl, CO, p, busy)

    assert first("Local/t2@bench-phones") == []
    assert first("Local/t1@bench-phones")
    assert first("Local/t3@bench-phones")


def test_person_away_goes_to_the_switchboard_available_is_rung():
    p = pm.Presence(grace=1.0)
    p.set("p2", 0, 0, False)
    away = pm.Plan(0, "person", "p2", ("4", "2"))
    keys = [ev("DTMFEnd", 99.0, Direction="Received", Digit="4"),
            ev("DTMFEnd", 100.0, Direction="Received", Digit="2")]
    queued = timeline(*keys, ev("QueueCallerJoin", 106.0, Queue="vaihde-switchboard"),
                      ev("DialBegin", 106.1, DestChannel="Local/operator@bench-phones-00000001;1"))
    assert pm.check_call(away, queued, CO, p, pm.Busy([])) == []
    rung = timeline(*keys, ev("DialBegin", 100.1, DestChannel="Local/p2@bench-phones-00000002;1"))
    assert pm.check_call(away, rung, CO, p, pm.Busy([]))


def test_absent_and_unreachable_rings_are_counted_from_dials_and_queue_calls():
    p = pm.Presence(grace=1.0)
    p.set("b1", 0, 0, False)
    p.set("b2", 100.0, 100.1, False)
    events = [
        ev("AgentCalled", 50.0, Interface="Local/b1@bench-phones"),  # away all along
        ev("AgentCalled", 100.5, Interface="Local/b2@bench-phones"),  # change on its way
        ev("DialBegin", 60.0, DestChannel="Local/b3@bench-phones-00000001;1"),
        ev("DialBegin", 61.0, DestChannel="PJSIP/off-b5-00000002"),
        ev("DialBegin", 62.0, DestChannel="Local/operator@bench-phones-00000003;1"),
    ]
    assert [r["device"] for r in pm.absent_rung(events, p)] == ["Local/b1@bench-phones"]
    assert [r["device"] for r in pm.unreachable_rung(events)] == ["PJSIP/off-b5"]


def test_pause_latency_is_change_to_the_matching_queue_member_pause():
    events = [
        {"Event": "QueueMemberPause", "_received": 10.2, "Interface": "Local/b2@bench-phones",
         "Paused": "1"},
        {"Event": "QueueMemberPause", "_received": 12.05, "Interface": "Local/b2@bench-phones",
         "Paused": "0"},
    ]
    changes = [(10.0, "Local/b2@bench-phones", True), (12.0, "Local/b2@bench-phones", False),
               (13.0, "Local/b4@bench-phones", True)]
    got, missing = pm.pause_latencies(changes, events)
    assert [round(v, 3) for v in got] == [0.2, 0.05]
    assert missing == [{"at": 13.0, "interface": "Local/b4@bench-phones", "paused": True}]


def test_forwarded_calls_cycle_headers_and_are_checked_by_their_story():
    calls = pm.forwarded_plan(CO, 4)
    assert [c.header for c in calls] == ["diversion", "history-info"] * 2
    assert calls[0].number == "+358401000001" and calls[0].employee == "s1"
    assert calls[1].number == "+35820100002"  # s2's direct number
    story = {"forwarded": {"employee": "s1"}, "sought": "employee:s1", "path": "forwarded"}
    assert pm.check_forwarded(calls[0], story, [], CO) == []
    again = [{"Event": "DialBegin", "CallerIDNum": calls[0].caller,
              "DestChannel": "Local/s1@bench-phones-0000000c;1"}]
    assert pm.check_forwarded(calls[0], story, again, CO)
    assert pm.check_forwarded(calls[0], None, [], CO) == ["no call story stored"]


def test_a_call_the_service_acted_on_late_is_judged_by_what_it_could_know_by_then():
    # The key at 100.0, but a loaded service acted only at 103.0; t2 went to a meeting
    # at 101.0 (stored 101.1): by then the service may rightly have skipped her.
    p = pm.Presence(grace=1.0)
    p.set("t1", 0, 0, False)
    p.set("t2", 101.0, 101.1, False)
    plan = pm.Plan(0, "team", "support", ("2",))
    late = timeline(ev("DTMFEnd", 100.0, Direction="Received", Digit="2"),
                    ev("AGIExecStart", 103.0, Command="EXEC MSet", CommandId="1"),
                    ev("DialBegin", 103.1, DestChannel="Local/t3@bench-phones-00000003;1"))
    assert pm.check_call(plan, late, CO, p, pm.Busy([])) == []
    # A ring decided before the change is not an absent ring either; one decided after is.
    ring = [ev("DialBegin", 104.0, DestChannel="Local/t2@bench-phones-00000004;1")]
    assert pm.absent_rung(ring, p, {CALL: 100.5}) == []
    assert len(pm.absent_rung(ring, p, {CALL: 103.0})) == 1


def test_nobody_can_answer_is_right_when_the_only_free_member_was_changing():
    p = pm.Presence(grace=1.0)
    p.set("t1", 0, 0, False)
    p.set("t4", 0, 0, False)
    p.set("t2", 99.5, 99.6, False)  # on its way when the caller chose
    busy = pm.Busy([ev("DeviceStateChange", 90.0, Device=f"Local/t{i}@bench-phones",
                       State="INUSE") for i in (3, 5, 6)])
    plan = pm.Plan(0, "team", "support", ("2",))
    keys = [ev("DTMFEnd", 100.0, Direction="Received", Digit="2")]
    operator = timeline(*keys, ev("QueueCallerJoin", 107.0, Queue="vaihde-switchboard"))
    assert pm.check_call(plan, operator, CO, p, busy) == []
    rung = timeline(*keys, ev("DialBegin", 100.1, DestChannel="Local/t2@bench-phones-0000000d;1"))
    assert pm.check_call(plan, rung, CO, p, busy) == []
    wrong = timeline(*keys, ev("DialBegin", 100.1, DestChannel="Local/t3@bench-phones-0000000e;1"))
    assert pm.check_call(plan, wrong, CO, p, busy)
