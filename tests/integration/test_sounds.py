"""Every sound the dialplan and the demo settings play exists in the sandbox Asterisk, so no caller
hears silence where a prompt was meant."""

import re
import subprocess
from pathlib import Path

from vaihde.config.settings import load


def sounds_in_dialplan() -> set[str]:
    text = Path("dialplan/vaihde.conf").read_text()
    return {s for group in re.findall(r"Playback\(([^)]*)\)", text) for s in group.split("&")}


def sounds_in_demo(monkeypatch) -> set[str]:
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "x")
    menu = load("config/demo.yaml").company.menu
    return {*menu.greeting, menu.prompt, menu.invalid}


def test_every_played_sound_exists(asterisk, monkeypatch):
    # Resolve the language directory as Asterisk sees it (absolute links inside the chroot).
    resolved = subprocess.run(
        ["chroot", str(asterisk.root), "readlink", "-f", "/usr/share/asterisk/sounds/en"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    sounds = Path(asterisk.root) / resolved.lstrip("/")
    wanted = sounds_in_dialplan() | sounds_in_demo(monkeypatch)
    assert "pls-hold-while-try" in wanted  # the scan itself works
    missing = sorted(s for s in wanted if not list(sounds.glob(f"{s}.*")))
    assert missing == []
