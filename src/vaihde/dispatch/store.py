"""Urgent messages and daily summaries in the database. Functions taking a session work inside
the caller's transaction and never commit.

Once and never lost, across instances: every decision (text the next person, give up, confirm)
is one transaction over the dispatch's row, taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL
and guarded by its expected state in the UPDATE, so two instances never take the same step and a
process killed mid-decision leaves the row as it was. Each SMS is a step row claimed for sending
like a message delivery (vaihde.db.once: a live holder's claim is never taken, a dead one's at
once; on SQLite when the lease ends), its outcome fenced by the attempt number. A summary's row
(company, local date) is unique: whoever inserts it sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ConfigDict, Field
from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from vaihde.company.schema import CompanyConfig
from vaihde.db import dispatch_models as dm
from vaihde.db import message_models as mm
from vaihde.db import models as m
from vaihde.db.clock import aware_now as _now
from vaihde.db.once import orphaned
from vaihde.dispatch.model import (
    DispatchStatus,
    NextStep,
    StepStatus,
    SummaryStatus,
    new_code,
    next_step,
)
from vaihde.messages.model import (
    BACKOFF,
    ERROR_MAX,
    MessageRecord,
    NamedRecipient,
    Recipient,
    next_attempt,
)
from vaihde.messages.store import get_message
from vaihde.records import Record, Time, of_row

LEASE = timedelta(minutes=2)  # longer than an SMS or a mail takes (their timeouts are shorter)
MAIN = "main"  # the company of a single-company installation (issue 12's shared decision)
_OPEN_STEP = ("pending", "retrying")


class DispatchError(Exception):
    """A confirmation refused: `status` is the HTTP status that says why (404 unknown code, 409
    already confirmed); nothing was written."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- records -----------------------------------------------------------------------------


class StepRecord(Record):
    """One person texted an urgent message (the reply code is never shown)."""

    model_config = ConfigDict(title="UrgentStep")

    position: int = Field(description="0: the first person texted, 1: the next…")
    employee: str = Field(validation_alias="employee_id", description="employee id")
    address: str = Field(description='the SMS number; "" = none (skipped)')
    status: StepStatus = Field(description="of the SMS: skipped = no SMS number")
    created_at: Time
    sent_at: Time | None
    attempts: int
    last_error: str


class DispatchRecord(Record):
    """An urgent message and where its confirmation stands."""

    model_config = ConfigDict(title="UrgentMessage")

    id: int
    message_id: int
    created_at: Time
    recipient: NamedRecipient = Field(serialization_alias="for")
    caller: str = Field(description="the caller's name and number as the message has them")
    rota: str = Field(description='the on-call rota it escalates along; "" = none')
    confirm_minutes: int = Field(description="each person's time to confirm")
    status: DispatchStatus = Field(description="open: waiting for a confirmation; exhausted: "
                                   "nobody left to text (the operators take over)")
    due_at: Time | None = Field(description="while open: when the next person is texted")
    confirmed_by: str | None = Field(description="employee id")
    confirmed_at: Time | None
    exhausted_at: Time | None
    steps: tuple[StepRecord, ...]


def _named(recipient: Recipient, company: CompanyConfig | None) -> NamedRecipient:
    name = recipient.id
    if company is not None:
        table = company.employees if recipient.kind == "employee" else company.teams
        found = table.get(recipient.id)
        name = found.name if found is not None else recipient.id
    return NamedRecipient.model_validate({"kind": recipient.kind, "id": recipient.id,
                                          "name": name})


def _caller(message: mm.Message | MessageRecord) -> str:
    number = message.caller_number or "-"
    return f"{message.caller_name}, {number}" if message.caller_name else number


async def _record(
    session: AsyncSession, row: dm.UrgentDispatch, company: CompanyConfig | None
) -> DispatchRecord:
    message = await session.get(mm.Message, row.message_id)
    assert message is not None
    steps = (await session.scalars(
        select(dm.UrgentStep).where(dm.UrgentStep.dispatch_id == row.id)
        .order_by(dm.UrgentStep.position).execution_options(populate_existing=True))).all()
    return of_row(
        DispatchRecord, row,
        recipient=_named(Recipient(kind=message.recipient_kind, id=message.recipient_id),
                         company),
        caller=_caller(message), steps=[of_row(StepRecord, s) for s in steps],
    )


# --- starting and escalating ---------------------------------------------------------------


async def _tried(session: AsyncSession, dispatch_id: int) -> list[str]:
    return list((await session.scalars(
        select(dm.UrgentStep.employee_id).where(dm.UrgentStep.dispatch_id == dispatch_id)
        .order_by(dm.UrgentStep.position))).all())


async def _advance(
    session: AsyncSession,
    row: dm.UrgentDispatch,
    recipient: Recipient,
    company: CompanyConfig,
    at: datetime,
    code: Callable[[], str],
) -> None:
    """Text the next person (a new step, due for sending now), skipping those without an SMS
    number, or give up: nobody is left (exhausted). The caller holds the dispatch's row."""
    tried = await _tried(session, row.id)
    while True:
        step: NextStep = next_step(company, recipient, row.rota, tried, at)
        if step.exhausted:
            row.status, row.due_at, row.exhausted_at = "exhausted", None, at
            break
        assert step.employee is not None
        session.add(dm.UrgentStep(
            dispatch_id=row.id, position=len(tried), employee_id=step.employee,
            address=step.address, code=code(), created_at=at,
            status="pending" if step.address else "skipped", attempts=0,
            next_attempt_at=at if step.address else None,
            last_error="" if step.address else "no SMS number",
        ))
        tried.append(step.employee)
        if step.address:
            row.due_at = at + timedelta(minutes=row.confirm_minutes)
            break
    await session.flush()


async def start_dispatch(
    session: AsyncSession,
    message: MessageRecord,
    company: CompanyConfig,
    *,
    rota: str,
    company_key: str = MAIN,
    now: datetime | None = None,
    code: Callable[[], str] = new_code,
) -> DispatchRecord:
    """Make `message` (just stored in this transaction) urgent: its first person is texted a
    reply code (the sender picks the step up), and without a confirmation within the company's
    `profile.urgent_confirm_minutes` the next one on call is."""
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    row = dm.UrgentDispatch(
        message_id=message.id, created_at=at, company=company_key, rota=rota,
        confirm_minutes=company.profile.urgent_confirm_minutes, status="open", due_at=at,
    )
    session.add(row)
    await session.flush()
    await _advance(session, row, message.recipient, company, at, code)
    return await _record(session, row, company)


def _locked(query: Any, session: AsyncSession) -> Any:
    """FOR UPDATE SKIP LOCKED on PostgreSQL (concurrent instances take different rows); SQLite
    serialises writers on its database lock, and the guarded UPDATEs do the rest."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def escalate_due(
    session: AsyncSession,
    company: Callable[[str], CompanyConfig | None],
    *,
    now: datetime | None = None,
    limit: int = 20,
    code: Callable[[], str] = new_code,
) -> list[int]:
    """Escalate the open dispatches whose time ran out: the next person on call is texted, or
    the dispatch is exhausted. Returns their ids. `company(key)`: the company's configuration
    now (None: unknown; left for later)."""
    at = _now(now)
    d = dm.UrgentDispatch
    rows = (await session.scalars(_locked(
        select(d).where(d.status == "open", d.due_at <= at).order_by(d.due_at, d.id)
        .limit(limit).execution_options(populate_existing=True), session))).all()
    done: list[int] = []
    for row in rows:
        config = company(row.company)
        if config is None:
            continue
        message = await session.get(mm.Message, row.message_id)
        assert message is not None
        # Guarded: a confirmation committed since our read wins (SQLite has no row locks).
        taken = (await session.execute(
            update(d).where(d.id == row.id, d.status == "open", d.due_at == row.due_at)
            .values(due_at=None).returning(d.id)
            .execution_options(synchronize_session=False))).scalar_one_or_none()
        if taken is None:
            continue
        if not done:
            await m.bump_revision(session, mm.MESSAGES)
        row.due_at = None
        await _advance(session, row, Recipient(kind=message.recipient_kind,
                                               id=message.recipient_id), config, at, code)
        done.append(row.id)
    return done


# --- confirming ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Confirmed:
    dispatch_id: int
    message_id: int
    employee: str
    at: datetime


async def confirm(
    session: AsyncSession, code: str, *, now: datetime | None = None
) -> Confirmed:
    """The person texted `code` confirmed: the dispatch is closed (no one else is texted) with
    who and when; SMS not yet sent for it are left unsent. A late confirmation of an exhausted
    dispatch still counts. Raises DispatchError (nothing written): 404 for a code no one was
    given, 409 when it is already confirmed (a replay)."""
    at = _now(now)
    s, d = dm.UrgentStep, dm.UrgentDispatch
    # A step without a number was never texted: its code was given to nobody.
    step = await session.scalar(select(s).where(s.code == code, s.address != ""))
    if step is None:
        raise DispatchError(404, "no urgent message has this reply code")
    await m.bump_revision(session, mm.MESSAGES)
    closed = (await session.execute(
        update(d).where(d.id == step.dispatch_id, d.status.in_(("open", "exhausted")))
        .values(status="confirmed", confirmed_by=step.employee_id, confirmed_at=at,
                due_at=None).returning(d.message_id)
        .execution_options(synchronize_session=False))).scalar_one_or_none()
    if closed is None:
        row = await session.get(d, step.dispatch_id, populate_existing=True)
        who = row.confirmed_by if row is not None else "?"
        raise DispatchError(409, f"already confirmed by {who}")
    await session.execute(
        update(s).where(s.dispatch_id == step.dispatch_id, s.status.in_(_OPEN_STEP))
        .values(status="skipped", next_attempt_at=None,
                last_error=f"not sent: confirmed by {step.employee_id}")
        .execution_options(synchronize_session=False))
    return Confirmed(step.dispatch_id, closed, step.employee_id, at)


# --- reading -------------------------------------------------------------------------------


async def get_dispatch(
    session: AsyncSession, dispatch_id: int, company: CompanyConfig | None = None
) -> DispatchRecord | None:
    row = await session.get(dm.UrgentDispatch, dispatch_id, populate_existing=True)
    return await _record(session, row, company) if row is not None else None


async def list_dispatches(
    session: AsyncSession,
    company: CompanyConfig | None = None,
    *,
    companies: Collection[str] | None = None,
    company_by_id: Callable[[str], CompanyConfig | None] | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[DispatchRecord]:
    """Urgent messages, newest first; `companies`: only theirs (None: every company's). Names
    from each message's own company (`company_by_id`), else from `company`."""
    d = dm.UrgentDispatch
    query = select(d).execution_options(populate_existing=True)
    if companies is not None:
        query = query.where(d.company.in_(sorted(companies)))
    if status is not None:
        query = query.where(d.status == status)
    if since is not None:
        query = query.where(d.created_at >= since)
    rows = (await session.scalars(query.order_by(d.created_at.desc(), d.id.desc())
                                  .limit(limit))).all()
    return [await _record(session, row, (company_by_id(row.company) if company_by_id else None)
                          or company) for row in rows]


# --- sending the SMS -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepClaim:
    """A step this sender now owns until `lease_until`; `attempts` fences its outcome."""

    step_id: int
    dispatch_id: int
    company: str
    employee: str
    address: str
    code: str
    attempts: int
    message: MessageRecord
    lease_until: datetime


def _due_steps(at: datetime, takeover: bool) -> list[ColumnElement[bool]]:
    s = dm.UrgentStep
    due: ColumnElement[bool] = s.next_attempt_at <= at
    if takeover:
        due = or_(due, and_(s.status == "sending", orphaned(s.claimed_by)))
    open_dispatch = select(dm.UrgentDispatch.id).where(
        dm.UrgentDispatch.id == s.dispatch_id,
        dm.UrgentDispatch.status.in_(("open", "exhausted"))).exists()
    return [s.status.in_((*_OPEN_STEP, "sending")), due, open_dispatch]


async def claim_steps(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    holder: int | None = None,
    lease: timedelta = LEASE,
    limit: int = 10,
) -> list[StepClaim]:
    """Take due SMS steps for sending, as vaihde.messages.store.claim_due takes deliveries:
    one statement, SKIP LOCKED on PostgreSQL, a dead holder's claims taken over at once."""
    at = _now(now)
    s = dm.UrgentStep
    postgres = session.get_bind().dialect.name == "postgresql"
    takeover = postgres and holder is not None
    due = select(s.id).where(*_due_steps(at, takeover)).order_by(s.next_attempt_at, s.id) \
        .limit(limit)
    # A CTE on PostgreSQL (runs once), a plain subquery on SQLite (see claim_due).
    ids = select(due.with_for_update(skip_locked=True).cte("due").c.id) if postgres else due
    claimed = (await session.execute(
        update(s).where(s.id.in_(ids), *_due_steps(at, takeover))
        .values(status="sending", attempts=s.attempts + 1, next_attempt_at=at + lease,
                claimed_by=holder)
        .returning(s.id).execution_options(synchronize_session=False))).scalars().all()
    out: list[StepClaim] = []
    for step_id in sorted(claimed):
        row = await session.get(s, step_id, populate_existing=True)
        assert row is not None
        dispatch = await session.get(dm.UrgentDispatch, row.dispatch_id)
        assert dispatch is not None
        message = await get_message(session, dispatch.message_id)
        assert message is not None
        out.append(StepClaim(row.id, row.dispatch_id, dispatch.company, row.employee_id,
                             row.address, row.code, row.attempts, message, at + lease))
    return out


async def record_step(
    session: AsyncSession,
    claim: StepClaim,
    *,
    error: str | None,
    permanent: bool = False,
    now: datetime | None = None,
) -> bool:
    """How a claimed SMS went: sent; a permanent error → failed, and the next person is due
    now; else retried (1, 5, 15 min…) while the dispatch waits. False: no longer our claim
    (nothing written)."""
    at = _now(now)
    s = dm.UrgentStep
    await m.bump_revision(session, mm.MESSAGES)
    values: dict[str, Any]
    if error is None:
        values = {"status": "sent", "sent_at": at, "next_attempt_at": None, "last_error": "",
                  "claimed_by": None}
    else:
        when = None if permanent else next_attempt(
            claim.attempts, claim.message.created_at, at, backoff=BACKOFF)
        values = {"status": "failed" if when is None else "retrying", "next_attempt_at": when,
                  "last_error": error[:ERROR_MAX], "claimed_by": None}
    done = (await session.execute(
        update(s).where(s.id == claim.step_id, s.status == "sending",
                        s.attempts == claim.attempts)
        .values(**values).returning(s.id)
        .execution_options(synchronize_session=False))).scalar_one_or_none()
    if done is None:
        return False
    if error is not None and values["status"] == "failed":
        # This person cannot be texted: the next one need not wait for the time limit.
        d = dm.UrgentDispatch
        await session.execute(
            update(d).where(d.id == claim.dispatch_id, d.status == "open")
            .values(due_at=at).execution_options(synchronize_session=False))
    return True


# --- the daily summary ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryClaim:
    id: int
    company: str
    day: date
    attempts: int
    lease_until: datetime


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(dm.MessageSummary)


async def summary_done(session: AsyncSession, company: str, day: date) -> bool:
    """Whether that day's summary is settled (sent, nothing to send, or given up)."""
    status = await session.scalar(select(dm.MessageSummary.status).where(
        dm.MessageSummary.company == company, dm.MessageSummary.day == day))
    return status in ("sent", "empty", "failed")


async def claim_summary(
    session: AsyncSession,
    company: str,
    day: date,
    *,
    now: datetime | None = None,
    holder: int | None = None,
    lease: timedelta = LEASE,
) -> SummaryClaim | None:
    """Take that day's summary for sending: the first to insert its row has it; a retry that
    is due, a lease run out or (PostgreSQL) a dead holder's claim is taken again. None: it is
    someone else's, or done."""
    at = _now(now)
    t = dm.MessageSummary
    inserted = (await session.execute(
        _insert(session).values(company=company, day=day, status="sending", attempts=1,
                                next_attempt_at=at + lease, claimed_by=holder, messages=0,
                                last_error="")
        .on_conflict_do_nothing(index_elements=["company", "day"]).returning(t.id))
    ).scalar_one_or_none()
    if inserted is not None:
        return SummaryClaim(inserted, company, day, 1, at + lease)
    again: ColumnElement[bool] = t.next_attempt_at <= at
    if session.get_bind().dialect.name == "postgresql" and holder is not None:
        again = or_(again, and_(t.status == "sending", orphaned(t.claimed_by)))
    row = (await session.execute(
        update(t).where(t.company == company, t.day == day,
                        t.status.in_(("sending", "retrying")), again)
        .values(status="sending", attempts=t.attempts + 1, next_attempt_at=at + lease,
                claimed_by=holder)
        .returning(t.id, t.attempts).execution_options(synchronize_session=False))).first()
    if row is None:
        return None
    return SummaryClaim(row[0], company, day, row[1], at + lease)


async def record_summary(
    session: AsyncSession,
    claim: SummaryClaim,
    *,
    error: str | None,
    messages: int,
    created: datetime,
    permanent: bool = False,
    now: datetime | None = None,
) -> bool:
    """How the summary went (`empty`: no addresses or nothing to list, counted as done).
    False: no longer our claim."""
    at = _now(now)
    t = dm.MessageSummary
    status: SummaryStatus
    when = None
    if error is None:
        status = "sent"
    elif error == "":
        status = "empty"
    else:
        when = None if permanent else next_attempt(claim.attempts, created, at)
        status = "failed" if when is None else "retrying"
    done = (await session.execute(
        update(t).where(t.id == claim.id, t.status == "sending", t.attempts == claim.attempts)
        .values(status=status, next_attempt_at=when, claimed_by=None, messages=messages,
                sent_at=at if status == "sent" else None, last_error=(error or "")[:ERROR_MAX])
        .returning(t.id).execution_options(synchronize_session=False))).scalar_one_or_none()
    return done is not None


@dataclass(frozen=True, slots=True)
class SummaryRow:
    message: MessageRecord
    urgent: dm.UrgentDispatch | None


async def messages_between(
    session: AsyncSession, start: datetime, end: datetime, *, company: str = MAIN,
    limit: int = 2000,
) -> list[SummaryRow]:
    """The company's messages taken in [start, end), oldest first, each with its urgent
    dispatch (a client's summary never lists another client's messages)."""
    rows = (await session.scalars(
        select(mm.Message).where(mm.Message.company_id == company,
                                 mm.Message.created_at >= start, mm.Message.created_at < end)
        .order_by(mm.Message.created_at, mm.Message.id).limit(limit))).all()
    ids = [r.id for r in rows]
    urgent = {u.message_id: u for u in (await session.scalars(
        select(dm.UrgentDispatch).where(dm.UrgentDispatch.message_id.in_(ids)))).all()} \
        if ids else {}
    out = []
    for row in rows:
        message = await get_message(session, row.id)
        assert message is not None
        out.append(SummaryRow(message, urgent.get(row.id)))
    return out


__all__ = [
    "LEASE", "MAIN", "Confirmed", "DispatchError", "DispatchRecord", "StepClaim", "StepRecord",
    "SummaryClaim", "SummaryRow", "claim_steps", "claim_summary", "confirm", "escalate_due",
    "get_dispatch", "list_dispatches", "messages_between", "record_step", "record_summary",
    "start_dispatch", "summary_done",
]
