"""`vaihde presence …` and `vaihde db …` end to end on an SQLite file (the commands run their own
event loop, so these tests are synchronous)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dbdata import DIRECTORY  # tests/db is on sys.path (no package)

from vaihde.db import open_database
from vaihde.directory.store import sync_directory
from vaihde.presence.commands import parse_when, register
from vaihde.presence.model import PresenceError

HKI = ZoneInfo("Europe/Helsinki")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="vaihde")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def url(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("VAIHDE_DB_URL", raising=False)
    u = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert run("db", "upgrade", "--db", u) == 0

    async def people() -> None:
        db = open_database(u)
        async with db.sessions.begin() as s:
            await sync_directory(s, DIRECTORY)
        await db.close()

    asyncio.run(people())
    return u


def test_db_upgrade_and_current(tmp_path, capsys):
    u = f"sqlite:///{tmp_path / 'new.db'}"
    assert run("db", "current", "--db", u) == 1
    assert run("db", "upgrade", "--db", u) == 0
    from vaihde.db import migrate

    head = migrate.head()  # the newest migration, whichever it is
    assert f"upgraded empty database → {head}" in capsys.readouterr().out
    assert run("db", "upgrade", "--db", u) == 0
    assert f"already at {head}" in capsys.readouterr().out
    assert run("db", "current", "--db", u) == 0


def test_default_url_comes_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAIHDE_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert run("db", "upgrade") == 0
    assert "env.db" in capsys.readouterr().out


def test_set_show_history_cancel(url, capsys):
    assert (
        run(
            "presence",
            "set",
            "anna",
            "meeting",
            "--until",
            "+90m",
            "--note",
            "Palaverissa",
            "--by",
            "anna",
            "--db",
            url,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("anna: #1 meeting (manual, anna)") and "now: meeting" in out
    assert run("presence", "show", "--db", url) == 0
    listing = capsys.readouterr().out
    assert "Anna Virtanen" in listing and "meeting until" in listing and "Palaverissa" in listing
    assert "Matti Mäkinen" in listing
    assert run("presence", "show", "anna", "--db", url) == 0
    detail = capsys.readouterr().out
    assert "why:" in detail and "for callers:  Palaverissa" in detail
    assert run("presence", "cancel", "1", "--by", "op", "--db", url) == 0
    assert "cancelled #1" in capsys.readouterr().out
    assert run("presence", "history", "anna", "--audit", "--db", url) == 0
    history = capsys.readouterr().out
    assert "[cancelled" in history and "created by anna" in history


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("set", "anna", "lunch"), "presence set: state: unknown state 'lunch'"),
        (("set", "nobody", "busy"), "presence set: employee: no employee 'nobody'"),
        (("set", "anna", "busy", "--until", "2020-01-01"), "until: is already in the past"),
        (("set", "anna", "busy", "--until", "soon"), "until: not a time: 'soon'"),
        (("set", "anna", "busy", "--until", "25:00"), "until: not a time of day"),
        (("set", "anna", "busy", "--tz", "Mars/Base"), "--tz: unknown time zone"),
        (("set", "anna", "busy", "--note", "x" * 201), "note_for_callers: is 201 characters"),
        (("show", "nobody"), "presence show: no employee 'nobody'"),
        (("cancel", "99"), "presence cancel: entry: no entry #99"),
    ],
)
def test_errors_are_one_line_and_exit_2(url, capsys, argv, message):
    assert run("presence", *argv, "--db", url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vaihde: ") and message in err, err


def test_unmigrated_or_unreachable_database(tmp_path, capsys):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run("presence", "show", "--db", empty) == 2
    assert "no database at " in capsys.readouterr().err
    assert not (tmp_path / "empty.db").exists()  # a read does not create one
    (tmp_path / "blank.db").touch()
    assert run("presence", "show", "--db", f"sqlite:///{tmp_path / 'blank.db'}") == 2
    assert "has no vaihde tables yet: run `vaihde db upgrade`" in capsys.readouterr().err
    assert run("presence", "show", "--db", "mysql://x/y") == 2
    assert "unsupported database driver 'mysql'" in capsys.readouterr().err
    dead = "postgresql+asyncpg://nobody:secret@127.0.0.1:1/none"
    assert run("presence", "show", "--db", dead) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "secret" not in err


NOW = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)  # 18:00 in Helsinki


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("+90m", {}, NOW + timedelta(minutes=90)),
        ("+2h", {}, NOW + timedelta(hours=2)),
        ("+1d", {}, NOW + timedelta(days=1)),
        ("+1h30m", {}, NOW + timedelta(minutes=90)),
        ("19:30", {}, datetime(2025, 6, 2, 19, 30, tzinfo=HKI)),
        ("08:00", {}, datetime(2025, 6, 2, 8, 0, tzinfo=HKI)),  # --from: earlier today
        ("08:00", {"roll_forward": True}, datetime(2025, 6, 3, 8, 0, tzinfo=HKI)),  # --until
        ("2025-06-09", {}, datetime(2025, 6, 9, 0, 0, tzinfo=HKI)),
        ("2025-06-09T14:00", {}, datetime(2025, 6, 9, 14, 0, tzinfo=HKI)),
        ("2025-06-09 14:00+00:00", {}, datetime(2025, 6, 9, 14, 0, tzinfo=UTC)),
        ("+1h", {"base": NOW + timedelta(days=2)}, NOW + timedelta(days=2, hours=1)),
    ],
)
def test_parse_when(text, kwargs, expected):
    got = parse_when(text, field="until", now=NOW, tz=HKI, **kwargs)
    assert got == expected and got.tzinfo is not None


def test_parse_when_refuses_nonsense():
    for text in ("tomorrow", "+", "24:00", "2025-13-01"):
        with pytest.raises(PresenceError):
            parse_when(text, field="until", now=NOW, tz=HKI)


def test_commands_use_the_settings_files_database(tmp_path, monkeypatch, capsys):
    """`vaihde presence|user|db … --settings FILE` reach the database the service uses."""
    from vaihde.cli import main

    monkeypatch.delenv("VAIHDE_DB_URL", raising=False)
    monkeypatch.delenv("VAIHDE_CONFIG", raising=False)
    settings = tmp_path / "settings.yaml"
    settings.write_text(f'database: {{url: "sqlite:///{tmp_path / "service.db"}"}}\n')
    assert main(["db", "upgrade", "--settings", str(settings)]) == 0
    assert "service.db" in capsys.readouterr().out
    assert (tmp_path / "service.db").exists()
