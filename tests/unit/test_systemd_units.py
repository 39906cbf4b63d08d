"""The systemd units we ship (config/systemd/) are valid for systemd itself and say what README's
"Deploying" promises: Type=notify with a watchdog, restarted always, the guard a unit of its own."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "config" / "systemd"
VENV_BIN = Path(sys.executable).parent


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", ["vaihde.service", "vaihde-guard.service"])
def test_units_are_supervised_by_systemd(name):
    service = unit(name)["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) <= 30
    assert service["Restart"] == "always"


def test_the_service_leaves_the_guard_to_its_own_unit():
    assert unit("vaihde.service")["Service"]["Environment"] == "VAIHDE_GUARD_MODE=external"
    assert "vaihde-guard.service" in unit("vaihde.service")["Unit"]["Wants"]
    assert "-m vaihde.guard --config" in unit("vaihde-guard.service")["Service"]["ExecStart"]


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: ./scripts/setup installs Debian's systemd"
    # As installed: the commands point at this checkout's virtualenv.
    for path in UNITS.glob("*.service"):
        text = path.read_text().replace("/opt/vaihde/.venv/bin/", f"{VENV_BIN}/")
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True, text=True, timeout=60,
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr
