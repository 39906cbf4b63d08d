"""A company file sent to the running service (REST API: check, diff, apply) is parsed and
validated away from the event loop that also answers FastAGI and AMI: in a short-lived process
by default, or in a thread.

Why a process (bench/results/config.json): in a thread, the parse shares the interpreter lock
and its garbage collections with the event loop, which then stalls for tens of milliseconds at a
time; a process leaves the loop alone (only the result is unpickled, in a thread), is killed
when it runs too long, is limited in memory, and gives its memory back when it ends. It is a
fresh interpreter (`python -m vaihde.company.offloop`), not a fork of the service, so it
inherits none of the service's threads, sockets or locks. Its start (the loader's imports, about
0.4 s of a core) comes before the file does: the service keeps the next check's process started
and waiting (`warm`), so an admin's check, diff or apply waits only for the check itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import gc
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from vaihde.calendar.policy import NO_FILES, CalendarPolicy
from vaihde.company.load import check_company_text
from vaihde.company.schema import CompanyConfig, frozen_map
from vaihde.config.source import ConfigError

CHECK_TIMEOUT_S = 120.0  # a 10,000-employee company takes about 4 s on one core
CHECK_MEMORY_BYTES = 2 * 1024**3  # address space of the checking process (refused beyond)
CHECK_NICE = 10  # its priority below the service's
Mode = Literal["process", "thread"]
Want = Literal["config", "summary"]


@dataclass(frozen=True, slots=True)
class Summary:
    """What a check answers: the configuration is valid; its name, sizes and warnings."""

    company: str
    counts: dict[str, int]
    warnings: tuple[str, ...]

    @classmethod
    def of(cls, config: CompanyConfig) -> Summary:
        return cls(
            config.company.name,
            {"employees": len(config.employees), "teams": len(config.teams),
             "menus": len(config.menus), "numbers": len(config.numbers)},
            config.warnings,
        )


@dataclass
class ConfigChecker:
    """Checks company YAML sent by a client (no server files are read: includes are refused)
    against `calendars`, one file at a time."""

    calendars: CalendarPolicy = NO_FILES
    mode: Mode = "process"
    timeout: float = CHECK_TIMEOUT_S
    # One at a time: each check may take a core and a few hundred MiB.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # The next check's process, started and waiting for its file (warm()).
    _spare: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    async def check(self, text: str, name: str) -> CompanyConfig:
        """The valid configuration, or ConfigError with every problem (file:line: field)."""
        value = await self._run(text, name, "config")
        assert isinstance(value, CompanyConfig)
        return value

    async def summary(self, text: str, name: str) -> Summary:
        """As check, for when only the verdict is needed: the configuration itself stays in
        the checking process (unpickling thousands of employees would cost the loop ~0.1 s)."""
        value = await self._run(text, name, "summary")
        assert isinstance(value, Summary)
        return value

    def warm(self) -> None:
        """Start the next check's process now: it imports the loader (about 0.4 s of a core)
        and waits for its file, so that a check waits only for the check itself."""
        if self.mode == "process" and (self._spare is None or self._spare.poll() is not None):
            self._spare = _start()

    def close(self) -> None:
        """The waiting process, if any, ends (it would also end by itself when the service's
        end of its pipe closes)."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None:
            spare.kill()
            spare.wait()

    async def _run(self, text: str, name: str, want: Want) -> CompanyConfig | Summary:
        async with self._lock:
            if self.mode == "thread":
                kind, value = await asyncio.to_thread(check_one, text, name, self.calendars, want)
            else:
                kind, value = await asyncio.to_thread(self._in_process, text, name, want)
        if kind == "ok":
            return value  # type: ignore[no-any-return]
        if kind == "problems":
            raise ConfigError(value)
        raise RuntimeError(f"checking {name} failed: {value}")

    def _in_process(self, text: str, name: str, want: Want) -> tuple[str, Any]:
        """Runs in a thread of the service: one checking process (the waiting one when there
        is one), its answer unpickled here; then the next one is started to wait."""
        payload = pickle.dumps((text, name, self.calendars, want),
                               protocol=pickle.HIGHEST_PROTOCOL)
        proc, self._spare = self._spare, None
        if proc is None or proc.poll() is not None:
            proc = _start()
        try:
            out, err = proc.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return "problems", [
                f"{name}:1: (top level): checking took longer than {self.timeout:g} s and was "
                "stopped: the file is too large or too intricate"
            ]
        finally:
            self.warm()
        if proc.returncode != 0 or not out:
            why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            return "error", f"the checking process ended with {proc.returncode}: {why[0]}"
        result: tuple[str, Any] = pickle.loads(out)
        return result


def _start() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vaihde.company.offloop"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_environment(),
    )


def _environment() -> dict[str, str]:
    """The service's environment, with this vaihde importable even when it runs from a
    source tree rather than an installed package."""
    import vaihde

    env = dict(os.environ)
    here = str(Path(vaihde.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def check_one(
    text: str, name: str, calendars: CalendarPolicy, want: Want = "config"
) -> tuple[str, Any]:
    """The check itself: ("ok", config or summary), ("problems", [...]) or ("error", why)."""
    try:
        config = check_company_text(text, name, calendars)
        return "ok", Summary.of(config) if want == "summary" else config
    except ConfigError as exc:
        return "problems", exc.problems
    except MemoryError:
        return "problems", [
            f"{name}:1: (top level): checking needs more than "
            f"{CHECK_MEMORY_BYTES // 1024**3} GiB of memory: the file is too large"
        ]
    except Exception as exc:  # a bug in the loader: the service answers 500
        return "error", f"{type(exc).__name__}: {exc}"


def main() -> None:
    """`python -m vaihde.company.offloop`: (text, name, calendars, want) pickled on stdin, the
    answer pickled on stdout. One file, then it exits. It is started ahead (ConfigChecker.warm)
    and waits here, its imports done, for the file."""
    setup_checking_process()
    try:
        text, name, calendars, want = pickle.load(sys.stdin.buffer)
    except EOFError:
        return  # started ahead for a check that never came (the service stopped): nothing to do
    result = check_one(text, name, calendars, want)
    pickle.dump(result, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()


def setup_checking_process() -> None:
    """The checking process's own limits: memory, a lower priority, no garbage collection."""
    gc.disable()  # it lives for one check, and the loader makes no reference cycles worth it
    _limit_memory()
    with contextlib.suppress(OSError):
        # Calls first: on a busy host the service (and Asterisk) get the CPU before a check.
        os.nice(CHECK_NICE)
    copyreg.pickle(MappingProxyType, _pickle_mapping)


def _limit_memory() -> None:
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = CHECK_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(
            hard, CHECK_MEMORY_BYTES
        )
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _pickle_mapping(m: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    # The configuration's maps are read-only views (schema.frozen_map), which pickle cannot
    # take as they are; they are rebuilt as the same kind of view.
    return frozen_map, (dict(m),)


if __name__ == "__main__":
    # Through the module's own name: what it pickles (Summary) must be found as
    # vaihde.company.offloop.Summary by the service, not as __main__.Summary.
    from vaihde.company import offloop

    offloop.main()
