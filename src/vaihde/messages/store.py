"""Messages, their deliveries and callback requests in the database. Functions taking a session
work inside the caller's transaction and never commit; `take_message` and `take_callback` are
the one-call versions for flows that must know the message is stored before saying so.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.db import message_models as mm
from vaihde.db import models as m
from vaihde.db.clock import aware_now as _now
from vaihde.db.once import orphaned
from vaihde.messages.model import (
    BACKOFF,
    CALLBACK_STATUSES,
    CHANNELS,
    DELIVERY_STATUSES,
    ERROR_MAX,
    OPEN_DELIVERY,
    RETRY_FOR,
    CallbackDraft,
    CallbackRecord,
    Company,
    DeliveryRecord,
    MessageDraft,
    MessageError,
    MessageRecord,
    Recipient,
    next_attempt,
    plan_deliveries,
    summary_status,
    validate_callback,
    validate_message,
)
from vaihde.records import of_row

# How long a claimed delivery stays the claimer's: longer than any send takes (SMTP and SMS
# time out well before), short enough that a crashed sender's claims are soon sent by another.
DEFAULT_LEASE = timedelta(minutes=5)


def _columns(draft: MessageDraft | CallbackDraft, but: str = "") -> dict[str, Any]:
    """A validated draft's fields: each is a column of its row."""
    return {f.name: getattr(draft, f.name) for f in fields(draft) if f.name != but}


def _message(row: mm.Message, deliveries: Iterable[mm.MessageDelivery]) -> MessageRecord:
    return of_row(
        MessageRecord, row,
        recipient=Recipient(kind=row.recipient_kind, id=row.recipient_id),
        deliveries=[of_row(DeliveryRecord, d) for d in sorted(deliveries, key=lambda d: d.id)],
    )


async def _deliveries_of(
    session: AsyncSession, message_ids: Sequence[int]
) -> dict[int, list[mm.MessageDelivery]]:
    out: dict[int, list[mm.MessageDelivery]] = {i: [] for i in message_ids}
    if not message_ids:
        return out
    rows = await session.scalars(
        select(mm.MessageDelivery)
        .where(mm.MessageDelivery.message_id.in_(message_ids))
        .order_by(mm.MessageDelivery.id)
        .execution_options(populate_existing=True)
    )
    for row in rows:
        out[row.message_id].append(row)
    return out


# --- messages -----------------------------------------------------------------------------


async def create_message(
    session: AsyncSession,
    draft: MessageDraft,
    company: Company,
    *,
    channels: Iterable[str] = CHANNELS,
    company_language: str = "fi",
    now: datetime | None = None,
) -> MessageRecord:
    """Store a message and one pending delivery per planned channel and address (see
    model.plan_deliveries), inside the caller's transaction. Raises MessageError (nothing
    written) for bad input or an unknown recipient. `channels`: those the service can send.
    """
    clean = validate_message(draft, company_language)
    targets = plan_deliveries(clean.recipient, company, channels)
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    row = mm.Message(
        created_at=at,
        recipient_kind=clean.recipient.kind,
        recipient_id=clean.recipient.id,
        status=summary_status("pending" for _ in targets),
        # The recipient's company (ids are unique across the service): a CompanyConfig's id.
        company_id=str(getattr(company, "id", m.MAIN)),
        **_columns(clean, but="recipient"),
    )
    session.add(row)
    await session.flush()
    deliveries = [
        mm.MessageDelivery(
            message_id=row.id,
            channel=t.channel,
            address=t.address,
            status="pending",
            attempts=0,
            next_attempt_at=at,
            last_error="",
        )
        for t in targets
    ]
    session.add_all(deliveries)
    await session.flush()
    return _message(row, deliveries)


async def take_message(
    sessions: async_sessionmaker[AsyncSession],
    draft: MessageDraft,
    company: Company,
    *,
    channels: Iterable[str] = CHANNELS,
    now: datetime | None = None,
) -> MessageRecord:
    """Store a message in a transaction of its own: when this returns, the message is
    committed and the caller may be told it was taken. `company` is a CompanyConfig (its
    language is the default for the message)."""
    language = getattr(getattr(company, "company", None), "language", "fi")
    async with sessions() as session, session.begin():
        return await create_message(
            session, draft, company, channels=channels, company_language=language, now=now
        )


async def get_message(session: AsyncSession, message_id: int) -> MessageRecord | None:
    row = await session.get(mm.Message, message_id, populate_existing=True)
    if row is None:
        return None
    return _message(row, (await _deliveries_of(session, [row.id]))[row.id])


def _for_any(kind: Any, ident: Any, recipients: Sequence[Recipient]) -> Any:
    """kind/id columns naming one of `recipients` (none: matches nothing)."""
    if not recipients:
        return false()
    return or_(*(and_(kind == r.kind, ident == r.id) for r in recipients))


async def list_messages(
    session: AsyncSession,
    *,
    recipient: Recipient | None = None,
    recipients: Sequence[Recipient] | None = None,
    status: str | None = None,
    since: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 50,
    companies: Collection[str] | None = None,
) -> list[MessageRecord]:
    """Messages, newest first, with their deliveries. `recipients`: for any of these;
    `before`: (created_at, id) of the last one of the previous page (keyset paging);
    `companies`: of these companies only (None: every company's)."""
    query = select(mm.Message).execution_options(populate_existing=True)
    if companies is not None:
        query = query.where(mm.Message.company_id.in_(sorted(companies)))
    if recipient is not None:
        query = query.where(
            mm.Message.recipient_kind == recipient.kind, mm.Message.recipient_id == recipient.id
        )
    if recipients is not None:
        query = query.where(
            _for_any(mm.Message.recipient_kind, mm.Message.recipient_id, recipients)
        )
    if status is not None:
        query = query.where(mm.Message.status == status)
    if since is not None:
        query = query.where(mm.Message.created_at >= since)
    if before is not None:
        at, last_id = before
        query = query.where(
            or_(
                mm.Message.created_at < at,
                and_(mm.Message.created_at == at, mm.Message.id < last_id),
            )
        )
    query = query.order_by(mm.Message.created_at.desc(), mm.Message.id.desc()).limit(limit)
    rows = list((await session.scalars(query)).all())
    deliveries = await _deliveries_of(session, [r.id for r in rows])
    return [_message(r, deliveries[r.id]) for r in rows]


async def _refresh_status(session: AsyncSession, message_id: int) -> str:
    statuses = (
        await session.scalars(
            select(mm.MessageDelivery.status).where(mm.MessageDelivery.message_id == message_id)
        )
    ).all()
    status = summary_status(statuses)
    await session.execute(
        update(mm.Message).where(mm.Message.id == message_id).values(status=status)
    )
    return status


async def cancel_message(
    session: AsyncSession, message_id: int, *, by: str, now: datetime | None = None
) -> MessageRecord:
    """Stop delivering a message: its open deliveries become `cancelled` (one being sent right
    now may still arrive). Raises MessageError if there is no such message."""
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    if await session.get(mm.Message, message_id) is None:
        raise MessageError([f"message: no message {message_id}"])
    await session.execute(
        update(mm.MessageDelivery)
        .where(
            mm.MessageDelivery.message_id == message_id,
            mm.MessageDelivery.status.in_(OPEN_DELIVERY),
        )
        .values(
            status="cancelled",
            next_attempt_at=None,
            last_error=f"cancelled by {by} at {at.isoformat(timespec='seconds')}"[:ERROR_MAX],
        )
    )
    await _refresh_status(session, message_id)
    found = await get_message(session, message_id)
    assert found is not None
    return found


async def retry_delivery(
    session: AsyncSession, delivery_id: int, *, now: datetime | None = None
) -> DeliveryRecord:
    """Send a failed (or cancelled) delivery again, now: e.g. after the admin fixed the mail
    server's settings or the employee's address."""
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    row = await session.get(mm.MessageDelivery, delivery_id, populate_existing=True)
    if row is None:
        raise MessageError([f"delivery: no delivery {delivery_id}"])
    if row.status not in ("failed", "cancelled"):
        raise MessageError([f"delivery: is {row.status}, only failed or cancelled ones retry"])
    row.status, row.next_attempt_at, row.attempts = "pending", at, 0
    await session.flush()
    await _refresh_status(session, row.message_id)
    return of_row(DeliveryRecord, row)


async def retry_message(
    session: AsyncSession, message_id: int, *, now: datetime | None = None
) -> MessageRecord:
    """Send a message's failed (and cancelled) deliveries again, now. Raises MessageError if
    there is no such message or nothing of it to retry."""
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    if await session.get(mm.Message, message_id) is None:
        raise MessageError([f"message: no message {message_id}"])
    d = mm.MessageDelivery
    retried = (
        await session.execute(
            update(d)
            .where(d.message_id == message_id, d.status.in_(("failed", "cancelled")))
            .values(status="pending", next_attempt_at=at, attempts=0)
            .returning(d.id)
            .execution_options(synchronize_session=False)
        )
    ).scalars().all()
    if not retried:
        raise MessageError(["message: no failed or cancelled delivery to send again"])
    await _refresh_status(session, message_id)
    found = await get_message(session, message_id)
    assert found is not None
    return found


# --- the sender's side ----------------------------------------------------------------------


def _due(now: datetime, *, takeover: bool = False) -> list[ColumnElement[bool]]:
    """Open and due; with `takeover` (PostgreSQL) also being sent by an instance that is gone."""
    d = mm.MessageDelivery
    due: ColumnElement[bool] = d.next_attempt_at <= now
    if takeover:
        due = or_(due, and_(d.status == "sending", orphaned(d.claimed_by)))
    return [d.status.in_(OPEN_DELIVERY), due]


async def due_deliveries(
    session: AsyncSession, *, now: datetime | None = None, limit: int = 100
) -> list[DeliveryRecord]:
    """What is due to be sent (pending or retrying, or a claim whose lease ran out), oldest
    first. Read-only: senders use claim_due."""
    rows = await session.scalars(
        select(mm.MessageDelivery)
        .where(*_due(_now(now)))
        .order_by(mm.MessageDelivery.next_attempt_at, mm.MessageDelivery.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return [of_row(DeliveryRecord, r) for r in rows]


async def delivery_counts(session: AsyncSession) -> dict[str, int]:
    """How many deliveries are in each status (every status present, 0 if none): for health
    checks and the console ("3 retrying, 1 failed")."""
    rows = await session.execute(
        select(mm.MessageDelivery.status, func.count()).group_by(mm.MessageDelivery.status)
    )
    out = dict.fromkeys(DELIVERY_STATUSES, 0)
    out.update({status: int(n) for status, n in rows})
    return out


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery this sender now owns until `lease_until`, with its message. `delivery.attempts`
    counts this attempt: recording the result checks it still matches (nobody re-claimed it)."""

    delivery: DeliveryRecord
    message: MessageRecord
    lease_until: datetime


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    limit: int = 10,
    lease: timedelta = DEFAULT_LEASE,
    holder: int | None = None,
) -> list[Claim]:
    """Take up to `limit` due deliveries for sending: they become `sending` until now + lease,
    claimed by `holder` (the claiming instance's id, vaihde.db.once).

    One statement, so that it is atomic on SQLite (whose writers queue on the database lock)
    and on PostgreSQL, where FOR UPDATE SKIP LOCKED makes concurrent senders take different
    rows instead of waiting for each other. Commit soon after: the claim is only visible to the
    other senders once committed. On PostgreSQL with a `holder`, deliveries still being sent by
    an instance that is gone (its liveness lock free) are taken over at once, not when their
    lease ends.
    """
    at = _now(now)
    d = mm.MessageDelivery
    postgres = session.get_bind().dialect.name == "postgresql"
    takeover = postgres and holder is not None
    due = select(d.id).where(*_due(at, takeover=takeover)).order_by(
        d.next_attempt_at, d.id).limit(limit)
    if postgres:
        # A CTE, not a plain IN (subquery): PostgreSQL may re-run a locking subquery for each
        # row it updates, each run skipping the rows just claimed, and so claim more than
        # `limit`. A CTE with FOR UPDATE runs exactly once.
        ids = select(due.with_for_update(skip_locked=True).cte("due").c.id)
    else:
        # Not a CTE on SQLite: Python's sqlite3 opens no transaction for a statement that
        # starts with WITH, so the claim would escape the session's transaction.
        ids = due
    claimed = (
        await session.execute(
            update(d)
            .where(d.id.in_(ids), *_due(at, takeover=takeover))
            .values(status="sending", attempts=d.attempts + 1, next_attempt_at=at + lease,
                    claimed_by=holder)
            .returning(d.id)
            .execution_options(synchronize_session=False)
        )
    ).scalars().all()
    if not claimed:
        return []
    rows = (
        await session.scalars(
            select(d).where(d.id.in_(claimed)).order_by(d.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    messages = {
        r.id: r
        for r in (
            await session.scalars(
                select(mm.Message)
                .where(mm.Message.id.in_({r.message_id for r in rows}))
                .execution_options(populate_existing=True)
            )
        ).all()
    }
    return [
        Claim(of_row(DeliveryRecord, r), _message(messages[r.message_id], ()), at + lease)
        for r in rows
    ]


async def record_attempt(
    session: AsyncSession,
    claim: Claim,
    *,
    error: str | None,
    permanent: bool = False,
    now: datetime | None = None,
    backoff: tuple[timedelta, ...] = BACKOFF,
    retry_for: timedelta = RETRY_FOR,
) -> DeliveryRecord | None:
    """Record how a claimed attempt went: error=None → `sent`; a permanent error → `failed`;
    otherwise `retrying` at the next backoff time, or `failed` once the message is older than
    `retry_for`. Returns None (nothing written) when the claim is no longer ours: cancelled
    meanwhile, or the lease ran out and another sender took it."""
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    d = mm.MessageDelivery
    values: dict[str, object]
    if error is None:
        values = {"status": "sent", "sent_at": at, "next_attempt_at": None, "last_error": "",
                  "claimed_by": None}
    else:
        when = None if permanent else next_attempt(
            claim.delivery.attempts, claim.message.created_at, at,
            backoff=backoff, retry_for=retry_for,
        )
        values = {
            "status": "failed" if when is None else "retrying",
            "next_attempt_at": when,
            "last_error": error[:ERROR_MAX],
            "claimed_by": None,
        }
    done = (
        await session.execute(
            update(d)
            .where(
                d.id == claim.delivery.id,
                d.status == "sending",
                d.attempts == claim.delivery.attempts,
            )
            .values(**values)
            .returning(d.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if done is None:
        return None
    await _refresh_status(session, claim.message.id)
    row = await session.get(d, claim.delivery.id, populate_existing=True)
    assert row is not None
    return of_row(DeliveryRecord, row)


# --- callbacks ------------------------------------------------------------------------------


async def create_callback(
    session: AsyncSession, draft: CallbackDraft, *, now: datetime | None = None,
    company_id: str = m.MAIN,
) -> CallbackRecord:
    """Store a callback request (status open). Raises MessageError (nothing written) for bad
    input or an employee or team that the directory does not have (active)."""
    clean = validate_callback(draft)
    if clean.for_kind is not None:
        table = m.Employee if clean.for_kind == "employee" else m.Team
        found = await session.scalar(
            select(table.id).where(table.id == clean.for_id, table.active.is_(True))
        )
        if found is None:
            raise MessageError([f"for_id: no {clean.for_kind} {clean.for_id!r}"])
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    row = mm.Callback(created_at=at, status="open", company_id=company_id, **_columns(clean))
    session.add(row)
    await session.flush()
    return of_row(CallbackRecord, row)


async def take_callback(
    sessions: async_sessionmaker[AsyncSession],
    draft: CallbackDraft,
    *,
    now: datetime | None = None,
    company_id: str = m.MAIN,
) -> CallbackRecord:
    """Store a callback request in a transaction of its own (committed when this returns)."""
    async with sessions() as session, session.begin():
        return await create_callback(session, draft, now=now, company_id=company_id)


async def get_callback(session: AsyncSession, callback_id: int) -> CallbackRecord | None:
    row = await session.get(mm.Callback, callback_id, populate_existing=True)
    return of_row(CallbackRecord, row) if row is not None else None


async def list_callbacks(
    session: AsyncSession,
    *,
    status: str | None = "open",
    for_kind: str | None = None,
    for_id: str | None = None,
    recipients: Sequence[Recipient] | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 100,
    companies: Collection[str] | None = None,
) -> list[CallbackRecord]:
    """Callback requests, oldest first (the order to call them back in); status=None: all.
    `recipients`: for any of these; `after`: (created_at, id) of the last one of the previous
    page (keyset paging); `companies`: of these companies only (None: every company's)."""
    query = select(mm.Callback).execution_options(populate_existing=True)
    if companies is not None:
        query = query.where(mm.Callback.company_id.in_(sorted(companies)))
    if status is not None:
        query = query.where(mm.Callback.status == status)
    if for_kind is not None:
        query = query.where(mm.Callback.for_kind == for_kind)
    if for_id is not None:
        query = query.where(mm.Callback.for_id == for_id)
    if recipients is not None:
        query = query.where(_for_any(mm.Callback.for_kind, mm.Callback.for_id, recipients))
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                mm.Callback.created_at > at,
                and_(mm.Callback.created_at == at, mm.Callback.id > last_id),
            )
        )
    query = query.order_by(mm.Callback.created_at, mm.Callback.id).limit(limit)
    return [of_row(CallbackRecord, r) for r in (await session.scalars(query)).all()]


async def close_callback(
    session: AsyncSession,
    callback_id: int,
    *,
    status: str = "done",
    by: str,
    now: datetime | None = None,
) -> CallbackRecord:
    """Mark a callback request done (called back) or cancelled, by whom and when."""
    if status not in CALLBACK_STATUSES or status == "open":
        raise MessageError(["status: must be done or cancelled"])
    if not by or len(by) > 64:
        raise MessageError(["by: must be a user name of 1-64 characters"])
    at = _now(now)
    await m.bump_revision(session, mm.MESSAGES)
    row = await session.get(mm.Callback, callback_id, populate_existing=True)
    if row is None:
        raise MessageError([f"callback: no callback {callback_id}"])
    if row.status != "open":
        raise MessageError([f"callback: already {row.status}"])
    row.status, row.handled_by, row.handled_at = status, by, at
    await session.flush()
    return of_row(CallbackRecord, row)
