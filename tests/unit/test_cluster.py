"""Several Asterisks, merged (pure): a phone's state over every Asterisk and the way each
Asterisk dials it, the systemname check at login, and the console's board and actions over two
call trackers (same-named queues kept apart, ordered by waiting time, actions planned for the
Asterisk that holds the call)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from vaihde.ami.client import AmiClient, AmiRefused
from vaihde.ami.cluster import (
    Cluster,
    Link,
    MergedCalls,
    MergedDevices,
    dial_via,
    link_of_uniqueid,
    merge_queues,
    merged_state,
    rewrite,
    system_name_problem,
)
from vaihde.ami.devicestate import DeviceStates
from vaihde.ami.queues import ELSEWHERE, seats, sync_actions
from vaihde.ami.tracker import CallTracker, QueueCaller
from vaihde.company import parse_company
from vaihde.company.dials import Reach
from vaihde.config.settings import AsteriskSettings
from vaihde.console.actions import Limits, Operator, Request, Target, decide, next_waiting
from vaihde.console.board import Inputs, build
from vaihde.presence.model import resolve

T0 = 1_750_000_000.0
A, B = "ast1", "ast2"
TEMPLATES = {A: "PJSIP/{resource}@to-ast1", B: "PJSIP/{resource}@to-ast2"}


def template(home: str, _here: str) -> str:
    return TEMPLATES.get(home, "")


# --- a phone's state and way over several Asterisks -------------------------------------------


def test_the_state_that_says_most_about_the_phone_wins():
    assert merged_state(["INVALID", "NOT_INUSE"]) == "NOT_INUSE"
    assert merged_state(["NOT_INUSE", "INUSE"]) == "INUSE"
    assert merged_state(["UNAVAILABLE", "INVALID"]) == "UNAVAILABLE"
    # Unknown (an Asterisk that has not said yet) over "no such phone here".
    assert merged_state(["INVALID", None]) is None
    assert merged_state(["UNKNOWN", "INVALID"]) == "UNKNOWN"
    # A tie: the first Asterisk configured.
    assert merged_state(["RINGING", "NOT_INUSE"]) == "RINGING"
    assert merged_state([]) is None


def test_a_phone_is_dialled_where_it_is_else_through_its_asterisk():
    on_a = {A: "NOT_INUSE", B: "INVALID"}
    assert dial_via(A, "PJSIP/op1", on_a, template) == "PJSIP/op1"
    assert dial_via(B, "PJSIP/op1", on_a, template) == "PJSIP/op1@to-ast1"
    # In a call on A: still A's phone.
    assert dial_via(B, "PJSIP/op1", {A: "INUSE", B: None}, template) == "PJSIP/op1@to-ast1"
    # Both have it (a Local channel of the shared dialplan): each dials it itself.
    both = {A: "NOT_INUSE", B: "NOT_INUSE"}
    assert dial_via(B, "Local/anna@phones", both, template) == "Local/anna@phones"
    # Nobody has it reachable (offline, or not known yet): as it is, like one Asterisk does.
    assert dial_via(B, "PJSIP/op1", {A: "UNAVAILABLE", B: "INVALID"}, template) == "PJSIP/op1"
    assert dial_via(B, "PJSIP/op1", {A: None, B: None}, template) == "PJSIP/op1"
    # No template for the pair: as it is.
    assert dial_via(B, "PJSIP/op1", on_a, lambda _h, _x: "") == "PJSIP/op1"
    # {device} is the whole device.
    assert dial_via(B, "PJSIP/op1", on_a, lambda _h, _x: "Local/{device}") == "Local/PJSIP/op1"


def test_each_device_of_a_dial_string_is_reached_its_own_way():
    via = {"PJSIP/a": "PJSIP/a@to-ast1"}.get
    assert rewrite("PJSIP/a&PJSIP/b", lambda d: via(d) or d) == "PJSIP/a@to-ast1&PJSIP/b"
    assert rewrite("", lambda d: "x") == ""


def test_merged_devices_tell_listeners_only_when_the_merged_value_changes():
    a, b = DeviceStates(), DeviceStates()
    merged = MergedDevices([(A, a), (B, b)], template)
    busy: list[tuple[str, bool]] = []
    reach: list[tuple[str, Reach]] = []
    moved: list[str] = []
    merged.add_listener(lambda d, v: busy.append((d, v)))
    merged.add_reach_listener(lambda d, v: reach.append((d, v)))
    merged.add_route_listener(moved.append)
    b.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "INVALID"})
    # "No such phone" on B while A has not said: still unknown (rung), not unreachable.
    assert merged.reach("PJSIP/op1") is Reach.UNKNOWN and reach == [] and moved == []
    a.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "NOT_INUSE"})
    assert merged.reach("PJSIP/op1") is Reach.REACHABLE
    assert reach == [("PJSIP/op1", Reach.REACHABLE)]
    assert moved == ["PJSIP/op1"]  # B now reaches it through A
    assert merged.dial_from(B, "PJSIP/op1") == "PJSIP/op1@to-ast1"
    assert merged.dial_from(A, "PJSIP/op1") == "PJSIP/op1"
    a.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "INUSE"})
    assert busy == [("PJSIP/op1", False), ("PJSIP/op1", True)]
    assert merged.in_use["PJSIP/op1"] and moved == ["PJSIP/op1"]  # still reached through A
    # B saying "no such phone" again changes nothing merged.
    b.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "UNKNOWN"})
    b.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "INVALID"})
    assert busy[-1] == ("PJSIP/op1", True) and reach[-1] == ("PJSIP/op1", Reach.IN_USE)


def test_a_team_queue_rings_a_phone_on_another_asterisk_through_its_trunk():
    company = parse_company(COMPANY, "company.yaml")
    via = {"PJSIP/anna": "PJSIP/anna@to-ast1"}
    got = {s.interface: s.state_interface
           for s in seats(company, via=lambda d: via.get(d, d))}
    assert got == {"PJSIP/anna@to-ast1": ELSEWHERE, "PJSIP/bob": "PJSIP/bob"}
    available = resolve("x", [], now=datetime.now(UTC))

    actions = sync_actions(company, {("sales-q", "PJSIP/anna"): _held()},
                           lambda _e: available, queues=["sales-q"],
                           via=lambda d: via.get(d, d))
    assert {(a["Action"], a["Interface"]) for a in actions} == {
        ("QueueAdd", "PJSIP/anna@to-ast1"), ("QueueAdd", "PJSIP/bob"),
        ("QueueRemove", "PJSIP/anna")}
    add = next(a for a in actions if a["Interface"] == "PJSIP/anna@to-ast1")
    assert add["StateInterface"] == ELSEWHERE and add["MemberName"] == "Anna Virtanen"


def _held() -> Any:
    from vaihde.ami.queues import Held

    return Held(paused=False, reason="")


# --- logins -----------------------------------------------------------------------------------


def test_systemnames_are_checked_at_login():
    # One Asterisk: a systemname is not needed; a name given must be it.
    assert system_name_problem("", "", {}, several=False) == ""
    assert system_name_problem("ast1", "", {}, several=False) == ""
    assert system_name_problem("ast1", "ast1", {}, several=False) == ""
    # Several: each needs one, its own, and the one configured.
    assert "has no systemname" in system_name_problem("ast2", "", {"ast1": "ast1"}, True)
    wrong = system_name_problem("ast2", "ast1", {}, True)
    assert "its systemname is 'ast1'" in wrong and "systemname = ast2" in wrong
    assert "as 'ast1' does" in system_name_problem("", "ast1", {"ast1": "ast1"}, True)
    assert system_name_problem("ast2", "ast2", {"ast1": "ast1"}, True) == ""


def test_a_uniqueid_names_its_asterisk():
    names = {"ast1": "ast1", "ast10": "ast10"}
    assert link_of_uniqueid("ast10-1750000000.4", names) == "ast10"
    assert link_of_uniqueid("ast1-1750000000.4", names) == "ast1"
    assert link_of_uniqueid("1750000000.4", names) is None


class FakeClient:
    """What Cluster uses of an AmiClient, answering Getvar SYSTEMNAME."""

    def __init__(self, system_name: str, port: int) -> None:
        self.system_name = system_name
        self.host, self.port = "127.0.0.1", port
        self.connected = False
        self.last_error: str | None = None
        self.hooks: list[Any] = []
        self.state: list[Any] = []
        self.events: list[Any] = []

    def add_on_connected(self, hook: Any) -> None:
        self.hooks.append(hook)

    def add_state_listener(self, cb: Any) -> None:
        self.state.append(cb)

    def add_event_listener(self, cb: Any) -> None:
        self.events.append(cb)

    async def action(self, action: dict[str, str], timeout: float | None = None) -> Any:
        assert action == {"Action": "Getvar", "Variable": "SYSTEMNAME"}
        return {"Response": "Success", "Value": self.system_name}

    async def login(self) -> None:
        for hook in self.hooks:
            await hook(self)
        self.connected = True
        for cb in self.state:
            cb(True)


def cluster_of(*pairs: tuple[str, str]) -> tuple[Cluster, list[FakeClient]]:
    clients = [FakeClient(system, 5038 + i) for i, (_, system) in enumerate(pairs)]
    links = [
        Link(AsteriskSettings(name, "127.0.0.1", c.port, "vaihde", "s"), c,  # type: ignore[arg-type]
             CallTracker(), DeviceStates())
        for (name, _), c in zip(pairs, clients, strict=True)
    ]
    return Cluster(links), clients


def test_an_asterisk_with_the_wrong_systemname_is_refused_and_the_right_one_taken():
    cluster, (first, second) = cluster_of((A, A), (B, A))  # B's address reaches A again
    states: list[bool] = []
    cluster.add_state_listener(states.append)
    asyncio.run(first.login())
    assert cluster.links[0].system_name == A and cluster.links[0].accepted
    with pytest.raises(AmiRefused, match="its systemname is 'ast1'"):
        asyncio.run(second.login())
    assert not cluster.links[1].accepted and not cluster.connected
    assert states == [False]  # the first is up, not every one
    assert cluster.ami_json() == {"connected": False, "asterisks": [
        {"name": A, "connected": True}, {"name": B, "connected": False}]}


def test_the_single_service_ami_is_not_asked_its_name():
    cluster, (only,) = cluster_of(("", "whatever"))
    assert only.hooks == []  # no Getvar at login: exactly as before
    assert not cluster.several and cluster.calls is cluster.links[0].tracker
    assert cluster.devices is cluster.links[0].devices


# --- the console over two Asterisks -----------------------------------------------------------

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
  sales: {name: Sales, members: [anna, bob], queue: sales-q}
employees:
  anna: {name: Anna Virtanen, extension: 101, devices: [desk: PJSIP/anna]}
  bob: {name: Bob Berg, devices: [desk: PJSIP/bob]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/op1]}
"""


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def caller(uid: str, chan: str, queue: str, position: int) -> list[dict[str, str]]:
    snap = {"Channel": chan, "ChannelState": "6", "ChannelStateDesc": "Up",
            "CallerIDNum": "040" + uid[-1] * 7, "CallerIDName": "", "Context": "vaihde-queue",
            "Exten": "s", "Priority": "1", "Uniqueid": uid, "Linkedid": uid}
    return [{"Event": "Newchannel", **snap},
            {"Event": "QueueCallerJoin", **snap, "Queue": queue, "Position": str(position),
             "Count": str(position)}]


def two_asterisks() -> tuple[MergedCalls, CallTracker, CallTracker, Clock]:
    clock = Clock()
    one = CallTracker(clock=clock, wall_clock=clock)
    two = CallTracker(clock=clock, wall_clock=clock)
    one.synced = two.synced = True  # as after their resyncs
    return MergedCalls([(A, one), (B, two)]), one, two, clock


def test_same_named_queues_are_kept_apart_and_the_board_orders_by_waiting_time():
    calls, one, two, clock = two_asterisks()
    # The same channel name on both Asterisks: uniqueids, not names, tell them apart.
    for e in caller("ast2-1750000000.1", "PJSIP/trunk-00000001", "vaihde-switchboard", 1):
        two.apply(e)
    clock.t += 5
    for e in caller("ast1-1750000000.1", "PJSIP/trunk-00000001", "vaihde-switchboard", 1):
        one.apply(e)
    clock.t += 5
    for e in caller("ast1-1750000000.2", "PJSIP/trunk-00000002", "vaihde-switchboard", 2):
        one.apply(e)
    queue = calls.queues["vaihde-switchboard"]
    assert [(q.uniqueid, q.position) for q in queue] == [
        ("ast2-1750000000.1", 1), ("ast1-1750000000.1", 1), ("ast1-1750000000.2", 2)]
    board = build(Inputs(tracker=calls.frozen(), now=clock.t,
                         asterisk_of=lambda uid: calls.asterisk_of(uid) or ""))
    waiting = board.lists()["waiting"]
    assert [(c["id"], c["asterisk"], c["position"]) for c in waiting] == [
        ("ast2-1750000000.1", B, 1), ("ast1-1750000000.1", A, 1), ("ast1-1750000000.2", A, 2)]
    # Answer next: the longest waiting of the callers first in their queues.
    first = next_waiting(board.calls)
    assert first is not None and first["id"] == "ast2-1750000000.1"


def test_answer_next_takes_the_longest_waiting_of_all_asterisks():
    def waiting(uid: str, asterisk: str, position: int, since: str) -> dict[str, Any]:
        return {"id": uid, "state": "waiting", "asterisk": asterisk, "position": position,
                "since": since}

    calls = {c["id"]: c for c in (
        waiting("ast1-1.2", A, 2, "2025-06-02T11:00:02Z"),
        waiting("ast2-1.1", B, 1, "2025-06-02T11:00:05Z"),
        waiting("ast1-1.3", A, 3, "2025-06-02T11:00:09Z"))}
    # A's second in line has waited longer than B's first: positions are each Asterisk's own.
    first = next_waiting(calls)
    assert first is not None and first["id"] == "ast1-1.2"
    # One Asterisk (no names on the calls): its queue's order, as before.
    for c in calls.values():
        del c["asterisk"]
    first = next_waiting(calls)
    assert first is not None and first["id"] == "ast2-1.1"


def test_merge_queues_keeps_one_asterisks_order():
    q = [QueueCaller(f"u{i}", f"c{i}", "", "", i, 0.0, T0 + 10 - i) for i in (1, 2)]
    assert merge_queues([{"q": q}]) == {"q": q}  # one Asterisk: exactly its list


def test_an_asterisk_that_is_not_synced_has_its_calls_left_out():
    calls, one, two, _ = two_asterisks()
    for e in caller("ast1-1750000000.1", "PJSIP/t-1", "q", 1):
        one.apply(e)
    for e in caller("ast2-1750000000.1", "PJSIP/t-1", "q", 1):
        two.apply(e)
    assert set(calls.channels) == {"ast1-1750000000.1", "ast2-1750000000.1"}
    two.synced = False  # its AMI link went down
    assert set(calls.channels) == {"ast1-1750000000.1"}
    assert set(calls.frozen().channels) == {"ast1-1750000000.1"}
    assert [q.uniqueid for q in calls.queues["q"]] == ["ast1-1750000000.1"]
    # Still known for what the console remembers of it, and where it is.
    assert calls.channel("ast2-1750000000.1") is not None
    assert calls.asterisk_of("ast2-1750000000.1") == B


def test_one_subscription_hears_every_asterisk():
    calls, one, two, _ = two_asterisks()
    queue = calls.subscribe(100)
    for e in caller("ast1-1750000000.1", "PJSIP/t-1", "q", 1)[:1]:
        one.apply(e)
    for e in caller("ast2-1750000000.1", "PJSIP/t-1", "q", 1)[:1]:
        two.apply(e)
    got = [queue.get_nowait().uniqueid for _ in range(queue.qsize())]
    assert got == ["ast1-1750000000.1", "ast2-1750000000.1"]
    calls.unsubscribe(queue)
    one.apply({"Event": "Hangup", "Uniqueid": "ast1-1750000000.1", "Channel": "PJSIP/t-1"})
    assert queue.empty()


def test_actions_for_a_caller_on_one_asterisk_reach_a_phone_on_the_other():
    company = parse_company(COMPANY, "company.yaml")
    call = {"id": "ast2-1750000000.1", "state": "waiting", "channel": "PJSIP/trunk-00000001",
            "position": 1, "since": "x", "parties": [], "bounced": None, "transfer": None}
    via = {"PJSIP/op1": "PJSIP/op1@to-ast1", "PJSIP/anna": "PJSIP/anna@to-ast1"}

    def on_b(device: str) -> str:
        return via.get(device, device)

    olli = Operator("olli", "PJSIP/op1")
    limits = Limits(bounce_s=20, ring_s=30)
    plan = decide(Request("answer-next"), {call["id"]: call}, {}, olli, company, limits, {},
                  via=on_b)
    values = {a["Variable"]: a["Value"] for a in plan.ami if a["Action"] == "Setvar"}
    assert values["VAIHDE_CONSOLE_DIAL"] == "PJSIP/op1@to-ast1"
    assert plan.detail == {"phone": "PJSIP/op1"}
    plan = decide(Request("transfer", call["id"], Target("team", "sales")),
                  {call["id"]: call}, {}, olli, company, limits, {}, via=on_b)
    values = {a["Variable"]: a["Value"] for a in plan.ami if a["Action"] == "Setvar"}
    # A team with its own queue: that queue on the caller's Asterisk (kept on each).
    assert values["VAIHDE_CONSOLE_QUEUE"] == "sales-q"
    plan = decide(Request("transfer", call["id"], Target("employee", "anna")),
                  {call["id"]: call}, {}, olli, company, limits, {}, via=on_b)
    values = {a["Variable"]: a["Value"] for a in plan.ami if a["Action"] == "Setvar"}
    assert values["VAIHDE_CONSOLE_DIAL"] == "PJSIP/anna@to-ast1"
    assert values["VAIHDE_CONSOLE_BACK"] == "PJSIP/op1@to-ast1"  # a bounce comes back to you


def test_the_operators_leg_through_another_asterisk_is_their_phone():
    """Answered through a trunk, the operator's party is the trunk leg; parking (and an
    attended transfer) still find it by the Dial() string that rang the operator."""
    clock = Clock()
    tracker = CallTracker(clock=clock, wall_clock=clock)
    uid, chan = "ast2-1750000000.1", "PJSIP/trunk-00000001"
    leg_uid, leg = "ast2-1750000000.2", "PJSIP/to-ast1-00000002"

    def snap(u: str, c: str, prefix: str = "", context: str = "vaihde-console-answer"):  # type: ignore[no-untyped-def]
        fields = {"Channel": c, "ChannelState": "6", "Uniqueid": u, "Linkedid": uid,
                  "Context": context, "Exten": "s", "Priority": "1"}
        return {prefix + k: v for k, v in fields.items()}

    for e in ({"Event": "Newchannel", **snap(uid, chan)},
              {"Event": "DialBegin", **snap(uid, chan), **snap(leg_uid, leg, "Dest", "x"),
               "DialString": "op1@to-ast1"},
              {"Event": "DialEnd", **snap(uid, chan), **snap(leg_uid, leg, "Dest", "x"),
               "DialStatus": "ANSWER"}):
        tracker.apply(e)
    call = {"id": uid, "state": "active", "channel": chan, "position": None, "since": "x",
            "parties": [{"channel": leg, "name": "", "number": ""}], "bounced": None,
            "transfer": None}
    company = parse_company(COMPANY, "company.yaml")
    plan = decide(Request("park", uid), {uid: call}, tracker.channels,
                  Operator("olli", "PJSIP/op1"), company, Limits(), {},
                  via=lambda d: f"PJSIP/{d[6:]}@to-ast1" if d == "PJSIP/op1" else d)
    assert plan.ami == ({"Action": "Park", "Channel": chan, "TimeoutChannel": leg},)
    # Without the way through A, the trunk leg is nobody's phone.
    plan = decide(Request("park", uid), {uid: call}, tracker.channels,
                  Operator("olli", "PJSIP/op1"), company, Limits(), {})
    assert plan.ami == ({"Action": "Park", "Channel": chan},)


def test_the_service_keeps_a_link_and_a_guard_per_asterisk(monkeypatch, tmp_path):
    from vaihde.config.settings import loads
    from vaihde.service import Service

    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    monkeypatch.delenv("VAIHDE_GUARD_MODE", raising=False)
    settings = loads(
        "service:\n  asterisks:\n"
        "    - {name: ast1, host: 10.0.0.1, secret: one, reach: 'PJSIP/{resource}@to-ast1'}\n"
        "    - {name: ast2, host: 10.0.0.2, port: 5039, secret: two}\n"
        f"prompts: {{dir: {tmp_path}}}\n", str(tmp_path / "settings.yaml"))
    service = Service(settings)
    assert [(link.client.host, link.client.port) for link in service.links] == [
        ("10.0.0.1", 5038), ("10.0.0.2", 5039)]
    assert [(g.settings.host, g.settings.port, g.settings.secret) for g in service.guards] == [
        ("10.0.0.1", 5038, "one"), ("10.0.0.2", 5039, "two")]
    assert isinstance(service.calls, MergedCalls) and service.devices is service.cluster.merged
    assert service.ami is service.links[0].client  # the first, as before


def test_a_callers_route_is_dialled_as_the_calls_own_asterisk_reaches_each_phone(tmp_path):
    from vaihde.config.settings import loads

    settings = loads(
        "service:\n  asterisks:\n"
        "    - {name: ast1, host: 10.0.0.1, secret: one, reach: 'PJSIP/{resource}@to-ast1'}\n"
        "    - {name: ast2, host: 10.0.0.2, secret: two, reach: 'PJSIP/{resource}@to-ast2'}\n",
        str(tmp_path / "settings.yaml"))
    a, b = (Link(ast, AmiClient(ast.host, ast.port, ast.username, ast.secret), CallTracker(),
                 DeviceStates()) for ast in settings.all_asterisks())
    a.system_name, b.system_name = A, B
    cluster = Cluster([a, b])
    a.devices.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "NOT_INUSE"})
    b.devices.apply({"Event": "DeviceStateChange", "Device": "PJSIP/op1", "State": "INVALID"})
    on_b = cluster.dial_adapter("ast2-1750000000.7")
    assert on_b is not None
    # Every step of the route, each device of it; other variables as they are.
    assert on_b("VAIHDE_DIAL", "PJSIP/op1&Local/x@p") == "PJSIP/op1@to-ast1&Local/x@p"
    assert on_b("VAIHDE_DIAL3", "PJSIP/op1") == "PJSIP/op1@to-ast1"
    assert on_b("VAIHDE_DIAL_TIMEOUT", "20") == "20"
    assert on_b("VAIHDE_REASON", "PJSIP/op1") == "PJSIP/op1"
    on_a = cluster.dial_adapter("ast1-1750000000.8")
    assert on_a is not None and on_a("VAIHDE_DIAL", "PJSIP/op1") == "PJSIP/op1"  # its own phone
    assert Cluster([a]).dial_adapter("ast1-1750000000.8") is None  # one Asterisk: as they are
