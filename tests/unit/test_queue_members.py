"""Team queues follow availability: which members are added, paused, unpaused and removed
(pure), and the live edge sending a pause as soon as someone's availability changes."""

import asyncio
from types import SimpleNamespace

from vaihde.ami.queues import Held, QueueMembers, held_from_status, seats, sync_actions
from vaihde.company import parse_company
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
  sales: {name: Sales, members: [anna, mikko], queue: sales-q}
  plain: {name: Plain, members: [anna]}
employees:
  anna: {name: Anna Virtanen, devices: [{desk: PJSIP/anna}, {mobile: "+358401234567"}]}
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/op1]}
"""
CO = parse_company(COMPANY, "company.yaml")


def availability(states):
    def lookup(eid):
        state = State(states.get(eid, "available"))
        return Availability(eid, state, None, "", "", None, None, None, None, False, "", None)
    return lookup


def test_seats_are_every_members_phone_in_the_teams_queue():
    assert [(s.queue, s.interface, s.employee, s.state_interface)
            for s in seats(CO)] == [("sales-q", "PJSIP/anna", "anna", "PJSIP/anna"),
                                    ("sales-q", "PJSIP/mikko", "mikko", "PJSIP/mikko")]
    # With a trunk the mobile is a member too (no device state to read).
    mobile = [s for s in seats(CO, "PJSIP/{number}@trunk") if s.interface.endswith("@trunk")]
    assert mobile[0].interface == "PJSIP/358401234567@trunk" and mobile[0].state_interface == ""


def test_missing_members_are_added_paused_as_their_availability_says():
    actions = sync_actions(CO, {}, availability({"anna": "vacation"}))
    assert actions == [
        {"Action": "QueueAdd", "Queue": "sales-q", "Interface": "PJSIP/anna",
         "MemberName": "Anna Virtanen", "Paused": "true", "Reason": "vacation",
         "StateInterface": "PJSIP/anna"},
        {"Action": "QueueAdd", "Queue": "sales-q", "Interface": "PJSIP/mikko",
         "MemberName": "Mikko Mäki", "Paused": "false", "StateInterface": "PJSIP/mikko"},
    ]


def test_existing_members_are_paused_unpaused_or_left_alone():
    held = {("sales-q", "PJSIP/anna"): Held(False, ""),
            ("sales-q", "PJSIP/mikko"): Held(True, "meeting")}
    actions = sync_actions(CO, held, availability({"anna": "off_work"}))
    assert actions == [
        {"Action": "QueuePause", "Queue": "sales-q", "Interface": "PJSIP/anna",
         "Paused": "true", "Reason": "off_work"},
        {"Action": "QueuePause", "Queue": "sales-q", "Interface": "PJSIP/mikko",
         "Paused": "false", "Reason": "available"},
    ]
    # Already right (an unpaused member's reason does not matter): nothing to send.
    held = {("sales-q", "PJSIP/anna"): Held(True, "off_work"),
            ("sales-q", "PJSIP/mikko"): Held(False, "whatever")}
    assert sync_actions(CO, held, availability({"anna": "off_work"})) == []
    # Paused for another reason: the reason is brought up to date.
    held[("sales-q", "PJSIP/anna")] = Held(True, "meeting")
    assert sync_actions(CO, held, availability({"anna": "off_work"}))[0]["Reason"] == "off_work"


def test_dynamic_strangers_are_removed_static_ones_kept_and_paused_if_someones_phone():
    held = {("sales-q", "PJSIP/anna"): Held(False, ""),
            ("sales-q", "PJSIP/mikko"): Held(False, ""),
            ("sales-q", "PJSIP/left-the-firm"): Held(False, "", dynamic=True),
            ("sales-q", "PJSIP/op1"): Held(False, "", dynamic=False),
            ("sales-q", "PJSIP/lobby"): Held(False, "", dynamic=False),
            ("other-q", "PJSIP/x"): Held(False, "", dynamic=True)}
    actions = sync_actions(CO, held, availability({"olga": "sick"}))
    assert actions == [
        {"Action": "QueueRemove", "Queue": "sales-q", "Interface": "PJSIP/left-the-firm"},
        {"Action": "QueuePause", "Queue": "sales-q", "Interface": "PJSIP/op1",
         "Paused": "true", "Reason": "sick"},
    ]


def test_queues_asterisk_lacks_are_left_alone():
    assert sync_actions(CO, {}, availability({}), queues=[]) == []


def test_queue_status_is_read_into_members_and_existing_queues():
    events = [
        {"Event": "QueueParams", "Queue": "sales-q"},
        {"Event": "QueueMember", "Queue": "sales-q", "Location": "PJSIP/anna",
         "Membership": "dynamic", "Paused": "1", "PausedReason": "vacation"},
        {"Event": "QueueMember", "Queue": "sales-q", "Location": "PJSIP/op1",
         "Membership": "static", "Paused": "0", "PausedReason": ""},
    ]
    held, found = held_from_status(events)
    assert found == {"sales-q"}
    assert held == {("sales-q", "PJSIP/anna"): Held(True, "vacation", True),
                    ("sales-q", "PJSIP/op1"): Held(False, "", False)}


class FakeAmi:
    def __init__(self, status):
        self.connected = True
        self.sent = []
        self.status = status
        self.listeners = []
        self.hooks = []

    def add_event_listener(self, cb):
        self.listeners.append(cb)

    def add_on_connected(self, hook):
        self.hooks.append(hook)

    async def action(self, action, timeout=None):
        self.sent.append(action)
        if action["Action"] == "QueueStatus":
            return SimpleNamespace(events=self.status)
        return {"Response": "Success"}


async def test_live_changes_are_sent_at_once_and_resync_puts_everything_right():
    states = {"anna": "available"}
    ami = FakeAmi([{"Event": "QueueParams", "Queue": "sales-q"},
                   {"Event": "QueueMember", "Queue": "sales-q", "Location": "PJSIP/anna",
                    "Membership": "dynamic", "Paused": "0"}])
    members = QueueMembers(ami, lambda: CO, availability(states))
    members.attach()
    await ami.hooks[0](ami)  # as on an AMI login
    assert [a["Action"] for a in ami.sent] == ["QueueStatus", "QueueAdd"]
    assert ami.sent[1]["Interface"] == "PJSIP/mikko"
    ami.sent.clear()
    worker = asyncio.create_task(members.run())
    try:
        states["anna"] = "meeting"
        members.availability_changed(availability(states)("anna"))
        for _ in range(50):
            if ami.sent:
                break
            await asyncio.sleep(0.01)
        assert ami.sent == [{"Action": "QueuePause", "Queue": "sales-q",
                             "Interface": "PJSIP/anna", "Paused": "true",
                             "Reason": "meeting"}]
        # Asterisk confirms it; then someone unpauses her by hand: vaihde pauses her again.
        for listener in ami.listeners:
            listener({"Event": "QueueMemberPause", "Queue": "sales-q",
                      "Interface": "PJSIP/anna", "Paused": "1", "PausedReason": "meeting"})
        ami.sent.clear()
        for listener in ami.listeners:
            listener({"Event": "QueueMemberPause", "Queue": "sales-q",
                      "Interface": "PJSIP/anna", "Paused": "0", "PausedReason": ""})
        for _ in range(50):
            if ami.sent:
                break
            await asyncio.sleep(0.01)
        assert ami.sent[0]["Paused"] == "true"
    finally:
        worker.cancel()
