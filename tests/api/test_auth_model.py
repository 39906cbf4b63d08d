"""Roles and permissions (pure), input rules for users, the failed-login throttle, and password
hashing (argon2id; never the password itself)."""

from __future__ import annotations

import pytest

from vaihde.auth import passwords
from vaihde.auth.middleware import LoginThrottle, Throttled
from vaihde.auth.model import (
    Action,
    AuthError,
    Principal,
    Role,
    allowed,
    availability_source,
    check_password,
    check_sip_endpoint,
    check_username,
    parse_role,
)


def person(role: Role, employee_id: str | None = None) -> Principal:
    return Principal(1, "someone", role, employee_id)


# What each role may do to another employee's data (anna is not them).
EXPECTED = {
    Role.EMPLOYEE: {Action.READ_DIRECTORY, Action.READ_AVAILABILITY},
    Role.OPERATOR: {Action.READ_DIRECTORY, Action.READ_AVAILABILITY, Action.CHANGE_AVAILABILITY,
                    Action.READ_PRIVATE, Action.USE_CALLERS, Action.READ_MESSAGES,
                    Action.TAKE_MESSAGES, Action.CONSOLE},
    Role.ADMIN: set(Action),
}


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix(role):
    p = person(role, "matti")
    assert {a for a in Action if allowed(p, a, "anna")} == EXPECTED[role]


def test_everyone_may_change_and_see_their_own_availability_only():
    anna = person(Role.EMPLOYEE, "anna")
    assert allowed(anna, Action.CHANGE_AVAILABILITY, "anna")
    assert allowed(anna, Action.READ_PRIVATE, "anna")
    assert not allowed(anna, Action.CHANGE_AVAILABILITY, "matti")
    assert not allowed(anna, Action.CHANGE_AVAILABILITY)  # no employee given
    assert not allowed(anna, Action.USE_CALLERS, "anna")  # self does not widen other rights
    nobody = person(Role.EMPLOYEE, None)
    assert not allowed(nobody, Action.CHANGE_AVAILABILITY, "anna")
    assert not allowed(nobody, Action.CHANGE_AVAILABILITY, None)


def test_source_is_manual_for_oneself_and_operator_for_others():
    assert availability_source(person(Role.OPERATOR, "asa"), "asa") == "manual"
    assert availability_source(person(Role.OPERATOR, "asa"), "anna") == "operator"
    assert availability_source(person(Role.ADMIN, None), "anna") == "operator"
    assert availability_source(person(Role.EMPLOYEE, "anna"), "anna") == "manual"


def test_input_rules():
    assert check_username("  Anna.Virtanen@Demo ") == "anna.virtanen@demo"
    for bad in ("", " ", "-anna", "a b", "ä", "x" * 65, "anna;drop"):
        with pytest.raises(AuthError) as err:
            check_username(bad)
        assert err.value.field == "username"
    assert parse_role("operator") is Role.OPERATOR
    with pytest.raises(AuthError, match="unknown role 'root'"):
        parse_role("root")
    check_password("a" * 10)
    for bad, why in (("short", "too short"), ("a" * 1025, "too long"),
                     ("tab\tin password", "control")):
        with pytest.raises(AuthError, match=why):
            check_password(bad)
    assert check_sip_endpoint("PJSIP/operator1") == "PJSIP/operator1"
    assert check_sip_endpoint("") is None
    for bad in ("PJSIP/a&PJSIP/b", "PJSIP/a,30", "anna", "PJSIP/${EXTEN}"):
        with pytest.raises(AuthError) as err:
            check_sip_endpoint(bad)
        assert err.value.field == "sip_endpoint"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_counts_failures_per_username_and_address():
    clock = FakeClock()
    throttle = LoginThrottle(per_user=3, per_address=10, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("anna", "10.0.0.1") is None
        throttle.failed("anna", "10.0.0.1")
    assert throttle.retry_after("anna", "10.0.0.1") == pytest.approx(60)
    assert throttle.retry_after("ANNA ", "10.0.0.1") is not None  # same user
    assert throttle.retry_after("anna", "10.0.0.2") is None  # other address
    assert throttle.retry_after("matti", "10.0.0.1") is None  # other user
    clock.now += 30
    assert throttle.retry_after("anna", "10.0.0.1") == pytest.approx(30)
    clock.now += 31
    assert throttle.retry_after("anna", "10.0.0.1") is None  # the window slid past


def test_throttle_success_resets_the_user_and_the_address_limit_holds():
    clock = FakeClock()
    throttle = LoginThrottle(per_user=3, per_address=5, window_s=60, clock=clock)
    throttle.failed("anna", "a")
    throttle.failed("anna", "a")
    throttle.succeeded("anna", "a")
    throttle.failed("anna", "a")
    assert throttle.retry_after("anna", "a") is None
    # Spraying many usernames from one address hits the address limit.
    for name in ("b", "c", "d", "e"):
        throttle.failed(name, "a")
    assert throttle.retry_after("fresh", "a") is not None
    assert throttle.retry_after("fresh", "other") is None


def test_throttle_memory_is_bounded():
    throttle = LoginThrottle(max_keys=100, clock=FakeClock())
    for n in range(1000):
        throttle.failed(f"user{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(throttle._failures) <= 100


def test_passwords_are_argon2id_hashes_never_the_password():
    hashed = passwords.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert passwords.hash_password("correct horse battery") != hashed  # salted
    assert passwords.verify_password(hashed, "correct horse battery")
    assert not passwords.verify_password(hashed, "correct horse batterY")
    assert not passwords.verify_password("plain text", "plain text")
    assert not passwords.needs_rehash(hashed)
    assert passwords.needs_rehash("garbage")


def test_stronger_parameters_mark_old_hashes_for_rehashing():
    weak = passwords.hash_password("correct horse battery")
    passwords.configure(time_cost=2, memory_cost=2048, parallelism=1)
    try:
        assert passwords.needs_rehash(weak)
        assert passwords.verify_password(weak, "correct horse battery")
    finally:
        passwords.configure(time_cost=1, memory_cost=1024, parallelism=1)


async def test_async_helpers_run_off_the_event_loop():
    hashed = await passwords.hash_password_async("correct horse battery")
    assert await passwords.verify_password_async(hashed, "correct horse battery")
    assert not await passwords.verify_password_async(None, "correct horse battery")


def test_begin_counts_the_attempt_before_the_password_is_checked():
    throttle = LoginThrottle(per_user=3, per_address=10, window_s=60,
                             in_flight_per_address=10, in_flight=10, clock=FakeClock())
    # Three attempts started and not yet finished already use up the user's limit.
    started = [throttle.begin("anna", "a") for _ in range(3)]
    with pytest.raises(Throttled) as refused:
        throttle.begin("anna", "a")
    assert refused.value.why == "failures" and refused.value.retry_after == pytest.approx(60)
    # One of them had the right password: it takes back its own count (and the user's).
    started[0].succeeded()
    for attempt in started:
        attempt.end()
    assert throttle.retry_after("anna", "a") is None
    assert len(throttle._failures[("", "a")]) == 2  # the two wrong ones still count


def test_begin_limits_logins_in_progress_per_address_and_overall():
    throttle = LoginThrottle(in_flight_per_address=2, in_flight=3, clock=FakeClock())
    a1, a2 = throttle.begin("u1", "a"), throttle.begin("u2", "a")
    with pytest.raises(Throttled) as busy:
        throttle.begin("u3", "a")
    assert busy.value.why == "busy"
    b1 = throttle.begin("u1", "b")
    with pytest.raises(Throttled):
        throttle.begin("u1", "c")  # three in progress in all
    a1.end()
    a1.end()  # ending twice counts once
    assert throttle.in_progress == 2
    throttle.begin("u1", "c").end()
    for attempt in (a2, b1):
        attempt.end()
    assert throttle.in_progress == 0
