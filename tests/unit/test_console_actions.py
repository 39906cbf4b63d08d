"""Console actions decided purely: which AMI actions for which call state and request, and what
is refused (409 wrong state, 400 bad target) before anything reaches Asterisk."""

from __future__ import annotations

from typing import Any

import pytest

from vaihde.ami.tracker import Channel
from vaihde.company import parse_company
from vaihde.company.dials import Reach
from vaihde.console.actions import (
    Limits,
    Operator,
    Presence,
    Refusal,
    Request,
    Target,
    decide,
    resolve_target,
)
from vaihde.console.board import Transfer

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en]}
numbers:
  "0201234567": {label: Main, menu: main}
hours:
  mon-sun: 00:00-24:00
  closed_action: {operator: true}
menus:
  main:
    prompt: {en: Choose}
    options:
      1: {employee: anna}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  sales: {name: Sales, members: [anna, bob]}
  support: {name: Support, members: [anna, bob, cleo], strategy: in_order, ring_seconds: 12}
  help: {name: Help, members: [anna, bob], queue: help-q, ring_seconds: 40}
employees:
  anna: {name: Anna Virtanen, extension: 101, devices: [desk: PJSIP/anna]}
  bob: {name: Bob Berg, devices: [desk: PJSIP/bob, mobile: "+358401112222"]}
  cleo: {name: Cleo Soft, devices: [softphone: PJSIP/cleo-soft, desk: PJSIP/cleo]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/op1]}
"""
CO = parse_company(COMPANY, "company.yaml")
OLLI = Operator("olli", "PJSIP/op1")
LIMITS = Limits(bounce_s=20, ring_s=30)
CID = "vaihde-1750000000.1"
CALLER = "PJSIP/trunk-00000001"


def call(state: str, **more: Any) -> dict[str, Any]:
    return {"id": CID, "state": state, "channel": CALLER, "position": 1, "since": "x",
            "parties": [], "bounced": None, "transfer": None, **more}


def plan(req: Request, state: str, operator: Operator = OLLI, **more: Any):  # type: ignore[no-untyped-def]
    channels = more.pop("channels", {})
    transfers = more.pop("transfers", {})
    return decide(req, {CID: call(state, **more)}, channels, operator, CO, LIMITS, transfers)


def refused(req: Request, state: str, **more: Any) -> Refusal:
    with pytest.raises(Refusal) as info:
        plan(req, state, **more)
    return info.value


def test_answer_rings_the_operators_own_phone():
    p = plan(Request("answer", CID), "waiting")
    assert [a["Action"] for a in p.ami] == ["Setvar", "Setvar", "Setvar", "Redirect"]
    assert p.ami[0] == {"Action": "Setvar", "Channel": CALLER, "Variable": "VAIHDE_CONSOLE_DIAL",
                        "Value": "PJSIP/op1"}
    assert p.ami[-1] == {"Action": "Redirect", "Channel": CALLER,
                         "Context": "vaihde-console-answer", "Exten": "s", "Priority": "1"}


@pytest.mark.parametrize("state", ["active", "transferring", "ringing"])
def test_answer_refused_unless_waiting_parked_or_bounced(state):
    assert refused(Request("answer", CID), state).status == 409


def test_a_bounced_call_ringing_its_operator_may_be_answered_by_another():
    p = plan(Request("answer", CID), "ringing", bounced={"why": "busy"})
    assert p.ami[-1]["Context"] == "vaihde-console-answer"


def test_without_a_phone_answering_is_refused():
    r = refused(Request("answer", CID), "waiting", operator=Operator("olli", None))
    assert r.status == 409 and r.code == "no_phone"


def test_answer_next_takes_the_first_in_line_and_refuses_when_nobody_waits():
    calls = {
        "a.2": {**call("waiting"), "id": "a.2", "channel": "PJSIP/t-2", "position": 2},
        "a.1": {**call("waiting"), "id": "a.1", "channel": "PJSIP/t-1", "position": 1},
    }
    p = decide(Request("answer-next"), calls, {}, OLLI, CO, LIMITS, {})
    assert p.call_id == "a.1" and p.ami[-1]["Channel"] == "PJSIP/t-1"
    with pytest.raises(Refusal) as info:
        decide(Request("answer-next"), {}, {}, OLLI, CO, LIMITS, {})
    assert info.value.status == 409


def test_unknown_and_malformed_call_ids_are_not_found():
    assert refused(Request("answer", "nope"), "waiting").status == 404
    with pytest.raises(Refusal) as info:
        decide(Request("hangup", "1.2&x"), {"1.2&x": call("waiting")}, {}, OLLI, CO, LIMITS, {})
    assert info.value.status == 404


def test_blind_transfer_sets_target_bounce_time_and_way_back():
    p = plan(Request("transfer", CID, Target("employee", "anna")), "active")
    values = {a["Variable"]: a["Value"] for a in p.ami if a["Action"] == "Setvar"}
    # No queue, and no second step: nothing left from an earlier transfer is rung after it.
    assert values == {"VAIHDE_CONSOLE_DIAL": "PJSIP/anna", "VAIHDE_CONSOLE_RING": "20",
                      "VAIHDE_CONSOLE_QUEUE": "", "VAIHDE_CONSOLE_DIAL2": "",
                      "VAIHDE_CONSOLE_BACK": "PJSIP/op1", "VAIHDE_CONSOLE_BACK_RING": "30",
                      "VAIHDE_CONSOLE_BY": "olli"}
    assert p.ami[-1]["Context"] == "vaihde-console-transfer"
    assert p.transfer == Transfer("employee:anna", "Anna Virtanen", "olli", "blind")


def test_team_transfer_rings_members_phones_without_mobiles_lacking_a_trunk():
    target = resolve_target(Target("team", "sales"), CO, LIMITS)
    assert target.dial == "PJSIP/anna&PJSIP/bob" and target.name == "Sales"
    with_trunk = resolve_target(Target("team", "sales"), CO,
                                Limits(mobile_dial="PJSIP/{number}@trunk"))
    assert with_trunk.dial == "PJSIP/anna&PJSIP/bob&PJSIP/358401112222@trunk"


def test_numbers_are_digits_internal_ones_find_the_employee():
    assert resolve_target(Target("number", "101"), CO, LIMITS).label == "employee:anna"
    with pytest.raises(Refusal) as r:
        resolve_target(Target("number", "0401234567"), CO, LIMITS)
    assert r.value.code == "no_outside_line"
    out = resolve_target(Target("number", "+358401234567"), CO,
                         Limits(mobile_dial="PJSIP/{number}@trunk"))
    assert out.dial == "PJSIP/358401234567@trunk"


@pytest.mark.parametrize("hostile", ["123&PJSIP/x", "12,3", "${SHELL(id)}", "1" * 33, "", "+"])
def test_hostile_numbers_never_reach_the_dialplan(hostile):
    with pytest.raises(Refusal) as info:
        resolve_target(Target("number", hostile), CO, Limits(mobile_dial="PJSIP/{number}@t"))
    assert info.value.status == 400


def test_unknown_employee_or_team_is_a_bad_request():
    for target in (Target("employee", "zed"), Target("team", "nope"), Target("x", "y")):
        assert refused(Request("transfer", CID, target), "active").status == 400


def test_transfer_refused_while_transferring():
    r = refused(Request("transfer", CID, Target("employee", "anna")), "transferring")
    assert r.status == 409


def op_channel() -> dict[str, Channel]:
    return {"op.1": Channel("op.1", name="PJSIP/op1-00000002", bridge_id="br-1")}


def test_attended_transfer_needs_the_call_on_the_operators_phone():
    req = Request("transfer", CID, Target("employee", "anna"), mode="attended")
    assert refused(req, "waiting").status == 409
    assert refused(req, "active", parties=[{"channel": "PJSIP/anna-00000003"}]).status == 409
    p = plan(req, "active", parties=[{"channel": "PJSIP/op1-00000002"}], channels=op_channel())
    redirect = p.ami[-1]
    assert redirect["Channel"] == CALLER and redirect["Context"] == "vaihde-console-hold"
    assert redirect["ExtraChannel"] == "PJSIP/op1-00000002"
    assert redirect["ExtraContext"] == "vaihde-console-consult"
    held = [a for a in p.ami if a.get("Variable") == "VAIHDE_CONSOLE_HELD"]
    assert held[0]["Channel"] == "PJSIP/op1-00000002" and held[0]["Value"] == CALLER
    assert p.transfer is not None and p.transfer.operator_channel == "op.1"


def test_complete_only_once_the_target_answered_cancel_any_time():
    transfers = {CID: Transfer("employee:anna", "Anna Virtanen", "olli", "attended",
                               operator_channel="op.1")}
    channels = op_channel()
    r = refused(Request("complete", CID), "transferring", channels=channels,
                transfers=transfers, transfer={"answered": False})
    assert r.status == 409 and "not answered" in r.message
    channels["anna.1"] = Channel("anna.1", name="PJSIP/anna-00000004", bridge_id="br-1")
    p = plan(Request("complete", CID), "transferring", channels=channels, transfers=transfers,
             transfer={"answered": True})
    assert p.ami[-1] == {"Action": "Bridge", "Channel1": CALLER,
                         "Channel2": "PJSIP/anna-00000004", "Tone": "no"}
    cancel = plan(Request("cancel", CID), "transferring", channels=channels,
                  transfers=transfers)
    assert cancel.ami == ({"Action": "Redirect", "Channel": "PJSIP/op1-00000002",
                           "Context": "vaihde-console-return", "Exten": "s",
                           "Priority": "1"},)
    assert refused(Request("complete", CID), "active").status == 409


def test_park_retrieve_hangup():
    p = plan(Request("park", CID), "active", parties=[{"channel": "PJSIP/op1-00000002"}],
             channels=op_channel())
    assert p.ami == ({"Action": "Park", "Channel": CALLER,
                      "TimeoutChannel": "PJSIP/op1-00000002"},) and p.wants_space
    assert refused(Request("park", CID), "parked").status == 409
    assert refused(Request("retrieve", CID), "waiting").status == 409
    assert plan(Request("retrieve", CID), "parked").ami[-1]["Context"] == "vaihde-console-answer"
    assert plan(Request("hangup", CID), "parked").ami[0]["Action"] == "Hangup"


# --- transfers follow availability and the team's strategy, as the caller flow does ----------


def presence(absent=(), on_call=(), unreachable=()):
    from datetime import UTC, datetime

    from vaihde.presence.model import Availability, State

    def availability(eid: str) -> Availability:
        state = (State.VACATION if eid in absent else
                 State.ON_CALL if eid in on_call else State.AVAILABLE)
        return Availability(eid, state, None, "", "", None, None, datetime.now(UTC), None,
                            eid in on_call, "", None)

    def reach(device: str) -> Reach:
        return Reach.UNREACHABLE if device in unreachable else Reach.REACHABLE

    return Presence(availability, reach)


def transfer_values(target: Target, who: Presence) -> dict[str, str]:
    p = decide(Request("transfer", CID, target), {CID: call("active")}, {}, OLLI, CO, LIMITS,
               {}, who)
    return {a["Variable"]: a["Value"] for a in p.ami if a["Action"] == "Setvar"}


def test_team_transfer_skips_absent_and_busy_members_like_the_caller_flow():
    values = transfer_values(Target("team", "sales"), presence(absent={"anna"}))
    assert values["VAIHDE_CONSOLE_DIAL"] == "PJSIP/bob"
    values = transfer_values(Target("team", "sales"), presence(on_call={"bob"}))
    assert values["VAIHDE_CONSOLE_DIAL"] == "PJSIP/anna"


def test_in_order_team_transfer_rings_members_one_after_another_for_the_teams_time():
    values = transfer_values(Target("team", "support"),
                             presence(absent={"bob"}, unreachable={"PJSIP/cleo-soft"}))
    assert values["VAIHDE_CONSOLE_DIAL"] == "PJSIP/anna"
    assert values["VAIHDE_CONSOLE_RING"] == "12"
    # Bob is on vacation (passed over); Cleo's softphone is off: only her desk phone rings.
    assert values["VAIHDE_CONSOLE_DIAL2"] == "PJSIP/cleo"
    assert values["VAIHDE_CONSOLE_RING2"] == "12"
    assert values["VAIHDE_CONSOLE_DIAL3"] == ""
    assert values["VAIHDE_CONSOLE_QUEUE"] == ""


def test_queue_team_transfer_queues_the_caller_for_the_teams_time():
    values = transfer_values(Target("team", "help"), presence(absent={"anna"}))
    assert values["VAIHDE_CONSOLE_QUEUE"] == "help-q"
    assert values["VAIHDE_CONSOLE_RING"] == "40"
    assert values["VAIHDE_CONSOLE_DIAL"] == ""


def test_team_transfer_with_nobody_able_to_answer_is_refused_saying_why():
    with pytest.raises(Refusal) as info:
        transfer_values(Target("team", "sales"),
                        presence(absent={"anna"}, on_call={"bob"}))
    assert info.value.status == 409 and info.value.code == "nobody_available"
    assert "Anna Virtanen (vacation)" in info.value.message
    assert "Bob Berg (on a call)" in info.value.message


def test_employee_transfer_rings_only_phones_that_can_ring():
    values = transfer_values(Target("employee", "cleo"),
                             presence(unreachable={"PJSIP/cleo-soft"}))
    assert values["VAIHDE_CONSOLE_DIAL"] == "PJSIP/cleo"
    with pytest.raises(Refusal) as info:
        transfer_values(Target("employee", "cleo"),
                        presence(unreachable={"PJSIP/cleo-soft", "PJSIP/cleo"}))
    assert info.value.code == "unreachable"


def test_attended_team_transfer_rings_the_steps_from_the_operators_phone():
    req = Request("transfer", CID, Target("team", "support"), mode="attended")
    p = decide(req, {CID: call("active", parties=[{"channel": "PJSIP/op1-00000002"}])},
               op_channel(), OLLI, CO, LIMITS, {}, presence())
    on_op = {a["Variable"]: a["Value"] for a in p.ami
             if a["Action"] == "Setvar" and a["Channel"] == "PJSIP/op1-00000002"}
    assert on_op["VAIHDE_CONSOLE_DIAL"] == "PJSIP/anna"
    assert on_op["VAIHDE_CONSOLE_DIAL2"] == "PJSIP/bob"
    assert on_op["VAIHDE_CONSOLE_DIAL3"] == "PJSIP/cleo-soft&PJSIP/cleo"
