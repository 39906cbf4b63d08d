"""Whom a call rings, decided purely from the configuration, availability and phones' reach:
team plans (shared by the caller flow and console transfers), and who forwarded a call."""

from datetime import UTC, datetime

import pytest

from vaihde.company import parse_company
from vaihde.company.dials import (
    Reach,
    Verdict,
    device_dials,
    forward_reason,
    forwarded_from,
    phones,
    plan_team,
    same_number,
)
from vaihde.presence.model import Availability, State

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
      1: {team: sales}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  sales: {name: Sales, members: [anna, mikko, sara], ring_seconds: 15}
  order: {name: Order, members: [anna, mikko, sara], strategy: in_order, ring_seconds: 10}
  desk: {name: Desk, members: [anna, mikko], queue: desk-q}
  shared: {name: Shared, members: [anna, pia]}
employees:
  anna:
    name: Anna Virtanen
    extension: "101"
    direct: ["+358201234501"]
    devices: [{desk: PJSIP/anna}, {softphone: PJSIP/anna-soft}, {mobile: "+358401234567"}]
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko]}
  sara: {name: Sara Salo, devices: [softphone: PJSIP/sara-soft]}
  pia: {name: Pia Pöytä, devices: [desk: PJSIP/anna]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/op1]}
"""
CO = parse_company(COMPANY, "company.yaml")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def availability(absent=(), on_call=()):
    def lookup(eid: str) -> Availability:
        if eid in absent:
            return Availability(eid, State.VACATION, None, "", "", None, None, NOW, 1, False,
                                "", None)
        state = State.ON_CALL if eid in on_call else State.AVAILABLE
        return Availability(eid, state, None, "", "", None, None, None, None, eid in on_call,
                            "", None)
    return lookup


def reach(unreachable=(), in_use=()):
    def lookup(device: str) -> Reach:
        if device in unreachable:
            return Reach.UNREACHABLE
        return Reach.IN_USE if device in in_use else Reach.REACHABLE
    return lookup


def test_without_presence_everyone_with_a_phone_rings():
    plan = plan_team(CO, CO.teams["sales"])
    assert plan.steps == (("PJSIP/anna&PJSIP/anna-soft&PJSIP/mikko&PJSIP/sara-soft", 15),)
    assert plan.ringing == ("anna", "mikko", "sara")


def test_absent_member_is_skipped_and_said_why():
    plan = plan_team(CO, CO.teams["sales"], availability=availability(absent={"anna"}))
    assert plan.steps == (("PJSIP/mikko&PJSIP/sara-soft", 15),)
    assert plan.members[0].verdict is Verdict.ABSENT
    assert plan.skipped() == "anna:vacation"


def test_member_on_a_call_is_skipped_in_ring_all_and_passed_over_in_order():
    on_call = availability(on_call={"mikko"})
    assert plan_team(CO, CO.teams["sales"], availability=on_call).steps == (
        ("PJSIP/anna&PJSIP/anna-soft&PJSIP/sara-soft", 15),)
    assert plan_team(CO, CO.teams["order"], availability=on_call).steps == (
        ("PJSIP/anna&PJSIP/anna-soft", 10), ("PJSIP/sara-soft", 10))
    # A phone in use says the same even before the presence overlay caught up.
    in_use = plan_team(CO, CO.teams["order"], device_reach=reach(in_use={"PJSIP/mikko"}))
    assert [m.verdict for m in in_use.members] == [Verdict.RING, Verdict.ON_CALL, Verdict.RING]


def test_unreachable_phones_are_left_out_and_a_member_without_any_is_skipped():
    plan = plan_team(CO, CO.teams["order"],
                     device_reach=reach(unreachable={"PJSIP/anna-soft", "PJSIP/sara-soft"}))
    assert plan.steps == (("PJSIP/anna", 10), ("PJSIP/mikko", 10))
    assert plan.members[2].verdict is Verdict.UNREACHABLE


def test_nobody_can_answer_gives_the_most_hopeful_reason():
    team = CO.teams["sales"]
    all_absent = plan_team(CO, team, availability=availability(absent={"anna", "mikko", "sara"}))
    assert all_absent.nobody and all_absent.why == "absent"
    busy = plan_team(CO, team, availability=availability(absent={"anna", "sara"},
                                                         on_call={"mikko"}))
    assert busy.nobody and busy.why == "busy"
    off = plan_team(CO, team, availability=availability(absent={"anna", "mikko"}),
                    device_reach=reach(unreachable={"PJSIP/sara-soft"}))
    assert off.nobody and off.why == "unreachable"


def test_queue_team_queues_unless_nobody_could_answer_and_keeps_busy_members():
    desk = CO.teams["desk"]
    # In a queue the caller waits for a member in a call (app_queue rings them when free).
    assert plan_team(CO, desk, availability=availability(on_call={"anna", "mikko"})).queue == (
        "desk-q")
    nobody = plan_team(CO, desk, availability=availability(absent={"anna", "mikko"}))
    assert nobody.nobody and nobody.queue == ""


def test_a_shared_phone_rings_once_with_the_first_member():
    plan = plan_team(CO, CO.teams["shared"])  # ring_seconds: the default
    assert [d for d, _ in plan.steps] == ["PJSIP/anna&PJSIP/anna-soft"]
    # Anna away: the shared desk phone rings for Pia.
    plan = plan_team(CO, CO.teams["shared"], availability=availability(absent={"anna"}))
    assert [d for d, _ in plan.steps] == ["PJSIP/anna"]


def test_employee_phones_skip_unreachable_ones_and_mobiles_have_no_state():
    anna = CO.employees["anna"]
    got = phones(anna, "PJSIP/{number}@trunk", reach(unreachable={"PJSIP/anna-soft"}))
    assert [(p.dial, p.reach) for p in got] == [
        ("PJSIP/anna", Reach.REACHABLE), ("PJSIP/anna-soft", Reach.UNREACHABLE),
        ("PJSIP/358401234567@trunk", Reach.UNKNOWN)]
    assert [d for d, _ in device_dials(anna, "", reach(unreachable={"PJSIP/anna-soft"}))] == [
        "PJSIP/anna"]


@pytest.mark.parametrize(("a", "b", "same"), [
    ("+358401234567", "0401234567", True),
    ("358401234567", "0401234567", True),
    ("00358401234567", "+358401234567", True),
    ("0401234567", "0401234567", True),
    ("0401234567", "0401234568", False),
    ("101", "0401234101", False),  # an extension is not a suffix of a long number
    ("+46401234567", "0401234567", True),  # country unknown: national form matches any
    ("99991358401234567", "0401234567", False),
    ("", "0401234567", False),
    ("04012x4567", "0401234567", False),
])
def test_same_number_in_national_and_international_form(a, b, same):
    assert same_number(a, b) is same
    assert same_number(b, a) is same


def test_forwarded_from_an_employees_mobile_direct_number_or_extension():
    assert forwarded_from(CO, "358401234567").via == "mobile"
    assert forwarded_from(CO, "0401234567").employee == "anna"
    assert forwarded_from(CO, "0201234501").via == "direct"
    assert forwarded_from(CO, "101").via == "extension"
    assert forwarded_from(CO, "0409999999") is None
    assert forwarded_from(CO, "") is None


@pytest.mark.parametrize(("raw", "word"), [
    ("cfnr", "no_answer"), ("cfb", "busy"), ("user_busy", "busy"), ("unavailable", "unavailable"),
    ("cfu", "unconditional"), ("", "unknown"), ("anythingelse", "unknown"), ("CFNR", "no_answer"),
])
def test_forward_reasons_become_known_words(raw, word):
    assert forward_reason(raw) == word
