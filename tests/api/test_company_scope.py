"""Roles per company, the pure part: a user's companies (an employee's own company, else the
companies linked to the user, none linked: every company), whether a principal may see one
company's things or a set of companies, and which user changes a company admin may make."""

from __future__ import annotations

from vaihde.auth.model import (
    Principal,
    Role,
    covers,
    in_scope,
    scope_of,
    user_refusal,
    visible,
)


def who(role: Role, companies: frozenset[str] | None) -> Principal:
    return Principal(1, "someone", role, None, companies=companies)


A, B, AB = frozenset({"alfa"}), frozenset({"beta"}), frozenset({"alfa", "beta"})


def test_an_employee_is_scoped_to_their_own_employees_company_whatever_is_linked():
    assert scope_of(Role.EMPLOYEE, "alfa", ["beta"]) == A
    assert scope_of("employee", "beta", []) == B


def test_staff_are_scoped_to_their_linked_companies_and_none_linked_means_every_company():
    assert scope_of(Role.OPERATOR, "alfa", ["beta"]) == B  # an operator who is also an employee
    assert scope_of(Role.ADMIN, None, ["alfa", "beta"]) == AB
    assert scope_of(Role.ADMIN, None, []) is None
    assert scope_of(Role.EMPLOYEE, None, []) is None  # an employee user with no employee


def test_in_scope_and_visible():
    service = who(Role.OPERATOR, None)
    alfa = who(Role.OPERATOR, A)
    assert in_scope(service, "beta") and in_scope(service, None)
    assert in_scope(alfa, "alfa")
    assert not in_scope(alfa, "beta") and not in_scope(alfa, None)
    assert visible(alfa, ["beta", "alfa", "gamma"]) == ["alfa"]
    assert visible(service, ["beta", "alfa"]) == ["beta", "alfa"]


def test_covers_a_set_of_companies_only_if_all_of_them_are_in_scope():
    alfa = who(Role.ADMIN, A)
    assert covers(alfa, A)
    assert not covers(alfa, AB)
    assert not covers(alfa, None)  # every company
    assert covers(who(Role.ADMIN, None), None)


def test_a_service_wide_admin_may_make_any_user():
    root = who(Role.ADMIN, None)
    assert user_refusal(root, None, new=True) is None
    assert user_refusal(root, AB, before=None) is None


def test_a_company_admin_manages_only_users_wholly_within_their_companies():
    alfa_admin = who(Role.ADMIN, A)
    assert user_refusal(alfa_admin, A, new=True) is None
    assert user_refusal(alfa_admin, A, before=A) is None
    # Someone else's user, or a service-wide one: as if it did not exist.
    assert user_refusal(alfa_admin, A, before=B) == "no such user"
    assert user_refusal(alfa_admin, A, before=AB) == "no such user"
    assert user_refusal(alfa_admin, A, before=None) == "no such user"


def test_a_company_admin_cannot_make_a_service_wide_user_or_give_a_company_not_theirs():
    alfa_admin = who(Role.ADMIN, A)
    assert "service-wide admin" in (user_refusal(alfa_admin, None, new=True) or "")
    not_theirs = "you may give only your own companies, not beta"
    assert user_refusal(alfa_admin, AB, new=True) == not_theirs
    # Not their own scope either: widening themselves is giving a company not theirs.
    assert user_refusal(alfa_admin, AB, before=A) == not_theirs
    assert "service-wide" in (user_refusal(alfa_admin, None, before=A) or "")
