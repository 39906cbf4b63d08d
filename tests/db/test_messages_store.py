"""Messages, deliveries and callbacks in the database, on SQLite and PostgreSQL: a message and its
deliveries are stored together or not at all; senders claim due deliveries, back off, give up;
two senders never take the same delivery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dbdata import T0, row_counts  # tests/db is on sys.path (no package)
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from vaihde.company.apply import to_directory
from vaihde.company.load import parse_company
from vaihde.db import Database, open_database
from vaihde.db import message_models as mm
from vaihde.db import models as m
from vaihde.directory.store import sync_directory
from vaihde.messages import model, store
from vaihde.messages.delivery import Sender
from vaihde.messages.model import (
    CallbackDraft,
    MessageDraft,
    MessageError,
    Outgoing,
    Recipient,
    Target,
)

MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
ANNA = Recipient("employee", "anna")

COMPANY = parse_company("""
company: {name: Testi Oy, language: fi, languages: [fi, sv, en], timezone: Europe/Helsinki}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {greeting: {fi: Hei}, prompt: {fi: Valitse}, options: {1: {employee: anna}}}
teams:
  operators: {name: Vaihde, kind: operators, members: [asa]}
  sales: {name: Myynti, members: [anna, matti]}
employees:
  anna:
    name: Anna Virtanen
    devices: [desk: PJSIP/anna]
    email: anna@example.fi
    sms: "+358401111111"
  matti: {name: Matti Mäkinen, devices: [desk: PJSIP/matti], email: matti@example.fi}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa]}
""")


@pytest.fixture
async def company_db(db: Database) -> Database:
    async with db.sessions.begin() as session:
        await sync_directory(session, to_directory(COMPANY), now=T0)
    return db


def draft(**kw) -> MessageDraft:
    kw.setdefault("recipient", ANNA)
    kw.setdefault("caller_number", "040 123 4567")
    kw.setdefault("caller_name", "Matti Meikäläinen")
    kw.setdefault("note", "Soittakaa takaisin")
    return MessageDraft(**kw)


async def take(db: Database, now=T0, **kw) -> model.MessageRecord:
    return await store.take_message(db.sessions, draft(**kw), COMPANY, now=now)


async def claim(db: Database, now, limit=10, lease=store.DEFAULT_LEASE) -> list[store.Claim]:
    async with db.sessions.begin() as s:
        return await store.claim_due(s, now=now, limit=limit, lease=lease)


async def record(db: Database, c: store.Claim, now, error=None, permanent=False, **kw):
    async with db.sessions.begin() as s:
        return await store.record_attempt(
            s, c, error=error, permanent=permanent, now=now, **kw
        )


async def message(db: Database, message_id: int) -> model.MessageRecord:
    async with db.sessions() as s:
        found = await store.get_message(s, message_id)
    assert found is not None
    return found


# --- storing ------------------------------------------------------------------------------


async def test_message_is_stored_with_one_pending_delivery_per_address(company_db):
    before = await row_counts(company_db)
    msg = await take(company_db, path="suora numero → Anna (palaverissa)", call_id="1717.42")
    assert msg.id > 0 and msg.created_at == T0 and msg.status == "pending"
    assert msg.caller_number == "0401234567" and msg.language == "fi"
    assert [(d.channel, d.address, d.status, d.attempts, d.next_attempt_at)
            for d in msg.deliveries] == [
        ("email", "anna@example.fi", "pending", 0, T0),
        ("sms", "+358401111111", "pending", 0, T0),
    ]
    after = await row_counts(company_db)
    assert after["messages"] == before["messages"] + 1
    assert after["message_deliveries"] == before["message_deliveries"] + 2
    assert after["revision:messages"] == before["revision:messages"] + 1
    assert await message(company_db, msg.id) == msg


async def test_team_message_and_listing(company_db):
    team = await take(company_db, recipient=Recipient("team", "sales"), taken_by="olga")
    assert [d.address for d in team.deliveries] == ["anna@example.fi", "matti@example.fi"]
    nobody = await take(company_db, recipient=Recipient("employee", "asa"), now=T0 + SEC)
    assert nobody.status == "no_address" and nobody.deliveries == ()
    mine = await take(company_db, now=T0 + 2 * SEC)
    async with company_db.sessions() as s:
        assert [x.id for x in await store.list_messages(s)] == [mine.id, nobody.id, team.id]
        assert [x.id for x in await store.list_messages(s, recipient=ANNA)] == [mine.id]
        assert [x.id for x in await store.list_messages(s, status="no_address")] == [nobody.id]
        listed = await store.list_messages(s, since=T0 + SEC, limit=1)
        assert [x.id for x in listed] == [mine.id] and len(listed[0].deliveries) == 2


async def test_only_the_services_channels_are_planned(company_db):
    msg = await store.take_message(company_db.sessions, draft(), COMPANY, channels=("sms",))
    assert [d.channel for d in msg.deliveries] == ["sms"]


@pytest.mark.parametrize(
    "bad",
    [
        {"recipient": Recipient("employee", "nobody")},
        {"recipient": Recipient("team", "anna")},
        {"caller_number": "040-CALL-ME"},
        {"note": "x" * 2001},
        {"taken_by": "x y"},
    ],
)
async def test_bad_input_leaves_nothing(company_db, bad):
    before = await row_counts(company_db)
    with pytest.raises(MessageError):
        await take(company_db, **bad)
    assert await row_counts(company_db) == before


async def test_message_and_deliveries_are_one_transaction(company_db, monkeypatch):
    # A delivery row that cannot be written (the same address twice) takes the message with it.
    twice = [Target("email", "anna@example.fi")] * 2
    monkeypatch.setattr(store, "plan_deliveries", lambda *a: twice)
    before = await row_counts(company_db)
    with pytest.raises(IntegrityError):
        await take(company_db)
    assert await row_counts(company_db) == before


# --- claiming, backoff, giving up ---------------------------------------------------------


async def test_claim_send_fail_back_off_and_retry(company_db):
    msg = await take(company_db)
    assert await claim(company_db, T0 - SEC) == []  # not due before it was taken
    claims = await claim(company_db, T0)
    assert [(c.delivery.channel, c.delivery.status, c.delivery.attempts) for c in claims] == [
        ("email", "sending", 1), ("sms", "sending", 1)
    ]
    assert claims[0].message.note == "Soittakaa takaisin" and claims[0].lease_until == T0 + 5 * MIN
    assert await claim(company_db, T0) == []  # claimed: nobody else gets them
    email, sms = claims
    sent = await record(company_db, sms, T0 + SEC)
    assert sent.status == "sent" and sent.sent_at == T0 + SEC and sent.next_attempt_at is None
    failed = await record(company_db, email, T0 + SEC, error="SMTP server not reachable")
    assert failed.status == "retrying" and failed.last_error == "SMTP server not reachable"
    assert failed.next_attempt_at == T0 + SEC + MIN
    assert (await message(company_db, msg.id)).status == "pending"

    async with company_db.sessions() as s:
        assert await store.due_deliveries(s, now=T0 + 30 * SEC) == []
        assert [d.id for d in await store.due_deliveries(s, now=T0 + 2 * MIN)] == [failed.id]
    [again] = await claim(company_db, T0 + 2 * MIN)
    assert again.delivery.attempts == 2
    second = await record(company_db, again, T0 + 2 * MIN, error="still down")
    assert second.next_attempt_at == T0 + 2 * MIN + 5 * MIN  # the second delay
    [third] = await claim(company_db, T0 + 8 * MIN)
    done = await record(company_db, third, T0 + 8 * MIN, error="550 no such user", permanent=True)
    assert done.status == "failed" and done.next_attempt_at is None and done.attempts == 3
    final = await message(company_db, msg.id)
    assert final.status == "partly_sent"
    assert [d.status for d in final.deliveries] == ["failed", "sent"]
    async with company_db.sessions() as s:
        counts = await store.delivery_counts(s)
    assert counts == {"pending": 0, "sending": 0, "sent": 1, "retrying": 0, "failed": 1,
                      "cancelled": 0}


async def test_gives_up_after_the_retry_time(company_db):
    await take(company_db, recipient=Recipient("employee", "matti"))
    [c] = await claim(company_db, T0 + 23 * timedelta(hours=1) + 59 * MIN)
    last = await record(company_db, c, T0 + 23 * timedelta(hours=1) + 59 * MIN, error="down")
    assert last.status == "retrying" and last.next_attempt_at == T0 + timedelta(hours=24)
    [c] = await claim(company_db, T0 + timedelta(hours=24))
    gone = await record(company_db, c, T0 + timedelta(hours=24), error="down")
    assert gone.status == "failed" and gone.last_error == "down"
    short = await take(company_db, recipient=Recipient("employee", "matti"), now=T0 + SEC,
                       caller_number="0501112222")
    [c] = await claim(company_db, T0 + SEC)
    assert c.message.id == short.id
    quick = await record(company_db, c, T0 + 2 * SEC, error="x", retry_for=SEC)
    assert quick.status == "failed"


async def test_a_dead_senders_claim_is_taken_again_after_its_lease(company_db):
    await take(company_db, recipient=Recipient("employee", "matti"))
    [first] = await claim(company_db, T0, lease=MIN)
    assert await claim(company_db, T0 + MIN - SEC) == []
    [second] = await claim(company_db, T0 + MIN)  # the first sender never came back
    assert second.delivery.id == first.delivery.id and second.delivery.attempts == 2
    # The first sender's late answer no longer counts; the second one's does.
    assert await record(company_db, first, T0 + 2 * MIN) is None
    assert (await record(company_db, second, T0 + 2 * MIN)).status == "sent"


async def test_cancel_stops_open_deliveries(company_db):
    msg = await take(company_db)
    [email, _] = await claim(company_db, T0)
    async with company_db.sessions.begin() as s:
        cancelled = await store.cancel_message(s, msg.id, by="olga", now=T0 + SEC)
    assert cancelled.status == "cancelled"
    assert all(d.status == "cancelled" and "olga" in d.last_error for d in cancelled.deliveries)
    assert await record(company_db, email, T0 + 2 * SEC) is None  # the in-flight one: ignored
    assert await claim(company_db, T0 + timedelta(hours=1)) == []
    async with company_db.sessions.begin() as s:
        with pytest.raises(MessageError, match="no message 999"):
            await store.cancel_message(s, 999, by="olga")
    async with company_db.sessions.begin() as s:
        again = await store.retry_delivery(s, cancelled.deliveries[0].id, now=T0 + MIN)
    assert again.status == "pending" and again.attempts == 0
    assert (await message(company_db, msg.id)).status == "pending"
    assert [c.delivery.id for c in await claim(company_db, T0 + MIN)] == [again.id]


# --- concurrent senders ---------------------------------------------------------------------


async def test_two_senders_never_send_the_same_delivery(company_db):
    for i in range(15):
        await take(company_db, caller_number=f"040000{i:04d}")  # 30 deliveries
    other = open_database(company_db.url)
    sent: list[tuple[str, int]] = []

    class Recording:
        def __init__(self, name: str, channel: str) -> None:
            self.name, self.channel = name, channel

        async def send(self, item: Outgoing) -> None:
            await asyncio.sleep(0.01)
            sent.append((self.name, item.delivery.id))

        async def close(self) -> None:
            pass

    def sender(name: str, db: Database) -> Sender:
        transports = {c: Recording(name, c) for c in ("email", "sms")}
        return Sender(db.sessions, transports, lambda: COMPANY, clock=lambda: T0, batch=4)

    a, b = sender("a", company_db), sender("b", other)
    try:
        for db in (company_db, other):  # connected before the race starts
            async with db.sessions() as s:
                await s.execute(select(1))
        async def drain(s: Sender) -> None:
            while await s.run_once():
                pass

        await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    finally:
        await other.close()
    ids = [d for _, d in sent]
    assert len(ids) == len(set(ids)) == 30
    async with company_db.sessions() as s:
        statuses = (await s.scalars(select(mm.MessageDelivery.status))).all()
    assert set(statuses) == {"sent"}
    if company_db.url.get_backend_name() == "postgresql":
        assert {name for name, _ in sent} == {"a", "b"}  # both really took part


async def test_a_held_claim_is_never_taken_twice(company_db):
    """PostgreSQL: the second sender skips the locked rows and takes the rest at once. SQLite
    (one writer at a time): it waits for the first to commit, then takes the rest."""
    for i in range(3):
        await take(company_db, recipient=Recipient("employee", "matti"),
                   caller_number=f"050000{i:04d}")
    other = open_database(company_db.url)
    postgres = company_db.url.get_backend_name() == "postgresql"

    async def second() -> list[store.Claim]:
        async with other.sessions.begin() as s:
            return await store.claim_due(s, now=T0, limit=5)

    try:
        async with company_db.sessions.begin() as holding:
            mine = await store.claim_due(holding, now=T0, limit=2)
            task = asyncio.create_task(second())
            # Uncommitted: the first claim's rows are locked while this waits.
            done, _ = await asyncio.wait([task], timeout=1.0 if postgres else 0.3)
            assert bool(done) == postgres
        theirs = await asyncio.wait_for(task, 5)
        assert len(mine) == 2 and len(theirs) == 1
        assert {c.delivery.id for c in mine}.isdisjoint(c.delivery.id for c in theirs)
    finally:
        await other.close()


# --- callbacks ------------------------------------------------------------------------------


async def test_callbacks_open_list_close(company_db):
    before = await row_counts(company_db)
    first = await store.take_callback(
        company_db.sessions,
        CallbackDraft("+358 40 555 0101", "Liisa\x00", "team", "sales", "tarjous", "1.2"),
        now=T0,
    )
    second = await store.take_callback(company_db.sessions, CallbackDraft("0405550102"),
                                       now=T0 + SEC)
    assert (first.caller_number, first.caller_name, first.status) == ("358405550101", "Liisa",
                                                                      "open")
    assert second.for_kind is None and second.taken_by == "caller"
    assert (await row_counts(company_db))["revision:messages"] == before["revision:messages"] + 2
    async with company_db.sessions.begin() as s:
        done = await store.close_callback(s, first.id, by="olga", now=T0 + MIN)
    assert (done.status, done.handled_by, done.handled_at) == ("done", "olga", T0 + MIN)
    async with company_db.sessions() as s:
        assert [c.id for c in await store.list_callbacks(s)] == [second.id]
        assert [c.id for c in await store.list_callbacks(s, status=None)] == [first.id, second.id]
        assert [c.id for c in await store.list_callbacks(s, status="done", for_id="sales")] == [
            first.id
        ]
        assert await store.get_callback(s, first.id) == done
    async with company_db.sessions.begin() as s:
        with pytest.raises(MessageError, match="already done"):
            await store.close_callback(s, first.id, by="olga")


@pytest.mark.parametrize(
    "bad",
    [
        CallbackDraft("0405550101", for_kind="employee", for_id="nobody"),
        CallbackDraft("0405550101", for_kind="team", for_id="anna"),
        CallbackDraft(""),
        CallbackDraft("0405550101", note="x" * 2001),
    ],
)
async def test_bad_callback_leaves_nothing(company_db, bad):
    before = await row_counts(company_db)
    with pytest.raises(MessageError):
        await store.take_callback(company_db.sessions, bad, now=T0)
    assert await row_counts(company_db) == before


async def test_callbacks_for_deactivated_people_are_refused(company_db):
    async with company_db.sessions.begin() as s:
        await s.execute(update(m.Employee).where(m.Employee.id == "matti").values(active=False))
    with pytest.raises(MessageError, match="no employee 'matti'"):
        await store.take_callback(
            company_db.sessions, CallbackDraft("0405550101", for_kind="employee", for_id="matti")
        )


async def test_the_database_refuses_what_the_model_would(company_db):
    # Check constraints as the last line of defence.
    msg = await take(company_db)
    with pytest.raises(IntegrityError):
        async with company_db.sessions.begin() as s:
            await s.execute(
                update(mm.MessageDelivery)
                .where(mm.MessageDelivery.message_id == msg.id)
                .values(status="lost")
            )
    with pytest.raises(IntegrityError):
        async with company_db.sessions.begin() as s:
            s.add(mm.Callback(created_at=T0, caller_number="1", for_kind="team", for_id=None,
                              taken_by="caller", status="open"))

