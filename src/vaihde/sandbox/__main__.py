"""Command line of the Asterisk sandbox: `scripts/sandbox build|start|stop|stop-all|status|rx`.

Run as root; `scripts/sandbox <command> --help` tells the options.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .chroot import SandboxError, asterisk_pids, build, main_build, read_marker, sandbox_root
from .instance import Instance, InstanceSettings, list_instances, load_instance, stop_all


def _endpoint(text: str) -> dict[str, Any]:
    """`NAME=CONTACT` (fixed contact), `NAME:PASSWORD` (registering phone) or a JSON object."""
    if text.lstrip().startswith("{"):
        value = json.loads(text)
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError("endpoint JSON must be an object")
        return value
    name, sep, contact = text.partition("=")
    if sep and ":" not in name:
        return {"name": name, "contact": contact}
    name, sep, password = text.partition(":")
    if sep:
        return {"name": name, "password": password}
    raise argparse.ArgumentTypeError(f"endpoint {text!r}: use NAME=sip:URI, NAME:PASSWORD or JSON")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/sandbox", description=__doc__)
    p.add_argument("--root", help="chroot path (default $VAIHDE_SANDBOX_ROOT or the cache)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("build", help="debootstrap the chroot once (cached)")

    s = sub.add_parser("start", help="start an instance (builds the chroot first if needed)")
    s.add_argument("--settings", type=Path, help="JSON file of instance settings")
    s.add_argument("--name", help="instance name (default dev)")
    s.add_argument("--ami-port", type=int)
    s.add_argument("--sip-port", type=int)
    s.add_argument("--rtp-start", type=int)
    s.add_argument("--rtp-end", type=int)
    s.add_argument("--ami-secret", help="default: random, shown by start and status --json")
    s.add_argument("--agi-url", help="VAIHDE_AGI, e.g. agi://127.0.0.1:4573")
    s.add_argument("--agi-secret", help="FastAGI shared secret (default: random)")
    s.add_argument("--operators", help="VAIHDE_OPERATORS dial string")
    s.add_argument("--operator-timeout", type=int)
    s.add_argument(
        "--endpoint",
        dest="endpoints",
        action="append",
        type=_endpoint,
        help="NAME=sip:user@host:port, NAME:PASSWORD (registering softphone) or JSON; repeatable",
    )
    s.add_argument(
        "--dialplan", dest="extra_dialplan", action="append", help="extra .conf to #include"
    )
    s.add_argument("--replace", action="store_true", help="stop a running instance of that name")
    s.add_argument("--timeout", type=float, default=30.0, help="boot timeout in seconds")
    s.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C stops the instance"
    )
    s.add_argument("--json", action="store_true", help="print the instance as JSON")

    st = sub.add_parser("stop", help="stop an instance")
    st.add_argument("--name", default="dev")

    sub.add_parser("stop-all", help="kill every Asterisk running in the chroot")

    ss = sub.add_parser("status", help="show the chroot and its instances")
    ss.add_argument("--json", action="store_true")

    r = sub.add_parser("rx", help="run an Asterisk CLI command on an instance")
    r.add_argument("--name", default="dev")
    r.add_argument("cli", nargs="+", help="e.g. core show channels")
    return p


def _settings(args: argparse.Namespace) -> InstanceSettings:
    data: dict[str, Any] = {}
    if args.settings:
        try:
            data = json.loads(args.settings.read_text())
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read settings {args.settings}: {exc}") from exc
        if not isinstance(data, dict):
            raise SandboxError(f"{args.settings}: expected a JSON object")
    for key in (
        "name", "ami_port", "sip_port", "rtp_start", "rtp_end", "ami_secret", "agi_url",
        "agi_secret", "operators", "operator_timeout",
    ):  # fmt: skip
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    # Lists add to the settings file's rather than replace them.
    for key in ("endpoints", "extra_dialplan"):
        data[key] = list(data.get(key, [])) + list(getattr(args, key) or [])
    data["extra_dialplan"] = [str(Path(p).resolve()) for p in data.get("extra_dialplan", [])]
    return InstanceSettings.from_mapping(data)


def _describe(inst: Instance) -> dict[str, Any]:
    return {
        "name": inst.name,
        "running": inst.running,
        "pid": inst.pid,
        "dir": str(inst.dir),
        "log": str(inst.log_path),
        "settings": inst.settings.to_dict(),
    }


def _print_instance(inst: Instance) -> None:
    s = inst.settings
    state = f"running (pid {inst.pid})" if inst.running else "stopped"
    print(f"instance {s.name}: {state}")
    print(f"  AMI    127.0.0.1:{s.ami_port}  user {s.ami_username}  secret {s.ami_secret}")
    print(f"  SIP    udp 127.0.0.1:{s.sip_port}  RTP {s.rtp_start}-{s.rtp_end}")
    print(f"  AGI    {s.agi_url}")
    print(f"  ops    {s.operators or '(none)'}  timeout {s.operator_timeout}s")
    for ep in s.endpoints:
        what = f"contact {ep.contact}" if ep.contact else "registers with a password"
        print(f"  phone  {ep.name}: {what}")
    print(f"  logs   {inst.log_path}  {inst.full_log_path}")


def _start(args: argparse.Namespace) -> int:
    settings = _settings(args)
    root = sandbox_root(args.root)
    build(root)
    inst = Instance(settings, root=root)
    began = time.monotonic()
    inst.start(timeout=args.timeout, replace=args.replace, tie_to_parent=args.foreground)
    booted = time.monotonic() - began
    if args.json:
        print(json.dumps(_describe(inst) | {"boot_seconds": round(booted, 2)}, indent=2))
    else:
        _print_instance(inst)
        print(f"  booted in {booted:.1f}s")
    if not args.foreground:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("running in the foreground; Ctrl-C stops it", flush=True)
    try:
        while not stop.wait(0.5):
            if not inst.running:
                print(f"Asterisk exited; see {inst.log_path}", file=sys.stderr)
                return 1
    finally:
        inst.stop()
    return 0


def _status(args: argparse.Namespace) -> int:
    root = sandbox_root(args.root)
    marker = read_marker(root)
    instances = list_instances(root)
    pids = asterisk_pids(root) if root.is_dir() else []
    if args.json:
        out = {
            "root": str(root),
            "built": marker,
            "asterisk_pids": pids,
            "instances": [_describe(i) for i in instances],
        }
        print(json.dumps(out, indent=2))
        return 0
    if marker is None:
        state = "outdated or partial" if root.is_dir() else "not built"
        print(f"sandbox {state} at {root} (scripts/sandbox build)")
    else:
        print(f"sandbox {root}: {marker.get('asterisk')} (built {marker.get('built_at')})")
    if not instances:
        print("no instances")
    for inst in instances:
        _print_instance(inst)
    known = {i.pid for i in instances}
    strays = [p for p in pids if p not in known]
    if strays:
        print(f"other asterisk processes in the chroot: {strays} (scripts/sandbox stop-all)")
    return 0


def _named(args: argparse.Namespace) -> Instance:
    inst = load_instance(args.name, args.root)
    if inst is None or not inst.running:
        raise SandboxError(f"instance {args.name!r} is not running (scripts/sandbox status)")
    return inst


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            return main_build(sandbox_root(args.root))
        if args.command == "start":
            return _start(args)
        if args.command == "stop":
            inst = load_instance(args.name, args.root)
            if inst is None:
                print(f"instance {args.name!r} is not running")
                return 0
            inst.stop()
            print(f"instance {args.name!r} stopped")
            return 0
        if args.command == "stop-all":
            pids = stop_all(args.root)
            print(f"stopped {len(pids)} asterisk process(es)" + (f": {pids}" if pids else ""))
            return 0
        if args.command == "status":
            return _status(args)
        if args.command == "rx":
            print(_named(args).rx(" ".join(args.cli)), end="")
            return 0
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `scripts/sandbox status | head`: the reader left; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("sandbox: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
