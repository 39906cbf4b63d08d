"""Time per client (issue 12): `operator_talk`, one row per operator's phone bridged with a
caller, for the monthly usage report (calls, talk plus wrap-up, messages taken).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "operator_talk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.String(40), nullable=False, server_default="main"),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("bridge_id", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_talk")),
        sa.UniqueConstraint("call_id", "operator", "bridge_id",
                            name=op.f("uq_operator_talk_call_id_operator_bridge_id")),
    )
    op.create_index(op.f("ix_operator_talk_company_id"), "operator_talk", ["company_id"])
    op.create_index(op.f("ix_operator_talk_started_at"), "operator_talk", ["started_at"])
    op.create_index(op.f("ix_operator_talk_operator_started_at"), "operator_talk",
                    ["operator", "started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_operator_talk_operator_started_at"), "operator_talk")
    op.drop_index(op.f("ix_operator_talk_started_at"), "operator_talk")
    op.drop_index(op.f("ix_operator_talk_company_id"), "operator_talk")
    op.drop_table("operator_talk")
