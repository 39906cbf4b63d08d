"""Text to a telephone prompt file: espeak-ng speaks, sox makes an 8 kHz mono 16-bit WAV.

Both run as subprocesses (argv only, text on stdin) under one deadline: the event loop never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("vaihde.prompts")

MAX_TEXT = 2000
# Bump when the espeak options or the sox chain change meaning: every cached prompt is remade.
RECIPE = "1"
SUFFIX = ".wav"
SAMPLE_RATE = 8000

# Our language codes → espeak-ng voice names (`espeak-ng --voices`).
VOICES: Mapping[str, str] = {"fi": "fi", "sv": "sv", "en": "en-gb"}

# Applied to espeak's 22.05 kHz output, in this order: trim its leading and trailing silence (so
# the pad below is the whole of it), drop rumble below the telephone band, resample, bring the
# peak to -1 dBFS (about -20 dBFS RMS, near Asterisk's stock prompts), then a short lead-in so the
# first syllable is never clipped by a channel that is still settling, and a short tail.
SOX_EFFECTS: tuple[str, ...] = (
    "silence", "1", "0.02", "0.2%", "reverse", "silence", "1", "0.02", "0.2%", "reverse",
    "highpass", "100",
    "rate", "-h", str(SAMPLE_RATE),
    "norm", "-1",
    "pad", "0.15", "0.3",
)  # fmt: skip
SOX_OUTPUT: tuple[str, ...] = (
    "-t", "wav", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
)  # fmt: skip

_SPACES = re.compile(r"\s+")


class SynthError(Exception):
    """Synthesis failed: engine missing, timed out, or exited with an error."""


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Text safe to hand to the engine: no control or format characters, single spaces, capped.

    Texts may come from people other than the admin (presence notes, caller registry), so this
    never trusts them. `[[` would switch espeak to raw phoneme input, so brackets become parens.
    """
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("Z") or ch in "\t\n\r\v\f":
            kept.append(" ")
        elif cat[0] != "C":  # Cc control, Cf format (bidi overrides, zero-width), Cs, Co, Cn
            kept.append(ch)
    out = _SPACES.sub(" ", "".join(kept)).strip()
    out = out.replace("[", "(").replace("]", ")")
    if len(out) > limit:
        cut = out.rfind(" ", 0, limit + 1)
        out = out[: cut if cut > limit // 2 else limit].rstrip()
    return out


class Synth(Protocol):
    """What the prompt library needs from a synthesizer (a fake one in unit tests)."""

    suffix: str

    def supports(self, language: str) -> bool: ...

    def params(self, language: str) -> Mapping[str, Any]:
        """Every setting that changes the audio for `language`: part of the cache key."""
        ...

    async def version(self) -> str:
        """Engine versions: part of the cache key, so an upgrade remakes every prompt."""
        ...

    async def render(self, text: str, language: str, out: Path) -> None:
        """Write the prompt for `text` to `out` (a temporary path); raise SynthError."""
        ...


class EspeakSynth:
    """espeak-ng + sox. `rate` is espeak's words per minute: 150 is clear on a phone line."""

    suffix = SUFFIX

    def __init__(
        self,
        *,
        rate: int = 150,
        pitch: int = 50,
        amplitude: int = 100,
        voices: Mapping[str, str] = VOICES,
        espeak: str = "espeak-ng",
        sox: str = "sox",
        timeout: float = 10.0,
    ) -> None:
        self.rate, self.pitch, self.amplitude = int(rate), int(pitch), int(amplitude)
        self.voices = dict(voices)
        self.espeak, self.sox = espeak, sox
        self.timeout = timeout
        self._version: str | None = None
        self._version_lock = asyncio.Lock()

    def supports(self, language: str) -> bool:
        return language in self.voices

    def params(self, language: str) -> Mapping[str, Any]:
        return {
            "voice": self.voices[language],
            "rate": self.rate,
            "pitch": self.pitch,
            "amplitude": self.amplitude,
            "recipe": RECIPE,
            "sox": list(SOX_EFFECTS + SOX_OUTPUT),
        }

    async def version(self) -> str:
        async with self._version_lock:
            if self._version is None:
                deadline = time.monotonic() + self.timeout
                espeak = await _run([self.espeak, "--version"], b"", deadline)
                sox = await _run([self.sox, "--version"], b"", deadline)
                # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/...": the data path is
                # not the version, and must not change the key when nothing else did.
                espeak_v = espeak.decode(errors="replace").split("Data at:")[0].strip()
                sox_v = sox.decode(errors="replace").strip()
                self._version = f"{espeak_v}; {sox_v}"
            return self._version

    async def render(self, text: str, language: str, out: Path) -> None:
        if not self.supports(language):
            raise SynthError(f"no voice for language {language!r}")
        text = clean_text(text)
        if not text:
            raise SynthError("nothing to say")
        deadline = time.monotonic() + self.timeout
        raw = out.with_name(out.name + ".espeak.wav")
        try:
            # --stdin reads the whole text at once; -b 1: UTF-8 whatever the locale says.
            await _run(
                [self.espeak, "-b", "1", "-v", self.voices[language], "-s", str(self.rate),
                 "-p", str(self.pitch), "-a", str(self.amplitude), "--stdin", "-w", str(raw)],
                text.encode("utf-8"),
                deadline,
            )  # fmt: skip
            await _run(
                [self.sox, "-V1", str(raw), *SOX_OUTPUT, str(out), *SOX_EFFECTS], b"", deadline
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(raw)
        if not _has_audio(out):
            raise SynthError("synthesizer produced no audio")


def _has_audio(path: Path) -> bool:
    try:
        return path.stat().st_size > 44  # a bare WAV header is no prompt
    except OSError:
        return False


async def _run(argv: Sequence[str], stdin: bytes, deadline: float) -> bytes:
    """Run argv (never a shell) with `stdin`; stdout on success, SynthError otherwise."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SynthError(f"{argv[0]}: no time left")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            # No pipe when there is nothing to send: on uvloop, writing even b"" to a program
            # that has already exited (sox, --version) raises RuntimeError.
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise SynthError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin or None), remaining)
    except TimeoutError:
        raise SynthError(f"{argv[0]} timed out") from None
    except (RuntimeError, ConnectionError) as exc:  # uvloop: the program closed its stdin early
        raise SynthError(f"{argv[0]}: {exc}") from exc
    finally:
        # Timed out or cancelled (caller gone, service stopping): no orphan keeps running.
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()[-300:]
        raise SynthError(f"{argv[0]} exited with {proc.returncode}: {detail}")
    return out
