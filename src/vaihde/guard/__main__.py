"""`python -m vaihde.guard`: run the guard, either as a child of `vaihde serve` (settings as JSON
on stdin, so the AMI secret never appears in a process listing) or as its own systemd unit
(`--config FILE`, the service's settings file)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from dataclasses import dataclass

from vaihde import logs, systemd
from vaihde.ami.client import AmiClient
from vaihde.guard.run import DEFAULT_STALL_S, Guard
from vaihde.jobs import cancel_all


@dataclass(frozen=True, slots=True)
class GuardSettings:
    host: str
    port: int
    username: str
    secret: str
    stall_s: float = DEFAULT_STALL_S
    log_format: str = "text"
    agi_url: str = ""  # follow only the sessions of this AGI URL (one of several instances)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GuardSettings:
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def from_settings_file(path: str, asterisk: str = "") -> GuardSettings:
    """The guard of one Asterisk of the settings (`asterisk`: its name in service.asterisks;
    "" = the first, or only, one)."""
    from vaihde.config.settings import load
    from vaihde.config.source import ConfigError

    try:
        settings = load(path)
    except ConfigError as exc:
        exc.exit(path)
    every = settings.all_asterisks()
    ami = next((a for a in every if a.name == asterisk), None) if asterisk else every[0]
    if ami is None:
        names = ", ".join(a.name for a in every if a.name) or "none"
        raise SystemExit(f"vaihde guard: {path} names no Asterisk {asterisk!r} in "
                         f"service.asterisks (it has: {names})")
    return GuardSettings(ami.host, ami.port, ami.username, ami.secret,
                         settings.guard_stall_s, settings.log_format, settings.guard_agi_url)


async def run(settings: GuardSettings) -> None:
    ami = AmiClient(settings.host, settings.port, settings.username, settings.secret,
                    ping_interval=2.0, ping_timeout=2.0, reconnect_max=2.0)
    guard = Guard(ami, stall_s=settings.stall_s, agi_url=settings.agi_url or None)
    ami.start()
    watching = asyncio.get_running_loop().create_task(guard.run(), name="vaihde-guard")
    try:
        await systemd.until_stopped("vaihde-guard-watchdog")
    finally:
        await guard.close()
        await cancel_all([watching])
        with contextlib.suppress(Exception):
            await ami.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaihde.guard", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the service's settings file")
    source.add_argument("--settings-stdin", action="store_true",
                        help="read the guard's settings as JSON from stdin (from vaihde serve)")
    parser.add_argument("--asterisk", default="", metavar="NAME",
                        help="with several Asterisks (service.asterisks): the one to guard; "
                        "run one guard per Asterisk (default: the first)")
    args = parser.parse_args(argv)
    if args.settings_stdin:
        settings = GuardSettings.from_json(sys.stdin.readline())
    else:
        settings = from_settings_file(args.config, args.asterisk)
    logs.setup(settings.log_format)
    from vaihde.cli import run_loop

    run_loop(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
