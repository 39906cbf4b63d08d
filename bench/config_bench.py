"""Company-file check benchmark: how long the service's event loop stalls while an admin sends a
large company file to POST /api/v1/config/check, with the check run on the loop (as before
the fix), in a thread, or in a separate process (vaihde.company.offloop, the service's choice).

* Server: this process, on the loop `vaihde serve` uses (uvloop where installed), with the
  service's root application and the REST API over a temporary SQLite database holding an admin
  and its API token. A probe task sleeps 1 ms over and over and records how late each wake-up
  is: the longest of those is the longest time nothing else (a FastAGI command, an AMI event)
  could have been served.
* Client: a separate Python process per request posting the company file
  (`vaihde.company.synthetic`: every field filled in, like an export), `--requests` times per
  mode, one at a time, checking that each answer says ok with the right number of employees.
  The longest stall is taken per request; the median over the requests is the figure to
  compare (the worst is also kept: on a busy 2-core machine, other processes add to it).
* Sizes: 2,000 employees (the review's case) and 10,000 (the largest company the limits are
  chosen for). The idle probe (no request) gives the machine's own noise.

Writes bench/results/config.json and prints the figures. Fails if any answer was wrong.
Run: .venv/bin/python bench/config_bench.py [--quick] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "config.json"
MODES = ("inline", "thread", "process")

CLIENT = r"""
import json, sys, time, urllib.request
url, token, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
body = open(path, "rb").read()
out = []
for _ in range(n):
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/yaml"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    out.append({"s": time.perf_counter() - start, "ok": answer.get("ok"),
                "employees": answer.get("counts", {}).get("employees")})
print(json.dumps(out))
"""


class Probe:
    """Wakes every millisecond and keeps how late each wake-up was."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.late.append(time.perf_counter() - start - 0.001)

    def start(self) -> None:
        self.late = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        ordered = sorted(self.late)
        return {
            "wakeups": len(ordered),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
        }


async def setup_database(url: str) -> str:
    from vaihde.auth import store as auth
    from vaihde.db import migrate, open_database

    db = open_database(url)
    try:
        await migrate.upgrade_async(db.engine)
        async with db.sessions.begin() as session:
            await auth.add_user(session, "admin", role="admin")
            token, _ = await auth.create_token(session, "admin", label="config_bench")
        return token
    finally:
        await db.close()


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from aiohttp import web

    from vaihde.api import ApiContext, LiveDirectory, make_api
    from vaihde.company.load import check_company_text
    from vaihde.company.offloop import ConfigChecker, Summary
    from vaihde.company.synthetic import synthetic_company_yaml
    from vaihde.db import open_database
    from vaihde.http.health import make_app
    from vaihde.presence.cache import PresenceCache

    class Inline(ConfigChecker):
        """The check on the event loop itself, as the service did before."""

        async def _run(self, text: str, name: str, want: Any) -> Any:
            config = check_company_text(text, name, self.calendars)
            return Summary.of(config) if want == "summary" else config

    class _Service:
        def status(self) -> dict[str, Any]:
            return {"fastagi": {"listening": True}}

    url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    token = await setup_database(url)
    db = open_database(url)
    cache = PresenceCache(db.sessions)
    await cache.load()
    directory = LiveDirectory(db.sessions)
    await directory.refresh()
    checkers: dict[str, ConfigChecker] = {
        "inline": Inline(), "thread": ConfigChecker(mode="thread"),
        "process": ConfigChecker(mode="process"),
    }
    current = {"mode": "process"}

    class Switch(ConfigChecker):
        async def _run(self, text: str, name: str, want: Any) -> Any:
            return await checkers[current["mode"]]._run(text, name, want)

    ctx = ApiContext(sessions=db.sessions, cache=cache, directory=directory,
                     company=lambda: None, config_checker=Switch())
    root = make_app(_Service())  # type: ignore[arg-type]
    root.add_subapp("/api/v1", make_api(ctx))
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint = f"http://127.0.0.1:{port}/api/v1/config/check"
    probe = Probe()
    results: dict[str, Any] = {"sizes": []}
    errors = 0
    try:
        probe.start()
        await asyncio.sleep(args.idle)
        results["idle"] = await probe.stop()
        for employees in args.employees:
            path = tmp / f"company-{employees}.yaml"
            path.write_text(synthetic_company_yaml(employees))
            size: dict[str, Any] = {
                "employees": employees, "bytes": path.stat().st_size, "modes": {},
            }
            for mode in MODES:
                current["mode"] = mode
                gc.collect()  # the garbage of the previous mode is not this mode's to collect
                stalls: list[float] = []
                lates: list[float] = []
                answers: list[dict[str, Any]] = []
                for _ in range(args.requests):
                    client = await asyncio.create_subprocess_exec(
                        sys.executable, "-c", CLIENT, endpoint, token, str(path), "1",
                        stdout=subprocess.PIPE,
                    )
                    # After the client is started: forking this process is the benchmark's own
                    # cost, not the service's (the client needs ~50 ms to start sending).
                    probe.start()
                    out, _ = await client.communicate()
                    stall = await probe.stop()
                    stalls.append(stall["max_ms"])
                    lates.append(stall["p99_ms"])
                    answers += json.loads(out) if client.returncode == 0 else []
                wrong = [a for a in answers if not a["ok"] or a["employees"] != employees]
                errors += len(wrong) + (args.requests - len(answers))
                seconds = sorted(a["s"] for a in answers) or [0.0]
                size["modes"][mode] = {
                    "loop_stall_max_ms": max(stalls),
                    "loop_stall_max_ms_median_request": statistics.median(stalls),
                    "loop_stall_max_ms_per_request": stalls,
                    "loop_late_p99_ms_median_request": statistics.median(lates),
                    "request_s_median": round(seconds[len(seconds) // 2], 3),
                    "request_s_max": round(seconds[-1], 3),
                }
                print(f"  {employees:>6} employees  {mode:<8} stall: median request "
                      f"{statistics.median(stalls):7.1f} ms, worst {max(stalls):7.1f} ms  "
                      f"request {seconds[len(seconds) // 2]:.2f} s", flush=True)
            results["sizes"].append(size)
    finally:
        await runner.cleanup()
        await db.close()
    results["errors"] = errors
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--employees", type=int, nargs="+", default=[2_000, 10_000])
    parser.add_argument("--requests", type=int, default=5, help="checks per mode and size")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle probing")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.employees, args.requests, args.idle = [300], 2, 0.5
    loop = args.loop
    if loop == "auto":
        try:
            import uvloop
        except ImportError:
            loop = "asyncio"
        else:
            loop = "uvloop"
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="vaihde-config-bench-") as tmp:
        if loop == "uvloop":
            import uvloop

            results = uvloop.run(measure(args, Path(tmp)))
        else:
            results = asyncio.run(measure(args, Path(tmp)))
    out = {
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "server_loop": loop,
        "loadavg_1m_before": load_before,
        "quick": args.quick,
        "requests_per_mode": args.requests,
        **results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
