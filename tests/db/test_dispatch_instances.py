"""The dispatch job with real parts: urgent SMS go to a local HTTP server playing the SMS
gateway (the first person at once, the next one on call once the time limit passes, each once
however often the job runs), and the daily summary goes through a real SMTP server (aiosmtpd)
exactly once while two instances (each with its own Peer on one PostgreSQL) race for it, and
again not after a restart (a new Dispatcher)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from dbdata import T0  # tests/db is on sys.path (no package)

from vaihde.company import parse_company
from vaihde.company.apply import to_directory
from vaihde.db import Database
from vaihde.db.peer import Peer
from vaihde.directory.store import sync_directory
from vaihde.dispatch import store
from vaihde.dispatch.job import Dispatcher
from vaihde.messages import store as messages
from vaihde.messages.model import MessageDraft, Recipient
from vaihde.messages.settings import SmsSettings, SmtpSettings

POSTGRES = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
MIN = timedelta(minutes=1)
COMPANY = parse_company("""
company: {name: Testi Oy, language: en, languages: [en], timezone: Europe/Helsinki}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus: {main: {greeting: {en: Hello}, prompt: {en: Choose}, options: {1: {employee: anna}}}}
teams:
  ops: {name: Operators, kind: operators, members: [asa]}
  support: {name: Support, members: [anna, mikko]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], sms: "+358401111111"}
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko], sms: "+358402222222"}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa]}
profile: {urgent_confirm_minutes: 5, summary_to: [boss@testi.fi, desk@testi.fi],
          summary_at: "12:30"}
oncall:
  tuki: {name: Support on call, team: support, weekly: [{days: mon-sun, hours: 00:00-24:00,
         people: [mikko]}]}
""", "company.yaml")
# T0 is 12:00 in Helsinki: the summary of T0's day is due at 12:30, i.e. T0 + 30 min.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


@pytest.fixture
async def staff(db: Database) -> Database:
    async with db.sessions.begin() as session:
        await sync_directory(session, to_directory(COMPANY), now=T0)
    return db


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[list[dict[str, Any]], SmsSettings]]:
    received: list[dict[str, Any]] = []

    async def sms(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer out-token"
        received.append({**await request.json(), "key": request.headers.get("Idempotency-Key")})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/sms", sms)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield received, SmsSettings(url=f"http://127.0.0.1:{port}/sms", token="out-token")
    finally:
        await runner.cleanup()


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.original_content,
                                                                 policy=policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, SmtpSettings]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield inbox, SmtpSettings(host="127.0.0.1", port=port, security="none",
                                  from_address="vaihde@testi.fi")
    finally:
        await asyncio.to_thread(controller.stop)


async def take_urgent(db: Database, at=T0) -> store.DispatchRecord:  # type: ignore[no-untyped-def]
    async with db.sessions.begin() as session:
        message = await messages.create_message(
            session, MessageDraft(Recipient("employee", "anna"), caller_number="0401234567",
                                  caller_name="Pekka", note="Water leak"),
            COMPANY, channels=(), now=at)
        return await store.start_dispatch(session, message, COMPANY, rota="tuki", now=at)


async def test_the_job_texts_the_first_person_then_the_one_on_call_each_once(staff, gateway):
    received, sms = gateway
    clock = Clock()
    job = Dispatcher(staff.sessions, lambda: {"main": COMPANY}, sms=sms, smtp=None,
                     clock=clock)
    try:
        made = await take_urgent(staff)
        for _ in range(3):
            await job.run_once()
        assert [r["to"] for r in received] == ["+358401111111"]
        code = await _code(staff, "anna")
        assert received[0]["text"].startswith("URGENT message (Testi Oy): Pekka, 0401234567 "
                                               "called 2025-06-02 12:00. Water leak")
        assert received[0]["text"].endswith(f"Confirm by replying {code}.")
        clock.now = T0 + 5 * MIN
        for _ in range(3):
            await job.run_once()
        assert [r["to"] for r in received] == ["+358401111111", "+358402222222"]
        # Each SMS its own key, the same on every attempt: a gateway that honours it sends once.
        keys = [r["key"] for r in received]
        assert all(k and k.startswith("vaihde-urgent-") for k in keys) and len(set(keys)) == 2
        assert received[1]["text"].endswith(f"{await _code(staff, 'mikko')}.")
        assert await _code(staff, "mikko") != code
        clock.now = T0 + 10 * MIN
        await job.run_once()
        async with staff.sessions() as session:
            done = await store.get_dispatch(session, made.id)
        assert done is not None and done.status == "exhausted" and len(received) == 2
        assert [s.status for s in done.steps] == ["sent", "sent"]
    finally:
        await job.stop()


async def _code(db: Database, employee: str) -> str:
    from sqlalchemy import select

    from vaihde.db import dispatch_models as dm
    async with db.sessions() as session:
        code = await session.scalar(select(dm.UrgentStep.code).where(
            dm.UrgentStep.employee_id == employee))
    assert code is not None
    return code


@POSTGRES
async def test_two_instances_racing_send_the_summary_once(staff, smtp):
    inbox, settings = smtp
    urgent = await take_urgent(staff, T0 - 60 * MIN)
    async with staff.sessions.begin() as session:
        await messages.create_message(session, MessageDraft(
            Recipient("team", "support"), caller_number=None, note="Call back"), COMPANY,
            channels=(), now=T0 + 10 * MIN)
        await store.confirm(session, await _code(staff, "anna"), now=T0 - 55 * MIN)
        # Outside the window (after 12:30): the next day's summary lists it.
        await messages.create_message(session, MessageDraft(
            Recipient("employee", "mikko"), caller_number="0409999999", note="Later"),
            COMPANY, channels=(), now=T0 + 31 * MIN)
    peers = []
    for name in ("vaihde test-sum-a", "vaihde test-sum-b"):
        peer = Peer.for_database(staff, name=name)
        assert peer is not None
        await peer.start()
        assert peer.up
        peers.append(peer)
    clock = Clock()
    clock.now = T0 + 31 * MIN
    jobs = [Dispatcher(staff.sessions, lambda: {"main": COMPANY}, sms=None, smtp=settings,
                       holder=peer, clock=clock) for peer in peers]
    try:
        for _ in range(5):
            counts = await asyncio.gather(*(j.run_once() for j in jobs))
        assert len(inbox.mails) == 1, inbox.mails
        # A restart (new Dispatchers, nothing in memory) sends nothing again.
        again = Dispatcher(staff.sessions, lambda: {"main": COMPANY}, sms=None, smtp=settings,
                           holder=peers[0], clock=clock)
        assert (await again.run_once())["summaries"] == 0
        assert len(inbox.mails) == 1 and counts
    finally:
        for peer in peers:
            await peer.stop()
    rcpts, mail = inbox.mails[0]
    assert sorted(rcpts) == ["boss@testi.fi", "desk@testi.fi"]
    assert mail["Subject"] == "Messages 2025-06-02: 2 (Testi Oy)"
    body = mail.get_content().replace("\r\n", "\n")
    assert f"#{urgent.message_id} 2025-06-02 11:00" in body
    assert "  For: Anna Virtanen\n  Caller: Pekka, 0401234567\n" in body
    assert "  Urgent: confirmed by Anna Virtanen 2025-06-02 11:05" in body
    assert "  For: Support\n  Caller: Withheld number\n  Call back" in body
    assert "Later" not in body


@POSTGRES
async def test_a_dead_instances_sms_is_taken_over_at_once_a_live_ones_never(staff):
    a, b = (Peer.for_database(staff, name=f"vaihde test-step-{n}") for n in "ab")
    assert a is not None and b is not None
    await a.start()
    await b.start()
    try:
        await take_urgent(staff)
        async with staff.sessions.begin() as session:
            [claim] = await store.claim_steps(session, now=T0, holder=a.holder)
        async with staff.sessions.begin() as session:
            assert await store.claim_steps(session, now=T0, holder=b.holder) == []  # a lives
        await a.stop()  # as a kill -9 does: its connection, and so its liveness lock, ends
        async with staff.sessions.begin() as session:
            [taken] = await store.claim_steps(session, now=T0, holder=b.holder)
        assert (taken.step_id, taken.attempts) == (claim.step_id, 2)
        async with staff.sessions.begin() as session:
            assert await store.record_step(session, claim, error=None, now=T0) is False
            assert await store.record_step(session, taken, error=None, now=T0) is True
    finally:
        await a.stop()
        await b.stop()
