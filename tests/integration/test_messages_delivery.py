"""Messages delivered for real: a local SMTP server (aiosmtpd) receives the mail, a local HTTP
server plays the SMS gateway. Retries follow an injected clock; a sender that dies after the
message was stored (or mid-send) loses nothing. No Asterisk needed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from vaihde.company.apply import to_directory
from vaihde.company.load import parse_company
from vaihde.db import Database, migrate, open_database
from vaihde.directory.store import sync_directory
from vaihde.messages import store
from vaihde.messages.delivery import Sender, Transport
from vaihde.messages.email import EmailTransport
from vaihde.messages.model import MessageDraft, MessageRecord, Recipient
from vaihde.messages.settings import SmsSettings, SmtpSettings
from vaihde.messages.sms import SmsTransport

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # 12:00 in Helsinki
MIN = timedelta(minutes=1)
ANNA = Recipient("employee", "anna")

COMPANY = parse_company("""
company: {name: Testi Oy, language: fi, languages: [fi, sv, en], timezone: Europe/Helsinki}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {greeting: {fi: Hei}, prompt: {fi: Valitse}, options: {1: {employee: anna}}}
teams:
  operators: {name: Vaihde, kind: operators, members: [asa]}
employees:
  anna:
    name: Anna Virtanen
    devices: [desk: PJSIP/anna]
    email: anna@example.fi
    sms: "+358401111111"
  matti: {name: Matti Mäkinen, devices: [desk: PJSIP/matti], email: matti@example.fi}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa], sms: "+358402222222"}
""")


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'vaihde.db'}")
    await migrate.upgrade_async(db.engine)
    async with db.sessions.begin() as session:
        await sync_directory(session, to_directory(COMPANY), now=T0)
    try:
        yield db
    finally:
        await db.close()


# --- a real SMTP server -------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps what it receives; refuses the addresses in `refuse`."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.refuse: set[str] = set()
        self.delay = 0.0
        self.logins: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)  # the server's own loop, in its own thread
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = (auth_data.login, auth_data.password) == (b"vaihde", b"s3cret")
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    def mails(self) -> list[Any]:
        return [message_from_bytes(e.original_content, policy=policy.default)
                for e in self.envelopes]


class SmtpServer:
    def __init__(self, port: int, **kwargs: Any) -> None:
        self.inbox = Inbox()
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=port,
            authenticator=self.inbox.authenticate, auth_require_tls=False, **kwargs,
        )

    async def start(self) -> SmtpServer:
        await asyncio.to_thread(self.controller.start)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self.controller.stop)


@pytest.fixture
async def smtp_port() -> AsyncIterator[tuple[int, list[SmtpServer]]]:
    """A free port and the servers a test starts on it (stopped at the end)."""
    servers: list[SmtpServer] = []
    yield free_port(), servers
    for server in servers:
        await server.stop()


def smtp_settings(port: int, **kw: Any) -> SmtpSettings:
    kw.setdefault("security", "none")
    kw.setdefault("timeout_s", 5)
    return SmtpSettings(host="127.0.0.1", port=port, from_address="vaihde@testi.fi", **kw)


def make_sender(
    db: Database, clock: Clock, transports: dict[str, Transport], **kw: Any
) -> Sender:
    return Sender(db.sessions, transports, lambda: COMPANY, clock=clock, **kw)


async def take(db: Database, recipient: Recipient = ANNA, **kw: Any) -> MessageRecord:
    kw.setdefault("caller_number", "+358 40 123 4567")
    kw.setdefault("caller_name", "Matti Meikäläinen")
    kw.setdefault("note", "Soittakaa takaisin tarjouksesta.")
    kw.setdefault("path", "suora numero 09 123 4501 → Anna Virtanen (palaverissa)")
    channels = kw.pop("channels", ("email", "sms"))
    now = kw.pop("now", T0)
    return await store.take_message(
        db.sessions, MessageDraft(recipient=recipient, **kw), COMPANY, channels=channels, now=now
    )


async def deliveries(db: Database, message_id: int) -> dict[str, Any]:
    async with db.sessions() as s:
        found = await store.get_message(s, message_id)
    assert found is not None
    return {d.channel: d for d in found.deliveries} | {"message": found}


def write_wav(path: Path, frames: int = 800) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * frames)
    return path


# --- e-mail -----------------------------------------------------------------------------------


async def test_mail_arrives_with_headers_body_and_recording(database, smtp_port, tmp_path):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    wav = write_wav(tmp_path / "rec.wav")
    msg = await take(
        database, channels=("email",), recording_path=str(wav), call_id="1717.42",
        caller_name="Evil\r\nBcc: victim@example.com\r\nX-Injected: yes",
    )
    sender = make_sender(
        database, Clock(),
        {"email": EmailTransport(smtp_settings(port, username="vaihde", password="s3cret"))},
    )
    assert await sender.run_once() == 1

    [envelope] = server.inbox.envelopes
    assert envelope.mail_from == "vaihde@testi.fi" and envelope.rcpt_tos == ["anna@example.fi"]
    assert server.inbox.logins == ["vaihde"]
    [mail] = server.inbox.mails()
    assert mail["To"].addresses[0].addr_spec == "anna@example.fi"
    assert mail["To"].addresses[0].display_name == "Anna Virtanen"
    assert mail["Subject"] == (
        "Viesti: Evil Bcc: victim@example.com X-Injected: yes, 358401234567 soitti sinulle"
    )
    # The name's CR/LF made no headers of their own.
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert "victim@example.com" not in envelope.rcpt_tos
    body = mail.get_body(("plain",)).get_content()
    assert "Numero: 358401234567" in body
    assert "Aika: 2.6.2025 klo 12.00 (Europe/Helsinki)" in body
    assert "Tavoitteli: suora numero 09 123 4501 → Anna Virtanen (palaverissa)" in body
    assert "Soittakaa takaisin tarjouksesta." in body
    assert "Äänite: liitteenä (message-" in body
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == wav.read_bytes()

    state = await deliveries(database, msg.id)
    assert state["email"].status == "sent" and state["email"].attempts == 1
    assert state["message"].status == "sent"


BEETA = parse_company("""
company: {id: beta, name: Beeta Ab, language: sv, languages: [sv], timezone: Europe/Stockholm}
numbers: {"0201234568": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {greeting: {sv: Hej}, prompt: {sv: Välj}, options: {1: {employee: bea}}}
teams:
  beta-ops: {name: Växeln, kind: operators, members: [bea]}
employees:
  bea: {name: Bea Berg, devices: [desk: PJSIP/bea], email: bea@beeta.se}
""")


async def test_a_message_for_another_company_s_employee_is_in_that_company_s_words(
    database, smtp_port
):
    """Several companies: the mail is in the recipient's company's language, time zone and
    name (messages.company_id), not the service's first company's."""
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    async with database.sessions.begin() as session:
        await sync_directory(session, to_directory(BEETA), now=T0, company_id="beta",
                             company_name="Beeta Ab")
    msg = await store.take_message(
        database.sessions, MessageDraft(recipient=Recipient("employee", "bea"),
                                        caller_number="+46 8 123 456", caller_name="Sven",
                                        note="Ring tillbaka."),
        BEETA, channels=("email",), now=T0)
    assert msg.company_id == "beta"
    async with database.sessions() as s:  # as the sender reads it back
        stored = await store.get_message(s, msg.id)
    assert stored is not None and stored.company_id == "beta"
    # The first company (Testi Oy, Finnish, Helsinki) is what the service falls back on.
    sender = make_sender(database, Clock(), {"email": EmailTransport(smtp_settings(port))},
                         company_by_id={"beta": BEETA}.get)
    assert await sender.run_once() == 1
    [mail] = server.inbox.mails()
    assert mail["To"].addresses[0].addr_spec == "bea@beeta.se"
    assert mail["From"].addresses[0].display_name == "Beeta Ab"
    body = mail.get_body(("plain",)).get_content()
    assert body.startswith("Hej Bea Berg,")
    assert "(Europe/Stockholm)" in body and "11.00" in body  # 09:00 UTC in Stockholm
    assert f"Beeta Ab – växeln, meddelande #{msg.id}" in body
    assert "Testi Oy" not in body and "Europe/Helsinki" not in body


async def test_smtp_down_then_up_is_retried_with_backoff(database, smtp_port):
    port, servers = smtp_port  # nothing listens yet
    clock = Clock()
    msg = await take(database, channels=("email",))
    sender = make_sender(database, clock, {"email": EmailTransport(smtp_settings(port))})
    assert await sender.run_once() == 1
    state = await deliveries(database, msg.id)
    assert state["email"].status == "retrying" and state["email"].attempts == 1
    assert "not reachable" in state["email"].last_error
    assert state["email"].next_attempt_at == T0 + MIN
    assert state["message"].status == "pending"

    server = await SmtpServer(port).start()
    servers.append(server)
    clock.now = T0 + 30 * timedelta(seconds=1)
    assert await sender.run_once() == 0  # not due yet: the backoff holds
    assert server.inbox.envelopes == []
    clock.now = T0 + MIN
    assert await sender.run_once() == 1
    assert len(server.inbox.envelopes) == 1
    state = await deliveries(database, msg.id)
    assert state["email"].status == "sent" and state["email"].attempts == 2
    assert state["email"].last_error == "" and state["email"].sent_at == T0 + MIN


async def test_refused_address_fails_at_once_wrong_password_retries(database, smtp_port):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    server.inbox.refuse.add("anna@example.fi")
    msg = await take(database, channels=("email",))
    sender = make_sender(database, Clock(), {"email": EmailTransport(smtp_settings(port))})
    assert await sender.run_once() == 1
    state = await deliveries(database, msg.id)
    assert state["email"].status == "failed" and state["email"].next_attempt_at is None
    assert "550" in state["email"].last_error and state["message"].status == "failed"

    # A wrong password is the settings' fault, not the message's: kept for a retry.
    other = await take(database, Recipient("employee", "matti"), channels=("email",))
    bad = EmailTransport(smtp_settings(port, username="vaihde", password="wrong"))
    assert await make_sender(database, Clock(), {"email": bad}).run_once() == 1
    state = await deliveries(database, other.id)
    assert state["email"].status == "retrying" and "535" in state["email"].last_error
    assert "wrong" not in state["email"].last_error


async def test_a_slow_smtp_server_does_not_block_the_event_loop(database, smtp_port):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    server.inbox.delay = 0.5
    await take(database, channels=("email",))
    sender = make_sender(database, Clock(), {"email": EmailTransport(smtp_settings(port))})
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        assert await sender.run_once() == 1
    finally:
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
    assert len(server.inbox.envelopes) == 1
    assert sum(gaps) >= 0.45 and max(gaps) < 0.2


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with the openssl tool."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


async def test_starttls_and_ssl_verify_the_server(database, smtp_port, certificate):
    port, servers = smtp_port
    server = await SmtpServer(port, tls_context=server_tls(certificate),
                              require_starttls=True).start()
    servers.append(server)
    clock = Clock()
    msg = await take(database, channels=("email",))
    # The system's CAs do not know this certificate: not sent, kept for a retry.
    untrusted = EmailTransport(smtp_settings(port, security="starttls"))
    assert await make_sender(database, clock, {"email": untrusted}).run_once() == 1
    state = await deliveries(database, msg.id)
    assert state["email"].status == "retrying" and "TLS" in state["email"].last_error
    trusted = EmailTransport(smtp_settings(
        port, security="starttls", tls_ca_file=str(certificate[0]),
        username="vaihde", password="s3cret",
    ))
    clock.now = T0 + MIN
    assert await make_sender(database, clock, {"email": trusted}).run_once() == 1
    assert (await deliveries(database, msg.id))["email"].status == "sent"
    assert server.inbox.logins == ["vaihde"] and len(server.inbox.envelopes) == 1

    ssl_port = free_port()
    implicit = await SmtpServer(ssl_port, server_hostname="127.0.0.1",
                                ssl_context=server_tls(certificate)).start()
    servers.append(implicit)
    other = await take(database, Recipient("employee", "matti"), channels=("email",))
    ssl_mode = EmailTransport(smtp_settings(ssl_port, security="ssl",
                                            tls_ca_file=str(certificate[0])))
    assert await make_sender(database, clock, {"email": ssl_mode}).run_once() == 1
    assert (await deliveries(database, other.id))["email"].status == "sent"
    assert implicit.inbox.envelopes[0].rcpt_tos == ["matti@example.fi"]


# --- never lost -------------------------------------------------------------------------------


async def test_stored_but_never_sent_is_sent_by_the_next_process(database, smtp_port):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    # The process stored the message and died before its sender ran.
    msg = await take(database, channels=("email",))
    transports = {"email": EmailTransport(smtp_settings(port))}
    restarted = make_sender(database, Clock(T0 + MIN), transports)
    assert await restarted.run_once() == 1
    assert len(server.inbox.envelopes) == 1
    assert (await deliveries(database, msg.id))["email"].status == "sent"


async def test_a_sender_that_died_mid_send_loses_nothing(database, smtp_port):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    msg = await take(database, channels=("email",))
    # The first process claimed it and died before sending (or before recording that it did).
    async with database.sessions.begin() as s:
        [claim] = await store.claim_due(s, now=T0, lease=5 * MIN)
    clock = Clock(T0 + MIN)
    restarted = make_sender(database, clock, {"email": EmailTransport(smtp_settings(port))})
    assert await restarted.run_once() == 0  # still the dead sender's, until its lease ends
    clock.now = claim.lease_until
    assert await restarted.run_once() == 1
    assert len(server.inbox.envelopes) == 1
    state = await deliveries(database, msg.id)
    assert state["email"].status == "sent" and state["email"].attempts == 2


async def test_the_loop_sends_when_woken_and_stops_cleanly(database, smtp_port):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    sender = make_sender(
        database, Clock(), {"email": EmailTransport(smtp_settings(port))}, poll_interval=60
    )
    sender.start()
    try:
        assert sender.status() == {"running": True, "channels": ["email"], "last_error": ""}
        await asyncio.sleep(0.05)  # the loop is now waiting for its next poll
        await take(database, channels=("email",))
        sender.wake()
        for _ in range(200):
            if server.inbox.envelopes:
                break
            await asyncio.sleep(0.01)
        assert len(server.inbox.envelopes) == 1
    finally:
        started = time.monotonic()
        await sender.stop()
    assert time.monotonic() - started < 1
    assert sender.status()["running"] is False


# --- SMS --------------------------------------------------------------------------------------


class Gateway:
    """An SMS gateway answering with the statuses given, in order (then 200)."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            fields = await request.json()
        else:
            fields = dict(await request.post())
        self.requests.append({"headers": dict(request.headers), "fields": fields})
        await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)

    async def start(self) -> Gateway:
        app = web.Application()
        app.router.add_post("/send", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/send"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def gateway() -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []
    transports: list[SmsTransport] = []

    async def make(statuses: list[int] | None = None, delay: float = 0.0, **kw: Any):
        gw = await Gateway(statuses, delay).start()
        started.append(gw)
        transport = SmsTransport(SmsSettings(url=gw.url, token="tok123", **kw))
        transports.append(transport)
        return gw, transport

    yield make
    for t in transports:
        await t.close()
    for gw in started:
        await gw.stop()


async def test_sms_200_is_sent(database, gateway):
    gw, transport = await gateway(sender="TestiOy")
    msg = await take(database, channels=("sms",))
    assert await make_sender(database, Clock(), {"sms": transport}).run_once() == 1
    [request] = gw.requests
    assert request["headers"]["Authorization"] == "Bearer tok123"
    assert request["fields"]["to"] == "+358401111111" and request["fields"]["from"] == "TestiOy"
    assert request["fields"]["text"] == (
        "Viesti: Matti Meikäläinen, 358401234567 soitti 2.6.2025 klo 12.00. "
        "Soittakaa takaisin tarjouksesta."
    )
    assert (await deliveries(database, msg.id))["sms"].status == "sent"


async def test_sms_500_is_retried_then_sent(database, gateway):
    gw, transport = await gateway([500])
    clock = Clock()
    msg = await take(database, channels=("sms",))
    sender = make_sender(database, clock, {"sms": transport})
    assert await sender.run_once() == 1
    state = await deliveries(database, msg.id)
    assert state["sms"].status == "retrying" and "500" in state["sms"].last_error
    assert state["sms"].next_attempt_at == T0 + MIN
    clock.now = T0 + MIN
    assert await sender.run_once() == 1
    assert len(gw.requests) == 2
    assert (await deliveries(database, msg.id))["sms"].status == "sent"


async def test_sms_400_fails_for_good(database, gateway):
    gw, transport = await gateway([400])
    clock = Clock()
    msg = await take(database, channels=("sms",))
    sender = make_sender(database, clock, {"sms": transport})
    assert await sender.run_once() == 1
    state = await deliveries(database, msg.id)
    assert state["sms"].status == "failed" and state["sms"].attempts == 1
    assert "400" in state["sms"].last_error and state["message"].status == "failed"
    clock.now = T0 + timedelta(hours=2)
    assert await sender.run_once() == 0 and len(gw.requests) == 1


async def test_sms_timeout_and_rate_limit_are_retried_form_posts_work(database, gateway):
    gw, transport = await gateway([429], format="form", timeout_s=5)
    msg = await take(database, channels=("sms",))
    assert await make_sender(database, Clock(), {"sms": transport}).run_once() == 1
    assert (await deliveries(database, msg.id))["sms"].status == "retrying"
    assert gw.requests[0]["fields"]["to"] == "+358401111111"  # as a form

    _, slow_transport = await gateway(delay=0.5, timeout_s=0.1)
    other = await take(database, Recipient("employee", "asa"), channels=("sms",))
    assert await make_sender(database, Clock(), {"sms": slow_transport}).run_once() == 1
    state = await deliveries(database, other.id)
    assert state["sms"].status == "retrying" and "not reachable" in state["sms"].last_error


async def test_email_and_sms_of_one_message_together(database, smtp_port, gateway):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    gw, sms = await gateway()
    msg = await take(database)
    sender = make_sender(database, Clock(), {"email": EmailTransport(smtp_settings(port)),
                                             "sms": sms})
    assert await sender.run_once() == 2
    assert len(server.inbox.envelopes) == 1 and len(gw.requests) == 1
    assert (await deliveries(database, msg.id))["message"].status == "sent"


async def test_a_channel_without_settings_is_kept_for_later(database):
    msg = await take(database, channels=("sms",))
    assert await make_sender(database, Clock(), {}).run_once() == 1
    state = await deliveries(database, msg.id)
    assert state["sms"].status == "retrying" and "no sms settings" in state["sms"].last_error


async def test_the_loop_outlives_a_database_hiccup(database, smtp_port):
    port, servers = smtp_port
    server = await SmtpServer(port).start()
    servers.append(server)
    await take(database, channels=("email",))
    failures = [RuntimeError("database went away")]

    def sessions() -> Any:
        if failures:
            raise failures.pop()
        return database.sessions()

    sender = Sender(sessions, {"email": EmailTransport(smtp_settings(port))},  # type: ignore[arg-type]
                    lambda: COMPANY, clock=Clock(), poll_interval=0.05)
    sender.start()
    try:
        for _ in range(200):
            if server.inbox.envelopes:
                break
            await asyncio.sleep(0.01)
        assert len(server.inbox.envelopes) == 1 and sender.status()["last_error"] == ""
    finally:
        await sender.stop()
