"""Logging in and who may open what, in a real browser against the running service: the login
form lands each role on its page, employees cannot open the console, operators cannot open the
admin pages or call the admin API, and changes without the CSRF token are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from browserhelp import BROWSER, login, new_context

pytestmark = BROWSER


async def new_page(browser: Any, base_url: str) -> Any:
    return await (await new_context(browser, base_url)).new_page()


async def fetch(page: Any, method: str, path: str, *, csrf: bool, body: Any = None,
                content_type: str = "application/json") -> dict[str, Any]:
    """A request from inside the logged-in page (its cookie), with or without the CSRF token."""
    return await page.evaluate(
        """async ([method, path, csrf, body, type]) => {
            const headers = {"Content-Type": type};
            if (csrf) {
                const s = await (await fetch("/api/v1/session")).json();
                headers["X-CSRF-Token"] = s.csrf_token;
            }
            const r = await fetch(path, {method, headers, body: body === null ? undefined
                : (type === "application/json" ? JSON.stringify(body) : body)});
            const text = await r.text();
            let json = null;
            try { json = JSON.parse(text); } catch (e) {}
            return {status: r.status, json};
        }""",
        [method, path, csrf, body, content_type],
    )


async def test_login_lands_each_role_on_its_page(page, browser, base_url):
    await page.goto("/console")
    assert page.url.endswith("/login?next=/console")  # not logged in: sent to the login form

    await page.fill("#username", "olga")
    await page.fill("#password", "not the password")
    await page.click("#login-button")
    error = page.locator("#login-error")
    await error.wait_for(state="visible")
    assert await error.text_content() == "Wrong username or password."
    assert page.url.endswith("/login?next=/console")

    await page.fill("#password", "correct horse battery")
    async with page.expect_navigation():
        await page.click("#login-button")
    assert page.url == f"{base_url}/console"
    await page.locator("#whoami").filter(has_text="Olga Operator (operator)").wait_for()

    admin = await new_page(browser, base_url)
    employee = await new_page(browser, base_url)
    try:
        await login(admin, "admin")
        assert admin.url == f"{base_url}/admin"
        await login(employee, "anna")
        assert employee.url == f"{base_url}/me"
        await employee.locator("#now .state").filter(has_text="available").wait_for()
    finally:
        await admin.context.close()
        await employee.context.close()


async def test_employee_cannot_open_the_console(page):
    await login(page, "anna", path="/login?next=/console")
    assert page.url.endswith("/me")  # the page asked for is not theirs: their own instead
    response = await page.goto("/console")
    assert response.status == 403
    assert await page.locator("#forbidden h1").text_content() == "Not allowed"
    response = await page.goto("/admin")
    assert response.status == 403


async def test_operator_cannot_open_admin_pages_or_call_the_admin_api(page, base_url):
    await login(page, "olga")
    response = await page.goto("/admin")
    assert response.status == 403
    assert await page.locator("#forbidden h1").text_content() == "Not allowed"
    await page.goto("/console")
    assert (await fetch(page, "GET", "/admin/company.yaml", csrf=False))["status"] == 403
    got = await fetch(page, "GET", "/api/v1/config", csrf=False)
    assert got["status"] == 403 and got["json"]["error"]["code"] == "forbidden"
    for action in ("check", "diff", "apply"):
        got = await fetch(page, "POST", f"/api/v1/config/{action}", csrf=True,
                          body="company: {name: X}\n", content_type="application/yaml")
        assert got["status"] == 403, action
        assert got["json"]["error"]["code"] == "forbidden", action


async def test_changes_without_the_csrf_token_are_refused(page):
    await login(page, "olga")
    body = {"state": "meeting", "note_for_callers": "Back soon"}
    path = "/api/v1/employees/anna/availability"
    refused = await fetch(page, "PUT", path, csrf=False, body=body)
    assert refused["status"] == 403 and refused["json"]["error"]["code"] == "csrf"
    got = await fetch(page, "GET", path, csrf=False)
    assert got["json"]["state"] == "available"  # nothing changed

    logout = await fetch(page, "DELETE", "/api/v1/session", csrf=False)
    assert logout["status"] == 403  # not even a logout
    assert (await fetch(page, "GET", "/api/v1/session", csrf=False))["status"] == 200

    done = await fetch(page, "PUT", path, csrf=True, body=body)
    assert done["status"] == 200 and done["json"]["availability"]["state"] == "meeting"


@pytest.mark.parametrize("path", ["/login", "/console", "/static/console.js"])
async def test_pages_are_sent_with_a_strict_content_security_policy(page, path):
    await login(page, "olga")
    response = await page.goto(path)
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_logout_ends_the_session(page, base_url):
    await login(page, "olga")
    async with page.expect_navigation():
        await page.click("#logout")
    assert page.url.startswith(f"{base_url}/login")
    response = await page.goto("/console")
    assert page.url.endswith("/login?next=/console") and response.status == 200


async def no_streams(vaihde: Any) -> None:
    """No console stream is left open in the service (within 2 s: one the page just dropped
    may still be counted until the service notices)."""
    for _ in range(100):
        if vaihde.console.subscribers == 0:
            return
        await asyncio.sleep(0.02)
    assert vaihde.console.subscribers == 0


async def test_console_of_a_disabled_user_stops_and_asks_to_log_in(page, vaihde):
    """Security review, finding 4: an open console kept receiving callers after the user was
    disabled. Its stream ends, and the page goes to the login form by itself."""
    from vaihde.auth.store import set_active

    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    async with vaihde.db.sessions.begin() as session:
        await set_active(session, "olga", False)
    await page.wait_for_url("**/login**", timeout=15_000)
    await no_streams(vaihde)


async def test_console_of_a_user_demoted_to_employee_goes_to_their_own_page(page, vaihde):
    from vaihde.auth.store import update_user

    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    async with vaihde.db.sessions.begin() as session:
        await update_user(session, "olga", role="employee")
    await page.wait_for_url("**/me", timeout=15_000)
    await no_streams(vaihde)
