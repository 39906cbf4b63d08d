"""Tables of message dispatch: urgent messages that must be confirmed (one dispatch per urgent
message, one step per person texted a reply code, escalated along an on-call rota) and the daily
message summary sent per company and local date (its row is what makes it sent once).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vaihde.db.models import Base

# Spelled out rather than imported from vaihde.dispatch (the tables do not depend on the feature
# package); tests/unit/test_dispatch_model.py checks that both agree.
DISPATCH_STATUSES = ("open", "confirmed", "exhausted")
STEP_STATUSES = ("pending", "sending", "sent", "retrying", "failed", "skipped")
SUMMARY_STATUSES = ("sending", "sent", "retrying", "failed", "empty")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UrgentDispatch(Base):
    """An urgent message on its way to someone who confirms it."""

    __tablename__ = "urgent_dispatches"
    __table_args__ = (
        CheckConstraint(_one_of("status", DISPATCH_STATUSES), name="status"),
        CheckConstraint("confirm_minutes > 0", name="confirm_minutes"),
        # The escalator's question: which open dispatches are due?
        Index(None, "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    created_at: Mapped[datetime]
    company: Mapped[str] = mapped_column(String(40), default="main")
    rota: Mapped[str] = mapped_column(String(40), default="")  # "" = nobody after the first
    confirm_minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    # While open: when the current step's time runs out (then the next person is texted).
    due_at: Mapped[datetime | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(40))  # employee id
    confirmed_at: Mapped[datetime | None]
    exhausted_at: Mapped[datetime | None]  # nobody left: the operators are alerted


class UrgentStep(Base):
    """One person texted the message with a reply code of their own."""

    __tablename__ = "urgent_steps"
    __table_args__ = (
        UniqueConstraint("dispatch_id", "position"),
        UniqueConstraint("dispatch_id", "employee_id"),
        CheckConstraint(_one_of("status", STEP_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispatch_id: Mapped[int] = mapped_column(ForeignKey("urgent_dispatches.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0: the first person, 1: the next…
    employee_id: Mapped[str] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(32))  # the SMS number; "" = none (skipped)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # due while open; the lease while sending
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)  # vaihde.db.once holder
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(1000), default="")


class MessageSummary(Base):
    """The daily message summary of one company for one local date: sent once."""

    __tablename__ = "message_summaries"
    __table_args__ = (
        UniqueConstraint("company", "day"),
        CheckConstraint(_one_of("status", SUMMARY_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # due while retrying; the lease while sending
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(Integer, default=0)  # how many it listed
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(1000), default="")
