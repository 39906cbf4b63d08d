"""The company as the running service uses it: loaded from the database at start (the company file
applied first on an empty database), swapped in whenever someone applies a new version anywhere
(`vaihde config apply`, the admin pages, another instance), and the callers to greet by name.

Each call reads `company` once when it starts, so a change never alters a call half-way. Changes
are noticed through the `config` and `callers` revision counters: at once on PostgreSQL (a
vaihde.db.changes watch), by polling them on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.calendar.policy import CalendarPolicy
from vaihde.company.apply import apply_company, current_company
from vaihde.company.load import load_company
from vaihde.company.schema import CompanyConfig
from vaihde.db.changes import Watch
from vaihde.db.models import CALLERS, CONFIG, Caller, current_revisions
from vaihde.jobs import Background
from vaihde.prompts import PromptLibrary

log = logging.getLogger("vaihde.company")

# How often, without notifications (SQLite), the service looks for a company applied elsewhere.
POLL_S = 1.0

Listener = Callable[[CompanyConfig], None]


class NoCompany(RuntimeError):
    """The database holds no company and no company file was given to start from."""


class LiveCompany:
    """The running company (`company`, `version`), the greetings by caller number, and the
    prompts made for each new version. `on_change` listeners hear every version swapped in after
    the first."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        prompts: PromptLibrary,
        jobs: Background,
        *,
        company_file: str = "",
        calendars: CalendarPolicy | None = None,
    ) -> None:
        self.sessions = sessions
        self.prompts = prompts
        self.jobs = jobs
        self.company_file = company_file
        self.calendars = calendars
        self.current: CompanyConfig | None = None
        self.version = 0
        # Known callers who agreed to be greeted by name: number → first name. Kept in memory
        # (refreshed when the caller registry changes) so no call waits on the database.
        self.greetings: Mapping[str, str] = {}
        self._revisions: dict[str, int] = {}
        self._listeners: list[Listener] = []

    @property
    def company(self) -> CompanyConfig:
        if self.current is None:
            raise NoCompany("no company configuration loaded")
        return self.current

    def on_change(self, cb: Listener) -> None:
        self._listeners.append(cb)

    async def load(self) -> CompanyConfig:
        """At start: the company as last applied; on an empty database the company file is
        applied first. Raises NoCompany when there is neither."""
        async with self.sessions() as session:
            self._revisions = await current_revisions(session)
            company = await current_company(session)
            self.greetings = await _greetings(session)
        if company is None and self.company_file:
            # First start on an empty database: the company file is the starting point.
            config = load_company(self.company_file, calendars=self.calendars)
            result = await apply_company(
                self.sessions, config, applied_by="vaihde serve",
                source_name=str(Path(self.company_file)),
            )
            log.info("company file applied to an empty database", extra={"version": result.version})
            async with self.sessions() as session:
                self._revisions = await current_revisions(session)
                company = await current_company(session)
        if company is None:
            raise NoCompany(
                "the database holds no company: run `vaihde config apply FILE` "
                "or set company_file in the settings"
            )
        self.current = company
        self.version = self._revisions.get(CONFIG, 0)
        self.prefetch()
        return company

    async def check_for_changes(self) -> bool:
        """Reload what other processes changed (the revision counters say what); True if a new
        company version was swapped in."""
        swapped = False
        async with self.sessions() as session:
            revisions = await current_revisions(session)
            if revisions.get(CALLERS) != self._revisions.get(CALLERS):
                self.greetings = await _greetings(session)
            if revisions.get(CONFIG) != self._revisions.get(CONFIG):
                company = await current_company(session)
                if company is not None:
                    self.current = company
                    self.version = revisions.get(CONFIG, 0)
                    swapped = True
        self._revisions = revisions
        if swapped and self.current is not None:
            log.info("company configuration reloaded", extra={"version": self.version})
            self.prefetch()
            for cb in list(self._listeners):
                try:
                    cb(self.current)
                except Exception:
                    log.exception("company change listener failed")
        return swapped

    def prefetch(self) -> None:
        """Synthesize the company's prompts in the background; until a prompt exists the flow
        plays a silent prompt rather than keeping the caller waiting for speech."""
        company = self.current
        if company is None:
            return

        async def run() -> None:
            report = await self.prompts.prefetch(company)
            log.info("prompts ready", extra={"generated": report.generated,
                     "reused": report.reused, "failed": report.failed})

        # One per company version: tracked like other short jobs, not kept after they finish.
        self.jobs.spawn(run(), "vaihde-prompts")

    async def run(self, watch: Watch | None = None, poll_s: float = POLL_S) -> None:
        """Follow changes until cancelled: whenever `watch` wakes, or every `poll_s`."""
        while True:
            if watch is None:
                await asyncio.sleep(poll_s)
            else:
                await watch.wait(poll_s)
            try:
                await self.check_for_changes()
            except Exception as exc:  # a database hiccup must not stop the service
                log.warning("could not check for configuration changes",
                            extra={"error": repr(exc)})


async def _greetings(session: AsyncSession) -> dict[str, str]:
    rows = await session.execute(
        select(Caller.number, Caller.name).where(Caller.greet_by_name.is_(True))
    )
    return {number: name.split()[0] for number, name in rows if name and name.split()}


__all__ = ["POLL_S", "LiveCompany", "NoCompany"]
