"""What the browser tests share besides fixtures: the marks, the users' password, logging in
through the form, and what a page did (dialogs, script errors).
"""

from __future__ import annotations

from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# One event loop for the whole session (the browser outlives each test); Asterisk is real.
BROWSER = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.asterisk]
PASSWORD = "correct horse battery"
OPERATOR_PHONE = "Local/operator@vaihde-test-phones"  # the console operator's own phone
OPERATOR_GROUP = "Local/bob@vaihde-test-phones"  # where [vaihde-operator] rings (never answers)


async def new_context(browser: Any, base_url: str) -> Any:
    """A fresh browser context as an operator's: a 1366×768 screen in the company's timezone
    (the test company's; the page shows times in the browser's zone)."""
    context = await browser.new_context(viewport={"width": 1366, "height": 768},
                                        base_url=base_url, timezone_id="Europe/Helsinki",
                                        locale="en-GB")
    context.set_default_timeout(10_000)
    return context


class PageWatch:
    """What a page did that a test may assert about: dialogs (alert() etc.), script errors."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []



async def login(page: Any, username: str, password: str = PASSWORD, path: str = "/login") -> None:
    """Log in through the login form (and wait until the page it leads to has loaded)."""
    await page.goto(path)
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("#login-button")
