"""The prompt library: what the company says, as sound files made ahead of time and found without
waiting. A recorded sound (`Say.sound`) always wins over synthesized speech.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vaihde.company.schema import CompanyConfig, Say
from vaihde.jobs import cancel_all
from vaihde.prompts.say import speakable
from vaihde.prompts.synth import EspeakSynth, Synth, SynthError, clean_text

if TYPE_CHECKING:
    from vaihde.flows.inbound import Prompts

log = logging.getLogger("vaihde.prompts")

PREFIX = "vaihde-"
TEMP_MARK = ".tmp"
STALE_TEMP_S = 600.0  # older temp files are left over from a crash, never still being written
# A synthesized prompt no menu needs and no call used for this long is deleted. Files in use are
# touched at most once a day, so a daily sentence ("… is on vacation") is never pruned.
UNUSED_S = 14 * 86400.0
TOUCH_AFTER_S = 86400.0

# (language, text as it will be spoken): one prompt, whatever the engine version.
Item = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PrefetchReport:
    generated: int = 0
    reused: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.generated + self.reused + self.failed


class PromptLibrary:
    """Synthesized prompts in `dir` (host path), played by Asterisk as `asterisk_dir`/name.

    `asterisk_dir` is the same directory as Asterisk sees it (the sandbox chroot shows host
    ROOT/vaihde/demo/sounds as /vaihde/demo/sounds); by default it is `dir` itself. Call from
    one event loop. `prompts` is the flows' `Prompts` callable.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str],
        asterisk_dir: str | None = None,
        *,
        synth: Synth | None = None,
        default_language: str = "fi",
        concurrency: int = 2,
        retry_after: float = 60.0,
        text_deadline: float = 1.5,
    ) -> None:
        self.dir = Path(dir).resolve()
        self.asterisk_dir = (asterisk_dir or str(self.dir)).rstrip("/") or "/"
        if not self.asterisk_dir.startswith("/"):
            # Relative sound names are looked up under Asterisk's own sounds dir: not ours.
            raise ValueError(f"asterisk_dir must be absolute: {self.asterisk_dir!r}")
        self.synth: Synth = synth if synth is not None else EspeakSynth()
        self.default_language = default_language
        self.retry_after = retry_after
        self.text_deadline = text_deadline
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
            # A system Asterisk runs as its own user and must be able to read what we write; a
            # directory the admin made keeps the permissions they chose.
            with contextlib.suppress(OSError):
                os.chmod(self.dir, 0o755)
        self._version: str | None = None
        self._version_failed_at: float | None = None
        self._inflight: dict[Item, asyncio.Task[tuple[str | None, str]]] = {}
        self._failed: dict[Item, float] = {}
        # Prefetch and lookups' background work share these; a live call's `text()` does not
        # queue behind them.
        self._slots = asyncio.Semaphore(max(1, concurrency))

    # --- lookups (never wait) -------------------------------------------------------------------

    @property
    def prompts(self) -> Prompts:
        return self.sound_for

    def sound_for(self, say: Say, language: str) -> str | None:
        """The sound to play for `say` to a caller in `language`, or None (then the caller hears
        the flow's fallback) while synthesis is scheduled in the background. Never waits."""
        if say.sound:
            return say.sound
        item = self._item(say, language)
        if item is None:
            return None
        name = self._ready(item)
        if name is None:
            self._start(item, background=True)
        return name

    async def text(self, text: str, language: str, *, deadline: float | None = None) -> str | None:
        """A sound for a sentence made during a call ("Anna Virtanen is in a meeting until 2 pm"),
        or None if it is not ready within `deadline` seconds; it stays cached either way."""
        if not self.synth.supports(language):
            return None
        item = self._spoken(text, language)
        if item is None or self._recently_failed(item):
            return None
        name = self._ready(item)
        if name is not None:
            return name
        task = self._start(item, background=False)
        if task is None:
            return None
        limit = self.text_deadline if deadline is None else deadline
        try:
            # shield: a caller giving up must not cancel what the next caller will use.
            name, _ = await asyncio.wait_for(asyncio.shield(task), limit)
        except TimeoutError:
            log.warning("prompt not ready in time", extra={"language": language, "deadline": limit})
            return None
        return name

    # --- ahead of time ----------------------------------------------------------------------------

    async def prefetch(self, company: CompanyConfig) -> PrefetchReport:
        """Make every prompt of `company` in each of its languages; returns what it did."""
        self.default_language = company.company.language
        self._sweep_temp()
        languages = dict.fromkeys((company.company.language, *company.company.languages))
        items: dict[Item, None] = {}
        for say in says(company):
            if say.sound:
                continue  # recorded: nothing to synthesize
            for language in languages:
                item = self._item(say, language)
                if item is not None:
                    items[item] = None
        started = time.monotonic()
        tasks = [t for t in (self._start(i, background=True, force=True) for i in items) if t]
        outcomes = [o for _, o in await asyncio.gather(*(asyncio.shield(t) for t in tasks))]
        report = PrefetchReport(
            generated=outcomes.count("generated"),
            reused=outcomes.count("reused"),
            failed=outcomes.count("failed"),
        )
        if self._version is not None and not report.failed:
            self.prune({self._stem(i, self._version) + self.synth.suffix for i in items})
        log.info(
            "prompts prefetched",
            extra={"generated": report.generated, "reused": report.reused,
                   "failed": report.failed, "ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip
        return report

    async def close(self) -> None:
        """Stop background synthesis (its temp files are removed)."""
        await cancel_all(list(self._inflight.values()), quiet=True)

    # --- internals --------------------------------------------------------------------------------

    def _item(self, say: Say, language: str) -> Item | None:
        """What to synthesize for `say` to a `language` caller: its text in that language, else
        the company's language (better the wrong language than silence), with its voice."""
        for lang in (language, self.default_language):
            text = say.texts.get(lang, "")
            if text and self.synth.supports(lang):
                return self._spoken(text, lang)
        return None

    @staticmethod
    def _spoken(text: str, language: str) -> Item | None:
        spoken = clean_text(speakable(clean_text(text), language))
        return (language, spoken) if spoken else None

    def _stem(self, item: Item, version: str) -> str:
        language, spoken = item
        key = json.dumps(
            [version, dict(self.synth.params(language)), language, spoken],
            ensure_ascii=False, sort_keys=True, separators=(",", ":"),
        )  # fmt: skip
        return f"{PREFIX}{language}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def _ready(self, item: Item) -> str | None:
        """The Asterisk name of an already generated prompt (one stat), else None."""
        if self._version is None:
            return None
        stem = self._stem(item, self._version)
        path = self.dir / (stem + self.synth.suffix)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        now = time.time()
        if now - mtime > TOUCH_AFTER_S:
            with contextlib.suppress(OSError):
                os.utime(path, (now, now))
        return f"{self.asterisk_dir}/{stem}"

    def prune(self, keep: set[str], *, unused_s: float = UNUSED_S) -> int:
        """Delete synthesized prompts (ours only: `vaihde-*`) that are not in `keep` (file names)
        and have not been used for `unused_s`; returns how many."""
        now, removed = time.time(), 0
        for path in self.dir.glob(f"{PREFIX}*{self.synth.suffix}"):
            if path.name in keep:
                continue
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > unused_s:
                    path.unlink()
                    removed += 1
        if removed:
            log.info("unused prompts removed", extra={"removed": removed})
        return removed

    def _recently_failed(self, item: Item) -> bool:
        now = time.monotonic()
        if self._version_failed_at is not None and now - self._version_failed_at < self.retry_after:
            return True
        failed_at = self._failed.get(item)
        return failed_at is not None and now - failed_at < self.retry_after

    def _start(
        self, item: Item, *, background: bool, force: bool = False
    ) -> asyncio.Task[tuple[str | None, str]] | None:
        """The one task making `item` (started if none runs). force: even after a recent
        failure (prefetch retries what failed; calls do not)."""
        task = self._inflight.get(item)
        if task is not None:
            return task
        if not force and self._recently_failed(item):
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None  # called outside the service's loop: nothing to schedule on
        task = asyncio.create_task(self._produce(item, background))
        self._inflight[item] = task

        def done(t: asyncio.Task[tuple[str | None, str]]) -> None:
            if self._inflight.get(item) is t:
                del self._inflight[item]

        task.add_done_callback(done)
        return task

    async def _produce(self, item: Item, background: bool) -> tuple[str | None, str]:
        """(Asterisk name or None, "reused" | "generated" | "failed")."""
        if background:
            async with self._slots:
                return await self._produce_now(item)
        return await self._produce_now(item)

    async def _produce_now(self, item: Item) -> tuple[str | None, str]:
        version = await self._engine_version()
        if version is None:
            return None, "failed"
        name = self._ready(item)
        if name is not None:
            return name, "reused"
        language, spoken = item
        stem = self._stem(item, version)
        final = self.dir / (stem + self.synth.suffix)
        temp = self.dir / f".{stem}.{secrets.token_hex(4)}{TEMP_MARK}{self.synth.suffix}"
        started = time.monotonic()
        try:
            await self.synth.render(spoken, language, temp)
            os.chmod(temp, 0o644)
            # Atomic: Asterisk and other lookups see the old state or the whole new file.
            os.replace(temp, final)
        except (SynthError, OSError) as exc:
            self._note_failure(item)
            log.warning(
                "prompt synthesis failed",
                extra={"language": language, "text": spoken[:80], "error": str(exc)},
            )
            return None, "failed"
        except Exception:
            self._note_failure(item)
            log.exception("prompt synthesis failed", extra={"language": language})
            return None, "failed"
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self._failed.pop(item, None)
        log.info(
            "prompt synthesized",
            extra={"prompt": stem, "language": language,
                   "ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip
        return f"{self.asterisk_dir}/{stem}", "generated"

    def _note_failure(self, item: Item) -> None:
        now = time.monotonic()
        if len(self._failed) > 1000:  # dynamic texts with a broken engine: keep it bounded
            self._failed = {k: t for k, t in self._failed.items() if now - t < self.retry_after}
        self._failed[item] = now

    async def _engine_version(self) -> str | None:
        if self._version is not None:
            return self._version
        try:
            self._version = await self.synth.version()
        except (SynthError, OSError) as exc:
            if self._version_failed_at is None or (
                time.monotonic() - self._version_failed_at >= self.retry_after
            ):
                log.error("speech synthesizer unavailable", extra={"error": str(exc)})
            self._version_failed_at = time.monotonic()
            return None
        self._version_failed_at = None
        return self._version

    def _sweep_temp(self) -> None:
        now = time.time()
        for path in self.dir.glob(f".{PREFIX}*{TEMP_MARK}*"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TEMP_S:
                    path.unlink()


def says(company: CompanyConfig) -> Iterator[Say]:
    """Everything the company says to callers from its file: menus and announcements."""
    for menu in company.menus.values():
        if menu.greeting is not None:
            yield menu.greeting
        yield menu.prompt
    for announcement in company.announcements.values():
        yield announcement.say
