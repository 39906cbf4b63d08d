"""Titles and topics of employees and teams, for the directory search ("fishing permits" → the
person responsible).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models on
SQLite and PostgreSQL. Existing rows get "" and [] until the next `config apply` fills them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("employees", "teams")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("title", sa.String(200), nullable=False,
                                       server_default=""))
        op.add_column(table, sa.Column("topics", sa.JSON(), nullable=False,
                                       server_default="[]"))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("topics")
            batch.drop_column("title")
