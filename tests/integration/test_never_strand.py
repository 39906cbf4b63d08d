"""Never strand a caller: with the database gone in the middle of the day, callers still reach
the employee they choose (routing reads memory, not the database) and an employee's feature code
gets a clear "sorry" instead of silence."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from company import PHONES, start_vaihde
from test_feature_codes_live import dial_code, played
from test_first_call import assert_bridged_with, call, phones_dialled

REPO = Path(__file__).resolve().parents[2]
SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
PG_ENV = {**os.environ, "VAIHDE_PG_PORT": str(15452 + 100 * SLOT)}
PG_NAME = f"strand{SLOT}"


def postgres(action: str) -> str:
    result = subprocess.run(
        [str(REPO / "scripts" / "postgres"), "--name", PG_NAME, action],
        env=PG_ENV, capture_output=True, text=True, timeout=120,
    )
    if result.returncode not in (0, 3):
        raise AssertionError(f"scripts/postgres {action}: {result.stderr}")
    return result.stdout.strip()


@pytest.fixture
async def vaihde_on_postgres(asterisk, monkeypatch, tmp_path):
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_PROMPTS_DIR", "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    postgres("start")
    # A database of its own, so earlier runs leave nothing behind.
    url = postgres("url").replace("vaihde_test", f"strand_{os.getpid()}")
    import asyncpg

    admin = await asyncpg.connect(postgres("url").replace("postgresql+asyncpg://", "postgres://"))
    await admin.execute(f"DROP DATABASE IF EXISTS strand_{os.getpid()}")
    await admin.execute(f"CREATE DATABASE strand_{os.getpid()}")
    await admin.close()
    monkeypatch.setenv("VAIHDE_DB_URL", url)
    service = await start_vaihde(asterisk, tmp_path)
    try:
        yield service
    finally:
        await service.stop()
        postgres("stop")


async def test_database_down_callers_still_reach_people(asterisk, ami, vaihde_on_postgres):
    vaihde = vaihde_on_postgres
    postgres("stop")
    await call(ami, "1")
    await assert_bridged_with(ami, f"Local/anna@{PHONES}")
    assert phones_dialled(ami) == [f"Local/anna@{PHONES}"]
    # The employee's own phone gets a clear refusal, not silence, while the database is away.
    await dial_code(ami, "*7177")  # a code no other test dials, so the log line is this call's
    await played(asterisk, "*7177@vaihde-test-anna-phone", "im-sorry.gsm")
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{vaihde.http_port}/health"
    ) as resp:
        assert resp.status == 200  # FastAGI still serves: the service is up
