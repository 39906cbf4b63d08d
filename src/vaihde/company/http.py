"""The company configuration for admins: POST /config/check, /config/diff and /config/apply take
the company file's YAML as the body; GET /config returns what is applied. A file with problems
is refused whole, with every problem as file:line: field: message, and nothing changes.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from vaihde.api import scope
from vaihde.api.context import ctx, who
from vaihde.api.errors import ApiError, not_found
from vaihde.api.route import Routes
from vaihde.auth.model import Action
from vaihde.company.apply import apply_company, company_ids, owners, pending_changes
from vaihde.company.diff import render_diff
from vaihde.company.schema import CompanyConfig
from vaihde.company.schemas import (
    YAML_BODY,
    CompanyList,
    CompanyQuery,
    CompanySummary,
    ConfigApply,
    ConfigChange,
    ConfigCheck,
    ConfigDiff,
    ConfigVersion,
    FileName,
    problems_of,
)
from vaihde.company.tenants import check_collisions, company_id_for
from vaihde.config.source import ConfigError
from vaihde.directory import DirectoryError
from vaihde.directory.store import latest_config, latest_versions, list_companies
from vaihde.records import of_row

routes = Routes("config")
# The company the file is for: a company admin's own (`?company=` when they have several).
COMPANY = scope.query("company")
REFUSED = "A file with problems is a 400 (invalid_config) listing them"


async def _parse(request: web.Request, text: str, query: FileName) -> CompanyConfig:
    """Validate without touching the server's files (`employees_file:` must not make the
    server read a path the request chose, so includes are refused) and away from the event
    loop (vaihde.company.offloop), within the YAML limits; then the company it is for
    (`?company=`), with nothing another company holds. Raises ConfigError."""
    config = await ctx(request).config_checker.check(text, query.name)
    sessions = ctx(request).sessions
    company_id = company_id_for(config.company.id, query.company, await company_ids(sessions))
    config = replace(config, company=replace(config.company, id=company_id))
    async with sessions() as session:
        others = await owners(session, company_id, config)
    check_collisions(config, others, text=text, file=query.name)
    return config


def _refused(problems: list[str], what: str) -> ApiError:
    return ApiError(
        400,
        "invalid_config",
        f"the configuration has {len(problems)} problem(s); {what}",
        "body",
        problems=[p.model_dump() for p in problems_of(problems)],
    )


@routes.post("/config/check", "Validate a company file (nothing is applied)",
             allow=Action.CONFIGURE, query=FileName, body=YAML_BODY, company=COMPANY,
             ok=(200, "ok, or every problem as file:line: field: message", ConfigCheck))
async def check(request: web.Request, query: FileName, body: str) -> ConfigCheck:
    try:
        summary = await ctx(request).config_checker.summary(body, query.name)
    except ConfigError as exc:
        return ConfigCheck(ok=False, problems=problems_of(exc.problems), warnings=[])
    return ConfigCheck.model_validate({
        "ok": True, "problems": [], "warnings": problems_of(summary.warnings),
        "company": summary.company, "counts": summary.counts,
    })


@routes.post("/config/diff", "What applying a company file would change",
             allow=Action.CONFIGURE, query=FileName, body=YAML_BODY, company=COMPANY,
             ok=(200, "The changes", ConfigDiff), description=REFUSED + ".")
async def diff(request: web.Request, query: FileName, body: str) -> ConfigDiff:
    try:
        config = await _parse(request, body, query)
    except ConfigError as exc:
        raise _refused(exc.problems, "nothing to compare") from None
    changes = await pending_changes(ctx(request).sessions, config)
    return ConfigDiff(changes=[ConfigChange.model_validate(c) for c in changes],
                      text=render_diff(changes))


@routes.post("/config/apply", "Apply a company file: all of it or nothing",
             allow=Action.CONFIGURE, query=FileName, body=YAML_BODY, company=COMPANY,
             ok=(200, "Applied (or nothing to change)", ConfigApply),
             description=REFUSED + "; nothing changes.")
async def apply(request: web.Request, query: FileName, body: str) -> ConfigApply:
    principal = who(request)
    try:
        config = await _parse(request, body, query)
    except ConfigError as exc:
        raise _refused(exc.problems, "nothing was applied") from None
    api = ctx(request)
    try:
        result = await apply_company(
            api.sessions, config, applied_by=principal.username, source_name=f"api:{query.name}"
        )
    except DirectoryError as exc:
        raise _refused(exc.problems, "nothing was applied") from None
    if result.applied:
        # The cache learns about added and removed employees now, not at its next poll.
        await api.cache.refresh()
        if api.config_applied is not None:
            await api.config_applied()
    changes = list(result.changes)
    return ConfigApply(
        applied=result.applied, version=result.version,
        changes=[ConfigChange.model_validate(c) for c in changes], text=render_diff(changes),
    )


@routes.get("/config", "The applied company configuration and its version",
            allow=Action.CONFIGURE, query=CompanyQuery, company=COMPANY,
            ok=(200, "The current version", ConfigVersion), errors=(404,))
async def current(request: web.Request, query: CompanyQuery) -> ConfigVersion:
    async with ctx(request).sessions() as session:
        record = await latest_config(session, query.company)
    if record is None:
        raise not_found(f"no configuration has been applied to company {query.company!r} yet",
                        "company")
    return of_row(ConfigVersion, record)


@routes.get("/config/companies", "The companies the service answers for",
            allow=Action.CONFIGURE, company=scope.FILTERED,
            ok=(200, "Each company and its applied version", CompanyList))
async def companies(request: web.Request) -> CompanyList:
    """What the admin pages offer to edit (`?company=` of the other /config routes): the
    companies the admin acts for."""
    async with ctx(request).sessions() as session:
        known = await list_companies(session)
        versions = await latest_versions(session)
    return CompanyList(companies=[CompanySummary(id=cid, name=name, version=versions.get(cid))
                                  for cid, name in known if scope.sees(request, cid)])

