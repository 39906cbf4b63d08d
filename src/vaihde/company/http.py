"""The company configuration for admins: POST /config/check, /config/diff and /config/apply take
the company file's YAML as the body; GET /config returns what is applied. A file with problems
is refused whole, with every problem as file:line: field: message, and nothing changes.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePath
from typing import Any

from aiohttp import web

from vaihde.api.errors import ApiError, Query, invalid, media_type, not_found, read_body
from vaihde.api.routes_common import Route, ctx, iso, require
from vaihde.auth.model import Action
from vaihde.company.apply import apply_company, pending_changes
from vaihde.company.diff import Change, render_diff
from vaihde.company.schema import CompanyConfig
from vaihde.config.safe_yaml import DEFAULT_LIMITS
from vaihde.config.source import ConfigError
from vaihde.directory import DirectoryError
from vaihde.directory.store import latest_config

YAML_TYPES = ("text/yaml", "application/yaml", "application/x-yaml", "text/x-yaml")
# The YAML limit (vaihde.config.safe_yaml): a company of 10,000 employees is about 4.5 MiB.
MAX_YAML_BODY = DEFAULT_LIMITS.max_bytes
DEFAULT_NAME = "company.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.*)$",
                      re.DOTALL)


def problem_json(problem: str) -> dict[str, Any]:
    """"file:line: field: message" as parts (and the line as written, for display)."""
    found = _PROBLEM.match(problem)
    if found is None:
        return {"file": None, "line": None, "field": None, "message": problem, "text": problem}
    field = found["field"]
    return {
        "file": found["file"],
        "line": int(found["line"]),
        # "not valid YAML", "(top level)": a description, not a field path.
        "field": None if " " in field else field,
        "message": found["message"],
        "text": problem,
    }


def change_json(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "path": change.path,
        "old": change.old,
        "new": change.new,
        "summary": change.summary,
    }


async def _yaml(request: web.Request) -> tuple[str, str]:
    """(the YAML text, the name problems are reported under)."""
    query = Query(request, ("name",))
    name = query.text("name", max_length=100) or DEFAULT_NAME
    if not _NAME.match(name) or PurePath(name).name != name:
        raise invalid("name", "must be a plain file name like company.yaml")
    if media_type(request) not in YAML_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the company file as YAML (Content-Type: application/yaml or text/yaml)",
        )
    raw = await read_body(request, MAX_YAML_BODY)
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError as exc:
        raise invalid("body", f"is not UTF-8 text ({exc.reason})") from None


async def _parse(request: web.Request, text: str, name: str) -> CompanyConfig:
    """Validate without touching the server's files (`employees_file:` must not make the
    server read a path the request chose, so includes are refused) and away from the event
    loop (vaihde.company.offloop), within the YAML limits; raises ConfigError."""
    return await ctx(request).config_checker.check(text, name)


def _refused(problems: list[str], what: str) -> ApiError:
    return ApiError(
        400,
        "invalid_config",
        f"the configuration has {len(problems)} problem(s); {what}",
        "body",
        problems=[problem_json(p) for p in problems],
    )


async def check(request: web.Request) -> web.Response:
    require(request, Action.CONFIGURE)
    text, name = await _yaml(request)
    try:
        summary = await ctx(request).config_checker.summary(text, name)
    except ConfigError as exc:
        return web.json_response(
            {"ok": False, "problems": [problem_json(p) for p in exc.problems], "warnings": []}
        )
    return web.json_response(
        {
            "ok": True,
            "problems": [],
            "warnings": [problem_json(w) for w in summary.warnings],
            "company": summary.company,
            "counts": summary.counts,
        }
    )


async def diff(request: web.Request) -> web.Response:
    require(request, Action.CONFIGURE)
    text, name = await _yaml(request)
    try:
        config = await _parse(request, text, name)
    except ConfigError as exc:
        raise _refused(exc.problems, "nothing to compare") from None
    changes = await pending_changes(ctx(request).sessions, config)
    return web.json_response(
        {"changes": [change_json(c) for c in changes], "text": render_diff(changes)}
    )


async def apply(request: web.Request) -> web.Response:
    principal = require(request, Action.CONFIGURE)
    text, name = await _yaml(request)
    try:
        config = await _parse(request, text, name)
    except ConfigError as exc:
        raise _refused(exc.problems, "nothing was applied") from None
    api = ctx(request)
    try:
        result = await apply_company(
            api.sessions, config, applied_by=principal.username, source_name=f"api:{name}"
        )
    except DirectoryError as exc:
        raise _refused(exc.problems, "nothing was applied") from None
    if result.applied:
        # The cache learns about added and removed employees now, not at its next poll.
        await api.cache.refresh()
        if api.config_applied is not None:
            await api.config_applied()
    changes = list(result.changes)
    return web.json_response(
        {
            "applied": result.applied,
            "version": result.version,
            "changes": [change_json(c) for c in changes],
            "text": render_diff(changes),
        }
    )


async def current(request: web.Request) -> web.Response:
    require(request, Action.CONFIGURE)
    Query(request, ())
    api = ctx(request)
    async with api.sessions() as session:
        record = await latest_config(session)
    if record is None:
        raise not_found("no configuration has been applied yet")
    return web.json_response(
        {
            "version": record.id,
            "applied_at": iso(record.applied_at, api.tz),
            "applied_by": record.applied_by,
            "source_name": record.source_name,
            "sha256": record.sha256,
            "document": json.loads(record.document),
        }
    )


ROUTES: list[Route] = [
    ("POST", "/config/check", check),
    ("POST", "/config/diff", diff),
    ("POST", "/config/apply", apply),
    ("GET", "/config", current),
]
