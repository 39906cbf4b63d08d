"""Migration 0006 on a database in use (SQLite and PostgreSQL): a single-company installation
from before it becomes company `main` — its name and numbers from the last applied company
file, every row it holds owned by `main` — and callers become per company."""

from __future__ import annotations

import json

from sqlalchemy import pool, text

from vaihde.db import make_engine, migrate

DOCUMENT = json.dumps({
    "company": {"name": "Demo Oy", "language": "fi"},
    "numbers": {"+358201234567": {"menu": "main"}, "0201234500": {"menu": "support"}},
})
T = "2027-01-05 09:00:00"
ROWS = (
    "INSERT INTO config_versions (id, applied_at, applied_by, sha256, source_name, document) "
    f"VALUES (1, '{T}', 'admin', 'x', 'demo.yaml', :doc)",
    "INSERT INTO employees (id, name, name_folded, active, updated_at, languages, title, topics) "
    f"VALUES ('anna', 'Anna', 'anna', true, '{T}', '[]', '', '[]')",
    "INSERT INTO employee_numbers (number, employee_id) VALUES ('3589123', 'anna')",
    f"INSERT INTO teams (id, name, kind, active, updated_at, title, topics) "
    f"VALUES ('sales', 'Myynti', 'team', true, '{T}', '', '[]')",
    "INSERT INTO callers (number, name, organisation, greet_by_name, notes, updated_at) "
    f"VALUES ('0401234567', 'Pekka', '', true, '', '{T}')",
    "INSERT INTO contacts (caller_number, at, direction, path, outcome, call_id, details) "
    f"VALUES ('0401234567', '{T}', 'in', 'menu', 'answered', 'c1', '{{}}')",
    "INSERT INTO messages (created_at, recipient_kind, recipient_id, caller_name, taken_by, "
    "path, note, call_id, language, status) "
    f"VALUES ('{T}', 'employee', 'anna', '', 'caller', '', '', 'c1', 'fi', 'pending')",
    "INSERT INTO callbacks (created_at, caller_number, caller_name, note, call_id, taken_by, "
    f"status) VALUES ('{T}', '0401234567', '', '', 'c2', 'caller', 'open')",
)
OWNED = ("employees", "employee_numbers", "teams", "config_versions", "contacts", "messages",
         "callbacks", "callers")


async def test_an_installation_in_use_becomes_company_main(empty_url):
    engine = make_engine(empty_url, poolclass=pool.NullPool)
    try:
        await migrate.upgrade_async(engine, "0005")
        async with engine.begin() as conn:
            for sql in ROWS:
                await conn.execute(text(sql), {"doc": DOCUMENT} if ":doc" in sql else {})
        await migrate.upgrade_async(engine)
        assert await migrate.current_async(engine) == migrate.head()
        async with engine.begin() as conn:
            companies = (await conn.execute(text("SELECT id, name FROM companies"))).all()
            numbers = (await conn.execute(
                text("SELECT number, company_id FROM company_numbers ORDER BY number"))).all()
            owners = {
                table: {r[0] for r in await conn.execute(text(f"SELECT company_id FROM {table}"))}
                for table in OWNED
            }
            # Per company now: the same caller with another company is another row, and the
            # consent given to main stays main's.
            await conn.execute(text(
                "INSERT INTO callers (company_id, number, name, organisation, greet_by_name, "
                f"notes, updated_at) VALUES ('acme', '0401234567', 'Pekka', '', false, '', '{T}')"))
            consent = dict((await conn.execute(text(
                "SELECT company_id, greet_by_name FROM callers WHERE number = '0401234567'"
            ))).all())
        assert companies == [("main", "Demo Oy")]
        assert numbers == [("0201234500", "main"), ("358201234567", "main")]
        assert owners == {key: {"main"} for key in OWNED}
        assert {k: bool(v) for k, v in consent.items()} == {"main": True, "acme": False}
    finally:
        await engine.dispose()


async def test_a_fresh_database_has_no_company_until_one_is_applied(empty_url):
    engine = make_engine(empty_url, poolclass=pool.NullPool)
    try:
        await migrate.upgrade_async(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM companies"))).scalar() == 0
    finally:
        await engine.dispose()
