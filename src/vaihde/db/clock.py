"""The one notion of "now" the stores share: timezone-aware UTC, injectable for tests."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware_now(now: datetime | None) -> datetime:
    """`now` if given (it must be aware: naive times are ambiguous), else the current UTC time."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now
