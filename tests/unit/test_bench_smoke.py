"""Smoke test of the FastAGI benchmark: a tiny run must produce every figure, route every call
right, and show FastAGI ahead of process-per-call. Figures themselves are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = {
    "sessions_per_s": (int, float),
    "p50_ms": (int, float),
    "p99_ms": (int, float),
    "concurrency": int,
    "baseline_sessions_per_s": (int, float),
    "ratio": (int, float),
    "peak_rss_mb": (int, float),
    "sessions": int,
    "errors": int,
    "cpu": dict,
    "python": str,
    "date": str,
    "machine_cores": int,
}


def test_tiny_bench_run_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "agi.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "agi_bench.py"),
        "--quick",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--concurrency",
        "20",
        "--latency-concurrency",
        "40",
        "--media-ms",
        "100",
        "--no-ceiling",
        "--baseline-parallel",
        "2",
        "--baseline-duration",
        "0.2",
        "--baseline-min-sessions",
        "2",
        "--output",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FastAGI sessions/s" in proc.stdout  # the table was printed

    result = json.loads(out.read_text())
    for key, kind in REQUIRED.items():
        assert isinstance(result.get(key), kind), (key, result.get(key))
    assert result["errors"] == 0, result["phases"]
    assert result["baseline_errors"] == 0, result["phases"]["baseline"]
    assert result["sessions"] > 0
    assert result["baseline_sessions_per_s"] > 0
    assert result["ratio"] > 1
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["concurrency"] == 20
    assert result["server_outcomes"].get("done", 0) >= result["sessions"]
