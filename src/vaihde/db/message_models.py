"""Tables of the answering service: messages taken for employees and teams, their deliveries by
e-mail and SMS (one row per channel and address, retried until sent or failed), callback requests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vaihde.db.models import Base

# Spelled out rather than imported from vaihde.messages so that the tables do not depend on the
# feature package; tests/unit/test_messages_model.py checks that both agree.
RECIPIENT_KINDS = ("employee", "team")
CHANNELS = ("email", "sms")
DELIVERY_STATUSES = ("pending", "sending", "sent", "retrying", "failed", "cancelled")
MESSAGE_STATUSES = ("pending", "sent", "partly_sent", "failed", "cancelled", "no_address")
CALLBACK_STATUSES = ("open", "done", "cancelled")

# The revision counter bumped by every change to messages, deliveries and callbacks.
MESSAGES = "messages"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_one_of("recipient_kind", RECIPIENT_KINDS), name="recipient_kind"),
        CheckConstraint(_one_of("status", MESSAGE_STATUSES), name="status"),
        Index(None, "recipient_kind", "recipient_id", "created_at"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    recipient_kind: Mapped[str] = mapped_column(String(8))
    # No foreign key: it names an employee or a team (both deactivated, never deleted).
    recipient_id: Mapped[str] = mapped_column(String(40))
    caller_number: Mapped[str | None] = mapped_column(String(32))  # digits; None = withheld
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    taken_by: Mapped[str] = mapped_column(String(64))  # "caller" or the operator's username
    path: Mapped[str] = mapped_column(Text, default="")  # what the caller tried, and how
    note: Mapped[str] = mapped_column(Text, default="")
    recording_path: Mapped[str | None] = mapped_column(String(500))
    call_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))


class MessageDelivery(Base):
    __tablename__ = "message_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "channel", "address"),
        CheckConstraint(_one_of("channel", CHANNELS), name="channel"),
        CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # The sender's question: what is due now?
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due time while open; for `sending`, the end of the sender's lease (a sender that died
    # leaves its claim to be taken again); None once final.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    sent_at: Mapped[datetime | None]
    # While `sending`: the holder id of the instance that claimed it (vaihde.db.once). On
    # PostgreSQL a claim whose holder is no longer alive is taken over at once.
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)


class Callback(Base):
    """A caller asked to be called back (no dialler yet: operators and employees see the list)."""

    __tablename__ = "callbacks"
    __table_args__ = (
        CheckConstraint(
            f"(for_kind IS NULL AND for_id IS NULL) OR "
            f"({_one_of('for_kind', RECIPIENT_KINDS)} AND for_id IS NOT NULL)",
            name="for_kind",
        ),
        CheckConstraint(_one_of("status", CALLBACK_STATUSES), name="status"),
        Index(None, "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    caller_number: Mapped[str] = mapped_column(String(32))  # digits
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    for_kind: Mapped[str | None] = mapped_column(String(8))  # None: whoever takes it
    for_id: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")
    call_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    taken_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    handled_by: Mapped[str | None] = mapped_column(String(64))
    handled_at: Mapped[datetime | None]
