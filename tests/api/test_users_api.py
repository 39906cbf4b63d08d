"""The users API with roles per company: a company admin sees and changes only users within
their own companies (others are 404, as if they did not exist), may give only their own
companies, never makes a user for every company and never widens their own scope; a
service-wide admin may do all of it. Nothing is written when refused."""

from __future__ import annotations

from vaihde.auth import store as auth_store
from vaihde.directory.store import ensure_company


async def _companies_and_admins(api) -> None:
    async with api.db.sessions.begin() as session:
        await ensure_company(session, "alfa", "Alfa Oy")
        await ensure_company(session, "beta", "Beta Ab")
        await auth_store.add_user(session, "alfa-admin", role="admin", companies=["alfa"])
        await auth_store.add_user(session, "beta-op", role="operator", companies=["beta"])
        secret, _ = await auth_store.create_token(session, "alfa-admin")
    api.tokens["alfa-admin"] = secret


async def test_a_company_admin_manages_only_users_of_their_companies(api):
    await _companies_and_admins(api)
    listed = await api.call("GET", "/users", as_="alfa-admin")
    assert listed.status == 200
    assert [u["username"] for u in listed.json["users"]] == ["alfa-admin"]
    assert listed.json["users"][0]["acts_for"] == ["alfa"]
    for name in ("beta-op", "root", "nobody"):  # another company's, service-wide, missing
        reply = await api.call("GET", f"/users/{name}", as_="alfa-admin")
        assert (reply.status, reply.error["code"]) == (404, "not_found"), name
        reply = await api.call("PUT", f"/users/{name}", as_="alfa-admin",
                               json={"display_name": "x"})
        assert (reply.status, reply.error["code"]) == (404, "not_found"), name

    made = await api.call("POST", "/users", as_="alfa-admin",
                          json={"username": "alfa-op", "role": "operator",
                                "companies": ["alfa"]})
    assert made.status == 201 and made.json["acts_for"] == ["alfa"]
    assert made.json["companies"] == ["alfa"]


async def test_a_company_admin_cannot_make_service_wide_users_or_widen_a_scope(api):
    await _companies_and_admins(api)
    before = await api.counts()
    for companies in ([], ["beta"], ["alfa", "beta"]):
        reply = await api.call("POST", "/users", as_="alfa-admin",
                               json={"username": "x-op", "role": "operator",
                                     "companies": companies})
        assert (reply.status, reply.error["code"]) == (403, "forbidden"), companies
    # An employee of another company is a user of that company.
    reply = await api.call("POST", "/users", as_="alfa-admin",
                           json={"username": "x-emp", "role": "employee", "employee_id": "anna",
                                 "companies": ["alfa"]})
    assert reply.status == 403 and "main" in reply.error["message"]
    for companies in (["alfa", "beta"], []):
        reply = await api.call("PUT", "/users/alfa-admin", as_="alfa-admin",
                               json={"companies": companies})
        assert (reply.status, reply.error["code"]) == (403, "forbidden"), companies
    assert await api.counts() == before
    mine = await api.call("GET", "/users/alfa-admin", as_="alfa-admin")
    assert mine.json["acts_for"] == ["alfa"]


async def test_a_service_wide_admin_gives_any_companies_and_every_company(api):
    await _companies_and_admins(api)
    reply = await api.call("PUT", "/users/beta-op", as_="root",
                           json={"companies": ["alfa", "beta"]})
    assert reply.status == 200 and reply.json["acts_for"] == ["alfa", "beta"]
    reply = await api.call("PUT", "/users/beta-op", as_="root", json={"companies": []})
    assert reply.status == 200 and reply.json["acts_for"] is None
    reply = await api.call("POST", "/users", as_="root",
                           json={"username": "g-op", "role": "operator", "companies": ["gamma"]})
    assert (reply.status, reply.json["error"]["field"]) == (400, "companies")
    reply = await api.call("GET", "/users", as_="olli")
    assert reply.status == 403
