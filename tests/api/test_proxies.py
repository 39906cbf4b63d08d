"""Behind a reverse proxy (security review, finding 6): with the proxy's address in
`service.http.trusted_proxies`, the login limits count the real clients from X-Forwarded-For,
and the session cookie is `Secure` when the client used https; the same headers from anyone
else change nothing. Runs on SQLite and PostgreSQL (the test client is the "proxy",
127.0.0.1)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from vaihde.http.settings import HttpSettings


@pytest.fixture
def http_settings() -> HttpSettings:
    return HttpSettings(trusted_proxies=(ipaddress.ip_network("127.0.0.1"),))


async def login(api: Any, username: str, password: str, client: str, proto: str = "http") -> Any:
    return await api.call("POST", "/session", json={"username": username, "password": password},
                          headers={"X-Forwarded-For": client, "X-Forwarded-Proto": proto})


async def test_the_limits_count_each_client_behind_the_proxy(api):
    for _ in range(5):
        assert (await login(api, "anna", "not the password", "203.0.113.5")).status == 401
    assert (await login(api, "anna", api.password, "203.0.113.5")).status == 429
    # Anna on another machine is not locked out by someone guessing elsewhere.
    assert (await login(api, "anna", api.password, "203.0.113.6")).status == 200
    # A client cannot pose as another by sending its own X-Forwarded-For: the proxy appends
    # the address it saw, and that right-most one counts.
    reply = await login(api, "anna", api.password, "203.0.113.6, 203.0.113.5")
    assert reply.status == 429


async def test_the_cookie_is_secure_when_the_client_used_https(api):
    reply = await login(api, "olli", api.password, "203.0.113.7", proto="https")
    assert reply.status == 200
    cookie = next(v for v in reply.headers.getall("Set-Cookie") if v.startswith("vaihde_session"))
    assert "Secure" in cookie.split("; ")
    reply = await login(api, "olli", api.password, "203.0.113.7", proto="http")
    cookie = next(v for v in reply.headers.getall("Set-Cookie") if v.startswith("vaihde_session"))
    assert "Secure" not in cookie.split("; ")


class TestUntrustedPeer:
    """The proxy list names another address: the headers come from a client and are ignored."""

    @pytest.fixture
    def http_settings(self) -> HttpSettings:
        return HttpSettings(trusted_proxies=(ipaddress.ip_network("10.0.0.5"),))

    async def test_forwarded_headers_from_anyone_else_change_nothing(self, api):
        for i in range(5):
            reply = await login(api, "anna", "not the password", f"203.0.113.{i}", "https")
            assert reply.status == 401
        # Every guess counted against 127.0.0.1, whatever each request claimed.
        assert (await login(api, "anna", api.password, "203.0.113.99")).status == 429
        reply = await login(api, "olli", api.password, "203.0.113.7", proto="https")
        cookie = next(v for v in reply.headers.getall("Set-Cookie")
                      if v.startswith("vaihde_session"))
        assert "Secure" not in cookie.split("; ")
