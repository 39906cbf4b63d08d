"""Two `vaihde serve` processes on one PostgreSQL and a real SMTP server (aiosmtpd): messages
taken anywhere are each e-mailed once, never twice, while both instances race for them; an
instance killed (kill -9) in the middle of sending has its delivery sent by the other within 5 s,
and the calendar sync it led is taken over within 5 s; a live instance's delivery is never taken
from it. No Asterisk: the instances' AMI is a closed port (their health says degraded), which
this does not need.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from vaihde.auth import store as auth
from vaihde.company import parse_company
from vaihde.db import Database
from vaihde.db import message_models as mm
from vaihde.messages import store as messages
from vaihde.messages.model import MessageDraft, Recipient
from vaihde.sandbox.service import ServiceProcess, tail

POSTGRES = pytest.mark.parametrize("db", ["postgresql"], indirect=True)

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en]}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus: {main: {greeting: {en: Hello}, prompt: {en: Choose}, options: {1: {employee: anna}}}}
teams: {ops: {name: Operators, kind: operators, members: [olga]}}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], email: anna@example.fi}
  olga: {name: Olga Operator, devices: [desk: PJSIP/olga]}
"""
CALLER = re.compile(r"Caller(\d{3})")
TAKEOVER_S = 5.0  # the bound: a dead holder's work is taken over within this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """aiosmtpd handler: keeps every mail; with `hold`, keeps the first RCPT waiting that long
    (a sender stuck mid-send: nothing is delivered unless the mail is sent again)."""

    def __init__(self) -> None:
        self.mails: list[bytes] = []
        self.rcpts = 0
        self.hold = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.rcpts += 1
        if self.hold and self.rcpts == 1:
            await asyncio.sleep(self.hold)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.mails.append(envelope.original_content)
        return "250 Message accepted for delivery"

    def callers(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for raw in self.mails:
            found = CALLER.search(str(message_from_bytes(raw, policy=policy.default)["Subject"]))
            out[found[0] if found else "?"] += 1
        return out


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield inbox, port
    finally:
        await asyncio.to_thread(controller.stop)


class Instance:
    """One `vaihde serve` process of the test's pair, with its own ports."""

    def __init__(self, name: str, tmp: Path, url: str, smtp_port: int, token: str) -> None:
        self.name = name
        self.http_port = free_port()
        self.token = token
        work = tmp / name
        work.mkdir()
        (work / "company.yaml").write_text(COMPANY)
        settings = work / "settings.yaml"
        settings.write_text(
            "service:\n"
            f"  fastagi: {{host: 127.0.0.1, port: {free_port()}}}\n"
            f"  http: {{host: 127.0.0.1, port: {self.http_port}}}\n"
            f"  ami: {{host: 127.0.0.1, port: {free_port()}, username: vaihde, "
            f"secret: {json.dumps(secrets.token_urlsafe(16))}}}\n"
            "guard: {mode: external}\n"
            f"database: {{url: {json.dumps(url)}}}\n"
            "company_file: company.yaml\n"
            "prompts: {dir: prompts}\n"
            "messages:\n"
            f"  email: {{host: 127.0.0.1, port: {smtp_port}, security: none, "
            "from: vaihde@testi.fi, timeout_s: 120}\n"
        )
        self.process = ServiceProcess(settings, work / "vaihde.log")

    def start(self) -> None:
        self.process.start()

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{self.http_port}/health",
                headers={"Authorization": f"Bearer {self.token}"}) as response:
            return dict(await response.json())

    async def up(self, timeout: float = 60) -> dict[str, Any]:
        """Until its /health shows it connected to the others (its Peer)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.process.proc
            if proc is None or proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{tail(self.process.log_path)}")
            try:
                health = await self.health()
                if health.get("shared", {}).get("connected"):
                    return health
            except (aiohttp.ClientError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not up:\n{tail(self.process.log_path)}")
            await asyncio.sleep(0.1)

    async def leading(self) -> bool:
        health = await self.health()
        return bool(health["shared"]["jobs"]["calendar-sync"]["leading"])

    def delivered(self) -> int:
        lines = self.process.log_path.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if '"message delivered"' in line)


@pytest.fixture
async def instances(db: Database, tmp_path: Path, smtp):  # type: ignore[no-untyped-def]
    """Makes Instances on `db` (PostgreSQL) sending to the SMTP server; stops them at the end."""
    url = db.engine.url.render_as_string(hide_password=False)
    async with db.sessions.begin() as session:
        await auth.add_user(session, "admin", role="admin")
        token, _ = await auth.create_token(session, "admin")
    made: list[Instance] = []

    def make(name: str) -> Instance:
        instance = Instance(name, tmp_path, url, smtp[1], token)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        await asyncio.to_thread(instance.process.stop)


async def until(check: Callable[[], Any], timeout: float) -> float:
    """Seconds until `check()` (sync or async) is true; fails after `timeout`."""
    start = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)


async def take(db: Database, n: int) -> None:
    """`n` messages for anna, each taken in a transaction of its own (as callers leave them),
    from this process: neither instance took them, both are told at commit."""
    company = parse_company(COMPANY, "company.yaml")
    for i in range(n):
        await messages.take_message(
            db.sessions, MessageDraft(Recipient("employee", "anna"),
                                      caller_number="0401234567", caller_name=f"Caller{i:03d}"),
            company, channels=("email",))


async def deliveries(db: Database) -> list[mm.MessageDelivery]:
    async with db.sessions() as session:
        return list((await session.scalars(select(mm.MessageDelivery))).all())


@POSTGRES
async def test_two_instances_racing_send_each_message_once(db, instances, smtp):
    inbox, _ = smtp
    a, b = instances("a"), instances("b")
    a.start()
    b.start()
    await asyncio.gather(a.up(), b.up())
    count = 40
    await take(db, count)
    await until(lambda: len(inbox.mails) >= count, 60)
    await asyncio.sleep(3)  # time for any second sending to show
    got = inbox.callers()
    assert len(inbox.mails) == count and set(got.values()) == {1}, got
    assert sorted(got) == [f"Caller{i:03d}" for i in range(count)]
    rows = await deliveries(db)
    assert [(r.status, r.attempts, r.claimed_by) for r in rows] == [("sent", 1, None)] * count
    # Each mail was sent by exactly one of them (their logs); both were running all along.
    assert a.delivered() + b.delivered() == count, (a.delivered(), b.delivered())
    print(f"\n{count} messages: a sent {a.delivered()}, b sent {b.delivered()}, none twice")


@POSTGRES
async def test_a_killed_instances_delivery_and_job_are_taken_over(db, instances, smtp):
    inbox, _ = smtp
    inbox.hold = 60  # a's send gets stuck after RCPT: killed there, it has delivered nothing
    a, b = instances("a"), instances("b")
    a.start()
    await a.up()
    await until(a.leading, 10)  # alone: it leads the calendar sync
    await take(db, 1)
    await until(lambda: inbox.rcpts == 1, 10)  # a is sending it
    [row] = await deliveries(db)
    assert row.status == "sending" and row.claimed_by == (await a.health())["shared"]["holder"]
    b.start()
    await b.up()
    await asyncio.sleep(2.5)  # b polls for orphaned claims every second: a's is not one
    assert inbox.rcpts == 1 and inbox.mails == [] and not await b.leading()
    a.process.kill()  # kill -9 mid-send
    killed = time.monotonic()

    async def since_kill(check: Callable[[], Any]) -> float:
        await until(check, TAKEOVER_S + 5)
        return time.monotonic() - killed

    mailed, led = await asyncio.gather(since_kill(lambda: len(inbox.mails) == 1),
                                       since_kill(b.leading))
    print(f"\nafter kill -9: the delivery sent by the other in {mailed:.2f} s, "
          f"the calendar sync led by it in {led:.2f} s")
    assert mailed <= TAKEOVER_S and led <= TAKEOVER_S
    await asyncio.sleep(2)
    assert len(inbox.mails) == 1 and inbox.callers() == {"Caller000": 1}
    [row] = await deliveries(db)
    assert (row.status, row.attempts) == ("sent", 2)  # a's attempt and b's
    assert b.delivered() == 1
