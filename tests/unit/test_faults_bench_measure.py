"""The fault benchmark's measurement logic (bench/faults_measure.py) on hand-made AMI events:
where a fault found a caller, how long the caller then waited for the operators, what the late
service did, the healthy service's answer time, messages told and stored. No timing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import faults_measure as fm  # noqa: E402

CALL = "f.sigstop-by.0001.c"
LINK = "f.sigstop-by.0001.o"
QUEUE = "vaihde-switchboard"
OPERATOR = "Local/operator@faults-phones"
GREETING = 'STREAM FILE "hello-world" "#*0123456"'
MENU = 'GET DATA "beep" 3000 1'
OFFER = 'GET DATA "/vaihde/x/sounds/vaihde-en-7b33" 6000 1'


def ev(name: str, t: float, uid: str = CALL, **fields: Any) -> dict[str, Any]:
    return {"Event": name, "Timestamp": f"{t:.6f}", "Uniqueid": uid, "Linkedid": LINK, **fields}


def agi(t0: float, t1: float | None, command: str, cid: str) -> list[dict[str, Any]]:
    out = [ev("AGIExecStart", t0, Command=command, CommandId=cid)]
    if t1 is not None:
        out.append(ev("AGIExecEnd", t1, Command=command, CommandId=cid, ResultCode="200"))
    return out


def menu_call(key_at: float | None = None, offer: bool = False) -> list[dict[str, Any]]:
    """AGI at 100.0, greeting 100.01-101.4, menu 101.4 until the key (or 104.4 without one);
    with `offer`, the key chose an absent employee whose offer plays from 102.6."""
    events = [ev("Newchannel", 99.9), ev("Newexten", 100.0, Application="AGI"),
              *agi(100.005, 100.006, "SET AUTOHANGUP 90", "1"),
              *agi(100.01, 101.4, GREETING, "2")]
    menu_end = 104.4 if key_at is None else key_at + 0.1
    events += agi(101.4, menu_end, MENU, "3")
    if key_at is not None:
        events.append(ev("DTMFBegin", key_at, Digit="2", Direction="Received"))
    if offer:
        events += agi(102.6, 110.0, OFFER, "4")
    return events


def rescued(t: float, reason: str = "agi-stalled") -> list[dict[str, Any]]:
    return [ev("Newexten", t - 0.003, Application="Set", Exten="T"),
            ev("QueueCallerJoin", t, Queue=QUEUE,
               ChanVariable=[f"VAIHDE_CALL_ID={CALL}", f"VAIHDE_REASON={reason}"])]


def timeline(events: list[dict[str, Any]]) -> fm.Timeline:
    return fm.timelines(events, [CALL])[CALL]


@pytest.mark.parametrize(("t", "events", "phase"), [
    (99.95, menu_call(), "arrival"),  # not in AGI() yet: it arrives to a stopped service
    (100.003, menu_call(), "arrival"),  # connected, no prompt yet
    (100.5, menu_call(), "greeting"),
    (102.0, menu_call(), "key_wait"),
    (102.05, menu_call(key_at=102.0), "after_key"),  # the key's tone is still on
    (102.2, menu_call(key_at=102.0), "after_key"),  # the menu ended with it; no answer yet
    (103.0, menu_call(key_at=102.0, offer=True), "offer"),
])
def test_phase_at(t: float, events: list[dict[str, Any]], phase: str) -> None:
    assert fm.phase_at(timeline(events), t) == phase


def test_phase_of_prompts_recording_and_the_service_thinking() -> None:
    events = [ev("Newexten", 100.0, Application="AGI"),
              *agi(100.01, 101.4, GREETING, "1"),
              *agi(101.5, 106.0, 'STREAM FILE "/x/intro" ""', "2"),
              *agi(106.0, 108.0, 'RECORD FILE "/x/msg" "wav" "#" 180000 0 "BEEP" "s=5"', "3")]
    tl = timeline(events)
    assert fm.phase_at(tl, 101.45) == "between_commands"
    assert fm.phase_at(tl, 103.0) == "prompt"
    assert fm.phase_at(tl, 107.0) == "recording"


def test_a_call_routed_before_the_fault_is_not_a_trial() -> None:
    events = [*menu_call(key_at=102.0), ev("Newexten", 102.11, Application="Set"),
              ev("DialBegin", 102.12, DestChannel="Local/anna@faults-phones-00000001;1")]
    tl = timeline(events)
    assert fm.phase_at(tl, 102.5) == fm.DONE
    result = fm.trial(tl, 102.5, queue=QUEUE, operator_device=OPERATOR)
    assert result.phase == fm.DONE and result.rescue_s is None


def test_rescue_counts_from_the_end_of_the_prompt_that_was_playing() -> None:
    """Frozen in the greeting at 100.5: the caller hears it to its end (101.4), then waits."""
    events = [ev("Newexten", 100.0, Application="AGI"), *agi(100.01, 101.4, GREETING, "1"),
              *rescued(103.91)]
    result = fm.trial(timeline(events), 100.5, queue=QUEUE, operator_device=OPERATOR)
    assert result.phase == "greeting"
    assert result.rescue_s == pytest.approx(2.51)
    assert result.reason == "agi-stalled"
    assert result.late == []


def test_rescue_counts_from_the_signal_when_asterisk_was_already_waiting() -> None:
    events = [*menu_call(key_at=102.0), *rescued(104.61)]
    result = fm.trial(timeline(events), 102.15, queue=QUEUE, operator_device=OPERATOR)
    assert result.phase == "after_key"
    assert result.rescue_s == pytest.approx(2.46)


def test_a_caller_arriving_at_a_stopped_service_waits_from_agi_start() -> None:
    events = [ev("Newexten", 105.0, Application="AGI"), *rescued(107.52)]
    result = fm.trial(timeline(events), 104.0, queue=QUEUE, operator_device=OPERATOR)
    assert result.phase == "arrival"
    assert result.rescue_s == pytest.approx(2.52)


def test_ringing_an_operator_counts_as_rescued() -> None:
    events = [ev("Newexten", 100.0, Application="AGI"), *agi(100.01, 101.4, GREETING, "1"),
              ev("DialBegin", 101.42, DestChannel=f"{OPERATOR}-0000000a;1")]
    result = fm.trial(timeline(events), 100.5, queue=QUEUE, operator_device=OPERATOR)
    assert result.rescue_s == pytest.approx(0.02)


def test_what_the_late_service_did_after_the_rescue() -> None:
    events = [*menu_call(key_at=102.0), *rescued(104.61),
              *agi(105.0, 105.1, 'EXEC "MSet" "VAIHDE_ROUTE=dial"', "9"),
              ev("DialBegin", 105.2, DestChannel="Local/anna@faults-phones-00000002;1")]
    result = fm.trial(timeline(events), 102.15, queue=QUEUE, operator_device=OPERATOR,
                      stored=[("callback", 104.0), ("callback", 105.3)], resumed=105.27)
    assert result.late == ['AGI EXEC "MSet" "VAIHDE_ROUTE=dial"',
                           "dial Local/anna@faults-phones",
                           "callback stored 0.69 s after the rescue, 0.030 s after the service "
                           "resumed"]
    summary = fm.trials_summary([result])
    assert summary["handled_twice"] == [{"call": CALL, "late": result.late}]
    assert summary["requests_stored_after_rescue"] == 1


def test_trials_summary_counts_phases_and_stranded_callers() -> None:
    rescued_trial = fm.Trial("a", "greeting", 100.0, 102.5, "agi-stalled", [])
    stranded = fm.Trial("b", "offer", 100.0, None, "", [])
    done = fm.Trial("c", fm.DONE, None, None, "", [])
    summary = fm.trials_summary([rescued_trial, stranded, done])
    assert summary["trials"] == 2
    assert summary["not_in_the_service"] == 1
    assert summary["phases"] == {"greeting": 1, "offer": 1}
    assert summary["stranded"] == ["b"]
    assert summary["rescue"]["max_ms"] == 2500.0
    assert summary["rescue_by_phase"] == {"greeting": fm.summary_ms([2.5])}


def test_healthy_service_gaps_by_what_came_before() -> None:
    events = [*menu_call(key_at=102.0), ev("Newexten", 102.103, Application="Set")]
    gaps = fm.service_gaps(timeline(events))
    assert [k for k, _ in gaps] == ["arrival", "command", "command", "key"]
    assert [round(s, 3) for _, s in gaps] == [0.005, 0.004, 0.0, 0.003]
    # Only the waits that ended before a fault count as the healthy service's.
    assert len(fm.service_gaps(timeline(events), before=101.0)) == 2
    assert fm.gaps_summary(gaps)["key"]["max_ms"] == 3.0


def message_call(told: bool, key: str = "#") -> list[dict[str, Any]]:
    events = [ev("Newexten", 100.0, Application="AGI"),
              *agi(100.01, 100.5, GREETING, "1"),
              *agi(100.6, 105.0, 'STREAM FILE "/x/intro" ""', "2"),
              *agi(105.0, 106.5, 'RECORD FILE "/x/msg" "wav" "#" 180000 0 "BEEP" "s=5"', "3"),
              ev("DTMFBegin", 106.4, Digit=key, Direction="Received")]
    if told:
        events += agi(106.51, 110.0, 'STREAM FILE "/x/saved" ""', "4")
    return events


def callback_call(reply: str, told: bool) -> list[dict[str, Any]]:
    events = [ev("Newexten", 100.0, Application="AGI"),
              ev("DTMFBegin", 100.3, Digit="2", Direction="Received"),
              *agi(100.01, 100.4, GREETING, "1"),
              *agi(100.5, 102.0, OFFER, "2"),
              ev("DTMFBegin", 101.9, Digit=reply, Direction="Received")]
    if told:
        events += agi(102.02, 107.0, 'STREAM FILE "/x/callback" ""', "3")
    return events


def test_told_is_the_confirmation_after_the_request() -> None:
    assert fm.taken_at(timeline(message_call(True)), "message") == pytest.approx(106.5)
    assert fm.told_at(timeline(message_call(True)), "message") == pytest.approx(106.51)
    assert fm.told_at(timeline(message_call(False)), "message") is None
    assert fm.told_at(timeline(callback_call("3", True)), "callback") == pytest.approx(102.02)
    # The greeting's GET DATA-less menu (key during the greeting) is not the offer.
    assert fm.taken_at(timeline(callback_call("3", False)), "callback") == pytest.approx(102.0)
    # Any other answer to the offer is no callback request.
    assert fm.told_at(timeline(callback_call("1", True)), "callback") is None


def test_requests_outcomes_and_where_the_kill_found_them() -> None:
    def req(cid: str, told: float | None, stored: int, taken: float | None,
            killed: float = 106.505, in_flight: bool = True) -> fm.Request:
        return fm.Request(cid, "message", told, stored, in_flight, taken, killed, 100.0)

    requests = [
        req("told", 106.51, 1, 106.5, killed=108.0),
        req("lost", 106.51, 0, 106.5, killed=108.0),
        req("stored-not-told", None, 1, 106.5),
        req("asking", None, 0, None, killed=103.0),
        req("twice", 106.51, 2, 106.5, killed=108.0),
        fm.Request("late", "callback", None, 0, False, None, 99.0, 100.0),
    ]
    assert [r.outcome for r in requests] == [
        "told_stored", "lost", "stored_not_told", "not_told_not_stored", "told_stored",
        "not_told_not_stored"]
    assert [r.stage for r in requests] == ["told", "told", "storing", "asking", "told",
                                           "arrived_after"]
    summary = fm.requests_summary(requests)
    assert summary["trials"] == 5
    assert (summary["told"], summary["not_told"]) == (3, 3)
    assert summary["lost"] == 1 and summary["lost_calls"] == ["lost"]
    assert summary["duplicates"] == 1 and summary["duplicate_calls"] == ["twice"]
    assert summary["stored_not_told"] == 1
    assert summary["by_stage_at_kill"]["storing"] == {"stored_not_told": 1}
    assert summary["store_to_told"]["n"] == 3


def test_in_service_at() -> None:
    tl = timeline([*menu_call(key_at=102.0), ev("Newexten", 102.2, Application="Set")])
    assert not fm.in_service_at(tl, 99.0)
    assert fm.in_service_at(tl, 101.0)
    assert not fm.in_service_at(tl, 103.0)


def test_a_console_is_right_when_it_shows_exactly_the_queued_callers() -> None:
    board = {"seq": 3, "waiting": [{"id": "a"}, {"id": "b"}], "active": [], "parked": []}
    view = fm.board_ids(board)
    assert fm.matches_asterisk(view, {"a", "b"})
    assert not fm.matches_asterisk(view, {"a"})  # a caller gone with Asterisk still shown
    assert not fm.matches_asterisk(view, {"a", "b", "c"})  # a new caller missing
    assert not fm.matches_asterisk({**view, "active": {"x"}}, {"a", "b"})


def test_queue_reason_from_repeated_chanvariable_headers() -> None:
    tl = timeline([ev("Newexten", 100.0, Application="AGI"), *rescued(101.0, "no-route")])
    assert fm.rescue_reason(tl) == "no-route"
