"""Users, tokens and web sessions in the database, on SQLite and PostgreSQL: only hashes are
stored, expiry and revocation hold, bad input is refused before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from vaihde.auth import passwords, store
from vaihde.auth.model import AuthError, Role
from vaihde.db import auth_models as a
from vaihde.directory.store import sync_directory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def people(db):
    from vaihde.directory import DirectoryDescription, EmployeeDescription

    async with db.sessions.begin() as session:
        await sync_directory(
            session,
            DirectoryDescription(
                employees=(
                    EmployeeDescription(id="anna", name="Anna Virtanen"),
                    EmployeeDescription(id="asa", name="Åsa Järvinen"),
                )
            ),
        )
    return db


async def test_users_store_an_argon2_hash_never_the_password(people):
    hashed = passwords.hash_password("correct horse battery")
    async with people.sessions.begin() as session:
        user = await store.add_user(
            session, "Olli", role="operator", display_name="Olli Operaattori",
            employee_id="asa", sip_endpoint="PJSIP/operator1", password_hash=hashed, now=T0,
        )
    assert user.username == "olli" and user.role is Role.OPERATOR and user.has_password
    async with people.sessions() as session:
        raw = (await session.execute(text("SELECT password_hash FROM users"))).scalar_one()
        candidate = await store.login_candidate(session, "OLLI")
    assert raw.startswith("$argon2id$") and "correct horse battery" not in raw
    assert candidate is not None and candidate.user.employee_id == "asa"
    assert passwords.verify_password(candidate.password_hash, "correct horse battery")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "bad name", "role": "admin"}, "username"),
        ({"username": "x", "role": "root"}, "role"),
        ({"username": "x", "role": "employee", "employee_id": "nobody"}, "employee_id"),
        ({"username": "x", "role": "operator", "sip_endpoint": "PJSIP/a&PJSIP/b"},
         "sip_endpoint"),
        ({"username": "x", "role": "admin", "display_name": "x" * 201}, "display_name"),
        ({"username": "anna", "role": "admin"}, "username"),  # taken
    ],
)
async def test_bad_users_are_refused(people, kwargs, field):
    async with people.sessions.begin() as session:
        await store.add_user(session, "anna", role="employee", employee_id="anna")
    with pytest.raises(AuthError) as err:
        async with people.sessions.begin() as session:
            await store.add_user(session, **kwargs)
    assert err.value.field == field
    async with people.sessions() as session:
        assert [u.username for u in await store.list_users(session)] == ["anna"]


async def test_a_deactivated_employee_cannot_get_a_user(people):
    async with people.sessions.begin() as session:
        from vaihde.directory import DirectoryDescription, EmployeeDescription

        await sync_directory(session, DirectoryDescription(
            employees=(EmployeeDescription(id="anna", name="Anna Virtanen"),)))
    with pytest.raises(AuthError, match="no longer in the directory"):
        async with people.sessions.begin() as session:
            await store.add_user(session, "asa", role="employee", employee_id="asa")


async def test_tokens_are_stored_as_sha256_and_work_until_revoked(people):
    async with people.sessions.begin() as session:
        await store.add_user(session, "anna", role="employee", employee_id="anna")
        secret, record = await store.create_token(session, "anna", label="widget", now=T0)
    assert secret.startswith("vaihde_") and len(secret) > 40
    async with people.sessions() as session:
        rows = (await session.execute(text("SELECT * FROM api_tokens"))).mappings().all()
    assert len(rows) == 1
    assert all(secret not in str(value) for value in rows[0].values())
    assert rows[0]["token_sha256"] == store.digest(secret)

    async with people.sessions() as session:
        found = await store.principal_for_token(session, secret, now=T0)
        assert found is not None
        principal, token_id, due = found
        assert (principal.username, principal.employee_id, principal.via) == (
            "anna", "anna", "token")
        assert token_id == record.id and due
        assert await store.principal_for_token(session, secret + "x", now=T0) is None
        assert await store.principal_for_token(session, "not-ours", now=T0) is None

    async with people.sessions.begin() as session:
        revoked = await store.revoke_token(session, record.id, now=T0)
    assert revoked.state(T0) == "revoked"
    async with people.sessions() as session:
        assert await store.principal_for_token(session, secret, now=T0) is None
    with pytest.raises(AuthError, match="already revoked"):
        async with people.sessions.begin() as session:
            await store.revoke_token(session, record.id)
    with pytest.raises(AuthError, match="no token #999"):
        async with people.sessions.begin() as session:
            await store.revoke_token(session, 999)


async def test_tokens_expire(people):
    async with people.sessions.begin() as session:
        await store.add_user(session, "anna", role="employee")
        secret, record = await store.create_token(
            session, "anna", expires_at=T0 + timedelta(days=1), now=T0
        )
    async with people.sessions() as session:
        assert await store.principal_for_token(session, secret, now=T0 + timedelta(hours=23))
        assert await store.principal_for_token(session, secret, now=T0 + timedelta(days=1)) is None
    assert record.state(T0 + timedelta(days=2)) == "expired"
    with pytest.raises(AuthError) as err:
        async with people.sessions.begin() as session:
            await store.create_token(session, "anna", expires_at=T0 - timedelta(days=1), now=T0)
    assert err.value.field == "expires_at"


async def test_disabling_revokes_tokens_and_ends_sessions(people):
    async with people.sessions.begin() as session:
        user = await store.add_user(session, "anna", role="employee")
        secret, _ = await store.create_token(session, "anna", now=T0)
        cookie, _ = await store.create_session(session, user.id, now=T0)
        await store.set_active(session, "anna", False, now=T0)
    async with people.sessions() as session:
        assert await store.principal_for_token(session, secret, now=T0) is None
        assert await store.principal_for_session(session, cookie, now=T0) is None
        assert [t.state(T0) for t in await store.list_tokens(session, "anna")] == ["revoked"]
        assert await store.login_candidate(session, "anna") is None
    with pytest.raises(AuthError, match="disabled"):
        async with people.sessions.begin() as session:
            await store.create_token(session, "anna")


async def test_sessions_idle_and_absolute_limits(people):
    async with people.sessions.begin() as session:
        user = await store.add_user(session, "anna", role="employee")
        cookie, record = await store.create_session(session, user.id, user_agent="x", now=T0)
    assert record.expires_at == T0 + store.SESSION_ABSOLUTE
    assert record.ends_at() == T0 + store.SESSION_IDLE

    async def alive(at: datetime) -> bool:
        async with people.sessions() as session:
            found = await store.principal_for_session(session, cookie, now=at)
        if found is not None and found[2]:
            async with people.sessions.begin() as session:
                await store.touch_session(session, cookie, now=at)
        return found is not None

    assert await alive(T0 + timedelta(hours=11))
    assert await alive(T0 + timedelta(hours=22))
    assert not await alive(T0 + timedelta(hours=34, seconds=1))

    async with people.sessions.begin() as session:
        cookie, _ = await store.create_session(session, user.id, now=T0)
    for hours in range(10, 168, 10):
        assert await alive(T0 + timedelta(hours=hours))
    assert not await alive(T0 + timedelta(days=7))
    # Ended sessions are deleted at the next login.
    async with people.sessions.begin() as session:
        await store.create_session(session, user.id, now=T0 + timedelta(days=8))
    async with people.sessions() as session:
        assert len((await session.scalars(select(a.WebSession))).all()) == 1


async def test_new_password_ends_sessions(people):
    async with people.sessions.begin() as session:
        user = await store.add_user(session, "anna", role="employee")
        cookie, _ = await store.create_session(session, user.id, now=T0)
        await store.set_password(session, "anna", passwords.hash_password("new password 1"))
    async with people.sessions() as session:
        assert await store.principal_for_session(session, cookie, now=T0) is None


async def test_update_user(people):
    async with people.sessions.begin() as session:
        await store.add_user(session, "anna", role="employee")
        user = await store.update_user(session, "anna", role="operator", employee_id="anna",
                                       sip_endpoint="PJSIP/anna")
    assert (user.role, user.employee_id, user.sip_endpoint) == ("operator", "anna", "PJSIP/anna")
    async with people.sessions.begin() as session:
        user = await store.update_user(session, "anna", employee_id="", sip_endpoint="")
    assert (user.employee_id, user.sip_endpoint) == (None, None)
