"""Several instances on one PostgreSQL: revision bumps are NOTIFYed, credentials have a revision
counter of their own, and a delivery being sent names the instance that claimed it.

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-10

- On PostgreSQL a trigger on `revisions` sends `NOTIFY vaihde_revisions, 'name:counter'` for every
  bump; PostgreSQL delivers it when the bumping transaction commits (vaihde.db.changes).
- `auth`: bumped when a web session ends or a user's credentials or role change, so that open
  console streams of every instance are checked again at once.
- `message_deliveries.claimed_by`: the holder id of the instance sending it (vaihde.db.once); a
  claim whose holder is gone is taken over.

Written by hand like 0001; tests/db/test_migrations.py compares the result with the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

NOTIFY_FUNCTION = """
CREATE FUNCTION vaihde_revision_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vaihde_revisions', NEW.name || ':' || NEW.counter);
    RETURN NULL;
END
$$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER revisions_notify AFTER INSERT OR UPDATE ON revisions
FOR EACH ROW EXECUTE FUNCTION vaihde_revision_notify()
"""


def upgrade() -> None:
    revisions = sa.table("revisions", sa.column("name", sa.String), sa.column("counter"))
    op.bulk_insert(revisions, [{"name": "auth", "counter": 0}])
    op.add_column("message_deliveries", sa.Column("claimed_by", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS revisions_notify ON revisions")
        op.execute("DROP FUNCTION IF EXISTS vaihde_revision_notify()")
    with op.batch_alter_table("message_deliveries") as batch:
        batch.drop_column("claimed_by")
    op.execute("DELETE FROM revisions WHERE name = 'auth'")
