"""Presence and directory benchmark: cache lookups against resolving through a database query
per lookup, and directory search over 10,000 employees against a naive linear scan, in one run.

1. Presence: a database (temporary SQLite file, or --db URL) with N synthetic employees, each
   with a few entries (a manual status, the day's calendar meetings, some scheduled vacations).
   `PresenceCache.lookup` timed per call (target p99 <= 1 ms) vs `store.get_availability` with
   a session per lookup, the way a handler without the cache would do it.
2. Directory: `make_synthetic_directory(10000)` (Finnish and Swedish names with accents),
   `DirectoryIndex.search` over a mix of typed queries (`synthetic_queries`), p50/p99 in-process
   (target ~1 ms, so that an HTTP search stays under 20 ms p99) vs `LinearScan` (pre-folded
   words, every employee looked at per query).
3. Directory sync: storing the 10,000-employee description, then re-applying it unchanged.

For an HTTP figure, build the same directory in your own bench:
    from vaihde.directory.search import make_synthetic_directory, synthetic_queries

Writes bench/results/presence.json and prints the figures.
Run: .venv/bin/python bench/presence_bench.py [--quick] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from vaihde.db import Database, migrate, open_database
from vaihde.db import models as m
from vaihde.directory.search import (
    DirectoryIndex,
    LinearScan,
    make_synthetic_directory,
    records_from_description,
    synthetic_queries,
)
from vaihde.directory.store import sync_directory
from vaihde.presence import store
from vaihde.presence.cache import PresenceCache

RESULTS = Path(__file__).resolve().parent / "results" / "presence.json"
NOW = datetime(2025, 6, 2, 10, 30, tzinfo=UTC)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/mean/max in microseconds."""
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    return {
        "n": len(ordered),
        "p50_us": round(at(0.50), 2),
        "p99_us": round(at(0.99), 2),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 2),
        "max_us": round(ordered[-1] * 1e6, 2),
    }


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


async def _fill(db: Database, employees: int, seed: int = 7) -> int:
    """Synthetic directory and entries, written in bulk (setup, not measured)."""
    rng = random.Random(seed)
    description = make_synthetic_directory(employees)
    async with db.sessions.begin() as s:
        await sync_directory(s, description, now=NOW - timedelta(days=30))
    day = NOW.replace(hour=6, minute=0)
    rows: list[dict[str, Any]] = []

    def row(
        eid: str,
        state: str,
        source: str,
        start: datetime,
        until: datetime | None,
        created: datetime,
        ext: str | None = None,
    ) -> None:
        rows.append(
            {
                "employee_id": eid,
                "state": state,
                "source": source,
                "starts_at": start,
                "until": until,
                "created_at": created,
                "set_by": source,
                "external_id": ext,
                "note_for_callers": "",
                "internal_note": "",
                "revision": 1,
            }
        )

    for e in description.employees:
        if rng.random() < 0.5:
            row(
                e.id,
                rng.choice(["available", "busy", "away"]),
                "manual",
                day + timedelta(hours=2),
                None,
                day + timedelta(hours=2),
            )
        for k in range(rng.randint(0, 6)):  # today's meetings from the calendar
            start = day + timedelta(hours=1 + k * 1.5)
            row(
                e.id,
                "meeting",
                "calendar",
                start,
                start + timedelta(hours=1),
                day - timedelta(days=1),
                f"{e.id}-m{k}",
            )
        if rng.random() < 0.1:
            start = day + timedelta(days=rng.randint(1, 60))
            row(e.id, "vacation", "manual", start, start + timedelta(days=7), day)
    async with db.sessions.begin() as s:
        await s.execute(insert(m.AvailabilityEntry), rows)
    return len(rows)


async def presence_bench(url: str | None, employees: int, lookups: int, db_lookups: int) -> dict:
    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="vaihde-bench-")
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    db = open_database(url)
    try:
        await migrate.upgrade_async(db.engine)
        entries = await _fill(db, employees)
        ids = [f"e{i:05d}" for i in range(employees)]
        rng = random.Random(3)
        picks = [rng.choice(ids) for _ in range(max(lookups, db_lookups))]

        cache = PresenceCache(db.sessions, clock=lambda: NOW)
        start = time.perf_counter()
        await cache.load()
        load_s = time.perf_counter() - start
        it = iter(picks * 2)
        for eid in ids[:1000]:  # warm-up
            cache.lookup(eid, NOW)
        cache_times = timed(lambda: cache.lookup(next(it), NOW), lookups)

        # Baseline: one session and one query per lookup.
        db_times = []
        for eid in picks[:db_lookups]:
            t0 = time.perf_counter()
            async with db.sessions() as s:
                await store.get_availability(s, eid, now=NOW)
            db_times.append(time.perf_counter() - t0)
        # The two must agree.
        for eid in ids[:200]:
            async with db.sessions() as s:
                assert await store.get_availability(s, eid, now=NOW) == cache.lookup(eid, NOW)
        return {
            "backend": db.engine.dialect.name,
            "employees": employees,
            "entries": entries,
            "cache_load_ms": round(load_s * 1000, 1),
            "cache_lookup": percentiles(cache_times),
            "db_query_per_lookup": percentiles(db_times),
        }
    finally:
        await db.close()
        if tmp is not None:
            tmp.cleanup()


def search_bench(n: int, rounds: int, linear_rounds: int) -> dict:
    description = make_synthetic_directory(n)
    records = records_from_description(description)
    start = time.perf_counter()
    index = DirectoryIndex.build(records)
    build_s = time.perf_counter() - start
    queries = synthetic_queries(description, 200)
    for q in queries:  # warm-up (and fill the fold cache as a running service would)
        index.search(q)
    it = iter(queries * rounds)
    index_times = timed(lambda: index.search(next(it), 20), len(queries) * rounds)
    scan = LinearScan(records)
    lit = iter(queries * linear_rounds)
    linear_times = timed(lambda: scan.search(next(lit), 20), len(queries) * linear_rounds)
    # Same employees found (the index ranks; the scan only filters).
    for q in queries[:50]:
        got = {h.employee_id for h in index.search(q, limit=n)}
        assert got == set(scan.search(q, limit=0)), q
    return {
        "employees": n,
        "queries": len(queries),
        "index_build_ms": round(build_s * 1000, 1),
        "index_search": percentiles(index_times),
        "linear_scan": percentiles(linear_times),
    }


async def sync_bench(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vaihde-bench-") as tmp:
        db = open_database(f"sqlite+aiosqlite:///{tmp}/sync.db")
        try:
            await migrate.upgrade_async(db.engine)
            description = make_synthetic_directory(n)
            out = {"employees": n, "backend": "sqlite"}
            for label in ("first_sync_s", "unchanged_sync_s"):
                start = time.perf_counter()
                async with db.sessions.begin() as s:
                    await sync_directory(s, description)
                out[label] = round(time.perf_counter() - start, 3)
            return out
        finally:
            await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke test)")
    parser.add_argument("--db", help="database URL for the presence part (default: temp SQLite)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    q = args.quick
    load_before = round(os.getloadavg()[0], 2)
    presence = asyncio.run(
        presence_bench(args.db, 300 if q else 1000, 20_000 if q else 200_000, 300 if q else 3000)
    )
    search = search_bench(10_000, 3 if q else 25, 1 if q else 2)
    sync = asyncio.run(sync_bench(2000 if q else 10_000))
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # Other work on the machine shows up in the p99 figures.
        "loadavg_1m_before": load_before,
        "quick": q,
        "presence": presence,
        "directory_search": search,
        "directory_sync": sync,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    c, d = presence["cache_lookup"], presence["db_query_per_lookup"]
    s, lin = search["index_search"], search["linear_scan"]
    print(
        f"presence ({presence['backend']}, {presence['employees']} employees, "
        f"{presence['entries']} entries; cache load {presence['cache_load_ms']} ms)"
    )
    print(f"  cache lookup      p50 {c['p50_us']:>9.2f} µs   p99 {c['p99_us']:>9.2f} µs")
    print(
        f"  db query/lookup   p50 {d['p50_us']:>9.2f} µs   p99 {d['p99_us']:>9.2f} µs"
        f"   ({d['p50_us'] / c['p50_us']:.0f}x slower at p50)"
    )
    print(
        f"directory search ({search['employees']} employees, {search['queries']} queries; "
        f"index build {search['index_build_ms']} ms)"
    )
    print(f"  index             p50 {s['p50_us']:>9.2f} µs   p99 {s['p99_us']:>9.2f} µs")
    print(
        f"  linear scan       p50 {lin['p50_us']:>9.2f} µs   p99 {lin['p99_us']:>9.2f} µs"
        f"   ({lin['p50_us'] / s['p50_us']:.0f}x slower at p50)"
    )
    print(
        f"directory sync ({sync['employees']} employees, sqlite): first "
        f"{sync['first_sync_s']} s, unchanged {sync['unchanged_sync_s']} s"
    )
    print(f"wrote {args.output}")
    ok = c["p99_us"] <= 1000 and s["p99_us"] <= 20_000
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
