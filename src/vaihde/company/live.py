"""The companies as the running service uses them: loaded from the database at start (the company
files applied first on an empty database), each swapped in on its own whenever someone applies a
new version of it anywhere (`vaihde config apply`, the admin pages, another instance), the
callers each company greets by name, and where each call belongs (`tenants.CompanyIndex`).

Each call reads its company once when it starts, so a change never alters a call half-way.
Changes are noticed through the `config` and `callers` revision counters: at once on PostgreSQL
(a vaihde.db.changes watch), by polling them on SQLite. A new version of one company replaces
that company only: calls of the others never notice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.calendar.policy import CalendarPolicy
from vaihde.company.apply import apply_company, owners
from vaihde.company.load import company_from_document, load_company
from vaihde.company.schema import CompanyConfig
from vaihde.company.tenants import CompanyIndex, Roster, check_collisions
from vaihde.db import models as m
from vaihde.db.changes import Watch
from vaihde.db.models import CALLERS, CONFIG, Caller, current_revisions
from vaihde.directory.store import latest_versions, list_companies
from vaihde.jobs import Background
from vaihde.prompts import PromptLibrary

log = logging.getLogger("vaihde.company")

# How often, without notifications (SQLite), the service looks for a company applied elsewhere.
POLL_S = 1.0

Listener = Callable[[CompanyConfig], None]


class NoCompany(RuntimeError):
    """The database holds no company and no company file was given to start from."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """One company as a call uses it: its configuration, its prompts, whom it greets by name."""

    config: CompanyConfig
    version: int
    prompts: PromptLibrary
    greetings: Mapping[str, str]

    @property
    def id(self) -> str:
        return self.config.id


class LiveCompany:
    """The running companies (`tenants`, the first is `company`), the index from a dialled or
    forwarding number to its company, and the prompts made for each new version. `on_change`
    listeners hear every company version swapped in after the first."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        prompts: PromptLibrary,
        jobs: Background,
        *,
        company_file: str = "",
        company_files: Sequence[str] = (),
        calendars: CalendarPolicy | None = None,
    ) -> None:
        self.sessions = sessions
        self.prompts = prompts
        self.jobs = jobs
        self.company_files = tuple(f for f in (company_file, *company_files) if f)
        self.company_file = self.company_files[0] if self.company_files else ""
        self.calendars = calendars
        self.tenants: Mapping[str, Tenant] = MappingProxyType({})
        self.index = CompanyIndex.build({})
        # Every company's employees and teams as one (phones, team queues, messages, zones).
        self.roster = Roster.build({})
        self.version = 0  # the config revision counter last seen
        self._libraries: dict[str, PromptLibrary] = {}
        self._revisions: dict[str, int] = {}
        self._listeners: list[Listener] = []

    # --- what calls and the rest of the service read -----------------------------------------

    @property
    def current(self) -> CompanyConfig | None:
        """The first company (a single-company installation's only one), or None."""
        first = next(iter(self.tenants.values()), None)
        return first.config if first is not None else None

    @property
    def company(self) -> CompanyConfig:
        if self.current is None:
            raise NoCompany("no company configuration loaded")
        return self.current

    @property
    def companies(self) -> Mapping[str, CompanyConfig]:
        return {cid: t.config for cid, t in self.tenants.items()}

    @property
    def greetings(self) -> Mapping[str, str]:
        """The first company's (as before several companies)."""
        first = next(iter(self.tenants.values()), None)
        return first.greetings if first is not None else {}

    def tenant(self, company_id: str) -> Tenant | None:
        return self.tenants.get(company_id)

    def for_call(self, dialled: str, forwarded_from: str = "") -> Tenant:
        """The company a call belongs to (tenants.CompanyIndex.company_for)."""
        found = self.tenants.get(self.index.company_for(dialled, forwarded_from))
        if found is None:
            found = next(iter(self.tenants.values()), None)
        if found is None:
            raise NoCompany("no company configuration loaded")
        return found

    def company_of_employee(self, employee_id: str) -> CompanyConfig | None:
        return self.roster.company_of(employee_id)

    def on_change(self, cb: Listener) -> None:
        self._listeners.append(cb)

    def library(self, company_id: str) -> PromptLibrary:
        lib = self._libraries.get(company_id)
        if lib is None:
            lib = self._libraries[company_id] = self.prompts.for_company(company_id)
        return lib

    # --- loading and following changes --------------------------------------------------------

    async def load(self) -> CompanyConfig:
        """At start: the companies as last applied; on an empty database the company files are
        applied first. Raises NoCompany when there is neither."""
        async with self.sessions() as session:
            known = await list_companies(session)
        if not known and self.company_files:
            await self._apply_files()
        await self.check_for_changes(notify=False)
        if not self.tenants:
            raise NoCompany(
                "the database holds no company: run `vaihde config apply FILE` "
                "or set company_file (company_files) in the settings"
            )
        return self.company

    async def _apply_files(self) -> None:
        """First start on an empty database: the company files are the starting point, each
        its own company (a file without company.id is `main`; two files of one id refused)."""
        for path in self.company_files:
            config = load_company(path, calendars=self.calendars)
            async with self.sessions() as session:
                check_collisions(config, await owners(session, config.id, config), path=path)
            result = await apply_company(
                self.sessions, config, applied_by="vaihde serve", source_name=str(Path(path)),
            )
            log.info("company file applied to an empty database",
                     extra={"version": result.version, "company": config.id})

    async def check_for_changes(self, *, notify: bool = True) -> bool:
        """Reload what other processes changed (the revision counters say what); True if a new
        version of some company was swapped in. Only the companies whose version changed are
        read again."""
        changed: list[CompanyConfig] = []
        async with self.sessions() as session:
            revisions = await current_revisions(session)
            greet = revisions.get(CALLERS) != self._revisions.get(CALLERS) or not self.tenants
            config_changed = revisions.get(CONFIG) != self._revisions.get(CONFIG)
            tenants = dict(self.tenants)
            if config_changed or not self.tenants:
                order = [cid for cid, _ in await list_companies(session)]
                versions = await latest_versions(session)
                for cid in order:
                    have = tenants.get(cid)
                    if cid not in versions or (have is not None and have.version == versions[cid]):
                        continue
                    config = await _config_version(session, versions[cid], cid)
                    tenants[cid] = Tenant(config, versions[cid], self.library(cid),
                                          have.greetings if have is not None else {})
                    changed.append(config)
                tenants = {cid: tenants[cid] for cid in order if cid in tenants}
            if greet:
                greetings = await _greetings(session)
                tenants = {cid: replace(t, greetings=greetings.get(cid, {}))
                           for cid, t in tenants.items()}
        first_load = not self.tenants
        before = {cid: t.config for cid, t in self.tenants.items()}
        if changed or greet:
            self.tenants = MappingProxyType(tenants)
            if changed:
                self._reindex(before, changed)
        self._revisions = revisions
        self.version = revisions.get(CONFIG, 0)
        for config in changed:
            log.info("company configuration loaded",
                     extra={"company": config.id, "version": self.tenants[config.id].version})
            self.prefetch(config.id)
            if notify and not first_load:
                for cb in list(self._listeners):
                    try:
                        cb(config)
                    except Exception:
                        log.exception("company change listener failed")
        return bool(changed)

    def _reindex(self, before: Mapping[str, CompanyConfig],
                 changed: Sequence[CompanyConfig]) -> None:
        """The number index and the roster after `changed` were swapped in: each changed
        company's part replaced (the cost of that company), or all rebuilt when there are
        many or the companies themselves came or went."""
        companies = self.companies
        if len(changed) > 8 or list(before) != list(companies):
            self.index = CompanyIndex.build(companies)
            self.roster = Roster.build(companies)
            return
        index, roster = self.index, self.roster
        for config in changed:
            index = index.replaced(companies, before.get(config.id), config)
            roster = roster.replaced(companies, before.get(config.id), config)
        self.index, self.roster = index, roster

    def prefetch(self, company_id: str | None = None) -> None:
        """Synthesize a company's prompts (every company's: None) in the background; until a
        prompt exists the flow plays a silent prompt rather than keeping the caller waiting."""
        for tenant in list(self.tenants.values()):
            if company_id is not None and tenant.id != company_id:
                continue
            self._prefetch(tenant)

    def _prefetch(self, tenant: Tenant) -> None:
        async def run() -> None:
            report = await tenant.prompts.prefetch(tenant.config)
            log.info("prompts ready", extra={"company": tenant.id, "generated": report.generated,
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


async def _config_version(session: AsyncSession, version: int, company_id: str) -> CompanyConfig:
    document = (await session.scalars(
        select(m.ConfigVersion.document).where(m.ConfigVersion.id == version))).one()
    config = company_from_document(json.loads(document), f"config version {version}")
    if config.id != company_id:  # stored before company.id existed (migration 0006)
        config = replace(config, company=replace(config.company, id=company_id))
    return config


async def _greetings(session: AsyncSession) -> dict[str, dict[str, str]]:
    """Per company: number → first name of the callers who agreed to be greeted by name."""
    rows = await session.execute(
        select(Caller.company_id, Caller.number, Caller.name)
        .where(Caller.greet_by_name.is_(True))
    )
    out: dict[str, dict[str, str]] = {}
    for company_id, number, name in rows:
        if name and name.split():
            out.setdefault(company_id, {})[number] = name.split()[0]
    return out


__all__ = ["POLL_S", "LiveCompany", "NoCompany", "Tenant"]
