"""`vaihde messages list` and `vaihde messages callbacks` on an SQLite file: what was taken, for
whom, and how each delivery is going; bad options are one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from dbdata import DIRECTORY  # tests/db is on sys.path (no package)

from vaihde.company.load import parse_company
from vaihde.db import open_database
from vaihde.directory.store import sync_directory
from vaihde.messages import store
from vaihde.messages.commands import register
from vaihde.messages.model import CallbackDraft, MessageDraft, Recipient
from vaihde.presence.commands import register as register_db

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # 12:00 in Helsinki
COMPANY = parse_company("""
company: {name: Testi Oy}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {prompt: Valitse, options: {1: {employee: anna}}}
teams:
  sales: {name: Myynti, members: [anna, matti]}
  operators: {name: Vaihde, kind: operators, members: [asa]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], email: anna@example.fi}
  matti: {name: Matti Mäkinen, devices: [desk: PJSIP/matti]}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa]}
""")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="vaihde")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    register_db(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def url(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("VAIHDE_DB_URL", raising=False)
    u = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert run("db", "upgrade", "--db", u) == 0

    async def fill() -> None:
        db = open_database(u)
        async with db.sessions.begin() as s:
            await sync_directory(s, DIRECTORY)
        await store.take_message(
            db.sessions,
            MessageDraft(Recipient("employee", "anna"), "0401234567", caller_name="Pekka",
                         note="Soittakaa takaisin", recording_path="/var/rec/a.wav"),
            COMPANY, channels=("email",), now=T0,
        )
        await store.take_message(
            db.sessions, MessageDraft(Recipient("team", "operators"), None, taken_by="olli"),
            COMPANY, channels=("email",), now=T0 + timedelta(minutes=1),
        )
        async with db.sessions.begin() as s:
            await store.create_callback(
                s, CallbackDraft("0405550101", for_kind="employee", for_id="matti",
                                 note="Laskusta"), now=T0)
            done = await store.create_callback(s, CallbackDraft("0405550102"), now=T0)
            await store.close_callback(s, done.id, by="olli", now=T0 + timedelta(hours=1))
        await db.close()

    asyncio.run(fill())
    return u


def test_messages_list_shows_each_delivery(url, capsys):
    assert run("messages", "list", "--db", url) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # Newest first, times in Helsinki.
    assert lines[0].startswith("#2 ") and "2025-06-02 12:01  team operators  from withheld" in (
        lines[0]) and lines[0].endswith("no_address")
    assert "#1 " in out and "employee anna  from Pekka, 0401234567  taken by caller  pending " \
        "[recording]" in out
    assert "        Soittakaa takaisin" in out
    assert "        email anna@example.fi: pending, 0 attempt(s), next 2025-06-02 12:00" in out
    assert run("messages", "list", "--db", url, "--employee", "matti") == 0
    assert capsys.readouterr().out == "no messages\n"
    assert run("messages", "list", "--db", url, "--status", "no_address") == 0
    assert "#1 " not in capsys.readouterr().out


def test_callbacks_list_open_by_default(url, capsys):
    assert run("messages", "callbacks", "--db", url) == 0
    out = capsys.readouterr().out
    assert "call back 0405550101  for employee matti  open" in out
    assert "Laskusta" in out and "0405550102" not in out
    assert run("messages", "callbacks", "--db", url, "--status", "done") == 0
    assert "for anyone  done by olli 2025-06-02 13:00" in capsys.readouterr().out


def test_bad_options_are_one_line_and_status_2(url, capsys):
    assert run("messages", "list", "--db", url, "--employee", "anna", "--team", "sales") == 2
    assert capsys.readouterr().err.strip() == (
        "vaihde: messages list: give --employee or --team, not both"
    )
    assert run("messages", "list", "--db", url, "--employee", "Anna;rm") == 2
    assert "--employee: not an employee id" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("messages", "list", "--db", url, "--limit", "-1")
