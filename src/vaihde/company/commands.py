"""`vaihde config check|diff|apply FILE`: the admin's company file, validated, compared with what
the database holds, and applied as a whole (or not at all); `vaihde config schema`: its JSON
Schema for editors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vaihde.commands import add
from vaihde.config.source import ConfigError

if TYPE_CHECKING:
    from vaihde.company.schema import CompanyConfig
    from vaihde.config.settings import Settings
    from vaihde.db.engine import Database


def _company(args: argparse.Namespace) -> CompanyConfig:
    from vaihde.company.load import load_company

    path = args.file
    settings = _settings(args)
    # The service's calendar rules when its settings are known; else the same default they have.
    calendars = settings.calendar if settings is not None else None
    try:
        config = load_company(path, calendars=calendars)
    except ConfigError as exc:
        exc.exit(path, "; nothing was applied")
    for warning in config.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    return config


async def _for_company(
    args: argparse.Namespace, config: CompanyConfig, db: Database
) -> CompanyConfig:
    """`config` as the company it is applied to (--company, the file's company.id, `main`),
    checked against what the other companies hold; exits 2 naming file:line otherwise."""
    from dataclasses import replace

    from vaihde.company.apply import company_ids, owners
    from vaihde.company.tenants import check_collisions, company_id_for

    try:
        company_id = company_id_for(config.company.id, args.company,
                                    await company_ids(db.sessions))
        config = replace(config, company=replace(config.company, id=company_id))
        async with db.sessions() as session:
            others = await owners(session, company_id, config)
        check_collisions(config, others, path=args.file)
    except ConfigError as exc:
        exc.exit(args.file, "; nothing was applied")
    return config


def _settings(args: argparse.Namespace) -> Settings | None:
    """The service settings these commands act for: --settings, else $VAIHDE_CONFIG, else
    config/demo.yaml when run in the repository; None when there are none."""
    path = getattr(args, "settings", None) or os.environ.get("VAIHDE_CONFIG")
    if path is None and Path("config/demo.yaml").exists():
        path = "config/demo.yaml"
    if not path:
        return None
    from vaihde.config.settings import load

    os.environ.setdefault("VAIHDE_AMI_SECRET", "-")  # not needed for database work
    try:
        return load(path)
    except ConfigError as exc:
        print(f"vaihde: {path}: {exc.problems[0]}", file=sys.stderr)
        raise SystemExit(2) from None


def database_for(args: argparse.Namespace) -> str | None:
    """--db wins; else the settings file's database; else the environment / default."""
    given: str | None = getattr(args, "db", None)
    if given:
        return given
    settings = _settings(args)
    return settings.database_url or None if settings is not None else None


@asynccontextmanager
async def _upgraded(args: argparse.Namespace) -> AsyncIterator[Database]:
    """The settings' database, created or migrated first (applying needs its tables)."""
    from vaihde.db.engine import DatabaseUrlError, open_database
    from vaihde.db.migrate import upgrade_async

    try:
        db = open_database(database_for(args))
    except DatabaseUrlError as exc:
        print(f"vaihde: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        await upgrade_async(db.engine)
        yield db
    finally:
        await db.close()


def cmd_check(args: argparse.Namespace) -> int:
    from vaihde.company.tenants import company_id_for

    config = _company(args)
    try:
        # The file alone: what other companies hold is checked by diff and apply.
        company_id = company_id_for(config.company.id, args.company, ())
    except ConfigError as exc:
        exc.exit(args.file)
    print(
        f"{args.file}: ok — {config.company.name} ({company_id}): "
        f"{len(config.employees)} employees, "
        f"{len(config.teams)} teams, {len(config.menus)} menus, {len(config.numbers)} numbers"
    )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from vaihde.company.apply import pending_changes
    from vaihde.company.diff import render_diff

    config = _company(args)

    async def run() -> str:
        async with _upgraded(args) as db:
            company = await _for_company(args, config, db)
            return render_diff(await pending_changes(db.sessions, company))

    print(asyncio.run(run()))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from vaihde.company.apply import apply_company
    from vaihde.company.diff import render_diff
    from vaihde.directory import DirectoryError

    config = _company(args)

    async def run() -> int:
        async with _upgraded(args) as db:
            company = await _for_company(args, config, db)
            try:
                result = await apply_company(
                    db.sessions, company, applied_by=args.by, source_name=str(Path(args.file))
                )
            except DirectoryError as exc:
                print(f"vaihde: {args.file} cannot be applied; nothing changed:", file=sys.stderr)
                for problem in exc.problems:
                    print(f"  {problem}", file=sys.stderr)
                return 2
        if not result.applied:
            print("No changes: the database already holds this configuration.")
        else:
            print(render_diff(list(result.changes)))
            print(f"Applied as version {result.version} of company {company.id!r}; the "
                  "running service picks it up.")
        return 0

    return asyncio.run(run())


def cmd_schema(args: argparse.Namespace) -> int:
    from vaihde.company.jsonschema import company_json_schema, schema_text

    print(schema_text(company_json_schema()), end="")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="the company file: check, diff, apply, schema")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="validate a company file; nothing is applied")
    check.add_argument("file")
    check.add_argument("--settings", help="service settings file whose calendar rules to use "
                       "(default: $VAIHDE_CONFIG, or config/demo.yaml here)")
    check.set_defaults(func=cmd_check)
    diff = add(actions, "diff", cmd_diff, "what applying the file would change", tz=False)
    diff.add_argument("file")
    apply = add(actions, "apply", cmd_apply, "apply the file: all of it or nothing", tz=False)
    apply.add_argument("file")
    for parser in (check, diff, apply):
        parser.add_argument(
            "--company", metavar="ID",
            help="the company the file is for (its company.id, if it has one, must match); "
                 "needed when the service has several companies")
    apply.add_argument("--by", default=getpass.getuser(), help="who applies (audit trail)")
    schema = actions.add_parser("schema", help="print the company file's JSON Schema (for "
                                "editors; config/company.schema.json)")
    schema.set_defaults(func=cmd_schema)
