"""Roles per company: the companies each user's role applies to (issue 12).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

`user_companies` (user_id, company_id): a user with no row here acts for every company (what
every existing user becomes, so a single-company site changes nothing); with rows, only for
those companies. No foreign key to `companies` (like the company_id columns of 0006); the
users' code checks the company exists.

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
# The integrator re-points this at the newest migration before it (0007 on main).
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "user_companies",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "company_id", name="pk_user_companies"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name="fk_user_companies_user_id_users"),
    )
    op.create_index("ix_user_companies_company_id", "user_companies", ["company_id"])


def downgrade() -> None:
    op.drop_index("ix_user_companies_company_id", "user_companies")
    op.drop_table("user_companies")
