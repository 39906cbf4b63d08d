"""REST API benchmark: directory search over HTTP with 10,000 synthetic employees, through the
real API application on 127.0.0.1 with a real client, against the in-process search.

* Server: its own process (pinned to the first core this process may use), on the event loop
  `vaihde serve` uses (uvloop where installed; `--loop asyncio` for the stock one). A database
  (temporary SQLite file, or --db URL) gets `make_synthetic_directory(N)` (names, titles,
  topics for a quarter of the people, teams with titles and topics) through
  `sync_directory`, availability entries for a third of the employees, and an operator with
  an API token. The service's root application (`vaihde.http.health.make_app`) mounts
  `make_api` at /api/v1 with a `PresenceCache` and a `LiveDirectory`, as service.py does.
* Client: this process (pinned to the other core), one aiohttp `ClientSession` with keep-alive
  connections and `Authorization: Bearer <token>`, sending `GET /api/v1/directory/search?q=…`
  with `synthetic_queries` (names, numbers, teams, titles, topics). Every request runs the
  whole path: token lookup in the database, the people and the teams searched, availability
  from the cache, JSON.
* Phases: warm-up (every query once; each answer must list the same employees, in the same
  order, as the in-process index: anything else is an error), latency (closed loop,
  `--concurrency` requests in flight: a few operators typing at once), throughput (closed
  loop, `--throughput-concurrency` in flight), then the baseline: `DirectoryIndex.search` on
  the same queries in this process.

Writes bench/results/api.json and prints the figures. Target: p99 <= 20 ms in the latency
phase. Exits non-zero if any request failed or answered wrongly.
Run: .venv/bin/python bench/api_bench.py [--quick] [--db URL] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

RESULTS = Path(__file__).resolve().parent / "results" / "api.json"
TARGET_P99_MS = 20.0


# --- server process ------------------------------------------------------------------------


async def _fill(url: str, employees: int) -> tuple[str, int]:
    """Directory, some availability, an operator with a token: (token, entries)."""
    from sqlalchemy import insert

    from vaihde.auth import store as auth
    from vaihde.db import migrate, open_database
    from vaihde.db import models as m
    from vaihde.directory.search import make_synthetic_directory
    from vaihde.directory.store import sync_directory

    db = open_database(url)
    try:
        await migrate.upgrade_async(db.engine)
        description = make_synthetic_directory(employees)
        async with db.sessions.begin() as session:
            await sync_directory(session, description)
        now = datetime.now(UTC)
        rng = random.Random(5)
        rows = []
        for e in description.employees:
            if rng.random() < 0.33:
                state = rng.choice(["meeting", "away", "busy", "vacation"])
                rows.append(
                    {
                        "employee_id": e.id,
                        "state": state,
                        "source": "manual",
                        "starts_at": now - timedelta(hours=1),
                        "until": now + timedelta(hours=rng.randint(1, 48)),
                        "created_at": now - timedelta(hours=1),
                        "set_by": e.id,
                        "note_for_callers": "",
                        "internal_note": "",
                        "revision": 1,
                    }
                )
        async with db.sessions.begin() as session:
            await session.execute(insert(m.AvailabilityEntry), rows)
            await auth.add_user(session, "bench", role="operator")
            token, _ = await auth.create_token(session, "bench", label="api_bench")
        return token, len(rows)
    finally:
        await db.close()


async def _serve(url: str, conn: Connection) -> None:

    from vaihde.api import ApiContext, LiveDirectory, make_api
    from vaihde.db import open_database
    from vaihde.http.health import make_app
    from vaihde.http.server import GuardedServer
    from vaihde.http.settings import HttpSettings
    from vaihde.presence.cache import PresenceCache

    class _Service:
        def status(self) -> dict[str, Any]:
            return {"fastagi": {"listening": True}}

    db = open_database(url)
    cache = PresenceCache(db.sessions)
    await cache.load()
    directory = LiveDirectory(db.sessions)
    await directory.refresh()
    ctx = ApiContext(
        sessions=db.sessions, cache=cache, directory=directory, company=lambda: None
    )
    root = make_app(_Service())  # type: ignore[arg-type]
    root.add_subapp("/api/v1", make_api(ctx))
    # The service's own HTTP server (deadlines and connection cap in front of aiohttp).
    server = GuardedServer(root, HttpSettings(host="127.0.0.1", port=0))
    await server.start()
    port = server.port
    conn.send({"port": port, "employees": len(cache.employees)})
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    loop.add_reader(conn.fileno(), stopped.set)  # the parent writes (or closes) to stop us
    try:
        await stopped.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await server.stop()
        await db.close()


def server_main(url: str, employees: int, core: int | None, loop: str, conn: Connection) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    token, entries = asyncio.run(_fill(url, employees))
    conn.send({"token": token, "entries": entries})
    if loop == "uvloop":
        import uvloop

        uvloop.run(_serve(url, conn))
    else:
        asyncio.run(_serve(url, conn))


# --- client --------------------------------------------------------------------------------


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "requests": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, expected: dict[str, list[str]]):
        self.session = session
        self.base = base
        self.expected = expected
        self.errors: dict[str, int] = {}

    def _error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def search(self, q: str, check: bool = False) -> float | None:
        start = time.perf_counter()
        try:
            async with self.session.get(self.base, params={"q": q, "limit": "20"}) as response:
                body = await response.read()
                elapsed = time.perf_counter() - start
                if response.status != 200:
                    self._error(f"status {response.status}")
                    return None
        except (aiohttp.ClientError, OSError) as exc:
            self._error(type(exc).__name__)
            return None
        if check:
            hits = [h["employee_id"] for h in json.loads(body)["hits"]]
            if hits != self.expected[q]:
                self._error("wrong hits")
        return elapsed

    async def closed_loop(self, queries: list[str], concurrency: int, seconds: float) -> tuple[
        list[float], float
    ]:
        """`concurrency` requests always in flight for `seconds`: (latencies, wall time)."""
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        rng = random.Random(concurrency)

        async def worker() -> None:
            while time.perf_counter() < deadline:
                elapsed = await self.search(rng.choice(queries))
                if elapsed is not None:
                    samples.append(elapsed)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return samples, time.perf_counter() - start


async def run_client(args: argparse.Namespace, port: int, token: str, pid: int) -> dict[str, Any]:
    from vaihde.directory.search import (
        DirectoryIndex,
        make_synthetic_directory,
        records_from_description,
        synthetic_queries,
    )

    description = make_synthetic_directory(args.employees)
    index = DirectoryIndex.build(records_from_description(description))
    queries = list(dict.fromkeys(synthetic_queries(description, args.queries)))
    expected = {q: [h.employee_id for h in index.search(q, 20)] for q in queries}

    connector = aiohttp.TCPConnector(limit=max(args.concurrency, args.throughput_concurrency))
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/api/v1/directory/search"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        client = Client(session, base, expected)
        # Warm-up: every query once, answers checked against the in-process index.
        for q in queries:
            await client.search(q, check=True)
        await client.closed_loop(queries, args.concurrency, args.warmup)

        samples, wall = await client.closed_loop(queries, args.concurrency, args.duration)
        out["latency"] = {
            "concurrency": args.concurrency,
            **percentiles_ms(samples),
            "requests_per_s": round(len(samples) / wall, 1),
        }
        cpu_before = cpu_seconds(pid)
        samples, wall = await client.closed_loop(
            queries, args.throughput_concurrency, args.duration
        )
        cpu = cpu_seconds(pid) - cpu_before
        out["throughput"] = {
            "concurrency": args.throughput_concurrency,
            **percentiles_ms(samples),
            "requests_per_s": round(len(samples) / wall, 1),
            "server_cpu_us_per_request": round(cpu / max(1, len(samples)) * 1e6, 1),
            "server_core_busy": round(cpu / wall, 2),
        }
        out["errors"] = sum(client.errors.values())
        out["error_kinds"] = client.errors

    # Baseline: the same search in this process, no HTTP, no database.
    times = []
    rounds = max(1, args.baseline_rounds)
    for _ in range(rounds):
        for q in queries:
            start = time.perf_counter()
            index.search(q, 20)
            times.append(time.perf_counter() - start)
    base_ms = percentiles_ms(times)
    out["in_process"] = {
        "searches": len(times),
        "p50_us": round(base_ms["p50_ms"] * 1000, 1),
        "p99_us": round(base_ms["p99_ms"] * 1000, 1),
        "mean_us": round(base_ms["mean_ms"] * 1000, 1),
    }
    out["queries"] = len(queries)
    return out


def receive(conn: Connection, server: Any, timeout: float, what: str) -> dict[str, Any]:
    """The server's next message; an error as soon as it dies (its traceback is on stderr)."""
    deadline = time.monotonic() + timeout
    while not conn.poll(0.2):
        if not server.is_alive():
            raise SystemExit(f"api_bench: the server failed to {what} (see above)")
        if time.monotonic() > deadline:
            raise SystemExit(f"api_bench: the server did not {what} in {timeout:g} s")
    return conn.recv()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=400, help="synthetic queries drawn")
    parser.add_argument("--concurrency", type=int, default=4, help="latency phase in flight")
    parser.add_argument("--throughput-concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds")
    parser.add_argument("--baseline-rounds", type=int, default=20)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="server event loop (auto: uvloop if installed, like vaihde serve)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 2.0)
        args.warmup = min(args.warmup, 0.5)
        args.baseline_rounds = min(args.baseline_rounds, 3)
    loop = args.loop
    if loop == "auto":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            loop = "asyncio"
        else:
            loop = "uvloop"

    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[0] if len(cores) > 1 else None
    client_core = cores[1] if len(cores) > 1 else None
    load_before = round(os.getloadavg()[0], 2)
    tmp = None
    url = args.db
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="vaihde-api-bench-")
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(
        target=server_main, args=(url, args.employees, server_core, loop, child), daemon=True
    )
    setup_start = time.perf_counter()
    server.start()
    try:
        filled = receive(parent, server, 600, "fill its database")
        started = receive(parent, server, 120, "start")
        setup_s = time.perf_counter() - setup_start
        if client_core is not None:
            os.sched_setaffinity(0, {client_core})
        figures = asyncio.run(run_client(args, started["port"], filled["token"], server.pid))
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.kill()
        if tmp is not None:
            tmp.cleanup()

    latency, throughput, base = figures["latency"], figures["throughput"], figures["in_process"]
    met = latency["p99_ms"] <= TARGET_P99_MS
    result = {
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cores": {"server": server_core, "client": client_core},
        "server_loop": loop,
        "backend": url.split(":", 1)[0],
        "loadavg_1m_before": load_before,
        "quick": args.quick,
        "employees": started["employees"],
        "availability_entries": filled["entries"],
        "setup_s": round(setup_s, 1),
        "queries": figures["queries"],
        "latency": latency,
        "throughput": throughput,
        "in_process": base,
        "errors": figures["errors"],
        "error_kinds": figures["error_kinds"],
        "targets": {f"p99 <= {TARGET_P99_MS:g} ms at {latency['concurrency']} in flight": met},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"directory search over HTTP ({result['employees']} employees, {figures['queries']} "
        f"queries, {result['backend']}, server on {loop}; setup {result['setup_s']} s)"
    )
    for name, phase in (("latency", latency), ("throughput", throughput)):
        print(
            f"  {name:<10} {phase['concurrency']:>3} in flight   p50 {phase['p50_ms']:>7.2f} ms"
            f"   p99 {phase['p99_ms']:>7.2f} ms   {phase['requests_per_s']:>8.1f} req/s"
        )
    print(
        f"  server CPU {throughput['server_cpu_us_per_request']:.0f} µs/request "
        f"(core {throughput['server_core_busy'] * 100:.0f} % busy at "
        f"{throughput['concurrency']} in flight)"
    )
    print(f"  in-process search        p50 {base['p50_us']:>7.1f} µs   "
          f"p99 {base['p99_us']:>7.1f} µs")
    print(f"  target p99 <= {TARGET_P99_MS:g} ms: {'met' if met else 'NOT met'}; "
          f"errors: {figures['errors']} {figures['error_kinds'] or ''}")
    print(f"wrote {args.output}")
    return 0 if figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
