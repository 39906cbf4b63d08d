"""Employees' availability: the pure model and precedence rule (model), the database (store),
the in-memory cache for routing and the console (cache), and the CLI (commands).

Importing this package loads only the pure model; see docs/presence.md.
"""

from vaihde.presence.model import (
    Availability,
    Entry,
    PresenceError,
    Source,
    State,
    resolve,
    validate_new_entry,
)

__all__ = [
    "Availability",
    "Entry",
    "PresenceError",
    "Source",
    "State",
    "resolve",
    "validate_new_entry",
]
