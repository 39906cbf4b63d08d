"""`vaihde user …` and `vaihde token …` end to end, on SQLite and PostgreSQL (the commands run
their own event loop, so these tests are synchronous)."""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil

import pytest
from sqlalchemy import text

from vaihde.auth import store
from vaihde.auth.commands import register
from vaihde.db import open_database
from vaihde.directory import DirectoryDescription, EmployeeDescription
from vaihde.directory.store import sync_directory

PEOPLE = DirectoryDescription(
    employees=(
        EmployeeDescription(id="anna", name="Anna Virtanen"),
        EmployeeDescription(id="asa", name="Åsa Järvinen"),
    )
)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="vaihde")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


async def _prepare(url: str, empty: bool) -> None:
    db = open_database(url)
    try:
        if empty:
            from vaihde_tests_db_conftest import _empty  # loaded by tests/api/conftest.py

            await _empty(db)
        async with db.sessions.begin() as session:
            await sync_directory(session, PEOPLE)
    finally:
        await db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("VAIHDE_DB_URL", raising=False)
    if request.param == "sqlite":
        path = tmp_path / "cli.db"
        shutil.copyfile(request.getfixturevalue("api_sqlite_template"), path)
        u = f"sqlite+aiosqlite:///{path}"
    else:
        u = request.getfixturevalue("api_pg_url")
    asyncio.run(_prepare(u, empty=request.param == "postgresql"))
    return u


def stdin(monkeypatch, content: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(content))


def query(url: str, sql: str) -> list:
    async def go() -> list:
        db = open_database(url)
        try:
            async with db.sessions() as session:
                return list((await session.execute(text(sql))).all())
        finally:
            await db.close()

    return asyncio.run(go())


def test_add_list_passwd_disable(url, monkeypatch, capsys):
    stdin(monkeypatch, "correct horse battery\n")
    assert run("user", "add", "olli", "--role", "operator", "--employee", "asa",
               "--sip-endpoint", "PJSIP/operator1", "--display-name", "Olli O",
               "--password-stdin", "--db", url) == 0
    assert "added olli: operator, employee asa, with a password" in capsys.readouterr().out
    stdin(monkeypatch, "")  # not a terminal, no --password-stdin: no password
    assert run("user", "add", "robot", "--role", "admin", "--db", url) == 0
    assert "without a password (tokens only)" in capsys.readouterr().out

    [(stored,)] = query(url, "SELECT password_hash FROM users WHERE username = 'olli'")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored

    assert run("user", "list", "--db", url) == 0
    out = capsys.readouterr().out
    assert "olli" in out and "PJSIP/operator1" in out and "robot" in out

    stdin(monkeypatch, "another good password\n")
    assert run("user", "passwd", "olli", "--password-stdin", "--db", url) == 0
    [(changed,)] = query(url, "SELECT password_hash FROM users WHERE username = 'olli'")
    assert changed != stored

    assert run("user", "disable", "olli", "--db", url) == 0
    assert "disabled" in capsys.readouterr().out
    [(active,)] = query(url, "SELECT active FROM users WHERE username = 'olli'")
    assert not active
    assert run("user", "enable", "olli", "--db", url) == 0


def test_tokens_are_printed_once_and_stored_hashed(url, monkeypatch, capsys):
    stdin(monkeypatch, "")
    assert run("user", "add", "anna", "--role", "employee", "--employee", "anna",
               "--db", url) == 0
    capsys.readouterr()
    assert run("token", "create", "anna", "--label", "intranet", "--expires-days", "30",
               "--db", url) == 0
    captured = capsys.readouterr()
    secret = captured.out.strip()
    assert secret.startswith("vaihde_") and "\n" not in secret
    assert "shown only this once" in captured.err
    [(digest, label)] = query(url, "SELECT token_sha256, label FROM api_tokens")
    assert digest == store.digest(secret) and label == "intranet"

    assert run("token", "list", "--db", url) == 0
    listed = capsys.readouterr().out
    assert "anna" in listed and "active" in listed and "intranet" in listed
    assert secret not in listed

    [(token_id,)] = query(url, "SELECT id FROM api_tokens")
    assert run("token", "revoke", str(token_id), "--db", url) == 0
    assert "revoked" in capsys.readouterr().out
    assert run("token", "list", "anna", "--db", url) == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("user", "add", "x", "--role", "employee", "--employee", "nobody"),
         "employee_id: no employee 'nobody' in the directory"),
        (("user", "add", "x", "--role", "operator", "--sip-endpoint", "PJSIP/a&PJSIP/b"),
         "sip_endpoint:"),
        (("user", "add", "bad name", "--role", "admin"), "username: must be 1-64"),
        (("user", "passwd", "ghost", "--password-stdin"), "username: no user 'ghost'"),
        (("user", "disable", "ghost"), "no user 'ghost'"),
        (("token", "create", "ghost"), "no user 'ghost'"),
        (("token", "create", "anna", "--expires-days", "0"), "--expires-days"),
        (("token", "revoke", "12345"), "no token #12345"),
    ],
)
def test_errors_are_one_line_and_exit_2(url, monkeypatch, capsys, argv, message):
    stdin(monkeypatch, "")
    assert run("user", "add", "anna", "--role", "employee", "--db", url) == 0
    capsys.readouterr()
    stdin(monkeypatch, "correct horse battery\n")
    assert run(*argv, "--db", url) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_short_password_is_refused(url, monkeypatch, capsys):
    stdin(monkeypatch, "short\n")
    assert run("user", "add", "anna", "--role", "employee", "--password-stdin",
               "--db", url) == 2
    assert "password: is too short" in capsys.readouterr().err
    assert query(url, "SELECT count(*) FROM users") == [(0,)]


def test_users_act_for_the_companies_given_and_every_company_without_any(url, monkeypatch,
                                                                         capsys):
    async def companies() -> None:
        from vaihde.directory.store import ensure_company

        db = open_database(url)
        try:
            async with db.sessions.begin() as session:
                await ensure_company(session, "alfa", "Alfa Oy")
                await ensure_company(session, "beta", "Beta Oy")
        finally:
            await db.close()

    asyncio.run(companies())
    stdin(monkeypatch, "")
    assert run("user", "add", "olga", "--role", "operator", "--company", "alfa",
               "--company", "beta", "--db", url) == 0
    assert "companies alfa, beta" in capsys.readouterr().out
    assert run("user", "add", "root", "--role", "admin", "--db", url) == 0
    assert "every company" in capsys.readouterr().out
    assert query(url, "SELECT u.username, c.company_id FROM user_companies c JOIN users u "
                 "ON u.id = c.user_id ORDER BY 2") == [("olga", "alfa"), ("olga", "beta")]
    assert run("user", "companies", "olga", "beta", "--db", url) == 0
    assert capsys.readouterr().out.strip() == "olga: companies beta"
    assert run("user", "list", "--db", url) == 0
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()}
    assert rows["olga"] == "beta" and rows["root"] == "*"
    # A company that does not exist: refused, nothing changed.
    assert run("user", "companies", "olga", "gamma", "--db", url) == 2
    assert "no company 'gamma'" in capsys.readouterr().err
    assert run("user", "companies", "olga", "--db", url) == 0
    assert capsys.readouterr().out.strip() == "olga: every company"
