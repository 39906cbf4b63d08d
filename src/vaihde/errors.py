"""The one error type of vaihde: bad input or a refused request, in plain words, with a
machine-readable code, the HTTP status it answers with, the field at fault and any details.

Every domain error (AuthError, PresenceError, MessageError, DirectoryError, ConfigError, the
console's Refusal, FeatureCodeError, the API's ApiError, the commands' CommandError) is a
VaihdeError. The REST API's error middleware (vaihde.api.errors) turns any of them into
`{"error": {"code", "message", "field"?, ...details}}` with `status`; the commands
(vaihde.commands.command) into one line on stderr and exit status 2. Nothing else maps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar


class VaihdeError(Exception):
    """Nothing was written. `code` and `status` default to the class's; `problems` lists every
    thing wrong as "field: what is wrong" where there are several (a company file, a
    directory), else it is the one problem."""

    code: str = "invalid"
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        status: int | None = None,
        problems: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        **details: Any,
    ) -> None:
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.problems = list(problems) or [f"{field}: {message}" if field else message]
        self.headers = dict(headers or {})
        self.details = details
        super().__init__("\n".join(self.problems))

    def line(self) -> str:
        """One line for a command's stderr."""
        return "; ".join(self.problems)

    def body(self) -> dict[str, Any]:
        """The `error` object of an API response."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.details)
        return out


def problem_field(problem: str) -> str | None:
    """"field: what is wrong" → field (None when the problem does not start with one)."""
    head, sep, _ = problem.partition(": ")
    return head if sep and " " not in head else None


class ProblemsError(VaihdeError):
    """Several problems at once, each "field: what is wrong"; the first names the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "; ".join(problems),
            field=problem_field(problems[0]) if problems else None,
            problems=problems,
        )
        if problems:
            self.details["problems"] = list(problems)


class FieldError(VaihdeError):
    """One field is wrong: `field: message`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


E = TypeVar("E", bound=StrEnum)


def one_of(kind: type[E], field: str, value: str | E, error: type[FieldError]) -> E:
    """`value` as a member of `kind`, or `error` saying what the choices are."""
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(member.value for member in kind)
        raise error(field, f"unknown {field} {value!r}; use one of: {names}") from None
