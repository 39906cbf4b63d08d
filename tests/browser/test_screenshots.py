"""The main views at 1366×768 with real calls from the sandbox Asterisk on the board: the login,
the console (waiting, active and bounced calls, the directory), and the admin editor's check and
diff. The test checks that each view fits the screen without scrolling the page; with
VAIHDE_SCREENSHOTS=1 (./scripts/screenshots) it also writes them to docs/screenshots/."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from browserhelp import BROWSER, login, new_context
from company import COMPANY
from test_console_calls import api, choose
from test_first_call import call

from vaihde.presence.store import set_availability

pytestmark = BROWSER

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def shoot(page: Any, folder: Path, name: str) -> None:
    size = await page.evaluate("""() => ({w: document.documentElement.scrollWidth,
                                          h: document.documentElement.scrollHeight})""")
    assert size["w"] <= 1366 and size["h"] <= 768, (name, size)
    await page.wait_for_timeout(150)  # let a ticking second and focus rings settle
    await page.screenshot(path=str(folder / name))


async def test_main_views_fit_the_screen(page, browser, base_url, ami, vaihde, tmp_path):
    folder = DOCS if os.environ.get("VAIHDE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    vaihde.settings = replace(vaihde.settings, console_bounce_s=5)

    await page.goto("/login")
    await page.fill("#username", "olga")
    await shoot(page, folder, "login.png")

    # Bob is in a meeting; a known caller asks for him and comes to the operators.
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    async with vaihde.db.sessions() as session, session.begin():
        await set_availability(session, "bob", "meeting", source="operator", set_by="olga",
                               until=until, note_for_callers="Back after the board meeting",
                               internal_note="Room 4, urgent matters by SMS")
    await vaihde.presence.invalidate("bob")
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    await api(page, "PUT", "/callers/0401234567",
              {"name": "Matti Mäkinen", "organisation": "Rakennus Mäkinen Oy"})

    # One call answered by the operator and transferred to Carl, whose phone is busy: it
    # bounces back to her, marked.
    await call(ami, "0", callerid='"Liisa K" <0405550123>')
    await page.locator("#waiting li.call").filter(has_text="0405550123").wait_for(
        timeout=30_000)
    await page.keyboard.press("a")
    await page.locator("#active li.call.selected").filter(has_text="0405550123").wait_for()
    await choose(page, "carl", "Carl Busy")
    await page.keyboard.press("t")
    await page.locator("li.call.bounced").filter(has_text="0405550123").wait_for(
        timeout=30_000)

    # Callers waiting: one who tried Bob (in a meeting), one who tried Carl (busy), one who
    # chose the operator.
    await call(ami, "2", callerid='"MAKINEN MATTI" <0401234567>')
    await call(ami, "3", callerid="0409876543")
    await call(ami, "0", callerid='"Oy Asiakas Ab" <0207654321>')
    for number in ("0401234567", "0409876543", "0207654321"):
        await page.locator("#waiting li.call").filter(has_text=number).wait_for(timeout=40_000)
    await page.locator("#waiting li.call").filter(has_text="0401234567").click()
    await page.keyboard.press("ArrowUp")
    await choose(page, "bob", "Bob Ringing")
    await page.locator("#person .internal").wait_for()
    await shoot(page, folder, "console.png")

    await page.keyboard.press("s")
    await page.locator("#availability-dialog").wait_for(state="visible")
    await shoot(page, folder, "console-availability.png")
    await page.keyboard.press("Escape")

    # The admin's editor: a problem shown on its line, then a change's diff before applying.
    admin = await new_context(browser, base_url)
    try:
        editor_page = await admin.new_page()
        await login(editor_page, "admin")
        editor = editor_page.locator("#yaml")
        await editor_page.locator("#editor-state").filter(
            has_text="applied version loaded").wait_for()
        applied = await editor.input_value()
        broken = applied.replace("name: Carl Busy", "name: Carl Busy\n    extension: twelve")
        await editor.fill(broken)
        await editor_page.click("#check")
        await editor_page.locator("#problems li.problem").first.wait_for()
        await shoot(editor_page, folder, "admin-check.png")
        changed = COMPANY.replace("      5: {message: anna}\n",
                                  "      5: {message: anna}\n      6: {team: ops}\n") + (
            "  dora: {name: Dóra Ääkkönen, extension: '214', "
            "devices: [desk: Local/anna@vaihde-test-phones]}\n")
        await editor.fill(changed)
        await editor_page.click("#diff")
        await editor_page.locator("#apply:enabled").wait_for()
        await shoot(editor_page, folder, "admin-diff.png")
    finally:
        await admin.close()
