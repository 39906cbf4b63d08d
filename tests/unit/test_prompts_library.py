"""The prompt library: content-hash cache, single flight, atomic files, never waiting on a broken
synthesizer, recorded sounds first. A fake synthesizer counts calls; one test uses espeak-ng."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from vaihde.company import parse_company
from vaihde.company.schema import Say
from vaihde.flows.inbound import Prompts
from vaihde.prompts import synth as synth_mod
from vaihde.prompts.library import PromptLibrary, says
from vaihde.prompts.synth import EspeakSynth, SynthError

AST = "/vaihde/test/sounds"


class FakeSynth:
    suffix = ".wav"

    def __init__(self, *, version: str = "fake 1", rate: int = 150, delay: float = 0.0) -> None:
        self._version = version
        self.rate = rate
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.outs: list[Path] = []
        self.fail: Exception | None = None
        self.version_fails = False
        self.gate: asyncio.Event | None = None  # render waits for it when set
        self.started = asyncio.Event()

    def supports(self, language: str) -> bool:
        return language in ("fi", "sv", "en")

    def params(self, language: str) -> dict[str, object]:
        return {"voice": language, "rate": self.rate}

    async def version(self) -> str:
        if self.version_fails:
            raise SynthError("cannot run espeak-ng")
        return self._version

    async def render(self, text: str, language: str, out: Path) -> None:
        self.calls.append((language, text))
        self.outs.append(out)
        self.started.set()
        _write(out, b"RIFF partial")  # a half-written file, as a real engine leaves one
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        _write(out, b"RIFF" + text.encode() + bytes(100))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


COMPANY = """
company: {name: Testi Oy, timezone: Europe/Helsinki, language: fi, languages: [fi, en]}
numbers:
  "+358201234567": {menu: main}
hours: {mon-fri: 08:00-16:00, closed_action: {operator: true}}
announcements:
  closed: {fi: Suljettu., en: Closed.}
menus:
  main:
    greeting: {fi: Tervetuloa., en: Welcome.}
    prompt: {fi: Myynti paina 1., en: Sales press 1.}
    options:
      1: {employee: anna}
  sub:
    prompt: {fi: Vain suomeksi.}
    options:
      1: {employee: anna}
teams:
  ops: {name: Vaihde, kind: operators, members: [anna]}
employees:
  anna: {name: Anna Virtanen, devices: [{desk: PJSIP/anna}]}
"""


def company(text: str = COMPANY):
    return parse_company(text)


def lib(tmp_path: Path, synth: FakeSynth | None = None, **kwargs) -> PromptLibrary:
    return PromptLibrary(tmp_path / "sounds", AST, synth=synth or FakeSynth(), **kwargs)


def files(library: PromptLibrary) -> list[str]:
    return sorted(p.name for p in library.dir.iterdir())


async def settle(library: PromptLibrary) -> None:
    while library._inflight:
        await asyncio.gather(*library._inflight.values())


async def test_prefetch_makes_every_prompt_once_and_reuses_them(tmp_path):
    synth = FakeSynth()
    library = lib(tmp_path, synth)
    report = await library.prefetch(company())
    # greeting, prompt and announcement in fi and en; the fi-only prompt once (en falls back to it)
    assert (report.generated, report.reused, report.failed) == (7, 0, 0)
    assert len(synth.calls) == 7
    assert ("fi", "Vain suomeksi.") in synth.calls
    assert len(files(library)) == 7
    again = await library.prefetch(company())
    assert (again.generated, again.reused, again.failed) == (0, 7, 0)
    assert len(synth.calls) == 7
    # A new library on the same directory (service restart) reuses the files too.
    other = FakeSynth()
    restarted = await lib(tmp_path, other).prefetch(company())
    assert restarted.reused == 7 and other.calls == []


async def test_a_text_change_regenerates_only_that_prompt(tmp_path):
    synth = FakeSynth()
    library = lib(tmp_path, synth)
    await library.prefetch(company())
    changed = company(COMPANY.replace("Tervetuloa.", "Tervetuloa Testi Oy:hyn."))
    report = await library.prefetch(changed)
    assert (report.generated, report.reused) == (1, 6)
    assert synth.calls[-1] == ("fi", "Tervetuloa Testi Oy:hyn.")
    greeting = changed.menus["main"].greeting
    assert library.sound_for(greeting, "fi") != library.sound_for(
        company().menus["main"].greeting, "fi"
    )


async def test_cache_key_changes_with_text_voice_settings_and_engine(tmp_path):
    say = Say({"fi": "Hei.", "sv": "Hej."})
    names = set()
    for synth, text in [
        (FakeSynth(), "Hei."),
        (FakeSynth(), "Hei!"),
        (FakeSynth(rate=170), "Hei."),
        (FakeSynth(version="fake 2"), "Hei."),
    ]:
        library = lib(tmp_path, synth)
        names.add(await library.text(text, "fi"))
    assert len(names) == 4 and None not in names
    library = lib(tmp_path, FakeSynth())
    same = await library.text("Hei.", "fi")
    assert same in names
    assert library.sound_for(say, "fi") == same  # a Say's text and text() share the cache
    assert await library.text("Hei.", "sv") != same  # same text, other voice


async def test_sound_for_never_waits_and_schedules_missing_prompts(tmp_path):
    synth = FakeSynth(delay=0.2)
    library = lib(tmp_path, synth)
    say = Say({"fi": "Tervetuloa."})
    started = time.monotonic()
    assert library.sound_for(say, "fi") is None  # not made yet: the flow plays its fallback
    assert library.sound_for(say, "fi") is None
    assert time.monotonic() - started < 0.05
    await settle(library)
    name = library.sound_for(say, "fi")
    assert name is not None and name.startswith(AST + "/vaihde-fi-")
    assert (library.dir / (name.rsplit("/", 1)[1] + ".wav")).is_file()
    assert len(synth.calls) == 1


async def test_prompts_is_the_flows_callable(tmp_path):
    library = lib(tmp_path)
    prompts: Prompts = library.prompts
    say = Say({"fi": "Hei."})
    await library.prefetch(company())
    await library.text("Hei.", "fi")
    assert prompts(say, "fi") == library.sound_for(say, "fi") is not None


def test_sound_for_outside_an_event_loop_is_harmless(tmp_path):
    library = lib(tmp_path)
    assert library.sound_for(Say({"fi": "Hei."}), "fi") is None


async def test_recorded_sound_overrides_synthesis(tmp_path):
    synth = FakeSynth()
    library = lib(tmp_path, synth)
    say = Say({"fi": "Tervetuloa."}, sound="custom/tervetuloa")
    assert library.sound_for(say, "fi") == "custom/tervetuloa"
    assert library.sound_for(say, "en") == "custom/tervetuloa"
    recorded = company(
        COMPANY.replace(
            "greeting: {fi: Tervetuloa., en: Welcome.}",
            "greeting: {fi: Tervetuloa., en: Welcome., sound: custom/hello}",
        )
    )
    report = await library.prefetch(recorded)
    assert report.total == 5
    assert ("fi", "Tervetuloa.") not in synth.calls
    assert library._inflight == {} and synth.calls.count(("fi", "Tervetuloa.")) == 0


async def test_language_fallback_and_unsupported(tmp_path):
    library = lib(tmp_path, default_language="fi")
    only_fi = Say({"fi": "Vain suomeksi."})
    name = await library.text("Vain suomeksi.", "fi")
    assert library.sound_for(only_fi, "en") == name  # better Finnish than silence
    assert library.sound_for(Say({"de": "Hallo."}), "de") is None
    assert await library.text("Hallo.", "de") is None
    assert library.sound_for(Say({}), "fi") is None


async def test_concurrent_requests_synthesize_once(tmp_path):
    synth = FakeSynth(delay=0.05)
    library = lib(tmp_path, synth)
    say = Say({"fi": "Anna Virtanen on palaverissa."})
    assert library.sound_for(say, "fi") is None  # schedules it...
    results = await asyncio.gather(
        *(library.text("Anna Virtanen on palaverissa.", "fi") for _ in range(10)),
        library.prefetch(company()),
    )
    names = set(results[:10])
    assert len(names) == 1 and None not in names
    assert synth.calls.count(("fi", "Anna Virtanen on palaverissa.")) == 1


async def test_concurrent_requests_run_espeak_once(tmp_path, monkeypatch):
    runs: list[list[str]] = []
    real = synth_mod._run

    async def counting(argv, stdin, deadline):
        runs.append(list(argv))
        return await real(argv, stdin, deadline)

    monkeypatch.setattr(synth_mod, "_run", counting)
    library = PromptLibrary(tmp_path / "sounds", AST, synth=EspeakSynth())
    text = "Anna Virtanen on palaverissa kello 14.00 asti."
    names = await asyncio.gather(*(library.text(text, "fi", deadline=10) for _ in range(8)))
    assert len(set(names)) == 1 and names[0] is not None
    speaking = [a for a in runs if "--version" not in a]
    assert [Path(a[0]).name for a in speaking] == ["espeak-ng", "sox"]
    assert len(list(library.dir.glob("*.wav"))) == 1


async def test_files_appear_atomically(tmp_path):
    synth = FakeSynth()
    synth.gate = asyncio.Event()
    library = lib(tmp_path, synth)
    task = asyncio.create_task(library.text("Hei.", "fi", deadline=5))
    await asyncio.wait_for(synth.started.wait(), 5)
    temp = synth.outs[0]
    assert temp.parent == library.dir  # same file system: the rename is atomic
    assert temp.name.startswith(".") and ".tmp" in temp.name
    # While synthesis runs only the hidden temp file exists: a lookup never finds half a file.
    assert files(library) == [temp.name]
    assert library.sound_for(Say({"fi": "Hei."}), "fi") is None
    synth.gate.set()
    name = await task
    assert files(library) == [name.rsplit("/", 1)[1] + ".wav"]
    assert (library.dir / files(library)[0]).stat().st_mode & 0o444 == 0o444  # Asterisk reads


async def test_failure_returns_none_logs_and_leaves_nothing(tmp_path, caplog):
    synth = FakeSynth()
    synth.fail = SynthError("espeak-ng exited with 1: boom")
    library = lib(tmp_path, synth)
    with caplog.at_level(logging.WARNING, logger="vaihde.prompts"):
        assert await library.text("Hei.", "fi") is None
    assert "prompt synthesis failed" in caplog.text
    assert any("boom" in str(getattr(r, "error", "")) for r in caplog.records)
    assert files(library) == []


async def test_unexpected_error_is_logged_not_raised(tmp_path, caplog):
    synth = FakeSynth()
    synth.fail = RuntimeError("bug")
    library = lib(tmp_path, synth)
    with caplog.at_level(logging.ERROR, logger="vaihde.prompts"):
        assert await library.text("Hei.", "fi") is None
    assert "bug" in caplog.text
    assert files(library) == []


async def test_a_failed_prompt_is_not_retried_by_calls_until_later(tmp_path):
    synth = FakeSynth()
    synth.fail = SynthError("boom")
    library = lib(tmp_path, synth, retry_after=60)
    say = Say({"fi": "Hei."})
    assert await library.text("Hei.", "fi") is None
    assert library.sound_for(say, "fi") is None
    assert await library.text("Hei.", "fi") is None
    await settle(library)
    assert len(synth.calls) == 1  # calls do not hammer a broken synthesizer
    synth.fail = None
    report = await library.prefetch(company(COMPANY.replace("Tervetuloa.", "Hei.")))
    assert report.failed == 0  # prefetch retries
    assert library.sound_for(say, "fi") is not None


async def test_slow_synthesis_misses_the_deadline_but_finishes_for_the_next_call(tmp_path, caplog):
    synth = FakeSynth(delay=0.5)
    library = lib(tmp_path, synth)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="vaihde.prompts"):
        assert await library.text("Hitaasti.", "fi", deadline=0.1) is None
    assert time.monotonic() - started < 0.3
    assert "not ready in time" in caplog.text
    await settle(library)
    assert await library.text("Hitaasti.", "fi", deadline=0.01) is not None
    assert len(synth.calls) == 1


async def test_missing_engine_never_makes_a_call_wait(tmp_path, caplog):
    synth = FakeSynth()
    synth.version_fails = True
    library = lib(tmp_path, synth)
    with caplog.at_level(logging.ERROR, logger="vaihde.prompts"):
        report = await library.prefetch(company())
    assert report.failed == 7 and report.generated == 0
    assert "speech synthesizer unavailable" in caplog.text
    assert caplog.text.count("speech synthesizer unavailable") == 1
    started = time.monotonic()
    assert await library.text("Hei.", "fi") is None
    assert library.sound_for(Say({"fi": "Hei."}), "fi") is None
    assert time.monotonic() - started < 0.05
    assert library._inflight == {}


async def test_real_missing_espeak_fails_fast(tmp_path):
    library = PromptLibrary(
        tmp_path / "sounds", AST, synth=EspeakSynth(espeak=str(tmp_path / "nope"))
    )
    report = await library.prefetch(company())
    assert report.failed == report.total == 7
    assert await library.text("Hei.", "fi") is None


async def test_control_characters_never_reach_the_synthesizer(tmp_path):
    synth = FakeSynth()
    library = lib(tmp_path, synth)
    name = await library.text("Anna\x00 on\x1b\x07 palaverissa\u202e\n kello 14.00 asti.", "fi")
    assert name is not None
    assert synth.calls == [("fi", "Anna on palaverissa kello 14 asti.")]
    assert await library.text("\x00\x01 \t", "fi") is None
    long = await library.text("sana " * 1000, "fi")
    assert long is not None and len(synth.calls[-1][1]) <= 2000


async def test_names_are_as_asterisk_sees_them(tmp_path):
    library = PromptLibrary(tmp_path / "host", "/vaihde/demo/sounds/", synth=FakeSynth())
    name = await library.text("Hei.", "fi")
    assert name is not None
    assert name.startswith("/vaihde/demo/sounds/vaihde-fi-") and not name.endswith(".wav")
    assert (tmp_path / "host" / (name.rsplit("/", 1)[1] + ".wav")).is_file()
    same = PromptLibrary(tmp_path / "host", synth=FakeSynth())  # a system Asterisk: same path
    assert await same.text("Hei.", "fi") == str(tmp_path / "host" / name.rsplit("/", 1)[1])
    with pytest.raises(ValueError):
        PromptLibrary(tmp_path / "x", "relative/dir", synth=FakeSynth())


async def test_close_cancels_background_work_and_cleans_up(tmp_path):
    synth = FakeSynth()
    synth.gate = asyncio.Event()
    library = lib(tmp_path, synth)
    assert library.sound_for(Say({"fi": "Hei."}), "fi") is None
    await asyncio.wait_for(synth.started.wait(), 5)
    await library.close()
    assert library._inflight == {}
    assert files(library) == []


def test_says_lists_menus_and_announcements():
    texts = [s.texts.get("fi") for s in says(company())]
    assert texts == ["Tervetuloa.", "Myynti paina 1.", "Vain suomeksi.", "Suljettu."]


async def test_prompts_no_one_used_for_two_weeks_are_pruned(tmp_path):
    import os
    import time

    library = lib(tmp_path)
    await library.prefetch(company())
    menu_files = set(files(library))
    spoken = await library.text("Anna Virtanen on lomalla.", "fi")
    sentence = spoken.rsplit("/", 1)[1] + library.synth.suffix
    stranger = library.dir / "not-ours.wav"
    stranger.write_bytes(b"x")
    month_ago = time.time() - 30 * 86400
    for name in files(library):
        os.utime(library.dir / name, (month_ago, month_ago))
    # A call used the sentence today: it is touched, so it stays.
    assert await library.text("Anna Virtanen on lomalla.", "fi") == spoken
    stale = await library.text("Bob on poissa.", "fi")
    stale_file = library.dir / (stale.rsplit("/", 1)[1] + library.synth.suffix)
    os.utime(stale_file, (month_ago, month_ago))
    await library.prefetch(company())
    left = set(files(library))
    assert menu_files <= left  # what the menus say stays, however old
    assert sentence in left and stranger.name in left
    assert stale_file.name not in left
