"""Fixtures for the browser tests: Debian's chromium driven by Playwright (one browser per
session, a fresh 1366×768 page per test), the real vaihde service on a real sandbox Asterisk,
and users of each role. Everything runs on one session-wide event loop (the browser outlives
the tests), so test modules say `pytestmark = BROWSER`.

The Asterisk instance is this directory's own (`browser<slot>`, its own ports): tests/integration
may run in the same pytest session, and two fixtures must never share one instance's name.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))

from amiprobe import AmiProbe  # noqa: E402  (tests/integration, put on sys.path above)
from browserhelp import (  # noqa: E402
    CHROMIUM,
    OPERATOR_GROUP,
    OPERATOR_PHONE,
    PASSWORD,
    PageWatch,
    new_context,
)
from company import start_vaihde  # noqa: E402

from vaihde.auth import passwords  # noqa: E402
from vaihde.auth.store import add_user  # noqa: E402
from vaihde.sandbox import Instance, SandboxError, build  # noqa: E402

SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))


def _integration_conftest() -> Any:
    # Loaded under its own name: "conftest" is pytest's, and its fixtures must not be
    # registered twice.
    spec = importlib.util.spec_from_file_location(
        "vaihde_integration_conftest", INTEGRATION / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def browser_test_settings() -> Any:
    """The integration tests' instance settings, moved to a name and ports of their own."""
    base = _integration_conftest().sandbox_test_settings()
    offset = SLOT * 100 + 50
    return dataclasses.replace(
        base,
        name=f"browser{SLOT}",
        ami_port=15038 + offset,
        sip_port=15060 + offset,
        rtp_start=20000 + SLOT * 100,
        rtp_end=20099 + SLOT * 100,
        agi_url=f"agi://127.0.0.1:{14573 + offset}",
        endpoints=[{"name": "sipp-phone", "contact": f"sip:sipp@127.0.0.1:{15070 + offset}"}],
        # The operator group's desk phones ring and nobody picks up: callers wait on the
        # console's board until the operator answers there.
        operators=OPERATOR_GROUP,
    )


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Instance]:
    instance = Instance(browser_test_settings())
    problem = None
    try:
        build(log=lambda line: print(line, file=sys.__stderr__, flush=True))
        instance.start(replace=True, tie_to_parent=True)
    except SandboxError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"sandbox Asterisk could not be started: {problem}", pytrace=False)
    try:
        yield instance
    finally:
        instance.stop()



@pytest.fixture
def clean_channels(asterisk: Instance) -> Iterator[None]:
    yield
    asterisk.hang_up_all()


@pytest_asyncio.fixture(loop_scope="session")
async def ami(asterisk: Instance, clean_channels: None) -> AsyncIterator[AmiProbe]:
    probe = await AmiProbe.connect(asterisk.ami_port, asterisk.driver_username,
                                   asterisk.driver_secret)
    try:
        yield probe
    finally:
        await probe.close()


@pytest_asyncio.fixture(loop_scope="session")
async def vaihde(
    asterisk: Instance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Any]:
    """The service with the test company and three users: admin, operator (their phone is the
    test phone that answers) and an employee (anna); the password of each is PASSWORD."""
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    service = await start_vaihde(asterisk, tmp_path)
    try:
        hashed = await passwords.hash_password_async(PASSWORD)
        async with service.db.sessions.begin() as session:
            await add_user(session, "admin", role="admin", display_name="Ada Admin",
                           password_hash=hashed)
            await add_user(session, "olga", role="operator", display_name="Olga Operator",
                           employee_id="olga", sip_endpoint=OPERATOR_PHONE,
                           password_hash=hashed)
            await add_user(session, "anna", role="employee", employee_id="anna",
                           password_hash=hashed)
        yield service
    finally:
        await service.stop()


@pytest.fixture
def base_url(vaihde: Any) -> str:
    return f"http://127.0.0.1:{vaihde.http_port}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/setup", pytrace=False)
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Any, base_url: str) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) and page at 1366×768 on the service; page.watch
    records dialogs and script errors. A script error fails the test."""
    context = await new_context(browser, base_url)
    pg = await context.new_page()
    watch = PageWatch()
    pg.watch = watch

    async def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    pg.on("console", lambda msg: watch.console_errors.append(msg.text)
          if msg.type == "error" else None)
    try:
        yield pg
    finally:
        await context.close()
    assert not watch.errors, f"script errors on the page: {watch.errors}"
