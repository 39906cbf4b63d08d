"""The console page with several Asterisks: when the service loses one of them, the page names
that one (its calls leave the board, the others' stay), and it recovers by itself."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browserhelp import BROWSER, OPERATOR_GROUP, OPERATOR_PHONE, PASSWORD, login, new_context
from test_first_call import call  # tests/integration: a simulated caller (AMI Originate)

from vaihde.auth import passwords
from vaihde.auth.store import add_user
from vaihde.config.settings import loads
from vaihde.sandbox import Instance, InstanceSettings
from vaihde.service import Service

pytestmark = BROWSER

SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
TEST_DIALPLAN = Path(__file__).resolve().parents[1] / "asterisk" / "vaihde-test.conf"


@pytest.fixture(scope="module")
def asterisk_b(asterisk: Instance) -> Iterator[Instance]:
    """A second Asterisk beside the browser tests' own (ports of the slot that nothing else
    takes), FastAGI to the same service."""
    instance = Instance(InstanceSettings(
        name=f"browser{SLOT}b", ami_port=15092 + SLOT * 100, sip_port=15094 + SLOT * 100,
        rtp_start=34000 + SLOT * 100, rtp_end=34099 + SLOT * 100,
        driver_secret=secrets.token_urlsafe(16), agi_url=asterisk.settings.agi_url,
        agi_secret=asterisk.settings.agi_secret, operators=OPERATOR_GROUP,
        extra_dialplan=[str(TEST_DIALPLAN)],
    ))
    instance.start(replace=True, tie_to_parent=True)
    try:
        yield instance
    finally:
        instance.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def two(asterisk: Instance, asterisk_b: Instance, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> AsyncIterator[Service]:
    from company import COMPANY

    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "company.yaml").write_text(COMPANY)

    def entry(ast: Instance) -> str:
        return (f"    - {{name: vaihde-{ast.name}, port: {ast.ami_port}, "
                f"secret: {json.dumps(ast.ami_secret)}}}")

    settings = loads("\n".join([
        "service:",
        f"  fastagi: {{host: 127.0.0.1, port: {asterisk.agi_port}, "
        f"secret: {asterisk.settings.agi_secret}}}",
        "  http: {host: 127.0.0.1, port: 0}",
        "  asterisks:", entry(asterisk), entry(asterisk_b),
        f"database: {{url: {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/vaihde.db')}}}",
        "company_file: company.yaml",
        f"prompts: {{dir: {json.dumps(str(asterisk.sounds_dir))}, "
        f"asterisk_dir: {json.dumps(asterisk.sounds_dir_in_asterisk)}}}",
        "guard: {mode: 'off'}", ""]), str(tmp_path / "settings.yaml"))
    service = Service(settings)
    await service.start()
    try:
        assert service.db is not None
        async with service.db.sessions.begin() as session:
            await add_user(session, "olga", role="operator", display_name="Olga Operator",
                           employee_id="olga", sip_endpoint=OPERATOR_PHONE,
                           password_hash=await passwords.hash_password_async(PASSWORD))
        yield service
    finally:
        await service.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def cluster_page(browser: Any, two: Service) -> AsyncIterator[Any]:
    context = await new_context(browser, f"http://127.0.0.1:{two.http_port}")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"script errors on the page: {errors}"


async def test_the_page_names_the_asterisk_it_lost_and_recovers(
        cluster_page, asterisk, asterisk_b, ami, two):
    page = cluster_page
    await login(page, "olga")
    await page.locator("#conn.live").wait_for(timeout=20_000)
    await call(ami, "0", callerid="0401110031")  # a caller on the first Asterisk
    row = page.locator("#waiting li.call").filter(has_text="0401110031")
    await row.wait_for(timeout=30_000)
    assert await row.locator(".asterisk").text_content() == f"vaihde-{asterisk.name}"
    session = two.links[1].client._session  # private on purpose: cut the link to the second
    assert session is not None
    session.abort("test: AMI link to the second Asterisk cut")
    banner = page.locator("#banner")
    await banner.filter(has_text=f"lost its connection to Asterisk vaihde-{asterisk_b.name}"
                        ).wait_for()
    assert await page.locator("#conn").text_content() == (
        f"Asterisk vaihde-{asterisk_b.name} link down")
    assert await row.is_visible()  # the first Asterisk's caller is still there
    await banner.wait_for(state="hidden", timeout=20_000)
    await page.locator("#conn.live").wait_for()
