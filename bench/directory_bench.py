"""Directory search with many companies, in process: one index of every company searched through
each company's view (`DirectoryIndex.only`, what the service does), against the way before it: an
index of every company plus one index per company (twice the memory).

* Directory: `make_synthetic_directory(--employees)` (10,000) spread round-robin over
  `--companies` (200) companies, its teams too; each record marked with its company.
* Queries: `synthetic_queries` (names, numbers, teams, titles, topics), each searched in one
  company (chosen round-robin) for people (limit 20) and teams (limit 10), as the console's
  search does for a call's company, and over every company (the `*` search).
* Figures: build time and memory (tracemalloc: what the built structures hold) of each way,
  per-search latency (p50/p99/mean in µs) of each. Every view's answer must equal its company's
  own index's (ids, scores, order): anything else is an error.

Writes bench/results/directory.json and prints the figures. Target: the views' p99 within 20 %
(or 50 µs) of the separate indexes', and the memory of one index, not two.
Run: .venv/bin/python bench/directory_bench.py [--quick] [--employees N] [--companies N]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "directory.json"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(samples: list[float]) -> dict[str, float]:
    return {"searches": len(samples), "p50_us": round(_pct(samples, 0.5), 1),
            "p99_us": round(_pct(samples, 0.99), 1),
            "mean_us": round(statistics.fmean(samples), 1)}


def _built(build: Any) -> tuple[Any, float, int]:
    """What `build()` returns, its time (s) and the memory it holds (bytes)."""
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    made = build()
    took = time.perf_counter() - started
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return made, took, held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.employees, args.companies, args.queries, args.rounds = 2000, 40, 300, 1

    from vaihde.directory.search import (
        DirectoryIndex,
        make_synthetic_directory,
        records_from_description,
        synthetic_queries,
    )

    description = make_synthetic_directory(args.employees)
    companies = [f"c{i:03d}" for i in range(args.companies)]
    records = [replace(r, company=companies[n % len(companies)])
               for n, r in enumerate(records_from_description(description))]
    queries = synthetic_queries(description, args.queries)

    def separate() -> tuple[DirectoryIndex, dict[str, DirectoryIndex]]:
        by_company: dict[str, list[Any]] = {c: [] for c in companies}
        for record in records:
            by_company[record.company].append(record)
        return (DirectoryIndex.build(records),
                {c: DirectoryIndex.build(rs) for c, rs in by_company.items()})

    def one() -> tuple[DirectoryIndex, dict[str, DirectoryIndex]]:
        index = DirectoryIndex.build(records)
        views = {}
        for c in companies:
            view = index.only(c)
            assert view is not None
            views[c] = view
        return index, views

    (_, before), before_s, before_bytes = _built(separate)
    (index, after), after_s, after_bytes = _built(one)

    errors = 0
    for n, query in enumerate(queries):  # the same answers, or the benchmark fails
        c = companies[n % len(companies)]
        for kind, limit in (("employee", 20), ("team", 10)):
            want = [(h.employee_id, h.score) for h in before[c].search(query, limit, kind)]
            got = [(h.employee_id, h.score) for h in after[c].search(query, limit, kind)]
            errors += want != got

    def timed(indexes: dict[str, DirectoryIndex] | None) -> list[float]:
        out = []
        for _ in range(args.rounds):
            for n, query in enumerate(queries):
                target = indexes[companies[n % len(companies)]] if indexes else index
                started = time.perf_counter_ns()
                target.search(query, 20)
                target.search(query, 10, kind="team")
                out.append((time.perf_counter_ns() - started) / 1000)
        return out

    gc.collect()
    gc.freeze()
    # Interleaved, so that the machine's load falls on both alike.
    per_before: list[float] = []
    per_after: list[float] = []
    for _ in range(2):
        per_before += timed(before)
        per_after += timed(after)
    everyone = timed(None)
    before_fig, after_fig = _figures(per_before), _figures(per_after)
    within = after_fig["p99_us"] <= max(before_fig["p99_us"] * 1.2,
                                        before_fig["p99_us"] + 50)
    out = {
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "quick": args.quick,
        "employees": args.employees,
        "companies": args.companies,
        "queries": len(queries),
        "per_company_indexes": {"build_s": round(before_s, 3),
                                "memory_mb": round(before_bytes / 1e6, 1),
                                "search": before_fig},
        "one_index_with_views": {"build_s": round(after_s, 3),
                                 "memory_mb": round(after_bytes / 1e6, 1),
                                 "search": after_fig},
        "every_company_search": _figures(everyone),
        "errors": errors,
        "targets": {
            "views' p99 within 20 % (or 50 µs) of separate indexes'": within,
            "memory of one index": after_bytes < before_bytes * 0.7,
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
