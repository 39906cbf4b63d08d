"""What the REST API accepts and answers for logging in: the login body, the user and the
session (with the CSRF token that cookie-authenticated changes must send)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from vaihde.api.route import Body
from vaihde.auth.model import MAX_PASSWORD, Role
from vaihde.records import LEAVE_OUT_NONE, Record, Time


class Login(Body):
    username: str = Field(max_length=200)
    password: str = Field(max_length=MAX_PASSWORD)


class User(Record):
    """A user as the API shows them (from a Principal)."""

    username: str
    display_name: str
    role: Role
    employee_id: str | None
    sip_endpoint: str | None
    companies: list[str] | None = Field(
        None, description="the companies the user acts for; null: every company")

    @field_validator("companies", mode="before")
    @classmethod
    def _sorted(cls, value: Any) -> Any:
        return sorted(value) if isinstance(value, frozenset | set) else value


class Session(Record):
    """Who is logged in, how, and (with the session cookie) the session's CSRF token and
    limits."""

    sometimes = ("csrf_token", "expires_at", "idle_expires_at")

    user: User
    via: Literal["token", "session"]
    csrf_token: str | None = Field(
        None, description="send as X-CSRF-Token with every POST, PUT and DELETE made with the "
        "session cookie")
    expires_at: Time | None = None
    idle_expires_at: Time | None = Field(
        None, description="when the session ends if unused (12 h idle limit, 7 days at most)")

    _absent = LEAVE_OUT_NONE  # the session's own fields only for a cookie login
