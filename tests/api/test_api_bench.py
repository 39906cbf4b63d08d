"""Smoke test of the REST API benchmark: a tiny run answers every search right over HTTP and
writes every figure. The figures themselves are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_api_bench_run_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "api_bench.py"), "--quick",
        "--employees", "300", "--queries", "40", "--duration", "0.3", "--warmup", "0.1",
        "--concurrency", "2", "--throughput-concurrency", "4", "--output", str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "directory search over HTTP" in proc.stdout
    result = json.loads(out.read_text())
    assert result["errors"] == 0, result["error_kinds"]
    assert result["employees"] == 300
    for phase in ("latency", "throughput"):
        figures = result[phase]
        assert figures["requests"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert figures["requests_per_s"] > 0
    assert result["in_process"]["p50_us"] > 0
    assert result["throughput"]["server_cpu_us_per_request"] > 0
