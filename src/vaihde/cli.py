"""The `vaihde` command: serve the switchboard, run a process-per-call AGI, check configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from vaihde import __version__

DEFAULT_CONFIG = os.environ.get("VAIHDE_CONFIG", "config/demo.yaml")


def _load(path: str):
    from vaihde.config.settings import load
    from vaihde.config.source import ConfigError

    try:
        return load(path)
    except ConfigError as exc:
        print(f"vaihde: {path} has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from vaihde import logs
    from vaihde.service import serve

    settings = _load(args.config)
    logs.setup(args.log_format or settings.log_format)
    asyncio.run(serve(settings))
    return 0


def cmd_agi(args: argparse.Namespace) -> int:
    """One call over stdin/stdout: AGI(/path/to/agi/vaihde-agi,inbound)."""
    from vaihde import logs
    from vaihde.agi.session import Router
    from vaihde.agi.stdio import serve_stdio
    from vaihde.flows.inbound import inbound

    settings = _load(args.config)
    logs.setup(settings.log_format)  # stderr: Asterisk logs it, stdout is the protocol
    router = Router()

    async def handler(channel):
        await inbound(channel, settings.company)

    router.add(args.script, handler)
    result = asyncio.run(serve_stdio(router, args.script))
    return 0 if result.outcome in ("done", "hangup") else 1


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    company = settings.company
    print(
        f"{args.file}: ok — {company.name}: {len(company.employees)} employee(s), "
        f"menu keys {', '.join(sorted(company.menu.options))}"
    )
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

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a settings file; nothing is applied")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
