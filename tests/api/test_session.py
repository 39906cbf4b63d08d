"""Logging in and out, who am I, CSRF for cookie logins, session expiry, API tokens that expired
or were revoked, and the failed-login throttle. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from vaihde.auth import passwords, store
from vaihde.db import auth_models as a


async def test_login_sets_an_http_only_strict_cookie_and_returns_the_csrf_token(api):
    reply = await api.call(
        "POST", "/session", json={"username": "anna", "password": api.password},
        headers={"User-Agent": "pytest\tbrowser"},
    )
    assert reply.status == 200
    assert reply.json["user"] == {
        "username": "anna",
        "display_name": "",
        "role": "employee",
        "employee_id": "anna",
        "sip_endpoint": None,
        "companies": ["main"],  # an employee acts for their own employee's company
    }
    assert reply.json["via"] == "session"
    assert len(reply.json["csrf_token"]) >= 32
    cookie = next(v for v in reply.headers.getall("Set-Cookie") if v.startswith("vaihde_session="))
    attributes = {p.strip().split("=")[0].lower() for p in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    expires = datetime.fromisoformat(reply.json["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    # Only a digest of the cookie's secret is stored.
    secret = cookie.split(";")[0].split("=", 1)[1]
    async with api.db.sessions() as session:
        rows = (await session.scalars(select(a.WebSession))).all()
        user = await store.get_user(session, "anna")
    assert [r.id_sha256 for r in rows] == [store.digest(secret)]
    assert rows[0].user_agent == "pytestbrowser"
    assert user is not None and user.last_login_at is not None


async def test_whoami_with_the_cookie_and_with_a_token(api):
    cookie, csrf = await api.login("olli")
    reply = await api.call("GET", "/session", headers={"Cookie": cookie})
    assert reply.status == 200
    assert reply.json["user"]["username"] == "olli"
    assert reply.json["user"]["role"] == "operator"
    assert reply.json["csrf_token"] == csrf
    reply = await api.call("GET", "/session", as_="root")
    assert reply.status == 200
    assert reply.json == {
        "user": {
            "username": "root",
            "display_name": "",
            "role": "admin",
            "employee_id": None,
            "sip_endpoint": None,
            "companies": None,  # every company
        },
        "via": "token",
    }
    assert (await api.call("GET", "/session")).status == 401


async def test_logout_ends_the_session_and_clears_the_cookie(api):
    cookie, csrf = await api.login("anna")
    # Logging out is a change: the CSRF token is required with the cookie.
    denied = await api.call("DELETE", "/session", headers={"Cookie": cookie})
    assert denied.status == 403 and denied.error["code"] == "csrf"
    reply = await api.call("DELETE", "/session", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert reply.status == 204
    cleared = next(v for v in reply.headers.getall("Set-Cookie") if "vaihde_session=" in v)
    assert "Max-Age=0" in cleared or "expires=" in cleared.lower()
    after = await api.call("GET", "/session", headers={"Cookie": cookie})
    assert after.status == 401 and after.error["code"] == "session_expired"
    # Logging out again (or with a dead cookie) is harmless.
    again = await api.call("DELETE", "/session", headers={"Cookie": cookie})
    assert again.status == 204
    async with api.db.sessions() as session:
        assert (await session.scalars(select(a.WebSession))).all() == []


async def test_wrong_password_unknown_user_and_disabled_user_look_the_same(api):
    async with api.db.sessions.begin() as session:
        await store.set_active(session, "matti", False)
    answers = []
    for username, password in (
        ("anna", "wrong password!"),
        ("nobody", api.password),
        ("matti", api.password),  # disabled
        ("ANNA ", "wrong password!"),
    ):
        reply = await api.call("POST", "/session",
                               json={"username": username, "password": password})
        answers.append((reply.status, reply.json))
    assert all(answer == answers[0] for answer in answers)
    assert answers[0][0] == 401
    assert answers[0][1]["error"]["code"] == "invalid_credentials"
    # Usernames are not case-sensitive.
    assert (await api.call("POST", "/session",
                           json={"username": " Anna", "password": api.password})).status == 200


async def test_user_without_a_password_cannot_log_in(api):
    async with api.db.sessions.begin() as session:
        await store.set_password(session, "anna", None)
    reply = await api.call("POST", "/session", json={"username": "anna", "password": ""})
    assert reply.status == 401
    reply = await api.call("POST", "/session", json={"username": "anna",
                                                     "password": api.password})
    assert reply.status == 401


async def test_login_input_errors_name_the_field(api):
    reply = await api.call("POST", "/session", json={"username": "anna"})
    assert reply.status == 400 and reply.error["field"] == "password"
    reply = await api.call("POST", "/session",
                           json={"username": "anna", "password": "x" * 20, "remember": True})
    assert reply.status == 400 and reply.error == {
        "code": "unknown_field",
        "message": "unknown field 'remember'; allowed: password, username",
        "field": "remember",
    }
    reply = await api.call("POST", "/session", json={"username": 5, "password": "x"})
    assert reply.status == 400 and reply.error["field"] == "username"
    assert reply.error["code"] == "wrong_type"


async def test_failed_logins_are_throttled_per_username_and_address(api):
    for _ in range(5):
        reply = await api.call("POST", "/session",
                               json={"username": "anna", "password": "not the password"})
        assert reply.status == 401
    # Now even the right password is refused, with the same answer whoever asks.
    reply = await api.call("POST", "/session", json={"username": "anna",
                                                     "password": api.password})
    assert reply.status == 429
    assert reply.error["code"] == "too_many_attempts"
    assert 0 < int(reply.headers["Retry-After"]) <= 900
    # Another username from the same address is not locked out by anna's failures.
    assert (await api.call("POST", "/session",
                           json={"username": "olli", "password": api.password})).status == 200
    # An unknown username is counted like a known one.
    for _ in range(5):
        await api.call("POST", "/session", json={"username": "ghost", "password": "x" * 12})
    reply = await api.call("POST", "/session", json={"username": "ghost", "password": "x" * 12})
    assert reply.status == 429


async def test_csrf_is_required_for_cookie_changes_but_not_for_tokens(api):
    cookie, csrf = await api.login("anna")
    body = {"state": "away"}
    path = "/employees/anna/availability"
    for headers in ({"Cookie": cookie}, {"Cookie": cookie, "X-CSRF-Token": "forged"}):
        reply = await api.call("PUT", path, json=body, headers=headers)
        assert reply.status == 403 and reply.error["code"] == "csrf"
    before = await api.counts()
    reply = await api.call("POST", "/employees/anna/availability/entries",
                           json={"state": "vacation", "starts_at": "2099-01-01T00:00:00Z"},
                           headers={"Cookie": cookie})
    assert reply.status == 403 and reply.error["code"] == "csrf"
    assert await api.counts() == before
    # Reading needs no CSRF token.
    assert (await api.call("GET", path, headers={"Cookie": cookie})).status == 200
    ok = await api.call("PUT", path, json=body, headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert ok.status == 200
    entry_id = ok.json["entry"]["id"]
    denied = await api.call("DELETE", f"/availability/entries/{entry_id}",
                            headers={"Cookie": cookie})
    assert denied.status == 403 and denied.error["code"] == "csrf"
    # A bearer token needs none (a browser never sends one by itself).
    assert (await api.call("PUT", path, json=body, as_="anna")).status == 200


async def test_sessions_end_after_twelve_idle_hours(api):
    cookie, _ = await api.login("anna")
    api.clock.offset = timedelta(hours=11)
    assert (await api.call("GET", "/session", headers={"Cookie": cookie})).status == 200
    # That use counted: another 11 hours later it is still alive...
    api.clock.offset = timedelta(hours=22)
    assert (await api.call("GET", "/session", headers={"Cookie": cookie})).status == 200
    # ...but not after 12 hours without use.
    api.clock.offset = timedelta(hours=34, minutes=1)
    reply = await api.call("GET", "/session", headers={"Cookie": cookie})
    assert reply.status == 401 and reply.error["code"] == "session_expired"
    assert any("vaihde_session=" in v for v in reply.headers.getall("Set-Cookie"))


async def test_sessions_end_after_seven_days_however_busy(api):
    cookie, _ = await api.login("anna")
    for hours in range(10, 7 * 24, 10):
        api.clock.offset = timedelta(hours=hours)
        assert (await api.call("GET", "/session", headers={"Cookie": cookie})).status == 200
    api.clock.offset = timedelta(days=7, seconds=1)
    assert (await api.call("GET", "/session", headers={"Cookie": cookie})).status == 401


async def test_expired_and_revoked_tokens_are_refused(api):
    now = datetime.now(UTC)
    async with api.db.sessions.begin() as session:
        short, _ = await store.create_token(
            session, "anna", label="short", expires_at=now + timedelta(hours=1)
        )
        revoked, revoked_record = await store.create_token(session, "anna", label="gone")
    headers = {"Authorization": f"Bearer {short}"}
    assert (await api.call("GET", "/session", headers=headers)).status == 200
    api.clock.offset = timedelta(hours=1, seconds=1)
    reply = await api.call("GET", "/session", headers=headers)
    assert reply.status == 401 and reply.error["code"] == "invalid_token"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    api.clock.offset = timedelta(0)

    headers = {"Authorization": f"Bearer {revoked}"}
    assert (await api.call("GET", "/employees", headers=headers)).status == 200
    async with api.db.sessions.begin() as session:
        await store.revoke_token(session, revoked_record.id)
    assert (await api.call("GET", "/employees", headers=headers)).status == 401


async def test_malformed_or_unknown_credentials_are_401(api):
    for header in ("Bearer", "Bearer nonsense", "Basic YW5uYTpzZWNyZXQ=", "Bearer vaihde_x",
                   "Bearer " + "v" * 5000):
        reply = await api.call("GET", "/employees", headers={"Authorization": header})
        assert reply.status == 401, header
    reply = await api.call("GET", "/employees", headers={"Cookie": "vaihde_session=made-up"})
    assert reply.status == 401 and reply.error["code"] == "session_expired"


async def test_disabling_a_user_stops_their_tokens_and_sessions_at_once(api):
    cookie, _ = await api.login("anna")
    async with api.db.sessions.begin() as session:
        await store.set_active(session, "anna", False)
    assert (await api.call("GET", "/session", as_="anna")).status == 401
    assert (await api.call("GET", "/session", headers={"Cookie": cookie})).status == 401
    # Enabling again does not bring the old token back.
    async with api.db.sessions.begin() as session:
        await store.set_active(session, "anna", True)
    assert (await api.call("GET", "/session", as_="anna")).status == 401


async def test_token_use_is_recorded_at_most_once_a_minute(api):
    assert (await api.call("GET", "/session", as_="matti")).status == 200
    async with api.db.sessions() as session:
        first = (await store.list_tokens(session, "matti"))[0].last_used_at
    assert first is not None
    assert (await api.call("GET", "/session", as_="matti")).status == 200
    async with api.db.sessions() as session:
        assert (await store.list_tokens(session, "matti"))[0].last_used_at == first
    api.clock.offset = timedelta(minutes=2)
    assert (await api.call("GET", "/session", as_="matti")).status == 200
    async with api.db.sessions() as session:
        assert (await store.list_tokens(session, "matti"))[0].last_used_at > first


# --- simultaneous logins -------------------------------------------------------------------


class Gate:
    """Holds every password verification (in whatever thread it runs) until released, and
    counts those that reached it."""

    def __init__(self, monkeypatch: Any) -> None:
        self.entered = 0
        self._lock = threading.Lock()
        self._open = threading.Event()
        real = passwords.verify_password

        def verify(password_hash: str, password: str) -> bool:
            with self._lock:
                self.entered += 1
            self._open.wait(20)
            return real(password_hash, password)

        monkeypatch.setattr(passwords, "verify_password", verify)

    def release(self) -> None:
        self._open.set()

    async def settle(self, tasks: list[asyncio.Task[Any]], wait_s: float = 3.0) -> None:
        """Until every request has been answered or is held at the gate (or `wait_s`)."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            if sum(t.done() for t in tasks) + self.entered >= len(tasks):
                return
            await asyncio.sleep(0.02)


@pytest.fixture
def gate(monkeypatch: Any) -> Iterator[Gate]:
    held = Gate(monkeypatch)
    try:
        yield held
    finally:
        held.release()


def _login(api: Any, username: str, password: str) -> asyncio.Task[Any]:
    return asyncio.create_task(api.call("POST", "/session", json={"username": username,
                                                                   "password": password}))


async def test_a_burst_of_guesses_is_limited_like_the_same_guesses_one_by_one(api, gate):
    """Security review, finding 1: 25 simultaneous wrong guesses were all verified, and the
    right password sent in the same burst logged in."""
    wrong = [_login(api, "anna", f"wrong guess {i:02d}") for i in range(25)]
    await gate.settle(wrong)
    right = _login(api, "anna", api.password)
    await gate.settle([*wrong, right])
    gate.release()
    replies = await asyncio.gather(*wrong)
    assert all(r.status in (401, 429) for r in replies), [r.status for r in replies]
    assert sum(r.status == 401 for r in replies) <= 5  # no more than one by one would get
    assert gate.entered <= 5
    reply = await right
    assert reply.status == 429 and reply.error["code"] == "too_many_attempts"
    assert int(reply.headers["Retry-After"]) >= 1


async def test_a_flood_of_made_up_usernames_is_capped_and_does_not_stall_other_threads(
    api, gate
):
    """Finding 1 too: 80 logins with made-up usernames went past the per-address limit and,
    hashing in asyncio's default thread pool, stalled the service's other thread work."""
    flood = [_login(api, f"ghost{i:02d}", "x" * 12) for i in range(80)]
    await gate.settle(flood)
    # Work the service hands to threads (e-mail, the directory index) still runs at once.
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 2) == 42
    gate.release()
    replies = await asyncio.gather(*flood)
    assert all(r.status in (401, 429) for r in replies)
    assert sum(r.status == 401 for r in replies) <= 50  # the per-address limit
    assert gate.entered <= 8  # logins in progress at once, overall


async def test_a_success_takes_back_its_own_attempt(api):
    # Four failures, then the right password: the user is not one failure from the limit.
    for _ in range(4):
        reply = await api.call("POST", "/session",
                               json={"username": "anna", "password": "not the password"})
        assert reply.status == 401
    assert (await api.call("POST", "/session", json={"username": "anna",
                                                     "password": api.password})).status == 200
    for _ in range(5):
        reply = await api.call("POST", "/session",
                               json={"username": "anna", "password": "not the password"})
        assert reply.status == 401
    reply = await api.call("POST", "/session", json={"username": "anna", "password": "nope!"})
    assert reply.status == 429


async def test_a_made_up_username_costs_a_password_verification_too(api, gate):
    # The response time must not tell whether a username exists: an unknown one (and one
    # without a password) spends a verification like a real one does.
    task = _login(api, "nobody-here", "some password")
    await gate.settle([task])
    assert gate.entered == 1
    gate.release()
    reply = await task
    assert reply.status == 401 and reply.error["code"] == "invalid_credentials"
