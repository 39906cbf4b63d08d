"""Many companies in one service: a `companies` table, the numbers each answers, and the company
of everything that belongs to one (issue 12).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

- `companies` (id, name, created_at): an installation that already holds data becomes company
  `main`, named as its last applied company file says; a fresh database gets no company until a
  company file is applied.
- `company_numbers`: the numbers each company answers (digits, primary key: one company each),
  filled for `main` from its last applied file.
- `company_id` (default `main`) on employees, their direct numbers, teams, config versions,
  contacts, messages and callbacks; presence entries, devices, delegates and team members follow
  their employee or team.
- `callers` are per company: the key becomes (company_id, number), so a caller's consent to be
  greeted by name is given to one company only.

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models and
upgrades a 0005 database holding data on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import warnings

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

MAIN = "main"
# Tables whose rows now belong to a company (plain indexed columns, see vaihde.db.models).
OWNED = ("employees", "employee_numbers", "teams", "config_versions", "contacts", "messages",
         "callbacks")
# Any row in these means an installation in use: its data becomes company `main`.
IN_USE = ("config_versions", "employees", "teams", "callers", "contacts", "messages", "callbacks")


def _company_column() -> sa.Column[str]:
    return sa.Column("company_id", sa.String(40), nullable=False, server_default=MAIN)


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "companies",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
    )
    op.create_table(
        "company_numbers",
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("company_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_company_numbers")),
    )
    op.create_index(op.f("ix_company_numbers_company_id"), "company_numbers", ["company_id"])
    for table in OWNED:
        op.add_column(table, _company_column())
        op.create_index(op.f(f"ix_{table}_company_id"), table, ["company_id"])

    # callers: the key becomes (company_id, number).
    if bind.dialect.name == "postgresql":
        op.add_column("callers", _company_column())
        op.drop_constraint("pk_callers", "callers", type_="primary")
        op.create_primary_key("pk_callers", "callers", ["company_id", "number"])
    else:
        # SQLAlchemy warns that the copy's key differs from the reflected one: it is meant to.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            with op.batch_alter_table("callers", recreate="always") as batch:
                batch.add_column(_company_column())
                batch.create_primary_key("pk_callers", ["company_id", "number"])

    _adopt_existing(bind)


def _adopt_existing(bind: sa.engine.Connection) -> None:
    """An installation in use: its data becomes company `main`, with its numbers."""
    in_use = any(
        bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
        for table in IN_USE
    )
    if not in_use:
        return
    latest = bind.execute(
        sa.text("SELECT document FROM config_versions ORDER BY id DESC LIMIT 1")
    ).first()
    name, numbers = MAIN, []
    if latest is not None:
        try:
            doc = json.loads(latest[0])
            name = str(doc.get("company", {}).get("name") or MAIN)[:200]
            numbers = sorted({str(n).lstrip("+") for n in doc.get("numbers", {})})
        except (ValueError, AttributeError):
            pass  # a document that is not JSON: the company keeps the id as its name
    companies = sa.table("companies", sa.column("id", sa.String), sa.column("name", sa.String),
                         sa.column("created_at", sa.DateTime(timezone=True)))
    from vaihde.db.clock import aware_now

    now = aware_now(None)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as UTC without an offset (UTCDateTime)
    op.bulk_insert(companies, [{"id": MAIN, "name": name, "created_at": now}])
    company_numbers = sa.table("company_numbers", sa.column("number", sa.String),
                               sa.column("company_id", sa.String))
    if numbers:
        op.bulk_insert(company_numbers, [{"number": n, "company_id": MAIN} for n in numbers])


def downgrade() -> None:
    # Back to one company: only `main`'s callers can keep their (number) key.
    op.execute(f"DELETE FROM callers WHERE company_id <> '{MAIN}'")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_callers", "callers", type_="primary")
        op.drop_column("callers", "company_id")
        op.create_primary_key("pk_callers", "callers", ["number"])
    else:
        with op.batch_alter_table("callers", recreate="always") as batch:
            batch.drop_column("company_id")
            batch.create_primary_key("pk_callers", ["number"])
    for table in reversed(OWNED):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(op.f(f"ix_{table}_company_id"))
            batch.drop_column("company_id")
    op.drop_index(op.f("ix_company_numbers_company_id"), "company_numbers")
    op.drop_table("company_numbers")
    op.drop_table("companies")
