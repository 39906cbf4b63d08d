"""GET /health: the status alone for anyone (load balancers, monitors), the details (settings
path, AMI errors, company) only for operators and admins. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

SECRETS = ("/etc/vaihde/settings.yaml", "Testi Oy", "Authentication failed")


async def health(api: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    async with api.client.get("/health", headers=headers or {}) as response:
        text = await response.text()
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json(), text


def bearer(api: Any, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[user]}"}


async def test_without_credentials_only_the_status_is_shown(api):
    api.service["ami"]["last_error"] = "Authentication failed"
    status, body, text = await health(api)
    assert status == 200 and body == {"status": "ok"}
    for secret in SECRETS:
        assert secret not in text


async def test_status_and_code_follow_fastagi_and_ami(api):
    api.service["status"] = "degraded"
    api.service["ami"] = {"connected": False, "last_error": "Authentication failed"}
    assert (await health(api))[:2] == (200, {"status": "degraded"})  # calls still flow
    api.service["fastagi"]["listening"] = False
    status, body, text = await health(api)
    assert (status, body) == (503, {"status": "down"})  # callers would get the fallback
    assert "Authentication failed" not in text


async def test_operators_and_admins_see_the_details_with_a_token_or_session(api):
    api.service["ami"]["last_error"] = "Authentication failed"
    cookie, _ = await api.login("olli")
    for headers in (bearer(api, "olli"), bearer(api, "root"), {"Cookie": cookie}):
        status, body, _ = await health(api, headers)
        assert status == 200
        assert body["status"] == "ok" and body["settings"] == "/etc/vaihde/settings.yaml"
        assert body["ami"]["last_error"] == "Authentication failed"
        assert body["company"]["name"] == "Testi Oy"
        assert body["fastagi"]["listening"] is True


async def test_employees_and_bad_tokens_get_the_public_answer(api):
    for headers in (bearer(api, "anna"), {"Authorization": "Bearer vaihde_made_up"},
                    {"Authorization": "Basic b2xsaTp4"}, {"Cookie": "vaihde_session=ended"}):
        status, body, text = await health(api, headers)
        # Never a 401 for a monitor with a stale token: it still learns whether we are up.
        assert (status, body) == (200, {"status": "ok"})
        for secret in SECRETS:
            assert secret not in text
    api.service["fastagi"]["listening"] = False
    status, body, _ = await health(api, bearer(api, "anna"))
    assert (status, body) == (503, {"status": "down"})
