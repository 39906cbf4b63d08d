"""The database side of the usage report and of operators' talks: a talk opened when an
operator's phone is bridged with a caller and closed when it leaves (each committed at once,
so a `kill -9` loses nothing already seen), the wrap-up marked done, and a month's counts and
talks read for vaihde.reports.usage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vaihde.db import message_models as mm
from vaihde.db import models as m
from vaihde.reports.usage import COUNTED, Talk, month_bounds, query_window, zone_groups

TalkKey = tuple[str, str, str]  # (call id, operator's phone, bridge id)


async def open_talk(
    session: AsyncSession, key: TalkKey, company_id: str, at: datetime
) -> bool:
    """Store a talk that started (False: it is stored already, by another instance or before
    a restart: the first start stands)."""
    call_id, operator, bridge_id = key
    found = await session.scalar(select(m.OperatorTalk.id).where(
        m.OperatorTalk.call_id == call_id, m.OperatorTalk.operator == operator,
        m.OperatorTalk.bridge_id == bridge_id))
    if found is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(m.OperatorTalk(company_id=company_id, call_id=call_id,
                                       bridge_id=bridge_id, operator=operator, started_at=at))
    except IntegrityError:
        return False  # another instance stored it in the meantime
    return True


async def close_talk(session: AsyncSession, key: TalkKey, at: datetime) -> bool:
    """The talk ended at `at` (False: no open talk with that key; the first end stands)."""
    call_id, operator, bridge_id = key
    result = await session.execute(
        update(m.OperatorTalk)
        .where(m.OperatorTalk.call_id == call_id, m.OperatorTalk.operator == operator,
               m.OperatorTalk.bridge_id == bridge_id, m.OperatorTalk.ended_at.is_(None))
        .values(ended_at=at))
    return bool(getattr(result, "rowcount", 0))


async def mark_done(
    session: AsyncSession, operator: str, at: datetime, within: timedelta
) -> str | None:
    """The operator's wrap-up of their last ended talk is done: the call id, or None when
    there is none to mark (no talk ended within `within`, or it is marked already)."""
    t = m.OperatorTalk
    last = (await session.execute(
        select(t.id, t.call_id, t.done_at, t.ended_at).where(t.operator == operator)
        .order_by(t.started_at.desc(), t.id.desc()).limit(1))).first()
    if last is None or last.ended_at is None or last.done_at is not None:
        return None
    if at - last.ended_at > within:
        return None
    await session.execute(update(t).where(t.id == last.id).values(done_at=at))
    return str(last.call_id)


async def companies(session: AsyncSession) -> dict[str, str]:
    """Every company: id → name."""
    return dict((await session.execute(select(m.Company.id, m.Company.name))).all())


async def month_counts(
    session: AsyncSession, month: str, zones: Mapping[str, tzinfo], default_zone: tzinfo,
    only: Sequence[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Calls, messages and callbacks per company in `month` of each company's zone, counted by
    the database (one query per table and time zone)."""
    ids = list(only) if only is not None else list(await companies(session))
    tables = {"calls": (m.Contact, m.Contact.at), "messages": (mm.Message, mm.Message.created_at),
              "callbacks": (mm.Callback, mm.Callback.created_at)}
    out: dict[str, dict[str, int]] = {cid: dict.fromkeys(COUNTED, 0) for cid in ids}
    for tz, group in zone_groups(ids, zones, default_zone).items():
        start, end = month_bounds(month, tz)
        for name, (table, at) in tables.items():
            company = table.company_id  # type: ignore[attr-defined]
            query = (select(company, func.count()).where(company.in_(group), at >= start,
                                                         at < end).group_by(company))
            if table is m.Contact:
                query = query.where(m.Contact.direction == "in")
            for cid, n in (await session.execute(query)).all():
                out[cid][name] = int(n)
    return out


async def month_talks(
    session: AsyncSession, month: str, wrap_cap_s: float
) -> list[Talk]:
    """Every talk in the month's window of any zone (and just after, to end wrap-ups)."""
    start, end = query_window(month, wrap_cap_s)
    t = m.OperatorTalk
    rows = await session.execute(
        select(t.company_id, t.call_id, t.operator, t.started_at, t.ended_at, t.done_at)
        .where(t.started_at >= start, t.started_at < end).order_by(t.started_at, t.id))
    return [Talk(*row) for row in rows.all()]
