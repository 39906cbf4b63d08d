"""Benchmark: how soon a change committed by one process is in another instance's cache.

A writer process (this script with --writer) commits availability changes to PostgreSQL, one
every --interval seconds, and prints the wall time right after each commit. This process is the
other instance: a PresenceCache fed by a change watch on its own Peer connection (LISTEN; the
trigger on `revisions` NOTIFYs at commit), as `vaihde serve` runs it, and notes when each change
reached the cache (a subscriber). Latency = seen - committed, on one machine's clock.

For comparison the same is measured with polling (the watch without a Peer, as on SQLite or while
the Peer is down): the cache re-reads every --poll seconds (the service's presence poll, 0.1 s).

PostgreSQL: a private cluster started with scripts/postgres (named notify<slot>, port
15054 + 100 * VAIHDE_TEST_SLOT, or bench-notify on 16654), or --db URL of an existing database
(it is emptied). Writes bench/results/notify.json.
Run: .venv/bin/python bench/notify_bench.py [--quick] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "notify.json"


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"n": len(ordered), "p50_ms": round(at(0.50), 2), "p99_ms": round(at(0.99), 2),
            "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


# --- the writer (another process) --------------------------------------------------------------


async def write(url: str, count: int, interval: float) -> None:
    from vaihde.db import open_database
    from vaihde.presence.store import set_availability

    db = open_database(url)
    try:
        for i in range(count):
            async with db.sessions.begin() as session:
                await set_availability(session, "anna", "away" if i % 2 else "meeting",
                                       source="manual", set_by="bench",
                                       note_for_callers=f"n{i}")
            print(json.dumps({"i": i, "t": time.time()}), flush=True)
            await asyncio.sleep(interval)
    finally:
        await db.close()


# --- the reader (this process) -----------------------------------------------------------------


async def prepare(url: str) -> None:
    from sqlalchemy import delete, update

    from vaihde.db import migrate, open_database
    from vaihde.db import models as m
    from vaihde.directory import DirectoryDescription, EmployeeDescription
    from vaihde.directory.store import sync_directory

    db = open_database(url)
    try:
        await migrate.upgrade_async(db.engine)
        async with db.sessions.begin() as session:
            for table in reversed(m.Base.metadata.sorted_tables):
                if table.name != "revisions":
                    await session.execute(delete(table))
            await session.execute(update(m.Revision).values(counter=0))
            await sync_directory(session, DirectoryDescription(employees=(
                EmployeeDescription(id="anna", name="Anna Virtanen"),)))
    finally:
        await db.close()


async def measure(url: str, count: int, interval: float, *, notify: bool,
                  poll: float) -> dict[str, Any]:
    """Latencies of `count` changes written by another process, seen through NOTIFY (a Peer)
    or by polling every `poll` seconds."""
    from vaihde.db import models as m
    from vaihde.db import open_database
    from vaihde.db.changes import Changes
    from vaihde.db.peer import Peer
    from vaihde.presence.cache import PresenceCache

    db = open_database(url)
    peer = Peer.for_database(db, name="vaihde notify-bench") if notify else None
    if peer is not None:
        await peer.start()
        assert peer.up, peer.last_error
    changes = Changes(peer)
    cache = PresenceCache(db.sessions)
    await cache.load()
    seen: dict[int, float] = {}

    def saw(av: Any) -> None:
        note = av.note_for_callers
        if av.employee_id == "anna" and note.startswith("n"):
            seen.setdefault(int(note[1:]), time.time())

    cache.subscribe(saw)
    runner = asyncio.create_task(cache.run(poll, watch=changes.watch(m.PRESENCE, m.DIRECTORY)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--writer", url, str(count), str(interval),
        stdout=subprocess.PIPE, cwd=ROOT)
    committed: dict[int, float] = {}
    try:
        assert proc.stdout is not None
        async for line in proc.stdout:
            row = json.loads(line)
            committed[row["i"]] = row["t"]
        await proc.wait()
        for _ in range(100):  # up to 5 s for the last ones
            if len(seen) >= len(committed):
                break
            await asyncio.sleep(0.05)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        if peer is not None:
            await peer.stop()
        await db.close()
    latencies = [seen[i] - t for i, t in committed.items() if i in seen]
    return {"how": "notify" if notify else f"poll every {poll} s",
            "committed": len(committed), "seen": len(seen),
            "notifications": peer.notifications if peer is not None else 0,
            **percentiles_ms(latencies)}


def start_cluster(slot: int | None) -> str:
    name = f"notify{slot}" if slot is not None else "bench-notify"
    port = 15054 + 100 * slot if slot is not None else 16654
    env = {**os.environ, "VAIHDE_PG_PORT": str(port)}
    script = str(ROOT / "scripts" / "postgres")
    started = subprocess.run([script, "--name", name, "start"], env=env, capture_output=True,
                             text=True, timeout=600, check=False)
    if started.returncode != 0:
        raise SystemExit(f"scripts/postgres start: {started.stderr.strip()}")
    return name


def stop_cluster(name: str, slot: int | None) -> None:
    port = 15054 + 100 * slot if slot is not None else 16654
    subprocess.run([str(ROOT / "scripts" / "postgres"), "--name", name, "stop"],
                   env={**os.environ, "VAIHDE_PG_PORT": str(port)}, capture_output=True,
                   timeout=120, check=False)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    await prepare(args.db)
    notify = await measure(args.db, args.count, args.interval, notify=True, poll=args.poll)
    await prepare(args.db)
    polled = await measure(args.db, args.count, args.interval, notify=False, poll=args.poll)
    return {"notify": notify, "poll": polled}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--writer"]:
        asyncio.run(write(argv[1], int(argv[2]), float(argv[3])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50 changes instead of 300")
    p.add_argument("--db", help="an existing PostgreSQL database (emptied!)")
    p.add_argument("--count", type=int)
    p.add_argument("--interval", type=float, default=0.05, help="between commits (s)")
    p.add_argument("--poll", type=float, default=0.1, help="the polling comparison's period")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.count = args.count or (50 if args.quick else 300)
    slot_env = os.environ.get("VAIHDE_TEST_SLOT")
    slot = int(slot_env) if slot_env else None
    cluster = None
    if not args.db:
        cluster = start_cluster(slot)
        port = 15054 + 100 * slot if slot is not None else 16654
        args.db = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/vaihde_test"
    try:
        figures = asyncio.run(bench(args))
    finally:
        if cluster is not None:
            stop_cluster(cluster, slot)
    result = {
        "what": "a change committed by one process, seen in another instance's presence cache",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "count": args.count, "interval_s": args.interval,
        **figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = figures["notify"].get("seen") == args.count and figures["notify"]["p99_ms"] <= 1000
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
