"""Calls on the operator's console, end to end: simulated callers in the real sandbox Asterisk,
the real service, Debian's chromium. A caller who tried Bob appears in the waiting list with
that context (and their hostile caller name as text); the operator answers on their phone and
transfers to an employee who answers; a transfer to a phone that never answers bounces back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from browserhelp import BROWSER, login
from test_first_call import call  # tests/integration: a simulated caller (AMI Originate)

pytestmark = BROWSER

HOSTILE = "<img src=x onerror=alert(1)>"
NUMBER = "0401234599"


async def api(page: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A JSON request from the logged-in page (session cookie and CSRF token)."""
    return await page.evaluate(
        """async ([method, path, body]) => {
            const s = await (await fetch("/api/v1/session")).json();
            const r = await fetch("/api/v1" + path, {method, body: body === null ? undefined
                : JSON.stringify(body), headers: {"Content-Type": "application/json",
                "X-CSRF-Token": s.csrf_token}});
            return {status: r.status, json: await r.json()};
        }""",
        [method, path, body],
    )


async def test_waiting_caller_appears_with_context_and_hostile_names_as_text(page, ami):
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    known = await api(page, "PUT", f"/callers/{NUMBER}",
                      {"name": HOSTILE, "organisation": "Evil <b>Corp</b>"})
    assert known["status"] in (200, 201), known

    # The caller chooses Bob (2), whose phone rings 5 s unanswered: then to the operators.
    await call(ami, "2", callerid=f'"{HOSTILE}" <{NUMBER}>')
    row = page.locator("#waiting li.call").filter(has_text=NUMBER)
    await row.wait_for(timeout=30_000)
    assert await row.locator(".number").text_content() == NUMBER
    assert await row.locator(".cid-name").text_content() == HOSTILE
    assert await row.locator(".known").text_content() == f"{HOSTILE}, Evil <b>Corp</b>"
    assert await row.locator(".sought").text_content() == "→ Bob Ringing"
    assert "menu option" in await row.locator(".path").text_content()
    assert "no answer" in await row.locator(".what").text_content()
    assert await row.locator(".pos").text_content() == "1"
    assert await page.locator("#waiting-count").text_content() == "1"
    # Waiting time ticks in the page.
    first = await row.locator(".ticking").text_content()
    await row.locator(".ticking").filter(has_not_text=first).wait_for()

    assert await page.locator("main img").count() == 0
    assert not page.watch.dialogs

    # The caller hangs up: the row goes.
    await ami.action({"Action": "Hangup", "Channel": "/^Local/.*vaihde-inbound/"})
    await row.wait_for(state="detached", timeout=10_000)
    assert await page.locator("#waiting-count").text_content() == "0"
    assert not page.watch.dialogs


async def test_operator_answers_and_transfers_and_an_unanswered_transfer_bounces(page, ami,
                                                                                 vaihde):
    vaihde.settings = replace(vaihde.settings, console_bounce_s=5)
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()

    # A caller for the operators; A answers the next one on Olga's phone.
    await call(ami, "0", callerid="0401110011")
    first = page.locator("li.call").filter(has_text="0401110011")
    await page.locator("#waiting li.call").filter(has_text="0401110011").wait_for(
        timeout=30_000)
    await page.keyboard.press("a")
    await page.locator("#active li.call.selected").filter(has_text="0401110011").wait_for()
    await first.locator(".parties").filter(has_text="with Olga Operator").wait_for()

    # Choose Anna in the directory, T: blind transfer; her phone answers.
    await choose(page, "anna", "Anna Virtanen")
    await page.keyboard.press("t")
    await page.locator("#status").filter(has_text="to Anna Virtanen").wait_for()
    await first.locator(".parties").filter(has_text="with Anna Virtanen").wait_for(
        timeout=15_000)
    assert "bounced" not in await first.get_attribute("class")

    # Another caller, answered; a blind transfer to Bob, whose phone never answers.
    await call(ami, "0", callerid="0401110012")
    second = page.locator("li.call").filter(has_text="0401110012")
    await page.locator("#waiting li.call").filter(has_text="0401110012").wait_for(
        timeout=30_000)
    await page.keyboard.press("a")
    await page.locator("#active li.call.selected").filter(has_text="0401110012").wait_for()
    await choose(page, "bob", "Bob Ringing")
    await page.keyboard.press("t")
    await second.locator(".transfer").filter(has_text="transferring to Bob Ringing").wait_for()
    # After bounce_back_s it comes back to Olga's phone, marked.
    await page.locator("li.call.bounced").filter(has_text="0401110012").wait_for(
        timeout=20_000)
    assert await second.locator(".bounce").text_content() == (
        "Bounced back from Bob Ringing (noanswer) — transferred by olga")
    assert "no answer" in await second.locator(".what").text_content()
    # The call that went to Anna is still with her, unmarked.
    assert "bounced" not in await first.get_attribute("class")


async def test_park_retrieve_and_hang_up_by_keyboard(page, ami):
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    await call(ami, "0", callerid="0401110013")
    row = page.locator("li.call").filter(has_text="0401110013")
    await page.locator("#waiting li.call.selected").filter(has_text="0401110013").wait_for(
        timeout=30_000)
    await page.keyboard.press("p")
    parked = page.locator("#parked li.call").filter(has_text="0401110013")
    await parked.locator(".badge").filter(has_text="parked at 70").wait_for()
    await page.locator("#status").filter(has_text="parking space 70").wait_for()
    await page.keyboard.press("r")  # back to Olga's phone, which answers
    await page.locator("#active li.call").filter(has_text="with Olga Operator").wait_for()
    await page.keyboard.press("h")
    await page.locator("#status").filter(has_text="Press H again").wait_for()
    assert await row.count() == 1  # one H alone hangs up nobody
    await page.keyboard.press("h")
    await row.wait_for(state="detached")
    assert await page.locator("#active-count").text_content() == "0"


async def test_attended_transfer_by_keyboard(page, ami):
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    await call(ami, "0", callerid="0401110014")
    row = page.locator("li.call").filter(has_text="0401110014")
    await page.locator("#waiting li.call").filter(has_text="0401110014").wait_for(
        timeout=30_000)
    await page.keyboard.press("a")
    await row.locator(".parties").filter(has_text="with Olga Operator").wait_for()
    await choose(page, "anna", "Anna Virtanen")
    await page.keyboard.press("Shift+T")  # Olga talks to Anna first; the caller waits
    await row.locator(".transfer").filter(
        has_text="attended transfer to Anna Virtanen — answered: C complete").wait_for(
        timeout=15_000)
    await page.keyboard.press("c")
    await row.locator(".parties").filter(has_text="with Anna Virtanen").wait_for(
        timeout=15_000)
    assert await row.locator(".transfer").count() == 0


async def choose(page: Any, query: str, name: str) -> None:
    """Search the directory by keyboard and choose the first hit (which must be `name`)."""
    await page.keyboard.press("/")
    await page.fill("#search", query)
    await page.locator("#people .entry.chosen .name").filter(has_text=name).wait_for()
    await page.keyboard.press("Enter")
