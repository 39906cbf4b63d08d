"""The calls benchmark's measurement logic (bench/calls_measure.py) on hand-made AMI events and
stories: silence gaps, digit-to-ringing, the callers' plan and the routing checks. No timing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from vaihde.company import load_company

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import calls_bench  # noqa: E402
import calls_measure as cm  # noqa: E402

CALL = "bench.load.0001.c"
LINK = "bench.load.0001.o"
PHONES = "bench-phones"
OPERATORS = f"Local/operator@{PHONES}"


def ev(name: str, t: float, uid: str = CALL, **fields: str) -> dict[str, Any]:
    return {"Event": name, "Timestamp": f"{t:.6f}", "Uniqueid": uid, "Linkedid": LINK, **fields}


def agi(t0: float, t1: float, command: str, cid: str) -> list[dict[str, Any]]:
    return [ev("AGIExecStart", t0, Command=command, CommandId=cid),
            ev("AGIExecEnd", t1, Command=command, CommandId=cid, ResultCode="200")]


def call_events(think: float = 0.0, dial_to: str = "Local/s1@bench-phones") -> list[dict]:
    """Answer at 100.1; greeting, menu prompt (key 1 at 102.4), the service thinking `think`
    seconds, SET VARIABLE, then Dial() 0.1 s later; the phone announces itself."""
    after = 102.5 + think
    return [
        ev("Newchannel", 100.0),
        ev("Newstate", 100.1, ChannelState="6"),
        *agi(100.2, 101.6, 'STREAM FILE "hello-world" "#*0123"', "1"),
        *agi(101.7, 102.5, 'GET DATA "vm-enter-num-to-call" 5000 1', "2"),
        ev("DTMFEnd", 102.4, Digit="1", Direction="Received"),
        ev("DTMFEnd", 102.4, uid=LINK, Digit="1", Direction="Sent"),  # the other leg
        *agi(after, after + 0.01, 'SET VARIABLE "VAIHDE_ROUTE" "dial"', "3"),
        ev("DialBegin", after + 0.1, DestChannel=f"{dial_to}-0000001f;1"),
        ev("UserEvent", after + 0.1, uid="other", UserEvent="BenchPhone",
           Phone=cm.phone_of(dial_to, PHONES)),
        ev("DialEnd", after + 0.6, DestChannel=f"{dial_to}-0000001f;1", DialStatus="ANSWER"),
        ev("Hangup", after + 5),
    ]


def timeline(events: list[dict]) -> cm.Timeline:
    return cm.timelines(events, [CALL])[CALL]


def test_silence_is_every_stretch_without_sound_or_a_wait_for_a_key() -> None:
    tl = timeline(call_events())
    gaps = [(round(a, 3), round(b, 3)) for a, b in cm.silence_gaps(tl)]
    # answer → first command, greeting → prompt, key → Dial (SET VARIABLE is silent too)
    assert gaps == [(100.1, 100.2), (101.6, 101.7), (102.5, 102.6)]
    assert cm.longest_silence(tl) == pytest.approx(0.1)


def test_the_services_think_time_between_commands_is_silence() -> None:
    tl = timeline(call_events(think=3.5))
    assert cm.longest_silence(tl) == pytest.approx(3.6)  # 3.5 s thinking + 0.1 s to Dial()


def test_waiting_for_the_callers_key_is_not_silence() -> None:
    events = [
        ev("Newstate", 10.0, ChannelState="6"),
        *agi(10.0, 16.0, 'GET DATA "silence/1" 6000 1', "1"),  # 6 s, nobody pressed
        ev("DialBegin", 16.05, DestChannel="Local/operator@bench-phones-00000002;1"),
    ]
    tl = timeline(events)
    assert cm.longest_silence(tl) == pytest.approx(0.05)
    assert cm.digit_to_ringing(tl) is None  # no key: no digit-to-ringing figure


def test_a_command_still_running_at_hangup_covers_until_the_end() -> None:
    events = [
        ev("Newstate", 10.0, ChannelState="6"),
        ev("AGIExecStart", 10.5, Command='STREAM FILE "x" ""', CommandId="1"),
        ev("Hangup", 12.0),
    ]
    assert cm.silence_gaps(timeline(events)) == [(10.0, 10.5)]


def test_without_answer_event_the_window_starts_at_the_first_command() -> None:
    events = call_events()[2:]
    assert cm.silence_gaps(timeline(events))[0] == (101.6, 101.7)


def test_digit_to_ringing_is_the_last_key_before_dial() -> None:
    tl = timeline(call_events(think=0.2))
    assert tl.digits == [(102.4, "1")]  # only what the caller's leg received
    assert cm.digit_to_ringing(tl) == pytest.approx(0.4)


def test_received_time_is_used_without_asterisk_timestamps() -> None:
    events = []
    for e in call_events():
        e = dict(e)
        e["_received"] = float(e.pop("Timestamp")) + 1000
        events.append(e)
    tl = timeline(events)
    assert tl.answered == pytest.approx(1100.1)
    assert cm.digit_to_ringing(tl) == pytest.approx(0.2)


def test_peak_concurrency() -> None:
    assert cm.peak_concurrency([(0, 5), (1, 3), (2, 4), (4, None)]) == 3
    assert cm.peak_concurrency([(0, 1), (1, 2)]) == 1  # one ends as the next starts
    assert cm.peak_concurrency([]) == 0


def test_percentiles_and_summary() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert cm.percentile(values, 0.95) == pytest.approx(0.095)
    assert cm.percentile([0.5], 0.95) == 0.5
    assert cm.summary_ms(values) == {"n": 100, "median_ms": 50.5, "p95_ms": 95.0,
                                     "max_ms": 100.0}
    assert cm.summary_ms([])["median_ms"] is None


# --- the plan and the routing checks, on the benchmark's own company ----------------------------


@pytest.fixture(scope="module")
def company() -> Any:
    return load_company(BENCH / "calls-company.yaml")


def test_plan_follows_configuration_and_presence(company: Any) -> None:
    states = {"s4": "vacation", "s5": "meeting"}
    plans = cm.plan_calls(company, states, 30, operators=OPERATORS, phones_context=PHONES)
    by_target = {p.target: p for p in plans}
    assert by_target["s1"].presses == ("1", "1")
    assert by_target["s1"].expect_device == "Local/s1@bench-phones"
    assert by_target["t3"].keys == ("2", "3")
    assert (by_target["s4"].reply, by_target["s4"].expect_device) == ("0", OPERATORS)
    assert by_target["s4"].expect_phone == "operator"
    assert by_target["s5"].reply == "1"  # s6 is s5's delegate and is available
    assert by_target["s5"].expect_device == "Local/s6@bench-phones"
    assert plans[24].target == plans[0].target  # 24 people in the menus, then round again


def test_an_away_delegate_is_not_expected(company: Any) -> None:
    states = {"s5": "meeting", "s6": "sick"}
    plan = cm.plan_calls(company, states, 5, operators=OPERATORS, phones_context=PHONES)[4]
    assert (plan.target, plan.expect, plan.reply) == ("s5", "operator", "0")


def story(plan: cm.CallPlan, **changes: Any) -> dict[str, Any]:
    state = "available" if plan.state in cm.REACHABLE_STATES else plan.state
    steps = [{"kind": "entered", "menu": "main"}]
    steps += [{"kind": "menu", "key": k} for k in plan.keys]
    steps += [{"kind": "availability", "employee": plan.target, "state": state},
              {"kind": "routed", "route": "tooperator" if plan.expect == "operator" else "ring"},
              {"kind": "dial", "status": "answer", "device": plan.expect_device + "-0001abcd;1"}]
    out = {"sought": f"employee:{plan.target}", "path": "menu_option", "steps": steps}
    out.update(changes)
    return out


def plan_for(company: Any, target: str, states: dict[str, str] | None = None) -> cm.CallPlan:
    plans = cm.plan_calls(company, states or {}, 24, operators=OPERATORS, phones_context=PHONES)
    return next(p for p in plans if p.target == target)


def test_a_call_that_went_where_it_should_has_no_problems(company: Any) -> None:
    plan = plan_for(company, "s1")
    events = call_events()
    events.insert(5, ev("DTMFEnd", 101.9, Digit="1", Direction="Received"))  # the first key
    assert cm.check_call(plan, timeline(events), story(plan)) == []


def test_wrong_phone_extra_leg_and_missing_story_are_misroutes(company: Any) -> None:
    plan = plan_for(company, "s1")
    keys = ev("DTMFEnd", 101.9, Digit="1", Direction="Received")
    wrong = call_events(dial_to="Local/s2@bench-phones")
    wrong.insert(5, keys)
    problems = cm.check_call(plan, timeline(wrong), story(plan))
    assert any("dialled ['Local/s2@bench-phones']" in p for p in problems)
    assert any("phones reached ['s2']" in p for p in problems)

    extra = call_events()
    extra.insert(5, keys)
    extra.append(ev("DialBegin", 102.7, DestChannel="Local/s3@bench-phones-00000020;1"))
    assert any("dialled" in p for p in cm.check_call(plan, timeline(extra), story(plan)))

    right = call_events()
    right.insert(5, keys)
    assert cm.check_call(plan, timeline(right), None) == ["no call story stored"]


def test_the_story_must_agree_with_asterisk(company: Any) -> None:
    plan = plan_for(company, "s5", {"s5": "meeting"})  # delegate s6 rings after key 1
    events = call_events(dial_to="Local/s6@bench-phones")
    events.insert(5, ev("DTMFEnd", 101.9, Digit="1", Direction="Received"))
    events.insert(6, ev("DTMFEnd", 102.0, Digit="5", Direction="Received"))
    # The keys the caller pressed: 1, 5, then 1; the timeline above has 1, 5, 1 in that order.
    assert cm.check_call(plan, timeline(events), story(plan)) == []
    said_available = story(plan)
    said_available["steps"][3]["state"] = "available"
    assert any("availability" in p
               for p in cm.check_call(plan, timeline(events), said_available))
    other_target = story(plan, sought="employee:s6")
    assert any("sought" in p for p in cm.check_call(plan, timeline(events), other_target))


def test_bench_manager_conf_adds_a_timestamped_agi_reader() -> None:
    text = "[general]\nenabled = yes\n\n#include manager-vaihde.conf\n"
    out = calls_bench.bench_manager_conf(text, "s3cret")
    assert out.startswith("[general]\ntimestampevents = yes\n")
    user = out[out.index("[bench]"):]
    assert "secret = s3cret" in user and "agi" in user.split("read = ")[1].split("\n")[0]
    assert "#include manager-vaihde.conf" in out  # the service's own user is unchanged


def test_the_operator_route_is_routed_when_the_caller_joins_the_switchboard_queue(
    company: Any,
) -> None:
    plans = cm.plan_calls(company, {"s4": "vacation"}, 24, operators=OPERATORS,
                          phones_context=PHONES, operator_queue="vaihde-switchboard")
    plan = next(p for p in plans if p.target == "s4")
    assert (plan.expect, plan.expect_queue) == ("operator", "vaihde-switchboard")
    assert all(p.expect_queue == "" for p in plans if p.expect != "operator")
    events = [
        ev("Newstate", 10.0, ChannelState="6"),
        *agi(10.0, 11.0, 'GET DATA "dir-welcome" 5000 1', "1"),
        ev("DTMFEnd", 10.5, Digit="1", Direction="Received"),
        ev("DTMFEnd", 10.9, Digit="4", Direction="Received"),
        *agi(11.0, 12.0, 'GET DATA "vm-isunavail" 6000 1', "2"),
        ev("DTMFEnd", 11.9, Digit="0", Direction="Received"),
        ev("QueueCallerJoin", 12.02, Queue="vaihde-switchboard"),
        # The queue rings the operator 3 s later and the caller gives up before they answer.
        ev("DialBegin", 15.0, DestChannel=f"{OPERATORS}-00000003;1"),
        ev("Hangup", 16.0),
    ]
    tl = timeline(events)
    assert cm.digit_to_ringing(tl) == pytest.approx(0.12)
    assert cm.longest_silence(tl) == pytest.approx(0.02)  # waiting in the queue is not silence
    cancelled = {"kind": "dial", "status": "cancel", "device": OPERATORS + "-00000003;1"}
    steps = [*story(plan)["steps"][:-1], cancelled]
    assert cm.check_call(plan, tl, story(plan, steps=steps)) == []
    not_queued = [e for e in events if e["Event"] != "QueueCallerJoin"]
    assert any("queues joined none" in p
               for p in cm.check_call(plan, timeline(not_queued), story(plan, steps=steps)))
