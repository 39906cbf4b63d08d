"""The `vaihde` command: serve the switchboard, run a process-per-call AGI, check configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from vaihde import __version__
from vaihde.auth import commands as auth_commands
from vaihde.company import commands as company_commands
from vaihde.messages import commands as messages_commands
from vaihde.phrases import commands as phrases_commands
from vaihde.presence import commands as presence_commands
from vaihde.reports import commands as report_commands

if TYPE_CHECKING:
    from vaihde.agi.channel import Channel
    from vaihde.agi.session import SessionResult
    from vaihde.company import CompanyConfig
    from vaihde.config.settings import Settings

DEFAULT_CONFIG = os.environ.get("VAIHDE_CONFIG", "config/demo.yaml")


T = TypeVar("T")


def _load(path: str) -> Settings:
    from vaihde.config.settings import load
    from vaihde.config.source import ConfigError

    try:
        return load(path)
    except ConfigError as exc:
        exc.exit(path)


def cmd_serve(args: argparse.Namespace) -> int:
    from vaihde import logs
    from vaihde.config.source import ConfigError
    from vaihde.service import NoCompany, serve

    settings = _load(args.config)
    logs.setup(args.log_format or settings.log_format)
    try:
        run_loop(serve(settings))
    except (NoCompany, ConfigError) as exc:
        print(f"vaihde: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop where installed (a quarter less CPU per call, bench/README.md), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def cmd_agi(args: argparse.Namespace) -> int:
    """One call over stdin/stdout: AGI(/path/to/agi/vaihde-agi,inbound)."""
    from vaihde import logs
    from vaihde.agi.session import Router
    from vaihde.agi.stdio import serve_stdio
    from vaihde.flows.inbound import inbound

    settings = _load(args.config)
    logs.setup(settings.log_format)  # stderr: Asterisk logs it, stdout is the protocol

    async def run() -> SessionResult:
        company = await _company_for_one_call(settings)
        router = Router()

        async def handler(channel: Channel) -> None:
            await inbound(channel, company, mobile_dial=settings.mobile_dial)

        router.add(args.script, handler)
        return await serve_stdio(router, args.script)

    result = asyncio.run(run())
    return 0 if result.outcome in ("done", "hangup") else 1


async def _company_for_one_call(settings: Settings) -> CompanyConfig:
    """The applied company from the database, as the service would use it; the company file
    only when the database has none yet."""
    from vaihde.company import load_company
    from vaihde.company.apply import current_company
    from vaihde.db.engine import open_database

    db = open_database(settings.database_url or None)
    try:
        async with db.sessions() as session:
            company = await current_company(session)
    except Exception:  # no database yet: the file is all there is
        company = None
    finally:
        await db.close()
    if company is None:
        company = load_company(settings.company_file, calendars=settings.calendar)
    return company


def cmd_settings_check(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    ami = ", ".join(f"{a.name + ' ' if a.name else ''}{a.host}:{a.port}"
                    for a in settings.all_asterisks())
    print(f"{args.file}: ok — FastAGI {settings.fastagi.host}:{settings.fastagi.port}, "
          f"AMI {ami}, HTTP {settings.http.port}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaihde", description="Company switchboard on Asterisk (FastAGI + AMI + web)."
    )
    parser.add_argument("--version", action="version", version=f"vaihde {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (FastAGI, AMI, HTTP health)")
    serve.add_argument("--config", default=DEFAULT_CONFIG, help="settings file (YAML)")
    serve.add_argument("--log-format", choices=["text", "json"], help="override the file's")
    serve.set_defaults(func=cmd_serve)

    agi = sub.add_parser("agi", help="handle one call over stdin/stdout (process-per-call AGI)")
    agi.add_argument("script", help="flow to run, e.g. inbound")
    agi.add_argument("--config", default=DEFAULT_CONFIG)
    agi.set_defaults(func=cmd_agi)

    settings = sub.add_parser("settings", help="service settings file tools")
    settings_sub = settings.add_subparsers(dest="settings_command", required=True, metavar="ACTION")
    check = settings_sub.add_parser("check", help="validate a settings file")
    check.add_argument("file")
    check.set_defaults(func=cmd_settings_check)

    company_commands.register(sub)
    presence_commands.register(sub)
    auth_commands.register(sub)
    messages_commands.register(sub)
    phrases_commands.register(sub)
    report_commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "db") and hasattr(args, "settings"):
        # Every database command finds the same database the service uses.
        from vaihde.company.commands import database_for

        args.db = database_for(args)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
