"""Every fixed sound the dialplan and the flows play, and every recording the demo company names,
exists in the sandbox Asterisk, so no caller hears silence where a prompt was meant."""

import re
import subprocess
from pathlib import Path

from vaihde.company import load_company
from vaihde.phrases import RECORDINGS


def sounds_in_dialplan() -> set[str]:
    text = Path("dialplan/vaihde.conf").read_text()
    return {s for group in re.findall(r"Playback\(([^)]*)\)", text) for s in group.split("&")}


def sounds_in_flows() -> set[str]:
    return set(RECORDINGS)  # every core sound the flows play (vaihde.phrases)


def sounds_in_demo() -> set[str]:
    company = load_company("config/demo-company.yaml")
    says = [m.prompt for m in company.menus.values()]
    says += [m.greeting for m in company.menus.values() if m.greeting]
    says += [a.say for a in company.announcements.values()]
    return {s.sound for s in says if s.sound}


def test_every_played_sound_exists(asterisk):
    # Resolve the language directory as Asterisk sees it (absolute links inside the chroot).
    resolved = subprocess.run(
        ["chroot", str(asterisk.root), "readlink", "-f", "/usr/share/asterisk/sounds/en"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    sounds = Path(asterisk.root) / resolved.lstrip("/")
    wanted = sounds_in_dialplan() | sounds_in_flows() | sounds_in_demo()
    assert {"pls-hold-while-try", "activated"} <= wanted  # the scans themselves work
    missing = sorted(s for s in wanted if not list(sounds.glob(f"{s}.*")))
    assert missing == []
