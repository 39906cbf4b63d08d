"""Message dispatch: urgent messages confirmed by a reply code and escalated along an on-call
rota (urgent_dispatches, urgent_steps), and the daily message summary sent once per company and
local date (message_summaries).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models on
SQLite and PostgreSQL. New tables only: existing rows are untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    # Always timezone-aware: timestamptz on PostgreSQL; on SQLite UTC text (models.UTCDateTime).
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "urgent_dispatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.Column("company", sa.String(40), nullable=False),
        sa.Column("rota", sa.String(40), nullable=False),
        sa.Column("confirm_minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("confirmed_by", sa.String(40), nullable=True),
        _ts("confirmed_at", nullable=True),
        _ts("exhausted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_urgent_dispatches"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name="fk_urgent_dispatches_message_id_messages"),
        sa.UniqueConstraint("message_id", name="uq_urgent_dispatches_message_id"),
        sa.CheckConstraint("status IN ('open', 'confirmed', 'exhausted')",
                           name="ck_urgent_dispatches_status"),
        sa.CheckConstraint("confirm_minutes > 0", name="ck_urgent_dispatches_confirm_minutes"),
    )
    op.create_index("ix_urgent_dispatches_status_due_at", "urgent_dispatches",
                    ["status", "due_at"])

    op.create_table(
        "urgent_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.Column("address", sa.String(32), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=True),
        sa.Column("claimed_by", sa.BigInteger(), nullable=True),
        _ts("sent_at", nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_urgent_steps"),
        sa.ForeignKeyConstraint(["dispatch_id"], ["urgent_dispatches.id"],
                                name="fk_urgent_steps_dispatch_id_urgent_dispatches"),
        sa.UniqueConstraint("dispatch_id", "position",
                            name="uq_urgent_steps_dispatch_id_position"),
        sa.UniqueConstraint("dispatch_id", "employee_id",
                            name="uq_urgent_steps_dispatch_id_employee_id"),
        sa.UniqueConstraint("code", name="uq_urgent_steps_code"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'retrying', 'failed', 'skipped')",
            name="ck_urgent_steps_status"),
        sa.CheckConstraint("attempts >= 0", name="ck_urgent_steps_attempts"),
    )
    op.create_index("ix_urgent_steps_dispatch_id", "urgent_steps", ["dispatch_id"])
    op.create_index("ix_urgent_steps_status_next_attempt_at", "urgent_steps",
                    ["status", "next_attempt_at"])

    op.create_table(
        "message_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company", sa.String(40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=True),
        sa.Column("claimed_by", sa.BigInteger(), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        _ts("sent_at", nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_summaries"),
        sa.UniqueConstraint("company", "day", name="uq_message_summaries_company_day"),
        sa.CheckConstraint("status IN ('sending', 'sent', 'retrying', 'failed', 'empty')",
                           name="ck_message_summaries_status"),
    )


def downgrade() -> None:
    op.drop_table("message_summaries")
    op.drop_index("ix_urgent_steps_status_next_attempt_at", table_name="urgent_steps")
    op.drop_index("ix_urgent_steps_dispatch_id", table_name="urgent_steps")
    op.drop_table("urgent_steps")
    op.drop_index("ix_urgent_dispatches_status_due_at", table_name="urgent_dispatches")
    op.drop_table("urgent_dispatches")
