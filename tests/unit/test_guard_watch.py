"""The guard's state machine: which AGI sessions Asterisk is waiting on, and since when."""

from __future__ import annotations

from vaihde.guard import AgiWatch

CTX = "vaihde-main"


def ev(name: str, uid: str = "u1", **fields: str) -> dict[str, str]:
    return {"Event": name, "Uniqueid": uid, "Channel": f"Local/x-{uid};2", **fields}


def agi_start(uid: str = "u1", context: str = CTX) -> dict[str, str]:
    return ev("Newexten", uid, Context=context, Application="AGI", AppData="agi://h/inbound")


def test_a_session_waiting_for_the_service_becomes_due_after_stall_s():
    watch = AgiWatch(2.5, [CTX])
    assert watch.event(agi_start(), now=10.0) is True
    assert watch.next_due() == 12.5
    assert watch.due(12.4) == []
    [stalled] = watch.due(12.5)
    assert (stalled.uniqueid, stalled.context, stalled.waited_s) == ("u1", CTX, 2.5)
    assert stalled.channel == "Local/x-u1;2"
    # Handed to the rescue once, not again on the next check.
    assert watch.due(20.0) == []
    assert watch.next_due() is None


def test_a_command_in_progress_is_asterisks_own_wait_not_a_stall():
    watch = AgiWatch(2.5, [CTX])
    watch.event(agi_start(), now=0.0)
    watch.event(ev("AGIExecStart", Command='GET DATA "menu" 8000 1'), now=0.1)
    # A 30 s prompt and the caller's time to choose: never due while the command runs.
    assert watch.next_due() is None
    assert watch.due(30.0) == []
    assert watch.event(ev("AGIExecEnd"), now=30.0) is True
    assert watch.next_due() == 32.5
    watch.event(ev("AGIExecStart"), now=30.2)
    assert watch.due(40.0) == []


def test_leaving_agi_or_hanging_up_forgets_the_session():
    watch = AgiWatch(2.5, [CTX])
    watch.event(agi_start("a"), now=0.0)
    watch.event(agi_start("b"), now=0.0)
    watch.event(ev("Newexten", "a", Context=CTX, Application="GotoIf"), now=0.5)
    watch.event(ev("Hangup", "b"), now=0.5)
    assert len(watch) == 0
    assert watch.due(10.0) == []


def test_other_contexts_and_applications_are_not_ours():
    watch = AgiWatch(2.5, [CTX])
    assert watch.event(agi_start(context="someone-elses-ivr"), now=0.0) is False
    assert watch.event(ev("Newexten", Context=CTX, Application="Playback"), now=0.0) is False
    assert watch.due(10.0) == []


def test_the_channel_name_follows_renames():
    watch = AgiWatch(1.0, [CTX])
    watch.event(agi_start(), now=0.0)
    watch.event(ev("Rename", Newname="PJSIP/renamed-0001"), now=0.1)
    [stalled] = watch.due(1.0)
    assert stalled.channel == "PJSIP/renamed-0001"


def test_a_failed_rescue_is_retried_after_a_pause():
    watch = AgiWatch(2.0, [CTX])
    watch.event(agi_start(), now=0.0)
    assert len(watch.due(2.0)) == 1
    watch.rescue_failed("u1", now=2.0, retry_s=0.5)
    assert watch.due(2.4) == []
    assert len(watch.due(2.5)) == 1


def test_resync_keeps_known_sessions_and_does_not_guess_about_new_ones():
    watch = AgiWatch(2.5, [CTX])
    watch.event(agi_start("known"), now=0.0)
    watch.resync([
        {"Event": "CoreShowChannel", "Uniqueid": "known", "Channel": "c1", "Context": CTX,
         "Application": "AGI"},
        {"Event": "CoreShowChannel", "Uniqueid": "new", "Channel": "c2", "Context": CTX,
         "Application": "AGI"},
        {"Event": "CoreShowChannel", "Uniqueid": "dialling", "Channel": "c3", "Context": CTX,
         "Application": "Dial"},
    ])
    assert len(watch) == 2
    # The known one keeps its clock; the new one is only followed from its next event on.
    assert [s.uniqueid for s in watch.due(3.0)] == ["known"]
    watch.event(ev("AGIExecEnd", "new"), now=3.0)
    assert [s.uniqueid for s in watch.due(5.5)] == ["new"]
