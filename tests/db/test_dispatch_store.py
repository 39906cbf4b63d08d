"""Urgent messages' state in the database, on SQLite and PostgreSQL: the first person is texted
a code at once, unconfirmed after the company's limit the next one on call is, each once, until
someone confirms or nobody is left; a confirmation closes it once (a replay changes nothing);
each SMS is claimed by one sender, its outcome fenced; a daily summary's row is taken once.
(Claims here carry no holder, so they end with their lease on both backends; a dead instance's
claims taken over at once on PostgreSQL: test_dispatch_instances.py.)"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from dbdata import T0, row_counts  # tests/db is on sys.path (no package)
from sqlalchemy import select

from vaihde.company import parse_company
from vaihde.company.apply import to_directory
from vaihde.db import Database
from vaihde.db import dispatch_models as dm
from vaihde.db import message_models as mm
from vaihde.directory.store import sync_directory
from vaihde.dispatch import store
from vaihde.messages import store as messages
from vaihde.messages.model import MessageDraft, Recipient

MIN = timedelta(minutes=1)
COMPANY = parse_company("""
company: {name: Testi Oy, language: fi, timezone: Europe/Helsinki}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus: {main: {greeting: {fi: Hei}, prompt: {fi: Valitse}, options: {1: {employee: anna}}}}
teams:
  ops: {name: Vaihde, kind: operators, members: [asa]}
  support: {name: Tuki, members: [anna, mikko, pekka]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], sms: "+358401111111"}
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko], sms: "+358402222222"}
  pekka: {name: Pekka Puu, devices: [desk: PJSIP/pekka]}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa], sms: "+358403333333"}
profile: {urgent_confirm_minutes: 5}
oncall:
  tuki: {name: Tuen päivystys, team: support, weekly: [{days: mon-sun, hours: 00:00-24:00,
         people: [mikko, pekka, asa]}]}
""", "company.yaml")


def companies(key: str):  # type: ignore[no-untyped-def]
    return COMPANY if key == store.MAIN else None


_COUNTER = itertools.count()


def codes():  # type: ignore[no-untyped-def]
    """Distinct codes across a test (and the test run), predictable: C00000, C00001…"""
    return lambda: f"C{next(_COUNTER):05d}"


@pytest.fixture
async def staff(db: Database) -> Database:
    async with db.sessions.begin() as session:
        await sync_directory(session, to_directory(COMPANY), now=T0)
    return db


async def urgent(db: Database, code=None) -> store.DispatchRecord:  # type: ignore[no-untyped-def]
    async with db.sessions.begin() as session:
        message = await messages.create_message(
            session, MessageDraft(Recipient("employee", "anna"), caller_number="0401234567",
                                  note="Vesivahinko"), COMPANY, channels=("email",), now=T0)
        return await store.start_dispatch(session, message, COMPANY, rota="tuki", now=T0,
                                          code=code or codes())


async def escalate(db: Database, at, code=None) -> list[int]:  # type: ignore[no-untyped-def]
    async with db.sessions.begin() as session:
        return await store.escalate_due(session, companies, now=at, code=code or codes())


async def current(db: Database, dispatch_id: int) -> store.DispatchRecord:
    async with db.sessions() as session:
        found = await store.get_dispatch(session, dispatch_id, COMPANY)
    assert found is not None
    return found


async def test_unconfirmed_it_escalates_along_the_rota_until_nobody_is_left(staff):
    made = await urgent(staff)
    assert made.status == "open" and made.due_at == T0 + 5 * MIN
    assert [(s.employee, s.status) for s in made.steps] == [("anna", "pending")]
    assert await escalate(staff, T0 + 5 * MIN - timedelta(seconds=1)) == []  # not yet
    assert await escalate(staff, T0 + 5 * MIN, codes()) == [made.id]
    after = await current(staff, made.id)
    assert [(s.employee, s.status) for s in after.steps] == [("anna", "pending"),
                                                             ("mikko", "pending")]
    assert after.due_at == T0 + 10 * MIN
    # Again: pekka has no SMS number (skipped at once), so asa is texted.
    assert await escalate(staff, T0 + 10 * MIN) == [made.id]
    after = await current(staff, made.id)
    assert [(s.employee, s.status) for s in after.steps][1:] == [("mikko", "pending"),
                                                                 ("pekka", "skipped"),
                                                                 ("asa", "pending")]
    assert after.due_at == T0 + 15 * MIN
    # Nobody left: exhausted, the operators take over; escalating again changes nothing.
    assert await escalate(staff, T0 + 15 * MIN) == [made.id]
    done = await current(staff, made.id)
    assert done.status == "exhausted" and done.exhausted_at == T0 + 15 * MIN
    assert done.due_at is None and len(done.steps) == 4
    before = await row_counts(staff)
    assert await escalate(staff, T0 + 60 * MIN) == []
    assert await row_counts(staff) == before


async def test_a_confirmation_closes_it_once_and_stops_the_escalation(staff):
    made = await urgent(staff)
    async with staff.sessions() as session:
        code = await session.scalar(select(dm.UrgentStep.code))
    async with staff.sessions.begin() as session:
        done = await store.confirm(session, code, now=T0 + 2 * MIN)
    assert (done.employee, done.message_id, done.at) == ("anna", made.message_id, T0 + 2 * MIN)
    closed = await current(staff, made.id)
    assert (closed.status, closed.confirmed_by, closed.due_at) == ("confirmed", "anna", None)
    assert closed.steps[0].status == "skipped"  # its SMS had not gone yet: never sent now
    before = await row_counts(staff)
    for wrong in (code, "NOSUCH"):  # a replay, an unknown code
        with pytest.raises(store.DispatchError) as refused:
            async with staff.sessions.begin() as session:
                await store.confirm(session, wrong, now=T0 + 3 * MIN)
        assert refused.value.status == (409 if wrong == code else 404)
    assert "already confirmed by anna" in str(
        (await _refusal(staff, code)).reason)
    assert await escalate(staff, T0 + 60 * MIN) == []
    assert await row_counts(staff) == before


async def _refusal(db: Database, code: str) -> store.DispatchError:
    try:
        async with db.sessions.begin() as session:
            await store.confirm(session, code)
    except store.DispatchError as exc:
        return exc
    raise AssertionError("not refused")


async def test_an_escalated_persons_code_and_a_late_one_still_confirm(staff):
    made = await urgent(staff, lambda: "AAAAAA")
    await escalate(staff, T0 + 5 * MIN, lambda: "BBBBBB")
    async with staff.sessions.begin() as session:
        late = await store.confirm(session, "AAAAAA", now=T0 + 6 * MIN)  # anna, after all
    assert late.employee == "anna"
    other = await urgent(staff, lambda: "CCCCCC")
    fresh = iter(["D1D1D1", "E1E1E1", "F1F1F1"]).__next__
    for at in (5, 10, 15):
        await escalate(staff, T0 + at * MIN, fresh)
    assert (await current(staff, other.id)).status == "exhausted"
    async with staff.sessions.begin() as session:
        assert (await store.confirm(session, "CCCCCC", now=T0 + 20 * MIN)).employee == "anna"
    assert (await current(staff, other.id)).status == "confirmed"
    assert (await current(staff, made.id)).confirmed_by == "anna"


async def test_each_sms_is_claimed_once_and_its_outcome_fenced(staff):
    made = await urgent(staff, lambda: "K7QX4M")
    made_code = "K7QX4M"
    async with staff.sessions.begin() as session:
        [claim] = await store.claim_steps(session, now=T0, holder=None)
    assert (claim.employee, claim.address, claim.code, claim.attempts) == (
        "anna", "+358401111111", made_code, 1)
    assert claim.message.note == "Vesivahinko"
    async with staff.sessions.begin() as session:
        assert await store.claim_steps(session, now=T0, holder=None) == []  # being sent
    # Its lease runs out (the sender died): another takes it; the first one's outcome is void.
    async with staff.sessions.begin() as session:
        [again] = await store.claim_steps(session, now=claim.lease_until, holder=None)
    assert again.attempts == 2
    async with staff.sessions.begin() as session:
        assert await store.record_step(session, claim, error=None, now=T0) is False
        assert await store.record_step(session, again, error=None, now=T0 + MIN) is True
    sent = (await current(staff, made.id)).steps[0]
    assert (sent.status, sent.sent_at, sent.attempts) == ("sent", T0 + MIN, 2)
    async with staff.sessions.begin() as session:
        assert await store.claim_steps(session, now=T0 + 60 * MIN, holder=None) == []


async def test_a_number_the_gateway_refuses_escalates_at_once(staff):
    made = await urgent(staff)
    async with staff.sessions.begin() as session:
        [claim] = await store.claim_steps(session, now=T0, holder=None)
    async with staff.sessions.begin() as session:
        await store.record_step(session, claim, error="400 bad number", permanent=True,
                                now=T0 + MIN)
    failed = await current(staff, made.id)
    assert failed.steps[0].status == "failed" and failed.due_at == T0 + MIN
    assert await escalate(staff, T0 + MIN) == [made.id]
    assert [s.employee for s in (await current(staff, made.id)).steps] == ["anna", "mikko"]
    # A gateway that is down: retried, the dispatch waits for its time limit meanwhile.
    async with staff.sessions.begin() as session:
        [second] = await store.claim_steps(session, now=T0 + MIN, holder=None)
        await store.record_step(session, second, error="503", now=T0 + MIN)
    retrying = (await current(staff, made.id)).steps[1]
    assert retrying.status == "retrying" and retrying.last_error == "503"


async def test_a_days_summary_is_taken_by_one_and_settled_once(staff):
    day = date(2025, 6, 2)
    async with staff.sessions.begin() as session:
        claim = await store.claim_summary(session, "main", day, now=T0, holder=None)
    assert claim is not None and claim.attempts == 1
    async with staff.sessions.begin() as session:
        assert await store.claim_summary(session, "main", day, now=T0, holder=None) is None
        assert await store.claim_summary(session, "acme", day, now=T0, holder=None) is not None
    async with staff.sessions.begin() as session:
        assert await store.record_summary(session, claim, error="421 try later", messages=3,
                                          created=T0, now=T0) is True
    async with staff.sessions.begin() as session:
        assert not await store.summary_done(session, "main", day)
        assert await store.claim_summary(session, "main", day, now=T0, holder=None) is None
        retry = await store.claim_summary(session, "main", day, now=T0 + MIN, holder=None)
    assert retry is not None and retry.attempts == 2
    async with staff.sessions.begin() as session:
        assert await store.record_summary(session, claim, error=None, messages=3, created=T0,
                                          now=T0 + MIN) is False  # the first claim is void
        assert await store.record_summary(session, retry, error=None, messages=3, created=T0,
                                          now=T0 + MIN) is True
        assert await store.summary_done(session, "main", day)
        assert await store.claim_summary(session, "main", day, now=T0 + 60 * MIN) is None


async def test_a_clients_summary_lists_only_its_own_messages(staff):
    async with staff.sessions.begin() as session:
        ours = await messages.create_message(
            session, MessageDraft(Recipient("employee", "anna"), caller_number="0401234567",
                                  note="Meille"), COMPANY,
            channels=("email",), now=T0)
        theirs = await messages.create_message(
            session, MessageDraft(Recipient("employee", "anna"), caller_number="0407654321",
                                  note="Toiselle"), COMPANY,
            channels=("email",), now=T0)
        await session.execute(
            mm.Message.__table__.update().where(mm.Message.id == theirs.id)
            .values(company_id="acme"))
    async with staff.sessions() as session:
        main = await store.messages_between(session, T0 - MIN, T0 + MIN, company=store.MAIN)
        acme = await store.messages_between(session, T0 - MIN, T0 + MIN, company="acme")
    assert [r.message.id for r in main] == [ours.id]
    assert [r.message.id for r in acme] == [theirs.id]
