"""The presence database's tables (SQLAlchemy 2 declarative) and the revision counters that let
other processes notice changes cheaply. Nothing in presence history is ever deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Fixed constraint names: migrations and models compare equal on every database.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATES = (
    "available",
    "on_call",
    "busy",
    "meeting",
    "video_conference",
    "away",
    "vacation",
    "sick",
    "off_work",
)
SOURCES = ("manual", "operator", "phone", "calendar", "device")
DEVICE_KINDS = ("desk", "mobile", "softphone")
AUDIT_ACTIONS = ("created", "updated", "cancelled")
CHANNELS = ("phone", "email", "sms")
DIRECTIONS = ("in", "out")

# Revision counter names, bumped in the same transaction as the change they announce.
PRESENCE = "presence"
DIRECTORY = "directory"
CONFIG = "config"
CALLERS = "callers"
MESSAGES = "messages"  # vaihde.db.message_models.MESSAGES: messages, deliveries, callbacks
# Web sessions ended, users' credentials or roles changed (not logins or last-seen updates).
AUTH = "auth"
REVISION_NAMES = (PRESENCE, DIRECTORY, CONFIG, CALLERS, MESSAGES, AUTH)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every database. Naive datetimes are refused on the way in;
    SQLite (which keeps no offset) stores UTC and gets it back as UTC-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


# --- companies -----------------------------------------------------------------------------
# One service answers for several companies (migration 0006). What belongs to a company carries
# its `company_id`; an installation from before 0006 is company MAIN. The columns have no
# foreign key: SQLite could add one only by copying the tables every other table references,
# and the rows are written only through code that creates the company first (sync_directory).
MAIN = "main"


def _company_column() -> Mapped[str]:
    return mapped_column(String(40), index=True, server_default=MAIN)


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # company.id of its file
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]  # the first company is the one created first


class CompanyNumber(Base):
    """A number the company answers (digits, as dialled): each belongs to one company."""

    __tablename__ = "company_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    company_id: Mapped[str] = mapped_column(String(40), index=True)


# --- directory -----------------------------------------------------------------------------


class Employee(Base):
    __tablename__ = "employees"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # slug, e.g. "anna"
    company_id: Mapped[str] = _company_column()
    name: Mapped[str] = mapped_column(String(200))
    name_folded: Mapped[str] = mapped_column(String(200), index=True)  # accent-free, lower case
    extension: Mapped[str | None] = mapped_column(String(20), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    sms_number: Mapped[str | None] = mapped_column(String(32))
    languages: Mapped[list[str]] = mapped_column(default=list)
    # Removed from configuration = deactivated, never deleted, so that history keeps its owner.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]
    # For the directory search: "Myyntipäällikkö", ["fishing permits", "kalastuslupa"].
    title: Mapped[str] = mapped_column(String(200), default="", server_default="")
    topics: Mapped[list[str]] = mapped_column(default=list, server_default="[]")

    numbers: Mapped[list[EmployeeNumber]] = relationship(
        lazy="raise", order_by="EmployeeNumber.number"
    )
    devices: Mapped[list[Device]] = relationship(lazy="raise", order_by="Device.position")
    memberships: Mapped[list[TeamMember]] = relationship(lazy="raise")
    delegates: Mapped[list[Delegate]] = relationship(
        lazy="raise", foreign_keys="Delegate.employee_id", order_by="Delegate.position"
    )


class EmployeeNumber(Base):
    """A direct number that reaches the employee (digits only, as callers dial it)."""

    __tablename__ = "employee_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), index=True)
    company_id: Mapped[str] = _company_column()


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("employee_id", "position"),
        CheckConstraint(_one_of("kind", DEVICE_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    position: Mapped[int]  # ring order
    kind: Mapped[str] = mapped_column(String(16))
    dial: Mapped[str] = mapped_column(String(120))  # Dial() device string, validated by config


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))  # e.g. "operators", "sales"
    company_id: Mapped[str] = _company_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]
    title: Mapped[str] = mapped_column(String(200), default="", server_default="")
    topics: Mapped[list[str]] = mapped_column(default=list, server_default="[]")

    members: Mapped[list[TeamMember]] = relationship(lazy="raise", order_by="TeamMember.position")


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"), primary_key=True)
    employee_id: Mapped[str] = mapped_column(
        ForeignKey("employees.id"), primary_key=True, index=True
    )
    position: Mapped[int]


class Delegate(Base):
    """Who takes the employee's calls when they are away, in order."""

    __tablename__ = "delegates"
    __table_args__ = (CheckConstraint("employee_id <> delegate_id", name="not_self"),)

    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    delegate_id: Mapped[str] = mapped_column(ForeignKey("employees.id"), primary_key=True)
    position: Mapped[int]


# --- presence ------------------------------------------------------------------------------


class AvailabilityEntry(Base):
    __tablename__ = "availability_entries"
    __table_args__ = (
        # A calendar event (UID + recurrence id) is one entry per employee and source.
        UniqueConstraint("employee_id", "source", "external_id"),
        CheckConstraint(_one_of("state", STATES), name="state"),
        CheckConstraint(_one_of("source", SOURCES), name="source"),
        CheckConstraint("until IS NULL OR until > starts_at", name="until_after_start"),
        Index(None, "employee_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    state: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime]
    until: Mapped[datetime | None]
    note_for_callers: Mapped[str] = mapped_column(String(200), default="")
    internal_note: Mapped[str] = mapped_column(String(1000), default="")
    source: Mapped[str] = mapped_column(String(16))
    set_by: Mapped[str] = mapped_column(String(200))  # username, "calendar:<feed>", "phone", "ami"
    created_at: Mapped[datetime]
    external_id: Mapped[str | None] = mapped_column(String(500))
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    # The presence revision of the last write to this row: caches fetch only rows newer than
    # the revision they have seen.
    revision: Mapped[int] = mapped_column(BigInteger, index=True)


class AvailabilityAudit(Base):
    """Who changed what, written in the same transaction as the change."""

    __tablename__ = "availability_audit"
    __table_args__ = (
        CheckConstraint(_one_of("action", AUDIT_ACTIONS), name="action"),
        Index(None, "employee_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("availability_entries.id"), index=True)
    employee_id: Mapped[str] = mapped_column(ForeignKey("employees.id"))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- callers -------------------------------------------------------------------------------


class Caller(Base):
    __tablename__ = "callers"
    __table_args__ = (
        CheckConstraint(
            f"preferred_channel IS NULL OR {_one_of('preferred_channel', CHANNELS)}",
            name="preferred_channel",
        ),
    )

    # Per company: a caller's consent to be greeted by name is given to one company only.
    company_id: Mapped[str] = mapped_column(String(40), primary_key=True, server_default=MAIN)
    number: Mapped[str] = mapped_column(String(32), primary_key=True)  # digits
    name: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    greet_by_name: Mapped[bool] = mapped_column(Boolean, default=False)  # the caller's consent
    preferred_channel: Mapped[str | None] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(String(254))
    notes: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]


class Contact(Base):
    """One call with a caller and how it went (the call's story keeps the details)."""

    __tablename__ = "contacts"
    __table_args__ = (
        CheckConstraint(_one_of("direction", DIRECTIONS), name="direction"),
        Index(None, "caller_number", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller_number: Mapped[str | None] = mapped_column(String(32))  # None: number withheld
    at: Mapped[datetime]
    direction: Mapped[str] = mapped_column(String(3))
    path: Mapped[str] = mapped_column(String(32))  # direct_number, menu, extension, operator…
    employee_id: Mapped[str | None] = mapped_column(ForeignKey("employees.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(64), default="")
    call_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    company_id: Mapped[str] = _company_column()


class OperatorTalk(Base):
    """An operator's phone bridged with a caller (issue 12, time per client): stored when it
    starts, closed when it ends, `done_at` when the operator marks the call's wrap-up done.
    The key is Asterisk's (call, phone, bridge), so several instances following the same
    Asterisk, or one restarted mid-call, write one row."""

    __tablename__ = "operator_talk"
    __table_args__ = (
        UniqueConstraint("call_id", "operator", "bridge_id"),
        Index(None, "operator", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[str] = _company_column()
    call_id: Mapped[str] = mapped_column(String(64))  # the caller channel's Uniqueid
    bridge_id: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(120))  # the operator's phone (device)
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]  # the operator marked the wrap-up done


# --- configuration and change detection ---------------------------------------------------


class ConfigVersion(Base):
    __tablename__ = "config_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime]
    applied_by: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(String(500))
    document: Mapped[str] = mapped_column(Text)  # the YAML exactly as applied
    company_id: Mapped[str] = _company_column()


class Revision(Base):
    """A counter per kind of data; pollers compare it to what they loaded. On PostgreSQL every
    bump is also NOTIFYed at commit (migration 0005, vaihde.db.changes)."""

    __tablename__ = "revisions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)


async def bump_revision(session: AsyncSession, name: str) -> int:
    """Increment a counter inside the caller's transaction and return the new value.

    Writers do this first: the row lock it takes serialises writers of the same kind until
    commit, so counters are handed out in commit order and check-then-write sequences (overlap
    checks) cannot interleave.
    """
    result = await session.execute(
        update(Revision)
        .where(Revision.name == name)
        .values(counter=Revision.counter + 1)
        .returning(Revision.counter)
    )
    value = result.scalar_one_or_none()
    if value is None:
        # Only if someone emptied the table: the migration seeds every name.
        session.add(Revision(name=name, counter=1))
        await session.flush()
        value = 1
    return int(value)


async def current_revisions(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Revision.name, Revision.counter))
    out = dict.fromkeys(REVISION_NAMES, 0)
    out.update({name: int(counter) for name, counter in rows})
    return out
