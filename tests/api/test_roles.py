"""The role matrix over HTTP: for every endpoint, what no credentials (401), an employee (anna),
an operator (olli) and an admin (root) get. An employee changes only their own availability;
operators anyone's and the caller register; admins also the configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vaihde.directory import store as directory
from vaihde.presence import store as presence

LATER = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
SCHEDULE = {"state": "vacation", "starts_at": LATER.isoformat(),
            "until": (LATER + timedelta(days=5)).isoformat()}
YAML = {"Content-Type": "application/yaml"}

# (method, path, body, expected statuses for: nobody, anna, olli, root)
MATRIX = [
    ("GET", "/openapi.json", None, (200, 200, 200, 200)),
    ("GET", "/session", None, (401, 200, 200, 200)),
    ("GET", "/employees", None, (401, 200, 200, 200)),
    ("GET", "/employees/matti", None, (401, 200, 200, 200)),
    ("GET", "/teams", None, (401, 200, 200, 200)),
    ("GET", "/teams/sales", None, (401, 200, 200, 200)),
    ("GET", "/directory/search?q=anna", None, (401, 200, 200, 200)),
    ("GET", "/availability", None, (401, 200, 200, 200)),
    ("GET", "/employees/matti/availability", None, (401, 200, 200, 200)),
    ("GET", "/employees/matti/availability/entries", None, (401, 200, 200, 200)),
    ("PUT", "/employees/anna/availability", {"state": "away"}, (401, 200, 200, 200)),
    ("PUT", "/employees/matti/availability", {"state": "away"}, (401, 403, 200, 200)),
    ("POST", "/employees/anna/availability/entries", SCHEDULE, (401, 201, 201, 201)),
    ("POST", "/employees/matti/availability/entries", SCHEDULE, (401, 403, 201, 201)),
    ("DELETE", "/availability/entries/{anna}", None, (401, 200, 200, 200)),
    ("DELETE", "/availability/entries/{matti}", None, (401, 403, 200, 200)),
    ("GET", "/employees/anna/availability/history", None, (401, 200, 200, 200)),
    ("GET", "/employees/matti/availability/history", None, (401, 403, 200, 200)),
    ("GET", "/callers/0401234567", None, (401, 403, 200, 200)),
    ("PUT", "/callers/0401234567", {"name": "Pekka"}, (401, 403, 200, 200)),
    ("GET", "/callers/0401234567/contacts", None, (401, 403, 200, 200)),
    ("GET", "/config", None, (401, 403, 403, 200)),
    ("POST", "/config/check", "yaml", (401, 403, 403, 200)),
    ("POST", "/config/diff", "yaml", (401, 403, 403, 200)),
    ("POST", "/config/apply", "yaml", (401, 403, 403, 200)),
]
USERS = (None, "anna", "olli", "root")


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    MATRIX,
    ids=[f"{m} {p}" for m, p, _, _ in MATRIX],
)
async def test_role_matrix(api, method, path, body, expected):
    async with api.db.sessions.begin() as session:
        await directory.upsert_caller(session, "0401234567", name="Pekka Pelkonen")
    # Something to read for GET /config (the same directory as a company file).
    assert (await api.call("POST", "/config/apply", data=api.company_yaml, headers=YAML,
                           as_="root")).status == 200
    for n, (user, status) in enumerate(zip(USERS, expected, strict=True)):
        url = path
        for owner in ("anna", "matti"):
            if f"{{{owner}}}" in url:
                # A fresh entry per attempt: the first allowed user cancels it.
                start = LATER + timedelta(days=60 + n)
                async with api.db.sessions.begin() as session:
                    entry = await presence.set_availability(
                        session, owner, "meeting", source="manual", set_by=owner,
                        starts_at=start, until=start + timedelta(hours=1),
                    )
                url = url.replace(f"{{{owner}}}", str(entry.id))
        kwargs: dict = {"as_": user}
        if body == "yaml":
            kwargs.update(data=api.company_yaml, headers=YAML)
        elif body is not None:
            kwargs["json"] = body
        before = await api.counts() if status in (401, 403) else None
        reply = await api.call(method, url, **kwargs)
        assert reply.status == status, (user, reply.text)
        if before is not None:
            # Refused means nothing happened.
            assert await api.counts() == before, user
        if method == "POST" and "/entries" in url and status == 201:
            # The same scheduled entry again would overlap: make room for the next user.
            async with api.db.sessions.begin() as session:
                await presence.cancel_entry(session, reply.json["entry"]["id"], actor="test")


async def test_forbidden_answers_say_why(api):
    reply = await api.call("PUT", "/employees/matti/availability", json={"state": "away"},
                           as_="anna")
    assert reply.error == {
        "code": "forbidden",
        "message": "you may change only your own availability (operators and admins may "
        "change anyone's)",
    }
    reply = await api.call("GET", "/callers/0401234567", as_="matti")
    assert reply.error["message"] == "the caller register is for operators and admins"
    reply = await api.call("GET", "/config", as_="olli")
    assert reply.error["message"] == "configuration is for admins"


async def test_a_user_without_an_employee_cannot_set_anyones_own_availability(api):
    from vaihde.auth import store as auth

    async with api.db.sessions.begin() as session:
        await auth.add_user(session, "visitor", role="employee")
        token, _ = await auth.create_token(session, "visitor")
    api.tokens["visitor"] = token
    for eid in ("anna", "matti", "asa"):
        reply = await api.call("PUT", f"/employees/{eid}/availability",
                               json={"state": "away"}, as_="visitor")
        assert reply.status == 403
    assert (await api.call("GET", "/employees", as_="visitor")).status == 200
