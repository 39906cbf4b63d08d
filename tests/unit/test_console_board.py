"""The console board (pure): which channels are calls, in which state and list, and what the
operator reads about each (sought, path, what happened, caller, availability, bounce, parking)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vaihde.ami.devicestate import device_of_channel as device_of
from vaihde.ami.tracker import CallTracker
from vaihde.company import parse_company
from vaihde.console.board import (
    CallerFacts,
    Contact,
    Inputs,
    Transfer,
    build,
    clock_text,
    public,
)
from vaihde.presence.model import Entry, Source, State, resolve
from vaihde.story import StoryBook

HELSINKI = ZoneInfo("Europe/Helsinki")
T0 = 1_750_000_000.0

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
      2: {team: sales}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
  sales: {name: Sales, members: [anna]}
employees:
  anna: {name: Anna Virtanen, extension: 101, devices: [desk: PJSIP/anna]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/olga]}
"""


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def snap(uid: str, chan: str, *, state: int = 6, num: str = "0401234567", name: str = "Matti",
         context: str = "vaihde-main", linkedid: str = "", prefix: str = "") -> dict[str, str]:
    fields = {
        "Channel": chan, "ChannelState": str(state), "ChannelStateDesc": "Up",
        "CallerIDNum": num, "CallerIDName": name, "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>", "Context": context, "Exten": "s", "Priority": "1",
        "Uniqueid": uid, "Linkedid": linkedid or uid,
    }
    return {prefix + k: v for k, v in fields.items()}


def ev(name: str, *blocks: dict[str, str], **extra: str) -> dict[str, str]:
    out = {"Event": name}
    for b in blocks:
        out.update(b)
    out.update(extra)
    return out


CALLER = "1750000000.1"
CALLER_CHAN = "PJSIP/trunk-00000001"


class World:
    """A tracker, a story book and the company, advanced by hand."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.tracker = CallTracker(clock=self.clock, wall_clock=self.clock)
        self.stories = StoryBook()
        self.company = parse_company(COMPANY, "company.yaml")
        self.entries: list[Entry] = []
        self.callers: dict[str, CallerFacts] = {}
        self.transfers: dict[str, Transfer] = {}
        self.previous: dict[str, Any] = {}
        self.n = 10

    def at(self, seconds: float) -> None:
        self.clock.t = T0 + seconds

    def apply(self, *events: dict[str, str]) -> None:
        for e in events:
            self.tracker.apply(e)

    def caller_arrives(self, uid: str = CALLER, chan: str = CALLER_CHAN, **kw: Any) -> None:
        self.apply(ev("Newchannel", snap(uid, chan, **kw)))

    def move(self, uid: str, chan: str, context: str, **kw: Any) -> None:
        self.apply(ev("Newstate", snap(uid, chan, context=context, **kw)))

    def dial(self, uid: str, chan: str, device: str, status: str | None, context: str) -> str:
        self.n += 1
        dest_uid, dest = f"1750000000.{self.n}", f"{device}-0000{self.n:04x}"
        caller = snap(uid, chan, context=context)
        dest_snap = snap(dest_uid, dest, state=5, context="phones", linkedid=uid, prefix="Dest")
        self.apply(ev("DialBegin", caller, dest_snap, DialString=device))
        if status is not None:
            self.apply(ev("DialEnd", caller, dest_snap, DialStatus=status))
            if status != "ANSWER":
                self.apply(ev("Hangup", snap(dest_uid, dest, linkedid=uid), Cause="16"))
        return dest_uid

    def bridge(self, bridge_id: str, *members: tuple[str, str], technology: str = "simple_bridge",
               bridge_type: str = "basic") -> None:
        for uid, chan in members:
            ch = self.tracker.channel(uid)
            context = ch.context if ch is not None else "phones"
            self.apply(ev("BridgeEnter", snap(uid, chan, context=context),
                          BridgeUniqueid=bridge_id,
                          BridgeType=bridge_type, BridgeTechnology=technology))

    def lookup(self, employee_id: str):  # type: ignore[no-untyped-def]
        now = datetime.fromtimestamp(self.clock.t, UTC)
        return resolve(employee_id, [e for e in self.entries if e.employee_id == employee_id],
                       now=now, tz=HELSINKI)

    def board(self):  # type: ignore[no-untyped-def]
        board = build(Inputs(
            tracker=self.tracker, now=self.clock.t, stories=self.stories.get,
            company=self.company, availability=self.lookup, callers=self.callers,
            transfers=self.transfers, phones={"PJSIP/op1": "Olli Operator"},
            previous=self.previous, tz=HELSINKI,
        ))
        self.previous = board.calls
        return board


def menu_story(world: World, uid: str = CALLER, *, key: str = "1", name: str = "Matti") -> Any:
    story = world.stories.open(uid, "0401234567", name, "0201234567")
    at = datetime.fromtimestamp(world.clock.t, UTC)
    story.add("entered", at=at, number="0201234567", menu="main")
    story.add("menu", at=at, menu="main", key=key, attempt="1")
    if key == "1":
        story.seek("employee", "anna", "menu_option", menu="main", key="1", label="Anna")
    return story


def test_device_of_strips_the_channel_suffix():
    assert device_of("PJSIP/op1-0000001a") == "PJSIP/op1"
    assert device_of("Local/anna@vaihde-test-phones-0000002a;1") == "Local/anna@vaihde-test-phones"


def test_no_answer_then_operator_is_waiting_with_sought_path_and_what_happened():
    w = World()
    w.caller_arrives()
    story = menu_story(w)
    story.add("availability", at=datetime.fromtimestamp(w.clock.t, UTC), employee="anna",
              state="available", until="")
    story.add("routed", at=datetime.fromtimestamp(w.clock.t, UTC), route="ring",
              reason="menu-main-1")
    w.dial(CALLER, CALLER_CHAN, "PJSIP/anna", None, "vaihde-main")
    w.at(20)
    # The DialEnd reaches both the tracker and the story, as in the service.
    anna_dial = w.tracker.channel(CALLER).dials[-1]  # type: ignore[union-attr]
    end = ev("DialEnd", snap(CALLER, CALLER_CHAN, context="vaihde-main"),
             snap(anna_dial.dest_uniqueid, anna_dial.dest_channel, prefix="Dest"),
             DialStatus="NOANSWER")
    w.apply(end)
    w.stories.apply(end)
    assert w.board().calls == {}, "ringing the employee the caller chose is not the operator's"
    w.at(21)
    w.dial(CALLER, CALLER_CHAN, "PJSIP/olga", None, "vaihde-operator")
    earlier = datetime(2025, 6, 12, 9, 5, tzinfo=UTC)
    w.callers["main/0401234567"] = CallerFacts("Matti Meikäläinen", "Oy Ab", True, 2, 5, (
        Contact(earlier, "team:sales", "menu_option", "message"),
        Contact(earlier - timedelta(days=1), "employee:anna", "extension", "noanswer"),
        Contact(earlier - timedelta(days=2), "operator:", "operator", "answered"),
        Contact(earlier - timedelta(days=3), "", "menu", "hangup"),
        Contact(earlier - timedelta(days=4), "employee:gone", "direct_number", "busy"),
    ))
    board = w.board()
    (call,) = board.lists()["waiting"]
    assert call["id"] == CALLER and call["state"] == "waiting" and call["position"] == 1
    assert call["sought"] == {"kind": "employee", "id": "anna", "name": "Anna Virtanen",
                              "path": "menu_option", "detail": "menu main, key 1 (Anna)"}
    assert call["what_happened"] == "no answer after 20 s"
    assert call["caller"] == {"number": "0401234567", "name": "Matti",
                              "known": {"name": "Matti Meikäläinen", "organisation": "Oy Ab"}}
    # Where the call came in, and the caller's last five calls: when, whom, how it ended.
    assert call["dialled"] == {"number": "0201234567", "label": "Main"}
    assert call["earlier"]["today"] == 2 and call["earlier"]["last_30_days"] == 5
    assert call["earlier"]["recent"] == [
        {"at": "2025-06-12T09:05:00Z", "path": "menu_option", "outcome": "message",
         "ended": "left a message",
         "sought": {"kind": "team", "id": "sales", "name": "Sales"}},
        {"at": "2025-06-11T09:05:00Z", "path": "extension", "outcome": "noanswer",
         "ended": "no answer",
         "sought": {"kind": "employee", "id": "anna", "name": "Anna Virtanen"}},
        {"at": "2025-06-10T09:05:00Z", "path": "operator", "outcome": "answered",
         "ended": "answered",
         "sought": {"kind": "operator", "id": "", "name": "the switchboard"}},
        {"at": "2025-06-09T09:05:00Z", "path": "menu", "outcome": "hangup",
         "ended": "caller hung up", "sought": None},
        # Someone no longer in the company: their id, rather than nothing.
        {"at": "2025-06-08T09:05:00Z", "path": "direct_number", "outcome": "busy",
         "ended": "busy", "sought": {"kind": "employee", "id": "gone", "name": "gone"}},
    ]
    assert call["availability"]["state"] == "available"
    assert [s["kind"] for s in call["story"]] == [
        "entered", "menu", "sought", "availability", "routed", "dial"]
    assert call["story"][-1]["detail"]["status"] == "noanswer"
    assert call["parties"] == [] and call["bounced"] is None
    assert board.to_json(7, True)["seq"] == 7
    assert not any(k.startswith("_") for k in public(call))


def test_times_are_told_in_the_call_s_company_zone_not_the_service_s():
    """A Stockholm client's caller, served by a centre whose first company is in Helsinki: the
    operator reads Anna's 14.00 as the client's callers and people live it, not as 15.00."""
    stockholm = ZoneInfo("Europe/Stockholm")
    w = World()
    w.company = parse_company(COMPANY.replace(
        "company: {name: Testi Oy, ", "company: {name: Testi Ab, timezone: Europe/Stockholm, "),
        "company.yaml")
    w.caller_arrives()
    story = menu_story(w)
    now = datetime.fromtimestamp(w.clock.t, UTC)
    until = now.astimezone(stockholm).replace(hour=14, minute=0, second=0, microsecond=0)
    story.add("availability", at=now, employee="anna", state="meeting",
              until=until.isoformat())
    story.add("routed", at=now, route="tooperator", reason="menu-main-1-meeting")
    w.move(CALLER, CALLER_CHAN, "vaihde-operator")
    (call,) = w.board().lists()["waiting"]  # Inputs.tz is Helsinki
    assert call["what_happened"] == "in a meeting until 14.00"
    assert until.astimezone(HELSINKI).hour == 15


def test_busy_and_meeting_in_words():
    w = World()
    w.caller_arrives()
    story = menu_story(w)
    now = datetime.fromtimestamp(w.clock.t, UTC)
    # 14.00 on the day of the call, as the flow recorded it (the story's own clock).
    until = now.astimezone(HELSINKI).replace(hour=14, minute=0, second=0, microsecond=0)
    w.entries.append(Entry(1, "anna", State.MEETING, now - timedelta(hours=1),
                           now + timedelta(hours=1), "", "weekly", Source.CALENDAR, "calendar",
                           now - timedelta(hours=2)))
    story.add("availability", at=now, employee="anna", state="meeting",
              until=until.isoformat())
    story.add("routed", at=now, route="tooperator", reason="menu-main-1-meeting")
    w.move(CALLER, CALLER_CHAN, "vaihde-operator")
    (call,) = w.board().lists()["waiting"]
    assert call["what_happened"] == "in a meeting until 14.00"
    assert call["availability"]["state"] == "meeting"
    assert call["availability"]["internal_note"] == "weekly"

    w2 = World()
    w2.caller_arrives()
    story = menu_story(w2)
    story.add("routed", at=now, route="ring", reason="menu-main-1")
    story.add("dial", at=now, status="busy", device="PJSIP/anna-00000002")
    w2.move(CALLER, CALLER_CHAN, "vaihde-operator")
    (call,) = w2.board().lists()["waiting"]
    assert call["what_happened"] == "busy"


def test_clock_text_today_and_other_days():
    now = datetime(2025, 6, 2, 9, 0, tzinfo=HELSINKI)
    assert clock_text(datetime(2025, 6, 2, 14, 0, tzinfo=HELSINKI), HELSINKI, now) == "14.00"
    assert clock_text(datetime(2025, 6, 5, 0, 0, tzinfo=HELSINKI), HELSINKI, now) == "5.6."
    assert clock_text(datetime(2025, 6, 5, 9, 30, tzinfo=HELSINKI), HELSINKI, now) == "5.6. 9.30"


def test_caller_who_pressed_zero_chose_the_operator():
    w = World()
    w.caller_arrives()
    story = menu_story(w, key="0")
    story.seek("operator", "", "operator")
    story.add("routed", route="tooperator", reason="menu-main-0")
    w.move(CALLER, CALLER_CHAN, "vaihde-operator")
    (call,) = w.board().lists()["waiting"]
    assert call["sought"]["kind"] == "operator" and call["sought"]["path"] == "operator"
    assert call["what_happened"] == "chose the operator"
    assert call["availability"] is None


def test_zero_during_the_closed_announcement_says_both():
    w = World()
    w.caller_arrives()
    story = w.stories.open(CALLER, "0401234567", "Matti", "0201234567")
    story.add("menu", menu="closed", key="0", attempt="1")
    story.seek("operator", "", "operator")
    story.add("routed", route="tooperator", reason="closed-weekly-0")
    w.move(CALLER, CALLER_CHAN, "vaihde-operator")
    (call,) = w.board().lists()["waiting"]
    assert call["what_happened"] == "outside opening hours, chose the operator"


def test_no_story_in_operator_context_still_waiting():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    (call,) = w.board().lists()["waiting"]
    assert call["sought"] is None
    assert call["what_happened"] == "came straight to the operators (no menu)"


def test_without_a_story_the_dialplans_reason_is_used():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    w.apply(ev("Newstate", snap(CALLER, CALLER_CHAN, context="vaihde-operator"),
               ChanVariable="VAIHDE_REASON=agi-FAILURE"))
    (call,) = w.board().lists()["waiting"]
    assert call["what_happened"] == "the service did not answer (no menu)"


def test_in_menu_and_dialled_legs_are_not_calls():
    w = World()
    w.caller_arrives()
    menu_story(w)
    w.dial(CALLER, CALLER_CHAN, "PJSIP/anna", None, "vaihde-main")
    assert w.board().calls == {}


def test_bridged_call_is_active_with_parties_and_answer_time():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    w.at(5)
    op = w.dial(CALLER, CALLER_CHAN, "PJSIP/op1", "ANSWER", "vaihde-operator")
    op_chan = w.tracker.channel(op).name  # type: ignore[union-attr]
    w.at(6)
    w.bridge("br-1", (CALLER, CALLER_CHAN), (op, op_chan))
    board = w.board()
    (call,) = board.lists()["active"]
    assert call["state"] == "active"
    assert call["parties"] == [{"channel": op_chan, "name": "Olli Operator", "number": ""}]
    assert call["answered_at"] == "2025-06-15T15:06:46Z"
    w.at(30)
    (again,) = w.board().lists()["active"]
    assert again["answered_at"] == call["answered_at"] and again["since"] == call["since"]


def test_a_call_another_instance_served_is_active_here_too():
    """No story here (another vaihde instance served the menu): the caller's leg, marked by the
    dialplan with its own call id, is on the board once connected; the phone's leg, which
    inherits that id, is not a call."""
    w = World()
    w.caller_arrives()
    w.apply(ev("VarSet", snap(CALLER, CALLER_CHAN), Variable="__VAIHDE_CALL_ID", Value=CALLER))
    assert w.board().calls == {}  # in the menu (of the other instance)
    anna = w.dial(CALLER, CALLER_CHAN, "PJSIP/anna", "ANSWER", "vaihde-main")
    anna_chan = w.tracker.channel(anna).name  # type: ignore[union-attr]
    w.apply(ev("VarSet", snap(anna, anna_chan, context="phones", linkedid=CALLER),
               Variable="__VAIHDE_CALL_ID", Value=CALLER))
    assert w.board().calls == {}  # ringing the employee the caller chose
    w.bridge("br-9", (CALLER, CALLER_CHAN), (anna, anna_chan))
    (call,) = w.board().lists()["active"]
    assert call["id"] == CALLER and call["sought"] is None
    assert [p["channel"] for p in call["parties"]] == [anna_chan]
    # Without the mark (a channel that is no vaihde caller) nothing is shown, as before.
    w2 = World()
    w2.caller_arrives()
    op = w2.dial(CALLER, CALLER_CHAN, "PJSIP/anna", "ANSWER", "vaihde-main")
    w2.bridge("br-1", (CALLER, CALLER_CHAN), (op, w2.tracker.channel(op).name))  # type: ignore[union-attr]
    assert w2.board().calls == {}


def test_employee_party_is_named_from_the_company():
    w = World()
    w.caller_arrives()
    menu_story(w)
    anna = w.dial(CALLER, CALLER_CHAN, "PJSIP/anna", "ANSWER", "vaihde-main")
    w.bridge("br-1", (CALLER, CALLER_CHAN), (anna, w.tracker.channel(anna).name))  # type: ignore[union-attr]
    (call,) = w.board().lists()["active"]
    assert call["parties"][0]["name"] == "Anna Virtanen"
    assert call["parties"][0]["employee"] == "anna"


def test_parked_call_in_parked_list_with_its_space():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    w.apply(ev("ParkedCall", snap(CALLER, CALLER_CHAN, prefix="Parkee"), ParkingSpace="701",
               Parkinglot="default", ParkingTimeout="45", ParkingDuration="0",
               ParkerDialString="PJSIP/op1"))
    w.bridge("park-1", (CALLER, CALLER_CHAN), technology="holding", bridge_type="parking")
    (call,) = w.board().lists()["parked"]
    assert call["state"] == "parked"
    assert call["parking"] == {"space": "701", "lot": "default", "timeout": 45}
    assert call["parties"] == []
    w.apply(ev("UnParkedCall", snap(CALLER, CALLER_CHAN, prefix="Parkee",
                                    context="vaihde-console-answer")))
    assert w.board().lists()["parked"] == []


def test_queue_callers_wait_in_queue_order():
    w = World()
    for i, chan in ((1, "PJSIP/trunk-1"), (2, "PJSIP/trunk-2")):
        uid = f"q.{i}"
        w.caller_arrives(uid, chan, context="vaihde-queue")
        w.at(i)
        w.apply(ev("QueueCallerJoin", snap(uid, chan, context="vaihde-queue"),
                   Queue="vaihde-switchboard", Position=str(i), Count=str(i)))
    waiting = w.board().lists()["waiting"]
    assert [(c["id"], c["queue"], c["position"]) for c in waiting] == [
        ("q.1", "vaihde-switchboard", 1), ("q.2", "vaihde-switchboard", 2)]


def test_waiting_calls_longest_first_with_positions():
    w = World()
    w.caller_arrives("a.2", "PJSIP/trunk-2", context="vaihde-operator")
    w.at(3)
    w.caller_arrives("a.1", "PJSIP/trunk-1", context="vaihde-operator")
    w.board()
    waiting = w.board().lists()["waiting"]
    assert [(c["id"], c["position"]) for c in waiting] == [("a.2", 1), ("a.1", 2)]


def test_bounced_transfer_is_marked_with_why_and_by():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    menu_story(w)
    w.at(10)
    w.dial(CALLER, CALLER_CHAN, "PJSIP/anna", None, "vaihde-console-transfer")
    w.transfers[CALLER] = Transfer("employee:anna", "Anna Virtanen", "olli", "blind", T0 + 10)
    (call,) = w.board().lists()["active"]
    assert call["state"] == "transferring"
    assert call["transfer"] == {"target": "employee:anna", "name": "Anna Virtanen",
                                "mode": "blind", "by": "olli", "answered": False}
    w.at(30)
    dial = w.tracker.channel(CALLER).dials[-1]  # type: ignore[union-attr]
    w.apply(ev("DialEnd", snap(CALLER, CALLER_CHAN, context="vaihde-console-transfer"),
               snap(dial.dest_uniqueid, dial.dest_channel, prefix="Dest"), DialStatus="NOANSWER"))
    w.transfers[CALLER] = Transfer("employee:anna", "Anna Virtanen", "olli", "blind", T0 + 10,
                                   bounced="noanswer")
    w.dial(CALLER, CALLER_CHAN, "PJSIP/op1", None, "vaihde-console-bounce")
    (call,) = w.board().lists()["waiting"]
    assert call["state"] == "ringing"
    assert call["bounced"] == {"target": "Anna Virtanen", "why": "noanswer", "by": "olli"}
    assert call["what_happened"].startswith("transfer to Anna Virtanen: no answer after 20 s")
    assert call["transfer"] is None


def test_bounce_without_the_services_memory_still_shows_bounced():
    w = World()
    w.caller_arrives()
    w.dial(CALLER, CALLER_CHAN, "PJSIP/anna", "BUSY", "vaihde-console-transfer")
    w.move(CALLER, CALLER_CHAN, "vaihde-console-bounce")
    (call,) = w.board().lists()["waiting"]
    assert call["bounced"] == {"target": "", "why": "busy", "by": ""}


def test_attended_transfer_shows_whether_the_target_answered():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    op = w.dial(CALLER, CALLER_CHAN, "PJSIP/op1", "ANSWER", "vaihde-console-answer")
    op_chan = w.tracker.channel(op).name  # type: ignore[union-attr]
    w.move(CALLER, CALLER_CHAN, "vaihde-console-hold")
    w.transfers[CALLER] = Transfer("employee:anna", "Anna Virtanen", "olli", "attended",
                                   operator_channel=op)
    (call,) = w.board().lists()["active"]
    assert call["state"] == "transferring" and call["transfer"]["answered"] is False
    anna = w.dial(op, op_chan, "PJSIP/anna", "ANSWER", "vaihde-console-consult")
    w.bridge("br-2", (op, op_chan), (anna, w.tracker.channel(anna).name))  # type: ignore[union-attr]
    (call,) = w.board().lists()["active"]
    assert call["transfer"]["answered"] is True


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "evil\x1b[31m\nname"])
def test_caller_names_are_plain_bounded_text(name):
    w = World()
    w.caller_arrives(context="vaihde-operator", name=name)
    (call,) = w.board().lists()["waiting"]
    shown = call["caller"]["name"]
    assert "\n" not in shown and "\x1b" not in shown and len(shown) <= 80
    if "<" in name:
        assert shown == name  # kept as text: the page renders it with textContent


def test_hangup_removes_the_call():
    w = World()
    w.caller_arrives(context="vaihde-operator")
    assert w.board().calls
    w.apply(ev("Hangup", snap(CALLER, CALLER_CHAN, context="vaihde-operator"), Cause="16"))
    assert w.board().calls == {}


def test_the_card_says_which_number_was_dialled():
    from vaihde.console.board import dialled_json
    from vaihde.story import CallStory

    company = parse_company(COMPANY.replace(
        "  anna: {name: Anna Virtanen, extension: 101,",
        "  anna: {name: Anna Virtanen, extension: 101, direct: [\"+358201234501\"],"),
        "company.yaml")

    def story(dialled: str) -> CallStory:
        return CallStory("1.1", "0401234567", "", dialled, datetime.now(UTC))

    assert dialled_json(story("0201234567"), company) == {"number": "0201234567",
                                                          "label": "Main"}
    assert dialled_json(story("358201234501"), company) == {
        "number": "358201234501", "label": "Anna Virtanen (direct)"}
    assert dialled_json(story("0209999999"), company) == {"number": "0209999999", "label": ""}
    assert dialled_json(story(""), company) is None
    assert dialled_json(story("1&PJSIP/x"), company) is None
    assert dialled_json(None, company) is None
