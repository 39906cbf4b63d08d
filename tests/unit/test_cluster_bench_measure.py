"""The cluster benchmark's measurement logic (bench/cluster_measure.py) on hand-made AMI events
and console logs: how each caller was handled, when calls were handled normally again after a
fault, how long a console took to show Asterisk's queue, how long an availability change took
to reach the other instance, and what was delivered twice. No timing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import cluster_measure as cm  # noqa: E402
import faults_measure as fm  # noqa: E402

CALL = "vaihde-c-ast1-f.person.0001.c"
QUEUE = "vaihde-switchboard"
OPERATOR = "Local/operator@faults-phones"
ANNA = "Local/anna@faults-phones"
BOB = "Local/bob@faults-phones"
GREETING = 'STREAM FILE "hello-world" "#*0123456"'
MENU = 'GET DATA "beep" 3000 1'
OFFER = 'GET DATA "/vaihde/x/sounds/vaihde-en-7b33" 6000 1'


def ev(name: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"Event": name, "Timestamp": f"{t:.6f}", "Uniqueid": CALL, **fields}


def agi(t0: float, t1: float | None, command: str, cid: str) -> list[dict[str, Any]]:
    out = [ev("AGIExecStart", t0, Command=command, CommandId=cid)]
    if t1 is not None:
        out.append(ev("AGIExecEnd", t1, Command=command, CommandId=cid, ResultCode="200"))
    return out


def menu(key: str = "1", key_at: float = 101.6) -> list[dict[str, Any]]:
    """AGI at 100.0, greeting until 101.4, the menu's prompt until the key."""
    return [ev("Newexten", 100.0, Application="AGI"),
            *agi(100.01, 101.4, GREETING, "1"), *agi(101.4, key_at + 0.1, MENU, "2"),
            ev("DTMFBegin", key_at, Digit=key, Direction="Received")]


def dial(t: float, device: str, n: int = 1) -> dict[str, Any]:
    return ev("DialBegin", t, DestChannel=f"{device}-0000000{n};1")


def queued(t: float) -> dict[str, Any]:
    return ev("QueueCallerJoin", t, Queue=QUEUE, ChanVariable=["VAIHDE_REASON=agi-failed"])


def outcome(events: list[dict[str, Any]], kind: str = "person", expect: str = ANNA,
            killed: tuple[float, ...] = ()) -> cm.Outcome:
    tl = fm.timelines(events, [CALL])[CALL]
    return cm.outcome(tl, kind, expect, queue=QUEUE, operator_device=OPERATOR, killed=killed,
                      bob_device=BOB)


# --- how each caller was handled -----------------------------------------------------------------


def test_the_chosen_phone_rang_is_normal_from_when_it_rang() -> None:
    result = outcome([*menu(), dial(101.8, ANNA)])
    # The key at 101.6; the menu's GET DATA had begun before it; Dial() is what came next.
    assert result == cm.Outcome(cm.NORMAL, 101.8, 100.0, [], 101.8)


def test_vaihde_acted_on_the_key_at_the_first_command_after_it() -> None:
    """A message: vaihde acted at 101.8 (the intro), the caller was told at 106.1."""
    message = [*menu("5"), *agi(101.8, 102.5, 'STREAM FILE "/x/intro" ""', "3"),
               *agi(102.5, 106.0, 'RECORD FILE "/x/m" "wav" "#" 180000 0 "BEEP" "s=5"', "4"),
               *agi(106.1, 107.0, 'STREAM FILE "/x/taken" ""', "5")]
    result = outcome(message, kind="message", expect="")
    assert (result.handled, result.acted) == (106.1, 101.8)
    assert cm.acted_at(fm.timelines(menu(), [CALL])[CALL]) is None  # nothing after the key


def test_another_phone_than_the_chosen_one_is_wrong() -> None:
    assert outcome([*menu(), dial(101.8, "Local/carl@faults-phones")]).what == cm.WRONG


def test_taken_to_the_operators_instead_is_rescued() -> None:
    result = outcome([*menu(), queued(102.5)])
    assert (result.what, result.handled) == (cm.RESCUED, 102.5)
    # Queued first and rung afterwards (a late service) is still not what they chose at once.
    assert outcome([*menu(), queued(102.5), dial(103.0, ANNA)]).what == cm.RESCUED


def test_a_caller_for_the_operators_is_normal_when_queued() -> None:
    result = outcome([*menu("0"), queued(101.9)], kind="operator", expect="")
    assert (result.what, result.handled) == (cm.NORMAL, 101.9)


def test_a_phone_dialled_twice_is_counted_but_the_operator_is_not() -> None:
    result = outcome([*menu(), dial(101.8, ANNA, 1), dial(112.0, ANNA, 2),
                      dial(113.0, OPERATOR, 3), dial(123.0, OPERATOR, 4)])
    assert result.dialled_twice == [ANNA]


def test_hung_up_on_in_the_menu_is_stranded_unless_its_asterisk_was_killed() -> None:
    hung_up = [*menu(), ev("Hangup", 103.0)]
    assert outcome(hung_up).what == cm.STRANDED
    assert outcome(hung_up, killed=(102.9,)).what == cm.DIED
    assert outcome(hung_up, killed=(90.0,)).what == cm.STRANDED  # an earlier kill


def test_no_hangup_at_all_after_its_asterisk_was_killed_died_with_it() -> None:
    """A kill -9 sends no more events: the last thing heard of the call is its menu."""
    assert outcome(menu(), killed=(101.7,)).what == cm.DIED
    assert outcome(menu()).what == cm.STRANDED  # no kill: silence is the service's


def test_never_in_the_dialplan_is_not_placed() -> None:
    assert outcome([]).what == cm.NOT_PLACED


def test_a_message_and_a_callback_are_normal_when_the_caller_is_told() -> None:
    message = [*menu("5"), *agi(101.8, 102.5, 'STREAM FILE "/x/intro" ""', "3"),
               *agi(102.5, 106.0, 'RECORD FILE "/x/m" "wav" "#" 180000 0 "BEEP" "s=5"', "4"),
               *agi(106.1, 107.0, 'STREAM FILE "/x/taken" ""', "5")]
    result = outcome(message, kind="message", expect="")
    assert (result.what, result.handled) == (cm.NORMAL, 106.1)
    offer = [*menu("6"), *agi(101.8, 104.0, OFFER, "3"),
             ev("DTMFBegin", 103.0, Digit="3", Direction="Received")]
    assert outcome(offer, kind="callback", expect="").what == cm.STRANDED  # not told yet
    told = [*offer, *agi(104.1, 105.0, 'STREAM FILE "/x/cb" ""', "4")]
    assert outcome(told, kind="callback", expect="").handled == 104.1


def test_bob_is_normal_when_his_phone_rings_or_the_callback_is_taken() -> None:
    assert outcome([*menu("2"), dial(101.8, BOB)], kind="bob", expect="").what == cm.NORMAL
    offer = [*menu("2"), *agi(101.8, 104.0, OFFER, "3"),
             ev("DTMFBegin", 103.0, Digit="3", Direction="Received"),
             *agi(104.1, 105.0, 'STREAM FILE "/x/cb" ""', "4")]
    assert outcome(offer, kind="bob", expect="").handled == 104.1


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        outcome(menu(), kind="survey")


# --- recovery ------------------------------------------------------------------------------------


def arrival(t: float, normal: bool = True, took: float = 0.5) -> cm.Arrival:
    return cm.Arrival(t, normal, t + took if normal else None)


def test_recovery_is_from_the_fault_until_the_last_unbroken_run_of_normal_calls() -> None:
    calls = [arrival(9.0), arrival(10.2, normal=False), arrival(11.0, normal=False),
             arrival(12.0), arrival(13.0), arrival(14.0), arrival(30.0, normal=False)]
    # From 10.0: the run starts with the call of 12.0, handled at 12.5.
    assert cm.recovery_s(calls, 10.0, 20.0) == pytest.approx(2.5)


def test_recovery_when_every_call_was_normal_is_the_first_calls_own_way() -> None:
    assert cm.recovery_s([arrival(10.1, took=0.6), arrival(11.0)], 10.0, 20.0) == \
        pytest.approx(0.7)


def test_a_call_rescued_by_the_next_fault_is_left_out() -> None:
    """A caller recording a message from 18.0 was rescued at 20.1, when the next fault struck
    at 20.0: that says nothing about recovering from this one."""
    calls = [arrival(11.0), arrival(12.0), cm.Arrival(18.0, False, 20.1)]
    assert cm.recovery_s(calls, 10.0, 19.0) is None
    assert cm.recovery_s(calls, 10.0, 19.0, next_fault=20.0) == pytest.approx(1.5)
    # Rescued before the next fault (or never): it counts.
    early = [arrival(11.0), cm.Arrival(18.0, False, 18.5), arrival(18.8)]
    assert cm.recovery_s(early, 10.0, 19.0, next_fault=20.0) == pytest.approx(9.3)


def test_no_recovery_without_calls_or_when_the_window_ends_badly() -> None:
    assert cm.recovery_s([arrival(5.0)], 10.0, 20.0) is None
    assert cm.recovery_s([arrival(11.0), arrival(12.0, normal=False)], 10.0, 20.0) is None


# --- the consoles --------------------------------------------------------------------------------


def test_visibility_follows_boards_calls_gone_and_a_broken_stream() -> None:
    log = [(1.0, "board", {"waiting": [{"id": "x"}]}),
           (2.0, "call", {"id": "y", "state": "waiting"}),
           (3.0, "call", {"id": "x", "state": "active"}),  # answered: no longer waiting
           (4.0, "down", None),
           (5.0, "board", {"waiting": [{"id": "y"}]}),
           (6.0, "gone", {"id": "y"}),
           (7.0, "call", {"id": "z", "state": "ringing"})]
    assert cm.visibility(log) == {
        "x": [cm.Seen(1.0, 3.0)],
        "y": [cm.Seen(2.0, 4.0), cm.Seen(5.0, 6.0)],
        "z": [cm.Seen(7.0, None)],
    }


def test_agreement_measures_join_and_leave_while_the_console_is_live() -> None:
    truth = [cm.Waiting("x", 10.0, 20.0), cm.Waiting("y", 30.0, None)]
    seen = {"x": [cm.Seen(10.3, 20.1)], "y": [cm.Seen(31.5, None)]}
    got = cm.agreement(truth, seen, [(0.0, 100.0)], end=40.0)
    assert [(c, w, round(s, 3)) for c, w, s in got] == [
        ("x", "join", 0.3), ("x", "leave", 0.1), ("y", "join", 1.5)]


def test_agreement_counts_a_change_made_while_down_from_when_the_console_is_back() -> None:
    truth = [cm.Waiting("x", 10.0, 50.0)]
    seen = {"x": [cm.Seen(10.2, 12.0), cm.Seen(15.4, 50.0)]}
    got = cm.agreement(truth, seen, [(0.0, 12.0), (15.0, 100.0)], end=60.0)
    assert [(w, round(s, 3)) for _, w, s in got] == [("join", 0.2), ("join", 0.4),
                                                     ("leave", 0.0)]


def test_a_change_never_shown_counts_until_the_console_went_down() -> None:
    truth = [cm.Waiting("x", 10.0, None)]
    got = cm.agreement(truth, {}, [(0.0, 14.0)], end=20.0)
    assert [(w, round(s, 3)) for _, w, s in got] == [("join", 4.0)]
    # A caller who left while still shown counts until the console dropped them.
    stale = cm.agreement([cm.Waiting("x", 10.0, 11.0)], {"x": [cm.Seen(10.1, None)]},
                         [(0.0, 30.0)], end=30.0)
    assert [(w, round(s, 3)) for _, w, s in stale] == [("join", 0.1), ("leave", 19.0)]


def test_shown_follows_each_call_state_by_state() -> None:
    log = [(1.0, "board", {"calls": [{"id": "x", "state": "waiting"}]}),
           (2.0, "call", {"id": "x", "state": "waiting"}),  # the same again: no change
           (3.0, "call", {"id": "x", "state": "active"}),
           (3.5, "call", {"id": "y", "state": "waiting"}),
           (4.0, "down", None),
           (5.0, "board", {"calls": [{"id": "x", "state": "active"}]}),
           (6.0, "gone", {"id": "x"}),
           (7.0, "board", {"calls": [{"id": "z", "state": "ringing"}]})]
    assert cm.shown(log) == {
        ("x", "waiting"): [cm.Seen(1.0, 3.0)],
        ("x", "active"): [cm.Seen(3.0, 4.0), cm.Seen(5.0, 6.0)],
        ("y", "waiting"): [cm.Seen(3.5, 4.0)],
        ("z", "ringing"): [cm.Seen(7.0, None)],
    }


def test_consoles_apart_is_each_stretch_one_console_showed_what_the_other_did_not() -> None:
    a = {("x", "waiting"): [cm.Seen(10.0, 12.0)], ("x", "active"): [cm.Seen(12.0, 15.0)]}
    b = {("x", "waiting"): [cm.Seen(10.2, 12.5)], ("x", "active"): [cm.Seen(12.5, 15.1)]}
    live = {"a": [(0.0, 100.0)], "b": [(0.0, 100.0)]}
    got = [(c, st, who, round(s, 3)) for c, st, who, s in
           cm.consoles_apart({"a": a, "b": b}, live, end=100.0)]
    assert got == [("x", "active", "a", 0.5), ("x", "active", "b", 0.1),
                   ("x", "waiting", "a", 0.2), ("x", "waiting", "b", 0.5)]


def test_a_call_one_live_console_never_showed_is_apart_while_the_other_showed_it() -> None:
    """B had lost the call's Asterisk: A showed the call for 3 s, B never did."""
    a = {("x", "active"): [cm.Seen(10.0, 13.0)], ("y", "waiting"): [cm.Seen(20.0, None)]}
    live = {"a": [(0.0, 100.0)], "b": [(0.0, 100.0)]}
    got = [(c, who, round(s, 3)) for c, _, who, s in
           cm.consoles_apart({"a": a, "b": {}}, live, end=30.0)]
    assert got == [("x", "a", 3.0), ("y", "a", 10.0)]  # y: until the end


def test_consoles_apart_counts_only_while_both_consoles_were_live() -> None:
    a = {("x", "waiting"): [cm.Seen(10.0, 12.0)]}
    b = {("x", "waiting"): [cm.Seen(15.0, 16.0)]}
    live = {"a": [(0.0, 100.0)], "b": [(0.0, 11.0), (14.9, 100.0)]}  # b down 11..14.9
    got = cm.consoles_apart({"a": a, "b": b}, live, end=100.0)
    # a alone from 10 to 11 (b live, not showing it); b alone from 15 to 16 (a had hidden it).
    assert [(who, round(s, 3)) for _, _, who, s in got] == [("a", 1.0), ("b", 1.0)]
    # Never shown by b, which was down all the while: nothing to compare.
    assert cm.consoles_apart({"a": a, "b": {}}, {"a": [(0.0, 99.0)], "b": [(13.0, 99.0)]},
                             end=100.0) == []


# --- availability seen by the other instance -----------------------------------------------------


def test_notify_measures_the_other_instance_while_its_console_was_live() -> None:
    changes = [cm.Change(7, "a", 10.0, 10.02, "away"), cm.Change(None, "b", 12.0, None, "x"),
               cm.Change(8, "b", 14.0, 14.01, "available"),
               cm.Change(9, "a", 16.0, 16.01, "away")]
    seen = {"a": [(10.03, 7), (14.05, 8)], "b": [(10.04, 7), (14.02, 8)]}
    live = {"a": [(0.0, 100.0)], "b": [(0.0, 15.0)]}  # b's stream broke before change 9
    times, missed = cm.notify_ms(changes, seen, live)
    assert [round(t) for t in times] == [40, 50]  # 7 on b, 8 on a; 9 not measured on b
    assert missed == []
    own, own_missed = cm.notify_ms(changes, seen, live, other=False, end=40.0)
    # 8's own console (b) broke before the next change: not measured; a never showed 9.
    assert [round(t) for t in own] == [30] and own_missed == [9]
    times, missed = cm.notify_ms(changes, {"a": [], "b": [(10.04, 7)]},
                                 {"a": [(0.0, 100.0)], "b": [(0.0, 100.0)]}, end=100.0)
    assert missed == [8, 9] and len(times) == 1  # 8 never on a, 9 never on b


def test_notify_counts_from_the_commit_unless_asked_from_the_request() -> None:
    """The instance took 1.4 s to answer the request (it had just started); the change then
    reached the other console 0.1 s after it was made."""
    changes = cm.with_made([cm.Change(7, "a", 10.0, 11.45, "away")], {7: 11.4, 8: 99.0})
    assert changes[0].made == 11.4
    seen = {"b": [(11.5, 7)]}
    live = {"b": [(0.0, 100.0)]}
    times, _ = cm.notify_ms(changes, seen, live, end=100.0)
    assert [round(t) for t in times] == [100]
    asked, _ = cm.notify_ms(changes, seen, live, end=100.0, from_request=True)
    assert [round(t) for t in asked] == [1500]


def test_p99_of_nothing_is_none() -> None:
    assert cm.p99([]) is None
    assert cm.p99([5.0]) == 5.0


# --- done twice ----------------------------------------------------------------------------------


def test_email_keys_read_vaihdes_message_ids() -> None:
    headers = ["<178.1.2.vaihde-message-12-30@host>", "<other@x>",
               "<179.3.4.vaihde-message-12-30@host>", "<1.vaihde-message-13-31@host>"]
    keys = cm.email_keys(headers)
    assert keys == [(12, 30), (12, 30), (13, 31)]
    assert cm.duplicates(keys) == {"(12, 30)": 2}
    assert cm.extra_copies(keys) == 1
    assert cm.extra_copies([("+358", "a"), ("+358", "a"), ("+358", "a")]) == 2
