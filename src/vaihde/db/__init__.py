"""The presence database: engine and sessions (engine), tables (models), migrations (migrate).

SQLite by default (var/vaihde.db), PostgreSQL with postgresql+asyncpg://…; see docs/presence.md.
"""

from vaihde.db import (
    auth_models,  # noqa: F401  (puts the auth tables on Base.metadata)
    dispatch_models,  # noqa: F401  (urgent messages and daily summaries)
    message_models,  # noqa: F401  (and the answering service's)
)
from vaihde.db.engine import (
    DEFAULT_URL,
    URL_ENV,
    Database,
    DatabaseUrlError,
    database_url,
    display_url,
    make_engine,
    make_sessionmaker,
    open_database,
    sqlite_path,
)
from vaihde.db.models import Base, bump_revision, current_revisions

__all__ = [
    "DEFAULT_URL",
    "URL_ENV",
    "Base",
    "Database",
    "DatabaseUrlError",
    "bump_revision",
    "current_revisions",
    "database_url",
    "display_url",
    "make_engine",
    "make_sessionmaker",
    "open_database",
    "sqlite_path",
]
