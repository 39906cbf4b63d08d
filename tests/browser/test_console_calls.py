"""Calls on the operator's console, end to end: simulated callers in the real sandbox Asterisk,
the real service, Debian's chromium. A caller who tried Bob appears in the waiting list with
that context (and their hostile caller name as text); the operator answers on their phone and
transfers to an employee who answers; a transfer to a phone that never answers bounces back."""

from __future__ import annotations

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
