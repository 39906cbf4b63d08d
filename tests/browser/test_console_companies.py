"""Roles per company on the real console (issue 12): an operator assigned to company Alfa does
not see company Beta's waiting call, while an operator of every company sees both. Two companies
from `company_files` on the real sandbox Asterisk, real callers waiting in the operators' queue,
real chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browserhelp import BROWSER, OPERATOR_PHONE, PASSWORD, login, new_context
from company import serving_companies
from test_callers_hear import call
from test_companies_live import ALFA, ALFA_NUMBER, BETA, BETA_NUMBER

from vaihde.auth import passwords
from vaihde.auth.store import add_user
from vaihde.service import Service

pytestmark = BROWSER

ALFA_CALLER, BETA_CALLER = "0401230001", "0401230002"


@pytest_asyncio.fixture(loop_scope="session")
async def centre(asterisk: Any, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> AsyncIterator[Service]:
    """One service for Alfa Oy and Beeta Ab, an operator of Alfa only and one of both."""
    async with serving_companies(asterisk, monkeypatch, tmp_path,
                                 {"alfa.yaml": ALFA, "beta.yaml": BETA}) as service:
        hashed = await passwords.hash_password_async(PASSWORD)
        async with service.db.sessions.begin() as session:
            await add_user(session, "alfa-op", role="operator", display_name="Alfa Operator",
                           sip_endpoint=OPERATOR_PHONE, password_hash=hashed,
                           companies=["alfa"])
            await add_user(session, "every-op", role="operator", display_name="Every Operator",
                           sip_endpoint=OPERATOR_PHONE, password_hash=hashed)
        yield service


async def test_an_operator_of_alfa_does_not_see_betas_waiting_call(browser, ami, centre):
    base = f"http://127.0.0.1:{centre.http_port}"
    alfa_ctx = await new_context(browser, base)
    every_ctx = await new_context(browser, base)
    try:
        alfa_page, every_page = await alfa_ctx.new_page(), await every_ctx.new_page()
        await login(alfa_page, "alfa-op")
        await login(every_page, "every-op")
        for page in (alfa_page, every_page):
            await page.locator("#conn.live").wait_for()
        # Beta's caller first: waiting in the operators' queue before Alfa's arrives.
        await call(ami, BETA_NUMBER, callerid=BETA_CALLER)
        beta_row = every_page.locator("#waiting li.call").filter(has_text=BETA_CALLER)
        await beta_row.wait_for(timeout=30_000)
        assert await beta_row.locator(".profile-head .company").text_content() == "Beeta Ab"
        await call(ami, ALFA_NUMBER, callerid=ALFA_CALLER)
        alfa_row = alfa_page.locator("#waiting li.call").filter(has_text=ALFA_CALLER)
        await alfa_row.wait_for(timeout=30_000)
        assert await alfa_row.locator(".profile-head .company").text_content() == "Alfa Oy"
        # The operator of every company has both; Alfa's operator only Alfa's, live and after
        # a reload (the board the stream starts with).
        await every_page.locator("#waiting li.call").filter(has_text=ALFA_CALLER).wait_for()
        assert await every_page.locator("#waiting li.call").count() == 2
        assert await alfa_page.locator("#waiting li.call").count() == 1
        await alfa_page.reload()
        await alfa_page.locator("#conn.live").wait_for()
        await alfa_page.locator("#waiting li.call").filter(has_text=ALFA_CALLER).wait_for()
        assert await alfa_page.locator("#waiting li.call").all_text_contents() == [
            await alfa_page.locator("#waiting li.call").first.text_content()]
        page_text = await alfa_page.locator("body").text_content() or ""
        assert BETA_CALLER not in page_text and "Beeta" not in page_text
        # Nor through the API with the page's own session: Beta's call is not on its board.
        board = await alfa_page.evaluate(
            "fetch('/api/v1/console/board').then(r => r.json())")
        numbers = [c["caller"]["number"] for c in board["waiting"]]
        assert numbers == [ALFA_CALLER]
    finally:
        await alfa_ctx.close()
        await every_ctx.close()
