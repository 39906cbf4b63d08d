"""A synthesized Finnish prompt plays in the sandbox Asterisk: the file format is one Asterisk
reads, and the host sounds dir maps to the path Asterisk sees inside the chroot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from amiprobe import AmiProbe, Message, event_is  # tests/integration is on sys.path (no package)

from vaihde.prompts import PromptLibrary
from vaihde.sandbox import Instance

TEXT = "Tervetuloa, olet soittanut Demo Oy:lle. Vaihteeseen pääset painamalla nollaa."
PROBLEMS = ("does not exist", "Unable to open", "Unable to find", "not found")


def _log_since(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _log_size(asterisk: Instance) -> int:
    path = asterisk.full_log_path
    return path.stat().st_size if path.exists() else 0


async def _play(asterisk: Instance, ami: AmiProbe, name: str, wanted: str) -> tuple[float, str]:
    """Originate a Local channel that runs Playback(name): (seconds it lasted, its log lines once
    `wanted` shows up in them)."""
    offset = _log_size(asterisk)
    since = ami.mark()
    await ami.action(
        "Originate",
        Channel="Local/answers@vaihde-test-phones",
        Application="Playback",
        Data=name,
        Async="true",
    )

    def playing_leg(e: Message) -> bool:  # ;1 runs the application, ;2 the answering phone
        is_local = event_is("Newchannel", Channel="Local/answers@vaihde-test-phones-*")(e)
        return is_local and e["Channel"].endswith(";1")

    started = await ami.wait_for(playing_leg, timeout=5, since=since)
    ended = await ami.wait_for(
        event_is("Hangup", Channel=started["Channel"]), timeout=30, since=since
    )
    deadline = time.monotonic() + 3
    log = _log_since(asterisk.full_log_path, offset)
    while wanted not in log and time.monotonic() < deadline:  # the logger writes asynchronously
        await asyncio.sleep(0.1)
        log = _log_since(asterisk.full_log_path, offset)
    return ami.time_of(ended) - ami.time_of(started), log


async def test_asterisk_plays_a_synthesized_finnish_prompt(asterisk, ami):
    # format_wav: 8 kHz 16-bit mono WAV is read as slin, the same samples as a .sln file.
    formats = asterisk.rx("core show file formats")
    assert any(line.split()[:2] == ["slin", "wav"] for line in formats.splitlines()), formats

    library = PromptLibrary(asterisk.sounds_dir, asterisk.sounds_dir_in_asterisk)
    name = await library.text(TEXT, "fi", deadline=10)
    assert name is not None and name.startswith(asterisk.sounds_dir_in_asterisk + "/")
    size = (asterisk.sounds_dir / (name.rsplit("/", 1)[1] + ".wav")).stat().st_size
    seconds = (size - 44) / (8000 * 2)
    assert seconds > 2

    # Asterisk names the format it reads: slin, from the .wav file.
    lasted, log = await _play(asterisk, ami, name, wanted=f"Playing '{name}.slin'")
    assert f"Playing '{name}.slin'" in log, log[-3000:]
    for problem in PROBLEMS:
        assert problem not in log, log[-3000:]
    # Playback hangs up when the file ends: the whole prompt was played.
    assert lasted >= seconds - 0.5, (lasted, seconds)


async def test_a_missing_prompt_is_noticed(asterisk, ami):
    # The checks above are able to fail: a name Asterisk cannot find ends at once and is logged.
    missing = f"{asterisk.sounds_dir_in_asterisk}/vaihde-fi-missing"
    lasted, log = await _play(asterisk, ami, missing, wanted="does not exist")
    assert "does not exist" in log, log[-3000:]
    assert lasted < 1.5
