"""Operators' talks stored as the tracker shows them, on SQLite and PostgreSQL: committed when a
talk starts (what a `kill -9` cannot take back), once only when a restarted recorder (or a
second instance) sees the same talk, and closed when the operator's phone leaves the bridge;
the company is the call story's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from vaihde.ami.tracker import Bridge, Channel
from vaihde.db import models as m
from vaihde.reports.talk import TalkRecorder
from vaihde.story import StoryBook

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


class Calls:
    """The tracker as the recorder reads it."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.synced = True

    def talk(self, caller: str, phone_channel: str, bridge: str) -> None:
        self.channels[caller] = Channel(caller, name="PJSIP/trunk-00000001", bridge_id=bridge)
        self.channels["op"] = Channel("op", name=phone_channel, dialed_by=caller,
                                      bridge_id=bridge)
        self.bridges[bridge] = Bridge(bridge, members=[caller, "op"])

    def hang_up(self) -> None:
        self.channels.clear()
        self.bridges.clear()

    def subscribe(self, maxsize: int = 1000) -> Any:
        raise AssertionError("not used: the test calls observe()")

    def unsubscribe(self, queue: Any) -> None:
        pass


async def rows(db) -> list[tuple[str, str, str, datetime, datetime | None]]:  # type: ignore[no-untyped-def]
    async with db.sessions() as s:  # a connection of its own: only what was committed
        t = m.OperatorTalk
        found = await s.execute(select(t.call_id, t.company_id, t.operator, t.started_at,
                                       t.ended_at).order_by(t.id))
        return [tuple(r) for r in found.all()]  # type: ignore[misc]


async def test_talks_are_committed_when_seen_and_stored_once(db):
    calls, stories = Calls(), StoryBook()
    stories.open("1700.1", "0401234567", "Pekka", "0201119999", company="beta")
    clock = [T0]
    phones = frozenset({"PJSIP/op1"})
    first = TalkRecorder(calls, stories, db.sessions, clock=lambda: clock[0])  # type: ignore[arg-type]
    first.operators = phones
    calls.talk("1700.1", "PJSIP/op1-0000000a", "b1")
    await first.observe()
    assert await rows(db) == [("1700.1", "beta", "PJSIP/op1", T0, None)]

    # The service killed and started again mid-call: the talk is seen again, stored once.
    clock[0] = T0 + timedelta(seconds=30)
    second = TalkRecorder(calls, stories, db.sessions, clock=lambda: clock[0])  # type: ignore[arg-type]
    second.operators = phones
    await second.observe()
    assert await rows(db) == [("1700.1", "beta", "PJSIP/op1", T0, None)]

    clock[0] = T0 + timedelta(seconds=95)
    calls.hang_up()
    await second.observe()
    assert await rows(db) == [("1700.1", "beta", "PJSIP/op1", T0, T0 + timedelta(seconds=95))]

    # A phone that is no operator's is not talk time; nor anything while out of sync.
    calls.talk("1700.2", "PJSIP/anna-0000000b", "b2")
    await second.observe()
    calls.synced = False
    calls.talk("1700.3", "PJSIP/op1-0000000c", "b3")
    await second.observe()
    assert len(await rows(db)) == 1
