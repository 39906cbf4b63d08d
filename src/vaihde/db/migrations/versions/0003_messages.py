"""Messages taken for employees and teams, their e-mail and SMS deliveries, callback requests.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models
(vaihde.db.message_models) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    # Always timezone-aware: timestamptz on PostgreSQL; on SQLite UTC text (models.UTCDateTime).
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.Column("recipient_kind", sa.String(8), nullable=False),
        sa.Column("recipient_id", sa.String(40), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=True),
        sa.Column("caller_name", sa.String(200), nullable=False),
        sa.Column("taken_by", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recording_path", sa.String(500), nullable=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.CheckConstraint(
            "recipient_kind IN ('employee', 'team')", name="ck_messages_recipient_kind"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'partly_sent', 'failed', 'cancelled', 'no_address')",
            name="ck_messages_status",
        ),
    )
    op.create_index(
        "ix_messages_recipient_kind_recipient_id_created_at",
        "messages",
        ["recipient_kind", "recipient_id", "created_at"],
    )
    op.create_index("ix_messages_created_at", "messages", ["created_at"])
    op.create_index("ix_messages_call_id", "messages", ["call_id"])

    op.create_table(
        "message_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=False),
        _ts("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_message_deliveries"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_deliveries_message_id_messages"
        ),
        sa.UniqueConstraint(
            "message_id",
            "channel",
            "address",
            name="uq_message_deliveries_message_id_channel_address",
        ),
        sa.CheckConstraint("channel IN ('email', 'sms')", name="ck_message_deliveries_channel"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'retrying', 'failed', 'cancelled')",
            name="ck_message_deliveries_status",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_message_deliveries_attempts"),
    )
    op.create_index(
        "ix_message_deliveries_message_id", "message_deliveries", ["message_id"]
    )
    op.create_index(
        "ix_message_deliveries_status_next_attempt_at",
        "message_deliveries",
        ["status", "next_attempt_at"],
    )

    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.Column("caller_number", sa.String(32), nullable=False),
        sa.Column("caller_name", sa.String(200), nullable=False),
        sa.Column("for_kind", sa.String(8), nullable=True),
        sa.Column("for_id", sa.String(40), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("taken_by", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("handled_by", sa.String(64), nullable=True),
        _ts("handled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_callbacks"),
        sa.CheckConstraint(
            "(for_kind IS NULL AND for_id IS NULL) OR "
            "(for_kind IN ('employee', 'team') AND for_id IS NOT NULL)",
            name="ck_callbacks_for_kind",
        ),
        sa.CheckConstraint(
            "status IN ('open', 'done', 'cancelled')", name="ck_callbacks_status"
        ),
    )
    op.create_index("ix_callbacks_status_created_at", "callbacks", ["status", "created_at"])
    op.create_index("ix_callbacks_call_id", "callbacks", ["call_id"])

    # Seeded so that bumping is a plain UPDATE (whose row lock serialises writers).
    revisions = sa.table("revisions", sa.column("name", sa.String), sa.column("counter"))
    op.bulk_insert(revisions, [{"name": "messages", "counter": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM revisions WHERE name = 'messages'")
    op.drop_index("ix_callbacks_call_id", table_name="callbacks")
    op.drop_index("ix_callbacks_status_created_at", table_name="callbacks")
    op.drop_table("callbacks")
    op.drop_index("ix_message_deliveries_status_next_attempt_at", table_name="message_deliveries")
    op.drop_index("ix_message_deliveries_message_id", table_name="message_deliveries")
    op.drop_table("message_deliveries")
    op.drop_index("ix_messages_call_id", table_name="messages")
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_messages_recipient_kind_recipient_id_created_at", table_name="messages")
    op.drop_table("messages")
