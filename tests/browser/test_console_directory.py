"""The console's directory with the keyboard only: "/" searches as you type (accents ignored),
arrows choose, S sets the chosen employee's availability on their behalf, "?" shows the
shortcuts; and the page fits a 1366×768 screen."""

from __future__ import annotations

from browserhelp import BROWSER, login

pytestmark = BROWSER


async def test_operator_finds_anna_and_sets_her_availability_by_keyboard(page, vaihde):
    await login(page, "olga")
    await page.locator("#people .entry").first.wait_for()  # everyone, before any search
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "search"
    await page.keyboard.type("virtanén")  # accent-insensitive, server-side
    anna = page.locator("#people .entry.chosen .name").filter(has_text="Anna Virtanen")
    await anna.wait_for()
    await page.locator("#person h3").filter(has_text="Anna Virtanen").wait_for()
    # Her desk phone, and that it can ring now (Asterisk's device state).
    await page.locator("#person .device.reach-reachable").filter(
        has_text="desk: Local/anna@vaihde-test-phones · reachable").wait_for()
    await page.keyboard.press("Enter")  # chosen; the keys act on the board again
    assert await page.evaluate("document.activeElement.id") != "search"

    await page.keyboard.press("s")
    dialog = page.locator("#availability-dialog")
    await dialog.wait_for(state="visible")
    await page.select_option("#availability-state", "meeting")
    await page.fill("#availability-note", "Back at 15")
    await page.fill("#availability-internal", "Board room, do not disturb")
    await page.press("#availability-internal", "Enter")
    await dialog.wait_for(state="hidden")

    row = page.locator("#people .entry.chosen")
    await row.locator(".state").filter(has_text="in a meeting").wait_for()
    await page.locator("#person .note").filter(has_text="Back at 15").wait_for()
    await page.locator("#person .internal").filter(has_text="Board room").wait_for()
    seen = vaihde.presence.lookup("anna")  # what routing reads: the same truth
    assert seen.state == "meeting" and seen.note_for_callers == "Back at 15"
    assert seen.source == "operator" and seen.set_by == "olga"

    await page.keyboard.press("?")
    await page.locator("#help").wait_for(state="visible")
    assert "Answer the next waiting call" in await page.locator("#help").text_content()
    await page.keyboard.press("Escape")
    await page.locator("#help").wait_for(state="hidden")


async def test_console_fits_a_1366x768_screen(page):
    await login(page, "olga")
    await page.locator("#people .entry").first.wait_for()
    size = await page.evaluate("""() => ({
        width: document.documentElement.scrollWidth,
        height: document.documentElement.scrollHeight,
        calls: document.querySelector(".calls").getBoundingClientRect().bottom,
        people: document.querySelector(".directory").getBoundingClientRect().bottom,
        status: document.querySelector("#status").getBoundingClientRect().bottom})""")
    assert size["width"] <= 1366 and size["height"] <= 768, size
    assert max(size["calls"], size["people"], size["status"]) <= 768, size


async def test_operator_takes_a_message_for_anna(page):
    await login(page, "olga")
    await page.locator("#people .entry").first.wait_for()
    await page.keyboard.press("/")
    await page.keyboard.type("anna")
    await page.locator("#people .entry.chosen .name").filter(has_text="Anna Virtanen").wait_for()
    await page.keyboard.press("Enter")
    await page.keyboard.press("m")
    dialog = page.locator("#message-dialog")
    await dialog.wait_for(state="visible")
    assert await page.locator("#message-for").text_content() == "Anna Virtanen"
    await page.fill("#message-number", "0401234567")
    await page.fill("#message-name", "Matti <b>Mäkinen</b>")
    await page.fill("#message-text", "Please call back about the offer.")
    await page.press("#message-text", "Control+Enter")
    await dialog.wait_for(state="hidden")
    await page.locator("#status").filter(has_text="Message for Anna Virtanen saved").wait_for()

    stored = await page.evaluate(
        "async () => (await (await fetch('/api/v1/messages?employee=anna')).json())")
    [message] = stored["messages"]
    assert message["text"] == "Please call back about the offer."
    assert message["caller_number"] == "0401234567"
    assert message["caller_name"] == "Matti <b>Mäkinen</b>"
    assert message["taken_by"] == "olga"
