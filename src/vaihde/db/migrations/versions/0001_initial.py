"""Initial schema: directory, availability with audit trail, callers and contacts, applied
configuration versions, revision counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written by hand (checked against autogenerate; tests/db/test_migrations.py compares the result
with the models on SQLite and PostgreSQL). Values are spelled out here rather than imported from
vaihde.db.models: a migration must keep meaning what it meant when it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    # Always timezone-aware: timestamptz on PostgreSQL; on SQLite UTC text (models.UTCDateTime).
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # --- directory: rewritten from configuration; employees and teams are deactivated, never
    # deleted, so that history keeps its owner.
    op.create_table(
        "employees",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_folded", sa.String(200), nullable=False),
        sa.Column("extension", sa.String(20), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("sms_number", sa.String(32), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_employees"),
        sa.UniqueConstraint("extension", name="uq_employees_extension"),
    )
    op.create_index("ix_employees_name_folded", "employees", ["name_folded"])

    op.create_table(
        "employee_numbers",
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_employee_numbers"),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_employee_numbers_employee_id_employees"
        ),
    )
    op.create_index("ix_employee_numbers_employee_id", "employee_numbers", ["employee_id"])

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dial", sa.String(120), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_devices_employee_id_employees"
        ),
        sa.UniqueConstraint("employee_id", "position", name="uq_devices_employee_id_position"),
        sa.CheckConstraint("kind IN ('desk', 'mobile', 'softphone')", name="ck_devices_kind"),
    )

    op.create_table(
        "teams",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
    )

    op.create_table(
        "team_members",
        sa.Column("team_id", sa.String(40), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "employee_id", name="pk_team_members"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name="fk_team_members_team_id_teams"),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_team_members_employee_id_employees"
        ),
    )
    op.create_index("ix_team_members_employee_id", "team_members", ["employee_id"])

    op.create_table(
        "delegates",
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.Column("delegate_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("employee_id", "delegate_id", name="pk_delegates"),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_delegates_employee_id_employees"
        ),
        sa.ForeignKeyConstraint(
            ["delegate_id"], ["employees.id"], name="fk_delegates_delegate_id_employees"
        ),
        sa.CheckConstraint("employee_id <> delegate_id", name="ck_delegates_not_self"),
    )

    # --- availability: every statement is a row; cancelling sets cancelled_at, nothing is
    # deleted. `revision` lets caches fetch only rows written since they last looked.
    op.create_table(
        "availability_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        _ts("starts_at"),
        _ts("until", nullable=True),
        sa.Column("note_for_callers", sa.String(200), nullable=False),
        sa.Column("internal_note", sa.String(1000), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.Column("external_id", sa.String(500), nullable=True),
        _ts("cancelled_at", nullable=True),
        sa.Column("cancelled_by", sa.String(200), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_availability_entries"),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_availability_entries_employee_id_employees"
        ),
        # NULL external ids (manual entries) never collide: NULLs are distinct in both databases.
        sa.UniqueConstraint(
            "employee_id",
            "source",
            "external_id",
            name="uq_availability_entries_employee_id_source_external_id",
        ),
        sa.CheckConstraint(
            "state IN ('available', 'on_call', 'busy', 'meeting', 'video_conference', 'away', "
            "'vacation', 'sick', 'off_work')",
            name="ck_availability_entries_state",
        ),
        sa.CheckConstraint(
            "source IN ('manual', 'operator', 'phone', 'calendar', 'device')",
            name="ck_availability_entries_source",
        ),
        sa.CheckConstraint(
            "until IS NULL OR until > starts_at", name="ck_availability_entries_until_after_start"
        ),
    )
    op.create_index(
        "ix_availability_entries_employee_id_starts_at",
        "availability_entries",
        ["employee_id", "starts_at"],
    )
    op.create_index("ix_availability_entries_revision", "availability_entries", ["revision"])

    op.create_table(
        "availability_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _ts("at"),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_availability_audit"),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["availability_entries.id"],
            name="fk_availability_audit_entry_id_availability_entries",
        ),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_availability_audit_employee_id_employees"
        ),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'cancelled')", name="ck_availability_audit_action"
        ),
    )
    op.create_index("ix_availability_audit_entry_id", "availability_audit", ["entry_id"])
    op.create_index(
        "ix_availability_audit_employee_id_at", "availability_audit", ["employee_id", "at"]
    )

    # --- callers and contacts
    op.create_table(
        "callers",
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("greet_by_name", sa.Boolean(), nullable=False),
        sa.Column("preferred_channel", sa.String(8), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("number", name="pk_callers"),
        sa.CheckConstraint(
            "preferred_channel IS NULL OR preferred_channel IN ('phone', 'email', 'sms')",
            name="ck_callers_preferred_channel",
        ),
    )

    # No foreign key to callers: contacts are logged for numbers nobody described (and for
    # withheld numbers, NULL).
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=True),
        _ts("at"),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("path", sa.String(32), nullable=False),
        sa.Column("employee_id", sa.String(40), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.ForeignKeyConstraint(
            ["employee_id"], ["employees.id"], name="fk_contacts_employee_id_employees"
        ),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_contacts_direction"),
    )
    op.create_index("ix_contacts_caller_number_at", "contacts", ["caller_number", "at"])
    op.create_index("ix_contacts_employee_id", "contacts", ["employee_id"])
    op.create_index("ix_contacts_call_id", "contacts", ["call_id"])

    # --- configuration history and change counters
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("applied_at"),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source_name", sa.String(500), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_versions"),
    )

    revisions = op.create_table(
        "revisions",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_revisions"),
    )
    # Seeded so that bumping is a plain UPDATE (whose row lock serialises writers).
    op.bulk_insert(
        revisions,
        [{"name": n, "counter": 0} for n in ("presence", "directory", "config", "callers")],
    )


def downgrade() -> None:
    for index, table in (
        ("ix_contacts_call_id", "contacts"),
        ("ix_contacts_employee_id", "contacts"),
        ("ix_contacts_caller_number_at", "contacts"),
        ("ix_availability_audit_employee_id_at", "availability_audit"),
        ("ix_availability_audit_entry_id", "availability_audit"),
        ("ix_availability_entries_revision", "availability_entries"),
        ("ix_availability_entries_employee_id_starts_at", "availability_entries"),
        ("ix_team_members_employee_id", "team_members"),
        ("ix_employee_numbers_employee_id", "employee_numbers"),
        ("ix_employees_name_folded", "employees"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "revisions",
        "config_versions",
        "contacts",
        "callers",
        "availability_audit",
        "availability_entries",
        "delegates",
        "team_members",
        "teams",
        "devices",
        "employee_numbers",
        "employees",
    ):
        op.drop_table(table)
