"""Shared data and helpers of the database tests (a module of its own: test files import it,
never conftest, whose name other test folders share)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from vaihde.db import models as m
from vaihde.db.engine import Database
from vaihde.directory import (
    DeviceDescription,
    DirectoryDescription,
    EmployeeDescription,
    TeamDescription,
)

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # a Monday morning (12:00 in Helsinki)

DIRECTORY = DirectoryDescription(
    employees=(
        EmployeeDescription(
            id="anna",
            name="Anna Virtanen",
            extension="101",
            email="anna@example.fi",
            sms_number="+358401111111",
            languages=("fi", "en"),
            numbers=("09 123 4501",),
            devices=(
                DeviceDescription("PJSIP/anna", "desk"),
                DeviceDescription("Local/0401111111@pstn", "mobile"),
            ),
            delegates=("matti",),
        ),
        EmployeeDescription(id="matti", name="Matti Mäkinen", extension="102"),
        EmployeeDescription(
            id="asa", name="Åsa Järvinen", extension="103", numbers=("+358 9 123 4503",)
        ),
    ),
    teams=(
        TeamDescription(id="sales", name="Myynti", kind="sales", members=("anna", "matti")),
        TeamDescription(id="operators", name="Vaihde", kind="operators", members=("asa",)),
    ),
)


async def row_counts(db: Database) -> dict[str, int]:
    """Rows per table and the revision counters: equal before and after = nothing written."""
    out: dict[str, int] = {}
    async with db.sessions() as session:
        for table in m.Base.metadata.sorted_tables:
            out[table.name] = (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
        for name, counter in (await m.current_revisions(session)).items():
            out[f"revision:{name}"] = counter
    return out
