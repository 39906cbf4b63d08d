"""espeak-ng + sox: the file format Asterisk gets, text hygiene, timeouts. Uses the real tools
(installed by scripts/setup); a missing tool fails the test rather than skipping it."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from vaihde.prompts import synth as synth_mod
from vaihde.prompts.synth import MAX_TEXT, EspeakSynth, SynthError, clean_text


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run ./scripts/setup"
    return path


def soxi(flag: str, path: Path) -> str:
    return subprocess.run(
        [_tool("soxi"), flag, str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def peak(path: Path, start: float, length: float) -> float:
    """Largest absolute sample in [start, start+length) seconds, 0..1."""
    out = subprocess.run(
        [_tool("sox"), str(path), "-n", "trim", str(start), str(length), "stat"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    values = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    return max(abs(float(values["Maximum amplitude"])), abs(float(values["Minimum amplitude"])))


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("fi", "Tervetuloa, olet soittanut Demo Oy:lle."),
        ("sv", "Välkommen, du har ringt Demo Oy."),
        ("en", "Welcome, you have called Demo Oy."),
    ],
)
async def test_output_is_8khz_mono_16bit_wav(tmp_path, language, text):
    out = tmp_path / "p.wav"
    await EspeakSynth().render(text, language, out)
    assert soxi("-t", out) == "wav"
    assert soxi("-r", out) == "8000"
    assert soxi("-c", out) == "1"
    assert soxi("-b", out) == "16"
    assert soxi("-e", out) == "Signed Integer PCM"
    duration = float(soxi("-D", out))
    assert 1.0 < duration < 6.0
    # A plain 44-byte PCM header (format_wav rejects WAVE_FORMAT_EXTENSIBLE and odd chunks).
    head = out.read_bytes()[:44]
    assert head[:4] == b"RIFF" and head[8:16] == b"WAVEfmt " and head[36:40] == b"data"
    assert int.from_bytes(head[20:22], "little") == 1  # PCM


async def test_silence_trimmed_padded_and_level_normalised(tmp_path):
    out = tmp_path / "p.wav"
    await EspeakSynth().render("Asiakastuki.", "fi", out)
    duration = float(soxi("-D", out))
    assert peak(out, 0, 0.12) < 0.01  # the lead-in pad is silence...
    assert peak(out, 0, 0.4) > 0.05  # ...and short: speech starts right after it
    assert peak(out, duration - 0.25, 0.25) < 0.01  # the tail pad
    assert 0.85 < peak(out, 0, duration) < 0.9  # normalised to -1 dBFS (0.891)


async def test_version_names_both_tools_without_paths():
    version = await EspeakSynth().version()
    assert "eSpeak NG" in version and "SoX" in version
    assert "Data at" not in version and "/usr/" not in version


async def test_params_differ_by_voice_and_settings():
    synth = EspeakSynth()
    assert synth.params("fi") != synth.params("sv")
    assert synth.params("fi") != EspeakSynth(rate=170).params("fi")
    assert synth.params("fi") == EspeakSynth().params("fi")
    assert not synth.supports("de")


async def test_text_never_reaches_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "p.wav"
    text = f'-v de "$(touch {marker})" `touch {marker}`; touch {marker}'
    await EspeakSynth().render(text, "en", out)
    assert out.stat().st_size > 1000
    assert not marker.exists()


def test_clean_text_strips_controls_and_formats():
    text = "Anna\x00 on\x1b[31m\t palaverissa\u202e\u200b.\r\nSoita\x7f myöhemmin."
    assert clean_text(text) == "Anna on(31m palaverissa. Soita myöhemmin."
    assert clean_text("  \x00 \n ") == ""
    assert clean_text("[[h@l'oU]]") == "((h@l'oU))"  # no raw phoneme input to espeak


def test_clean_text_caps_length_at_a_word():
    text = ("sana " * 1000).strip()
    out = clean_text(text)
    assert len(out) <= MAX_TEXT and out.endswith("sana")
    assert len(clean_text("x" * 5000)) == MAX_TEXT


async def test_missing_engine_is_a_synth_error(tmp_path):
    synth = EspeakSynth(espeak=str(tmp_path / "no-espeak"))
    with pytest.raises(SynthError, match="cannot run"):
        await synth.version()
    with pytest.raises(SynthError):
        await synth.render("Hei", "fi", tmp_path / "p.wav")


async def test_hung_engine_times_out_and_is_killed(tmp_path):
    pid_file = tmp_path / "pid"
    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    fake.chmod(0o755)
    synth = EspeakSynth(espeak=str(fake), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SynthError, match="timed out"):
        await synth.render("Hei", "fi", tmp_path / "p.wav")
    assert time.monotonic() - started < 2
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left running


async def test_failing_engine_reports_its_error(tmp_path):
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\necho 'voice not found' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SynthError, match="voice not found"):
        await EspeakSynth(espeak=str(fake)).render("Hei", "fi", tmp_path / "p.wav")
    assert list(tmp_path.glob("p.wav*")) == []


async def test_no_audio_is_an_error(tmp_path):
    with pytest.raises(SynthError, match="nothing to say"):
        await EspeakSynth().render(" \x00 ", "fi", tmp_path / "p.wav")
    with pytest.raises(SynthError, match="no voice"):
        await EspeakSynth().render("Hallo", "de", tmp_path / "p.wav")


async def test_subprocess_gets_argv_and_stdin(tmp_path, monkeypatch):
    calls = []
    real = synth_mod._run

    async def spy(argv, stdin, deadline):
        calls.append((list(argv), stdin))
        return await real(argv, stdin, deadline)

    monkeypatch.setattr(synth_mod, "_run", spy)
    await EspeakSynth().render("Hei Jörgen", "fi", tmp_path / "p.wav")
    espeak, sox = calls
    assert espeak[1] == "Hei Jörgen".encode()  # UTF-8, as `-b 1` tells espeak-ng
    assert "Jörgen" not in " ".join(espeak[0])  # the text is never an argument
    assert sox[0][0].endswith("sox")


def test_many_at_once_on_uvloop_the_loop_vaihde_serve_runs_on(tmp_path):
    """On uvloop, writing stdin to a program that already exited (sox, `--version`) raised
    RuntimeError and failed most of 20 renders started together; all must succeed."""
    import asyncio

    import uvloop  # a dependency of vaihde on Linux: `vaihde serve` runs on it

    async def scenario() -> list[object]:
        synth = EspeakSynth()
        jobs = [synth.version()]
        jobs += [synth.render(f"Person {i} is in a meeting.", "en", tmp_path / f"{i}.wav")
                 for i in range(20)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = uvloop.run(scenario())
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(list(tmp_path.glob("*.wav"))) == 20
