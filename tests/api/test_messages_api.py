"""Messages over the REST API, on SQLite and PostgreSQL: operators take them (validated, nothing
stored on any error), everyone reads what they may (employees their own and their teams'),
paging and filters, delivery status, retry, recordings served only from the recordings
directory, and a message taken here delivered for real to a local SMTP server (aiosmtpd).
"""

from __future__ import annotations

import asyncio
import socket
import wave
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from vaihde.auth import store as auth_store
from vaihde.company.load import parse_company
from vaihde.messages import store
from vaihde.messages.delivery import Sender
from vaihde.messages.email import EmailTransport
from vaihde.messages.model import MessageDraft, MessageRecord, Recipient
from vaihde.messages.settings import SmtpSettings

HELSINKI = ZoneInfo("Europe/Helsinki")  # the API fixture's time zone
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


def addressed(company_yaml: str) -> str:
    """The test directory's company with addresses to deliver to (the sales team has no
    address of its own: its members get the mail)."""
    return company_yaml.replace(
        "    delegates: [matti]\n",
        "    delegates: [matti]\n    email: anna@example.fi\n    sms: \"+358401111111\"\n",
    ).replace(
        "      - desk: PJSIP/matti\n",
        "      - desk: PJSIP/matti\n    email: matti@example.fi\n",
    )


ANNA = {"employee": "anna"}
TAKE = {
    "for": ANNA,
    "caller_number": "+358 40 123 4567",
    "caller_name": "Pekka Pelkonen",
    "text": "Soittakaa takaisin tarjouksesta.",
    "call_id": "1717171717.42",
}


@pytest.fixture
async def mapi(api):
    """The API with a running company that has addresses, a user who is no employee and a
    record of the sender's wake-ups (`api.wakes`)."""
    api.running["company"] = parse_company(addressed(api.company_yaml), "company.yaml")
    assert api.running["company"].employees["anna"].email == "anna@example.fi"
    async with api.db.sessions.begin() as session:
        await auth_store.add_user(session, "nobody", role="employee")
        api.tokens["nobody"], _ = await auth_store.create_token(session, "nobody", label="t")
    api.wakes = []
    api.message_hooks.append(lambda: api.wakes.append("wake"))
    return api


async def take(api: Any, body: dict[str, Any], as_: str = "olli") -> Any:
    reply = await api.call("POST", "/messages", json=body, as_=as_)
    assert reply.status == 201, reply.text
    return reply.json


async def stored(api: Any, message_id: int) -> MessageRecord:
    async with api.db.sessions() as session:
        found = await store.get_message(session, message_id)
    assert found is not None
    return found


async def put_message(
    api: Any, recipient: Recipient, at: datetime, **kw: Any
) -> MessageRecord:
    """A message as the caller flow stores it (at a chosen time)."""
    kw.setdefault("caller_number", "0401234567")
    return await store.take_message(
        api.db.sessions, MessageDraft(recipient, **kw), api.running["company"],
        channels=("email",), now=at,
    )


def write_wav(path: Path, frames: int = 800) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * (frames * 2 // 256) + b"\0" * (frames * 2 % 256))
    return path


# --- taking a message -------------------------------------------------------------------------


async def test_operator_takes_a_message_stored_planned_and_the_sender_woken(mapi):
    reply = await mapi.call("POST", "/messages", json=TAKE, as_="olli")
    assert reply.status == 201, reply.text
    body = reply.json
    assert body["for"] == {"kind": "employee", "id": "anna", "name": "Anna Virtanen"}
    assert body["caller_number"] == "358401234567"  # digits, as callers' numbers are stored
    assert body["caller_name"] == "Pekka Pelkonen"
    assert body["text"] == "Soittakaa takaisin tarjouksesta."
    assert body["taken_by"] == "olli"
    assert body["call_id"] == "1717171717.42"
    assert body["status"] == "pending"
    assert body["has_recording"] is False
    # Only e-mail is configured in this service: anna's SMS number is not planned.
    [delivery] = body["deliveries"]
    assert delivery["channel"] == "email" and delivery["address"] == "anna@example.fi"
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["next_retry_at"] is not None and delivery["last_error"] == ""
    assert mapi.wakes == ["wake"]
    # Stored in the same store as the callers' messages.
    record = await stored(mapi, body["id"])
    assert record.recipient == Recipient("employee", "anna")
    assert record.taken_by == "olli" and record.note == body["text"]
    again = await mapi.call("GET", f"/messages/{body['id']}", as_="olli")
    assert again.json == body


async def test_a_team_message_goes_to_each_member_and_text_is_cleaned(mapi):
    body = await take(mapi, {
        "for": {"team": "sales"}, "caller_number": None,
        "caller_name": "Evil\r\nBcc: x@example.com", "text": "Rivi 1\r\nRivi 2\u202e",
    })
    assert body["for"] == {"kind": "team", "id": "sales", "name": "Myynti"}
    assert sorted(d["address"] for d in body["deliveries"]) == [
        "anna@example.fi", "matti@example.fi",
    ]
    assert body["caller_number"] is None
    assert body["caller_name"] == "Evil Bcc: x@example.com"  # one line: no header injection
    assert body["text"] == "Rivi 1\nRivi 2"
    assert body["call_id"] is None


BAD_MESSAGES = [
    ({k: v for k, v in TAKE.items() if k != "for"}, 400, "for"),
    ({**TAKE, "for": "anna"}, 400, "for"),
    ({**TAKE, "for": {"employee": "anna", "team": "sales"}}, 400, "for"),
    ({**TAKE, "for": {"boss": "anna"}}, 400, "for.boss"),
    ({**TAKE, "for": {"employee": 7}}, 400, "for.employee"),
    ({**TAKE, "for": {"employee": "Anna&x"}}, 400, "for.employee"),
    ({**TAKE, "for": {"employee": "nobody"}}, 422, "for.employee"),
    ({**TAKE, "for": {"team": "nosuchteam"}}, 422, "for.team"),
    ({k: v for k, v in TAKE.items() if k != "text"}, 400, "text"),
    ({**TAKE, "text": " \n\t "}, 400, "text"),
    ({**TAKE, "text": "x" * 2001}, 400, "text"),
    ({**TAKE, "text": ["a"]}, 400, "text"),
    ({**TAKE, "caller_number": "040&1234567"}, 400, "caller_number"),
    ({**TAKE, "caller_number": "${CALLERID(num)}"}, 400, "caller_number"),
    ({**TAKE, "caller_number": "12"}, 400, "caller_number"),
    ({**TAKE, "caller_number": "1" * 33}, 400, "caller_number"),
    ({**TAKE, "caller_number": 401234567}, 400, "caller_number"),
    ({**TAKE, "caller_name": "x" * 201}, 400, "caller_name"),
    ({**TAKE, "call_id": "1;Dial(x)"}, 400, "call_id"),
    ({**TAKE, "call_id": "x" * 65}, 400, "call_id"),
    ({**TAKE, "priority": "high"}, 400, "priority"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_MESSAGES,
                         ids=[f"{s}-{f}-{n}" for n, (_, s, f) in enumerate(BAD_MESSAGES)])
async def test_bad_messages_are_refused_naming_the_field_and_nothing_is_stored(
    mapi, body, status, field
):
    before = await mapi.counts()
    reply = await mapi.call("POST", "/messages", json=body, as_="olli")
    assert reply.status == status, reply.text
    assert reply.error["field"] == field
    assert await mapi.counts() == before
    assert mapi.wakes == []


async def test_malformed_or_non_json_bodies_are_refused(mapi):
    before = await mapi.counts()
    bad = await mapi.call("POST", "/messages", data=b"{not json",
                          headers={"Content-Type": "application/json"}, as_="olli")
    assert bad.status == 400 and bad.error["code"] == "malformed_json"
    form = await mapi.call("POST", "/messages", data=b"text=hi",
                           headers={"Content-Type": "application/x-www-form-urlencoded"},
                           as_="olli")
    assert form.status == 415
    assert await mapi.counts() == before


async def test_without_a_running_company_nothing_is_taken(mapi):
    mapi.running["company"] = None
    before = await mapi.counts()
    reply = await mapi.call("POST", "/messages", json=TAKE, as_="olli")
    assert reply.status == 503 and reply.error["code"] == "unavailable"
    assert await mapi.counts() == before


async def test_only_operators_and_admins_take_messages(mapi):
    before = await mapi.counts()
    for user, status in ((None, 401), ("anna", 403), ("nobody", 403)):
        reply = await mapi.call("POST", "/messages", json=TAKE, as_=user)
        assert reply.status == status, (user, reply.text)
    assert await mapi.counts() == before
    assert (await mapi.call("POST", "/messages", json=TAKE, as_="root")).status == 201


async def test_cookie_sessions_need_the_csrf_token(mapi):
    cookie, csrf = await mapi.login("olli")
    before = await mapi.counts()
    missing = await mapi.call("POST", "/messages", json=TAKE, headers={"Cookie": cookie})
    wrong = await mapi.call("POST", "/messages", json=TAKE,
                            headers={"Cookie": cookie, "X-CSRF-Token": "x" + csrf})
    assert missing.status == wrong.status == 403
    assert missing.error["code"] == wrong.error["code"] == "csrf"
    assert await mapi.counts() == before
    ok = await mapi.call("POST", "/messages", json=TAKE,
                         headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert ok.status == 201
    # Reading needs no token.
    listed = await mapi.call("GET", "/messages", headers={"Cookie": cookie})
    assert [m["id"] for m in listed.json["messages"]] == [ok.json["id"]]


# --- reading --------------------------------------------------------------------------------


T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


async def _some_messages(api: Any) -> dict[str, list[int]]:
    """Seven messages a minute apart: anna ×3, matti ×2, team sales ×1, team operators ×1."""
    plan = [("employee", "anna"), ("employee", "matti"), ("team", "sales"), ("employee", "anna"),
            ("team", "operators"), ("employee", "matti"), ("employee", "anna")]
    out: dict[str, list[int]] = {}
    for n, (kind, ident) in enumerate(plan):
        msg = await put_message(api, Recipient(kind, ident), T0 + timedelta(minutes=n),
                                note=f"viesti {n}")
        out.setdefault(ident, []).append(msg.id)
    return out


async def _all_pages(api: Any, path: str, key: str, as_: str, **params: str) -> list[int]:
    ids: list[int] = []
    cursor = None
    for _ in range(20):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        reply = await api.call("GET", path, params=query, as_=as_)
        assert reply.status == 200, reply.text
        ids += [m["id"] for m in reply.json[key]]
        cursor = reply.json["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("paging does not end")


async def test_list_is_newest_first_paged_by_cursor_and_filtered(mapi):
    made = await _some_messages(mapi)
    everything = sorted((i for ids in made.values() for i in ids), reverse=True)
    first = await mapi.call("GET", "/messages", as_="olli")
    assert [m["id"] for m in first.json["messages"]] == everything
    assert first.json["next_cursor"] is None
    assert await _all_pages(mapi, "/messages", "messages", "olli", limit="2") == everything
    assert await _all_pages(mapi, "/messages", "messages", "olli", limit="3",
                            employee="anna") == sorted(made["anna"], reverse=True)
    team = await mapi.call("GET", "/messages", params={"team": "sales"}, as_="olli")
    assert [m["id"] for m in team.json["messages"]] == made["sales"]
    since = (T0 + timedelta(minutes=5)).astimezone(HELSINKI).isoformat()
    recent = await mapi.call("GET", "/messages", params={"since": since}, as_="olli")
    assert [m["id"] for m in recent.json["messages"]] == everything[:2]
    pending = await mapi.call("GET", "/messages", params={"status": "pending"}, as_="olli")
    # The operators' team has no addresses: nothing to send, shown as no_address.
    assert made["operators"][0] not in [m["id"] for m in pending.json["messages"]]
    nowhere = await mapi.call("GET", "/messages", params={"status": "no_address"}, as_="olli")
    assert [m["id"] for m in nowhere.json["messages"]] == made["operators"]


async def test_messages_taken_in_the_same_instant_page_without_gaps(mapi):
    ids = [(await put_message(mapi, Recipient("employee", "anna"), T0)).id for _ in range(5)]
    assert await _all_pages(mapi, "/messages", "messages", "olli", limit="2") == ids[::-1]


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "abc"}, "cursor"),
    ({"cursor": "1.2.3"}, "cursor"),
    ({"status": "lost"}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2025-06-02T12:00:00"}, "since"),
    ({"employee": "anna", "team": "sales"}, "team"),
    ({"employee": "../etc"}, "employee"),
    ({"page": "2"}, "page"),
])
async def test_bad_list_queries_name_the_parameter(mapi, params, field):
    reply = await mapi.call("GET", "/messages", params=params, as_="olli")
    assert reply.status == 400, reply.text
    assert reply.error["field"] == field


async def test_employees_read_only_their_own_and_their_teams_messages(mapi):
    made = await _some_messages(mapi)
    anna = await _all_pages(mapi, "/messages", "messages", "anna", limit="2")
    assert anna == sorted(made["anna"] + made["sales"], reverse=True)
    matti = await _all_pages(mapi, "/messages", "messages", "matti")
    assert matti == sorted(made["matti"] + made["sales"], reverse=True)
    own = await mapi.call("GET", "/messages", params={"employee": "anna"}, as_="anna")
    assert [m["id"] for m in own.json["messages"]] == sorted(made["anna"], reverse=True)
    for params in ({"employee": "matti"}, {"team": "operators"}):
        refused = await mapi.call("GET", "/messages", params=params, as_="anna")
        assert refused.status == 403, params
    assert (await mapi.call("GET", f"/messages/{made['matti'][0]}", as_="anna")).status == 403
    assert (await mapi.call("GET", f"/messages/{made['sales'][0]}", as_="anna")).status == 200
    assert (await mapi.call("GET", f"/messages/{made['anna'][0]}", as_="anna")).status == 200
    # A user who is no employee sees nothing; without credentials, a 401.
    assert (await mapi.call("GET", "/messages", as_="nobody")).status == 403
    assert (await mapi.call("GET", "/messages", as_=None)).status == 401
    assert (await mapi.call("GET", f"/messages/{made['anna'][0]}", as_=None)).status == 401


@pytest.mark.parametrize("ident", ["999999", "abc", "-1", "99999999999"])
async def test_unknown_messages_are_404(mapi, ident):
    for path in (f"/messages/{ident}", f"/messages/{ident}/recording"):
        reply = await mapi.call("GET", path, as_="olli")
        assert reply.status == 404, (path, reply.text)
    retry = await mapi.call("POST", f"/messages/{ident}/retry", as_="olli")
    assert retry.status == 404


# --- delivery status and retry ------------------------------------------------------------


async def test_delivery_status_attempts_error_and_retry(mapi):
    body = await take(mapi, TAKE)
    mapi.wakes.clear()
    now = mapi.clock()
    # The sender's side, as delivery.Sender records attempts: one failed attempt…
    async with mapi.db.sessions.begin() as session:
        [claim] = await store.claim_due(session, now=now)
        await store.record_attempt(session, claim, error="mail server not reachable", now=now)
    shown = (await mapi.call("GET", f"/messages/{body['id']}", as_="anna")).json
    [d] = shown["deliveries"]
    assert d["status"] == "retrying" and d["attempts"] == 1
    assert d["last_error"] == "mail server not reachable"
    retry_at = datetime.fromisoformat(d["next_retry_at"])
    assert retry_at == now + timedelta(minutes=1)
    assert retry_at.utcoffset() == HELSINKI.utcoffset(retry_at.replace(tzinfo=None))
    assert shown["status"] == "pending"
    # Nothing failed yet: nothing to retry.
    early = await mapi.call("POST", f"/messages/{body['id']}/retry", as_="olli")
    assert early.status == 409 and early.error["code"] == "conflict"
    # …then refused for good.
    async with mapi.db.sessions.begin() as session:
        [claim] = await store.claim_due(session, now=retry_at)
        await store.record_attempt(session, claim, error="550 no such user", permanent=True,
                                   now=retry_at)
    failed = (await mapi.call("GET", f"/messages/{body['id']}", as_="olli")).json
    assert failed["status"] == "failed"
    assert failed["deliveries"][0]["status"] == "failed"
    assert failed["deliveries"][0]["next_retry_at"] is None
    assert failed["deliveries"][0]["attempts"] == 2
    failed_list = await mapi.call("GET", "/messages", params={"status": "failed"}, as_="olli")
    assert [m["id"] for m in failed_list.json["messages"]] == [body["id"]]

    before = await mapi.counts()
    assert (await mapi.call("POST", f"/messages/{body['id']}/retry", as_="anna")).status == 403
    assert await mapi.counts() == before
    retried = await mapi.call("POST", f"/messages/{body['id']}/retry", as_="olli")
    assert retried.status == 200, retried.text
    assert retried.json["status"] == "pending"
    [d] = retried.json["deliveries"]
    assert d["status"] == "pending" and d["attempts"] == 0
    assert d["last_error"] == "550 no such user"  # kept until the next attempt says otherwise
    assert mapi.wakes == ["wake"]
    async with mapi.db.sessions() as session:
        due = await store.due_deliveries(session, now=mapi.clock())
    assert [x.message_id for x in due] == [body["id"]]


async def test_cancel_stops_delivery_and_retry_resumes_it(mapi):
    body = await take(mapi, TAKE)
    assert (await mapi.call("POST", f"/messages/{body['id']}/cancel", as_="anna")).status == 403
    cancelled = await mapi.call("POST", f"/messages/{body['id']}/cancel", as_="olli")
    assert cancelled.status == 200
    assert cancelled.json["status"] == "cancelled"
    assert "cancelled by olli" in cancelled.json["deliveries"][0]["last_error"]
    async with mapi.db.sessions() as session:
        assert await store.due_deliveries(session, now=mapi.clock()) == []
    resumed = await mapi.call("POST", f"/messages/{body['id']}/retry", as_="olli")
    assert resumed.json["status"] == "pending"


# --- recordings ---------------------------------------------------------------------------


async def _get_raw(api: Any, path: str, as_: str | None) -> tuple[int, str, bytes, Any]:
    reply = await api.call("GET", path, as_=as_)
    return reply.status, reply.headers.get("Content-Type", ""), reply.data, reply.headers


async def test_recording_is_streamed_with_its_content_type(mapi):
    wav = write_wav(mapi.recordings / "msg-1717.42-20250602T090000.wav")
    msg = await put_message(mapi, Recipient("employee", "anna"), T0, recording_path=str(wav))
    shown = (await mapi.call("GET", f"/messages/{msg.id}", as_="anna")).json
    assert shown["has_recording"] is True
    assert str(mapi.recordings) not in str(shown)  # the file's place is never shown
    status, content_type, data, headers = await _get_raw(
        mapi, f"/messages/{msg.id}/recording", "anna"
    )
    assert status == 200
    assert content_type == "audio/wav"
    assert data == wav.read_bytes()
    assert headers["Content-Disposition"] == f'attachment; filename="message-{msg.id}.wav"'
    # Someone else's recording: refused, like the message.
    assert (await _get_raw(mapi, f"/messages/{msg.id}/recording", "matti"))[0] == 403
    assert (await _get_raw(mapi, f"/messages/{msg.id}/recording", None))[0] == 401
    assert (await _get_raw(mapi, f"/messages/{msg.id}/recording", "olli"))[0] == 200


async def test_recordings_are_served_only_from_the_recordings_directory(mapi, tmp_path):
    secret = tmp_path / "secret.wav"
    write_wav(secret)
    (mapi.recordings / "link.wav").symlink_to(secret)
    (mapi.recordings / "notes.txt").write_text("not audio")
    cases = {
        "none": None,
        "outside": str(secret),
        "dotdot": str(mapi.recordings / ".." / ".." / "secret.wav"),
        "symlink": str(mapi.recordings / "link.wav"),
        "gone": str(mapi.recordings / "gone.wav"),
        "not audio": str(mapi.recordings / "notes.txt"),
        "a directory": str(mapi.recordings),
    }
    for what, path in cases.items():
        msg = await put_message(mapi, Recipient("employee", "anna"), T0, recording_path=path)
        status, content_type, data, _ = await _get_raw(
            mapi, f"/messages/{msg.id}/recording", "olli"
        )
        assert status == 404, what
        assert content_type.startswith("application/json")
        assert b"RIFF" not in data and b"not audio" not in data
    # The request's own path never names a file: anything but a number is no message.
    for path in ("/messages/..%2F..%2Fsecret.wav/recording", "/messages/1%2F..%2F2/recording"):
        assert (await _get_raw(mapi, path, "olli"))[0] == 404


# --- a real delivery ----------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_message_taken_here_arrives_by_email(mapi):
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_s=5,
                            from_address="vaihde@testi.fi")
    company = mapi.running["company"]
    assert company is not None
    # A long poll: the mail arrives at once only because taking the message wakes the sender.
    sender = Sender(mapi.db.sessions, {"email": EmailTransport(settings)}, lambda: company,
                    poll_interval=600)
    mapi.message_hooks.append(sender.wake)
    sender.start()
    try:
        # Let the sender's first (empty) round pass, so that only the wake-up can find it.
        await asyncio.sleep(0.2)
        body = await take(mapi, TAKE)
        shown: dict[str, Any] = {}
        for _ in range(100):
            shown = (await mapi.call("GET", f"/messages/{body['id']}", as_="anna")).json
            if shown["status"] != "pending":
                break
            await asyncio.sleep(0.1)
    finally:
        await sender.stop()
        await asyncio.to_thread(controller.stop)
    assert shown["status"] == "sent", shown
    [d] = shown["deliveries"]
    assert d["status"] == "sent" and d["attempts"] == 1 and d["sent_at"] is not None
    assert d["next_retry_at"] is None and d["last_error"] == ""
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["anna@example.fi"]
    mail = message_from_bytes(envelope.original_content, policy=policy.default)
    assert mail["To"].addresses[0].display_name == "Anna Virtanen"
    assert "Pekka Pelkonen" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "Soittakaa takaisin tarjouksesta." in text
    assert "358401234567" in text


BEETA = """\
company: {id: beta, name: Beeta Ab, language: sv, languages: [sv], timezone: Europe/Stockholm}
numbers: {"0201234568": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {greeting: {sv: Hej}, prompt: {sv: Välj}, options: {1: {employee: bea}}}
teams:
  beta-ops: {name: Växeln, kind: operators, members: [bea]}
employees:
  bea: {name: Bea Berg, devices: [desk: PJSIP/bea], email: bea@beeta.se}
"""


async def test_messages_and_callbacks_for_another_company_s_people_are_that_company_s(mapi):
    """Several companies: the API finds the recipient in whichever company is theirs and
    stores the message and the callback request under that company (messages.company_id),
    not under the service's first company."""
    from sqlalchemy import select

    from vaihde.company.apply import to_directory
    from vaihde.company.tenants import Roster
    from vaihde.db import message_models as mm
    from vaihde.directory.store import sync_directory

    beta = parse_company(BEETA, "beta.yaml")
    async with mapi.db.sessions.begin() as session:
        await sync_directory(session, to_directory(beta), company_id="beta",
                             company_name="Beeta Ab")
    first = mapi.running["company"]
    mapi.running["roster"] = Roster.build({first.id: first, "beta": beta})

    got = await take(mapi, {**TAKE, "for": {"employee": "bea"}})
    assert got["for"] == {"kind": "employee", "id": "bea", "name": "Bea Berg"}
    message = await stored(mapi, got["id"])
    assert message.company_id == "beta"
    assert [(d.channel, d.address) for d in message.deliveries] == [("email", "bea@beeta.se")]
    # Anna is still the first company's.
    assert (await stored(mapi, (await take(mapi, TAKE))["id"])).company_id == first.id

    reply = await mapi.call("POST", "/callbacks", as_="olli", json={
        "for": {"employee": "bea"}, "caller_number": "+46 8 123 456", "text": "Ring"})
    assert reply.status == 201, reply.text
    async with mapi.db.sessions() as session:
        company_id = await session.scalar(
            select(mm.Callback.company_id).where(mm.Callback.id == reply.json["id"]))
    assert company_id == "beta"
