"""FastAGI load benchmark: vaihde's FastAGI server against a simulated Asterisk, and the same call
decision as a process-per-call AGI script, in one run.

The server (vaihde.agi.server.FastAgiServer routing "inbound" to vaihde.flows.inbound.inbound with
the company from bench/settings.yaml) runs in its own process pinned to one CPU core; the load
generator runs in this process, pinned to another core, and plays Asterisk's side of the protocol:
it sends the `agi_*` environment, answers every command the way res_agi does for a live channel
(the caller presses 1 at the menu) and checks that each call ended with VAIHDE_ROUTE=dial and the
configured VAIHDE_DIAL.

Phases, in order:

1. warm-up: closed loop, not measured;
2. throughput: closed loop, `--concurrency` sessions always in flight, media answered at once →
   sessions/s (its connect → close latency is only concurrency ÷ sessions/s, Little's law);
3. latency: open loop, Poisson arrivals; the call's greeting sounds and menu prompt are answered
   as if they played for `--media-ms` in all (split evenly), and arrivals are paced so that
   `--latency-concurrency` calls are in progress at once (Little's law) → p50/p99 of the time
   each call waited on vaihde: connect → close minus the media time the simulated Asterisk
   spent (= silence before the first prompt, between prompts, and from the key press to the
   dialplan having its route);
4. stress: the same with arrivals at `--stress-load` × the measured sessions/s;
5. generator ceiling: the same generator against a minimal fake FastAGI peer (no vaihde code);
6. baseline: `agi/vaihde-agi inbound --config …` started per call with pipes on stdin/stdout, as
   Asterisk runs a local AGI, pinned to the single core the server had.

The CPU each process used, the event-loop lag on both sides and the CPU anything else on the
machine used are recorded per phase, so a bottleneck or a noisy neighbour shows in the figures.

Figures go to bench/results/agi.json and are printed as a table. Run `bench/run` or
`.venv/bin/python bench/agi_bench.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import errno
import gc
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "bench" / "settings.yaml"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "agi.json"
AGI_SCRIPT = ROOT / "agi" / "vaihde-agi"
SCRIPT = "inbound"
AMI_SECRET = "bench"  # the settings loader insists on one; the benchmark never talks AMI

# What the issue asks for on a 2-core machine.
TARGET_SESSIONS_PER_S = 2000.0
TARGET_P99_MS = 10.0
TARGET_RATIO = 100.0

# Replies a live channel gives: greeting played to the end, caller pressed 1, variable set.
REPLY_STREAM = b"200 result=0 endpos=8000\n"
REPLY_DIGIT_1 = b"200 result=1\n"
REPLY_SET = b"200 result=1\n"
REPLY_EXEC = b"200 result=0\n"
REPLY_UNKNOWN = b"510 Invalid or unknown command\n"


def mset_values(line: bytes) -> dict[str, str]:
    """The assignments of `EXEC "MSet" "A=1,B=2"`, as Asterisk's MSet() reads them."""
    args = line.decode().rstrip("\n")[len('EXEC "MSet" '):].strip('"')
    return dict(pair.partition("=")[::2] for pair in args.split(","))


# How long the run may wait for sessions still open when a phase ends before calling them stuck.
DRAIN_S = 5.0


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def pin(core: int | None) -> None:
    """Pin the calling process to one CPU core (no-op when core is None)."""
    if core is not None:
        os.sched_setaffinity(0, {core})


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def proc_status_kb(pid: int, key: str) -> int:
    """A `kB` field (VmHWM, VmRSS) from /proc/PID/status; 0 when unavailable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return math.nan
    # After the ")" of comm: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return math.nan, math.nan
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy = sum(fields[:3]) + sum(fields[5:8])
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, fields[7] / tick


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def calibrate() -> float:
    """Milliseconds a fixed pure-Python loop takes on this core (best of 5). Shared and virtual
    machines change speed under their neighbours' load; this lets runs be compared."""
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        total = 0
        for i in range(200_000):
            total += i * i
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 2)


def round_or_none(value: float, digits: int = 2) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


class LagMonitor:
    """Event-loop lag: how late a short sleep wakes up. A busy or descheduled loop delays every
    connection it serves by about this much per round trip."""

    INTERVAL_S = 0.01

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (time.time(), lag ms)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.INTERVAL_S)
            late = (loop.time() - before - self.INTERVAL_S) * 1000
            self.samples.append((time.time(), late))


class GcMonitor:
    """Times the cyclic garbage collector's pauses (gc.callbacks): a full collection stops the
    event loop for as long as it walks the heap."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, float]] = []  # (time.time(), generation, ms)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._started) * 1000
        if info["generation"] > 0 or ms >= 1.0:  # young collections are many and short
            self.pauses.append((round(time.time(), 3), info["generation"], round(ms, 3)))

    def start(self) -> None:
        gc.callbacks.append(self)

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def gc_summary(pauses: list[list[float]], window: tuple[float, float]) -> dict[str, Any]:
    """Collections of generation 1 and 2 (and any young one of 1 ms or more) in a window."""
    inside = [(int(gen), ms) for ts, gen, ms in pauses if window[0] <= ts < window[1]]
    full = [ms for gen, ms in inside if gen == 2]
    return {
        "gen2_collections": len(full),
        "gen2_max_ms": round(max(full), 2) if full else 0.0,
        "gen1_collections": sum(1 for gen, _ in inside if gen == 1),
        "max_pause_ms": round(max((ms for _, ms in inside), default=0.0), 2),
        "pause_total_ms": round(sum(ms for _, ms in inside), 1),
    }


def lag_summary(
    samples: list[tuple[float, float]] | list[list[float]], window: tuple[float, float]
) -> dict[str, float | None]:
    """p50/p99/max loop lag (ms) of the samples taken within a wall-clock window."""
    lags = sorted(lag for ts, lag in samples if window[0] <= ts < window[1])
    return {
        "p50_ms": round_or_none(percentile(lags, 50), 2),
        "p99_ms": round_or_none(percentile(lags, 99), 2),
        "max_ms": round_or_none(lags[-1] if lags else math.nan, 2),
    }


def load_company(config: Path) -> tuple[Any, Any]:
    """The settings and the company the service would serve with this settings file.

    Follows the settings layout as it is: a `company` section in the settings file, or a
    `company_file` beside it (vaihde.company; the service applies that file to its database and
    serves the same content from there).
    """
    os.environ.setdefault("VAIHDE_AMI_SECRET", AMI_SECRET)
    from vaihde.config.settings import load

    settings = load(config)
    company = getattr(settings, "company", None)
    if company is None:
        company_file = getattr(settings, "company_file", "")
        if not company_file:
            raise SystemExit(f"{config}: names no company (company: or company_file:)")
        from vaihde.company import load_company as load_company_file

        company = load_company_file(company_file)
    return settings, company


def build_router(settings: Any, company: Any) -> Any:
    """The service's own router (vaihde.flows.router.build_router) over a stand-in that meets
    its `CallHost` contract with the settings and the company and no database, so the benchmark
    runs exactly the production handlers."""
    from datetime import UTC, datetime

    from vaihde.ami.devicestate import DeviceStates
    from vaihde.flows.inbound import recorded_only
    from vaihde.flows.router import build_router as service_router
    from vaihde.presence.model import resolve
    from vaihde.story import StoryBook

    class Presence:
        def lookup(self, employee_id: str) -> Any:
            # As the service's cache answers for someone with no entries: the same pure
            # resolve() per call, without a database.
            return resolve(employee_id, (), now=datetime.now(UTC))

    class Prompts:
        # The bench company's prompts are recordings, as synthesized ones are once prefetched.
        prompts = staticmethod(recorded_only)
        text = None

    class NoMessages:
        def recording_for(self, call_id: str) -> Any:
            raise RuntimeError("the benchmark's callers do not leave messages")

        async def store_message(self, *_: Any) -> bool:
            raise RuntimeError("the benchmark's callers do not leave messages")

        async def store_callback(self, *_: Any) -> bool:
            raise RuntimeError("the benchmark's callers do not ask for callbacks")

    async def no_feature_codes(*_: Any) -> None:
        raise RuntimeError("the benchmark's callers do not dial feature codes")

    class StandIn:
        def __init__(self) -> None:
            self.settings, self.company = settings, company
            self.presence, self.prompts = Presence(), Prompts()
            self.greetings: dict[str, str] = {}  # the bench's callers are not known by name
            self.devices = DeviceStates()  # no AMI: every phone's state unknown (rung)
            # Stories are kept per call as in the service, which drops each at the caller's
            # hangup (an AMI event the bench has none of): hold about the calls in progress.
            self.stories = StoryBook(limit=600)
            self.messages = NoMessages()
            self.set_from_phone = no_feature_codes

        def dial_adapter(self, uniqueid: str) -> None:
            return None  # one Asterisk: the route's Dial() strings as they are

        @property
        def config(self) -> Any:
            return self.company

        def for_call(self, dialled: str, forwarded_from: str) -> Any:
            return self  # one company: its config, prompts and greetings are the stand-in's

        def company_by_device(self, device: str) -> Any:
            return self.company if self.company.employee_by_device(device) else None

    return service_router(StandIn())  # type: ignore[arg-type]


def network_environment() -> bytes:
    """The environment Asterisk sends for agi://127.0.0.1/inbound."""
    from vaihde.agi.peer import environment

    return environment(SCRIPT)


def local_environment() -> bytes:
    """The environment Asterisk sends to a local AGI(/…/vaihde-agi,inbound): no agi_network*,
    agi_request is the script path, and the application argument appears as agi_arg_1."""
    lines = []
    for line in network_environment().decode().splitlines():
        if not line:
            continue
        key = line.partition(": ")[0]
        if key in ("agi_network", "agi_network_script"):
            continue
        if key == "agi_request":
            line = f"agi_request: {AGI_SCRIPT}"
        lines.append(line)
    lines.append(f"agi_arg_1: {SCRIPT}")
    return ("\n".join(lines) + "\n\n").encode()


# --------------------------------------------------------------------------------------------
# Load generator: Asterisk's side of FastAGI, as a bare asyncio Protocol
# --------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """Everything one load phase records."""

    name: str
    env: bytes
    expected_dial: bytes | None  # None: any non-empty VAIHDE_DIAL (the probe)
    hold_s: float = 0.0  # simulated playback / typing time before STREAM FILE, GET DATA replies
    window: tuple[float, float] = (0.0, math.inf)  # sessions connecting in here are measured
    wall_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    completed: int = 0  # every session that ended, in or out of the window
    errors: Counter[str] = field(default_factory=Counter)
    inflight: int = 0
    active: set[AsteriskSide] = field(default_factory=set)
    concurrency_samples: list[int] = field(default_factory=list)
    idle: asyncio.Event | None = None  # set when inflight drops to 0, once someone waits for it
    record: list[tuple[bytes, bytes, bytes]] | None = None  # probe: (commands, route, dial)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def wake_if_idle(self) -> None:
        if self.inflight <= 0 and self.idle is not None:
            self.idle.set()


@dataclass(frozen=True)
class Probe:
    """What one call looks like: the server's commands, its VAIHDE_DIAL, its media commands."""

    commands: list[str]
    dial: str
    media: int


class AsteriskSide(asyncio.Protocol):
    """One simulated call. Replies are pre-encoded; only SET VARIABLE lines are parsed."""

    __slots__ = (
        "buf",
        "decided_at",
        "dial",
        "done",
        "ended_at",
        "held",
        "lines",
        "phase",
        "problem",
        "route",
        "started",
        "transport",
    )

    def __init__(self, phase: Phase, started: float, done: asyncio.Future[None]) -> None:
        self.phase = phase
        self.started = started
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.held = 0.0
        self.decided_at = 0.0
        self.ended_at = 0.0
        self.route = b""
        self.dial = b""
        self.problem = ""
        self.lines: list[bytes] | None = [] if phase.record is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.phase.active.add(self)
        transport.write(self.phase.env)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while (i := buf.find(b"\n")) >= 0:
            self._command(buf[:i])
            buf = buf[i + 1 :]
        self.buf = buf

    def _command(self, line: bytes) -> None:
        assert self.transport is not None
        if self.lines is not None:
            self.lines.append(line)
        if line.startswith(b"SET VARIABLE "):
            name, _, value = line[13:].partition(b" ")
            if name == b'"VAIHDE_ROUTE"':
                self.route = value
            elif name == b'"VAIHDE_DIAL"':
                self.dial = value
            self.transport.write(REPLY_SET)
        elif line.startswith(b'EXEC "MSet" '):
            values = mset_values(line)
            self.route = b'"%s"' % values.get("VAIHDE_ROUTE", "").encode()
            self.dial = b'"%s"' % values.get("VAIHDE_DIAL", "").encode()
            self.transport.write(REPLY_EXEC)
        elif line.startswith(b"SET AUTOHANGUP "):  # the session's deadline in Asterisk
            self.transport.write(REPLY_EXEC)
        elif line.startswith(b"STREAM FILE "):
            self._reply(REPLY_STREAM, False)
        elif line.startswith(b"GET DATA "):
            self._reply(REPLY_DIGIT_1, True)
        else:
            self.problem = "unexpected-command"
            self.transport.write(REPLY_UNKNOWN)

    def _reply(self, reply: bytes, digit: bool) -> None:
        assert self.transport is not None
        hold = self.phase.hold_s
        if hold <= 0:
            self.transport.write(reply)
            if digit:
                self.decided_at = time.perf_counter()
            return
        asyncio.get_running_loop().call_later(
            hold, self._held_reply, reply, digit, time.perf_counter()
        )

    def _held_reply(self, reply: bytes, digit: bool, received: float) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(reply)
        now = time.perf_counter()
        self.held += now - received
        if digit:
            self.decided_at = now

    def eof_received(self) -> bool:
        # The server closing the connection is the end of the AGI session.
        if not self.ended_at:
            self.ended_at = time.perf_counter()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        end = self.ended_at or time.perf_counter()
        phase = self.phase
        phase.active.discard(self)
        phase.inflight -= 1
        phase.wake_if_idle()
        phase.completed += 1
        if self.problem:
            phase.error(self.problem)
        elif exc is not None:
            phase.error(f"connection-{type(exc).__name__}")
        elif (
            self.route != b'"dial"'
            or self.dial in (b"", b'""')
            or (phase.expected_dial is not None and self.dial != phase.expected_dial)
        ):
            phase.error("misrouted")
        elif phase.window[0] <= self.started < phase.window[1]:
            wall = (end - self.started) * 1000
            phase.wall_ms.append(wall)
            phase.server_ms.append(wall - self.held * 1000)
            if self.decided_at:  # the call had a menu (GET DATA) to answer
                phase.decision_ms.append((end - self.decided_at) * 1000)
        if phase.record is not None and self.lines is not None:
            phase.record.append((b"\n".join(self.lines), self.route, self.dial))
        if not self.done.done():
            self.done.set_result(None)


class LoadGenerator:
    def __init__(self, host: str, port: int, env: bytes, expected_dial: str | None) -> None:
        self.host = host
        self.port = port
        self.env = env
        self.expected_dial = None if expected_dial is None else f'"{expected_dial}"'.encode()
        self.lag = LagMonitor()

    def phase(self, name: str, hold_s: float = 0.0) -> Phase:
        return Phase(name, self.env, self.expected_dial, hold_s)

    async def _session(self, phase: Phase, started: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        t0 = time.perf_counter()
        if started is not None:
            phase.lag_ms.append((t0 - started) * 1000)
        phase.inflight += 1
        try:
            await loop.create_connection(
                lambda: AsteriskSide(phase, t0, done), self.host, self.port
            )
        except OSError as exc:
            phase.inflight -= 1
            phase.wake_if_idle()
            phase.error(f"connect-{errno.errorcode.get(exc.errno or 0, type(exc).__name__)}")
            await asyncio.sleep(0.01)  # do not spin on a refusing server
            return
        await done

    async def probe(self) -> Probe:
        """One call, recorded: what the server sends for a caller who presses 1. The other
        phases hold every call to the same outcome."""
        phase = self.phase("probe")
        phase.record = []
        await self._session(phase)
        await self._drain(phase)
        if not phase.record:
            raise SystemExit(f"probe call failed: {dict(phase.errors)}")
        text, route, dial = phase.record[0]
        commands = text.decode().split("\n")
        if phase.errors:
            raise SystemExit(
                f"probe call was not routed to a phone (route {route.decode()!r}, dial "
                f"{dial.decode()!r}, errors {dict(phase.errors)}); commands:\n  "
                + "\n  ".join(commands)
            )
        media = sum(c.startswith(("STREAM FILE ", "GET DATA ")) for c in commands)
        return Probe(commands, dial.decode().strip('"'), max(media, 1))

    async def _drain(self, phase: Phase) -> None:
        """Wait for the sessions still open; any left after DRAIN_S are stuck (errors)."""
        phase.idle = asyncio.Event()
        phase.wake_if_idle()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                await phase.idle.wait()
        for side in list(phase.active):
            side.problem = "stuck"
            if side.transport is not None:
                side.transport.abort()
        await asyncio.sleep(0.05)

    async def closed_loop(self, name: str, concurrency: int, seconds: float) -> Phase:
        """`concurrency` sessions always in flight for `seconds`; each ends → the next starts."""
        phase = self.phase(name)
        start = time.perf_counter()
        stop = start + seconds
        phase.window = (start, stop)

        async def worker() -> None:
            while time.perf_counter() < stop:
                await self._session(phase)

        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
        await self._drain(phase)
        return phase

    async def open_loop(
        self, name: str, rate: float, hold_s: float, ramp_s: float, seconds: float, seed: int
    ) -> Phase:
        """Poisson arrivals at `rate`/s; each media command (greeting sound, menu prompt) is
        answered after `hold_s`, as if the sound played that long. With n media commands about
        rate × n × hold_s calls are in progress once the ramp (ramp_s) is over."""
        phase = self.phase(name, hold_s=hold_s)
        rng = random.Random(seed)
        start = time.perf_counter()
        measure_from = start + ramp_s
        stop = measure_from + seconds
        phase.window = (measure_from, stop)
        tasks: set[asyncio.Task[None]] = set()

        async def sampler() -> None:
            while time.perf_counter() < stop:
                if time.perf_counter() >= measure_from:
                    phase.concurrency_samples.append(phase.inflight)
                await asyncio.sleep(0.01)

        sampling = asyncio.create_task(sampler())
        due = start
        while due < stop:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._session(phase, due if due >= measure_from else None))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += rng.expovariate(rate)
        await sampling
        if tasks:
            await asyncio.wait(set(tasks), timeout=DRAIN_S + ramp_s)
        await self._drain(phase)
        return phase


def summarize(phase: Phase, seconds: float | None = None) -> dict[str, Any]:
    wall = sorted(phase.wall_ms)
    server = sorted(phase.server_ms)
    decision = sorted(phase.decision_ms)
    out: dict[str, Any] = {
        "sessions": len(wall),
        "errors": sum(phase.errors.values()),
        "error_kinds": dict(phase.errors),
        "wall_p50_ms": round_or_none(percentile(wall, 50), 3),
        "wall_p99_ms": round_or_none(percentile(wall, 99), 3),
        "server_p50_ms": round_or_none(percentile(server, 50), 3),
        "server_p99_ms": round_or_none(percentile(server, 99), 3),
        "server_max_ms": round_or_none(server[-1] if server else math.nan, 3),
        "decision_p99_ms": round_or_none(percentile(decision, 99), 3),
    }
    if seconds:
        out["seconds"] = round(seconds, 3)
        out["sessions_per_s"] = round(len(wall) / seconds, 1)
    if phase.lag_ms:
        out["generator_lag_p99_ms"] = round_or_none(percentile(sorted(phase.lag_ms), 99), 3)
    if phase.concurrency_samples:
        samples = phase.concurrency_samples
        out["concurrency_mean"] = round(sum(samples) / len(samples), 1)
        out["concurrency_min"] = min(samples)
        out["concurrency_max"] = max(samples)
    return out


# --------------------------------------------------------------------------------------------
# Server processes (run by this same file with --role)
# --------------------------------------------------------------------------------------------


async def _wait_stdin_eof() -> None:
    """Return once the parent closes our stdin (or dies)."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    class Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not closed.done():
                closed.set_result(None)

    await loop.connect_read_pipe(Watch, sys.stdin)
    await closed


def _announce(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


async def serve_vaihde(config: Path, log_mode: str, gc_mode: str) -> dict[str, Any]:
    """The system under test: FastAgiServer + the inbound flow with the configured company."""
    from vaihde import logs
    from vaihde.agi.server import FastAgiServer

    settings, company = load_company(config)
    if log_mode == "service":
        # What `vaihde serve` does; the server's stderr goes to a temporary file.
        logs.setup(getattr(settings, "log_format", "text"))
    server = FastAgiServer(build_router(settings, company), "127.0.0.1", 0)
    await server.start()
    if gc_mode == "freeze":
        # As `vaihde serve`: everything alive after start-up frozen, the older generations
        # collected on the service's schedule only (vaihde.collector).
        from vaihde import collector

        collector.settle()
    lag = LagMonitor()
    lag.start()
    gc_monitor = GcMonitor()
    gc_monitor.start()
    _announce(server.port)
    await _wait_stdin_eof()
    gc_monitor.stop()
    lag.stop()
    await server.stop(grace=1.0)
    return {
        "outcomes": dict(server.outcomes),
        "loop_lag": _compact(lag.samples),
        "gc": gc_monitor.pauses,
        "gc_objects": len(gc.get_objects()),
    }


def _compact(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(round(ts, 3), round(lag, 3)) for ts, lag in samples]


async def serve_fake(expected_commands: list[bytes]) -> dict[str, Any]:
    """A minimal FastAGI peer with no vaihde code: sends the six commands the inbound flow sends
    and closes. Measures how fast the load generator can go."""
    loop = asyncio.get_running_loop()
    served = 0

    class Fake(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = b""
            self.step = -1
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            nonlocal served
            assert self.transport is not None
            self.buf += data
            if self.step < 0:
                end = self.buf.find(b"\n\n")
                if end < 0:
                    return
                self.buf = self.buf[end + 2 :]
                self.step = 0
                self.transport.write(expected_commands[0])
            while (i := self.buf.find(b"\n")) >= 0:
                self.buf = self.buf[i + 1 :]
                self.step += 1
                if self.step == len(expected_commands):
                    served += 1
                    self.transport.close()
                    return
                self.transport.write(expected_commands[self.step])

    server = await loop.create_server(Fake, "127.0.0.1", 0, backlog=4096)
    lag = LagMonitor()
    lag.start()
    _announce(server.sockets[0].getsockname()[1])
    await _wait_stdin_eof()
    lag.stop()
    server.close()
    return {"outcomes": {"done": served}, "loop_lag": _compact(lag.samples)}


def server_role(args: argparse.Namespace) -> int:
    pin(args.cpu)
    config = Path(args.config)
    if args.role == "server":
        main: Callable[[], Any] = lambda: serve_vaihde(config, args.server_log, args.server_gc)  # noqa: E731
    else:
        commands = [line.encode() + b"\n" for line in json.loads(Path(args.commands).read_text())]
        main = lambda: serve_fake(commands)  # noqa: E731
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    if args.loop == "uvloop":
        import uvloop  # as `vaihde serve` (vaihde.cli.run_loop)

        result = uvloop.run(main())
    else:
        result = asyncio.run(main())
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    result["peak_rss_kb"] = proc_status_kb(os.getpid(), "VmHWM")
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


@dataclass
class ServerProcess:
    """A server child: started pinned to a core, stopped by closing its stdin."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: str

    @classmethod
    def start(
        cls,
        role: str,
        core: int | None,
        config: Path,
        log_mode: str,
        profile: str | None,
        loop: str = "asyncio",
        extra: list[str] | None = None,
        gc_mode: str = "default",
    ) -> ServerProcess:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role]
        cmd += ["--config", str(config), "--server-log", log_mode, "--loop", loop]
        cmd += ["--server-gc", gc_mode]
        if core is not None:
            cmd += ["--cpu", str(core)]
        if profile:
            cmd += ["--profile", profile]
        cmd += extra or []
        log = tempfile.NamedTemporaryFile(
            prefix=f"vaihde-bench-{role}-", suffix=".log", delete=False
        )
        env = dict(os.environ, VAIHDE_AMI_SECRET=AMI_SECRET)
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT
        )
        log.close()
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            proc.kill()
            proc.wait()
            tail = Path(log.name).read_text(errors="replace")[-2000:]
            os.unlink(log.name)
            raise SystemExit(f"{role} process did not start:\n{tail}")
        return cls(proc, int(line.split()[1]), log.name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            out = self.proc.stdout.read().decode()
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = ""
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        result["log_warnings"] = self._log_problems()
        os.unlink(self.log_path)
        return result

    def _log_problems(self) -> int:
        """Warning/error records (text format: 'HH:MM:SS.mmm W logger: …') and tracebacks."""
        count = 0
        with open(self.log_path, errors="replace") as fh:
            for line in fh:
                if line[13:15] in ("W ", "E ", "C ") or line.startswith("Traceback"):
                    count += 1
        return count


# --------------------------------------------------------------------------------------------
# Baseline: process-per-call AGI over stdin/stdout
# --------------------------------------------------------------------------------------------


def baseline_session(
    cmd: list[str], env: dict[str, str], agi_env: bytes, core: int | None, expected_dial: str
) -> tuple[float, str]:
    """Run one call the way Asterisk runs a local AGI; returns (seconds, problem or '')."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # Asterisk would log it; the bench discards it
        env=env,
        cwd=ROOT,  # relative paths in the settings (database, company file) resolve as in CI
        preexec_fn=(lambda: pin(core)) if core is not None else None,
    )
    assert proc.stdin is not None and proc.stdout is not None
    variables: dict[str, str] = {}
    problem = ""
    try:
        proc.stdin.write(agi_env)
        proc.stdin.flush()
        while line := proc.stdout.readline():
            if line.startswith(b"SET VARIABLE "):
                name, _, value = line[13:].decode().rstrip("\n").partition(" ")
                variables[name.strip('"')] = value.strip('"')
                reply = REPLY_SET
            elif line.startswith(b'EXEC "MSet" '):
                variables.update(mset_values(line))
                reply = REPLY_EXEC
            elif line.startswith(b"SET AUTOHANGUP "):
                reply = REPLY_EXEC
            elif line.startswith(b"STREAM FILE "):
                reply = REPLY_STREAM
            elif line.startswith(b"GET DATA "):
                reply = REPLY_DIGIT_1
            else:
                problem = "unexpected-command"
                reply = REPLY_UNKNOWN
            proc.stdin.write(reply)
            proc.stdin.flush()
    except BrokenPipeError:
        problem = problem or "broken-pipe"
    finally:
        proc.stdin.close()
        proc.stdout.close()
        code = proc.wait()
    seconds = time.perf_counter() - started
    if not problem and code != 0:
        problem = f"exit-{code}"
    if not problem and (
        variables.get("VAIHDE_ROUTE") != "dial" or variables.get("VAIHDE_DIAL") != expected_dial
    ):
        problem = "misrouted"
    return seconds, problem


def run_baseline(
    config: Path,
    core: int | None,
    parallel: int,
    seconds: float,
    min_sessions: int,
    max_seconds: float,
    expected_dial: str,
) -> dict[str, Any]:
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ, VAIHDE_AMI_SECRET=AMI_SECRET)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")  # the script's `env python3`
    cmd = [str(AGI_SCRIPT), SCRIPT, "--config", str(config)]
    agi_env = local_environment()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    start = time.perf_counter()
    last_end = start

    def enough() -> bool:
        elapsed = time.perf_counter() - start
        done = len(latencies) + sum(errors.values())
        return elapsed >= max_seconds or (elapsed >= seconds and done >= min_sessions)

    def worker() -> None:
        nonlocal last_end
        while not enough():
            took, problem = baseline_session(cmd, env, agi_env, core, expected_dial)
            with lock:
                last_end = time.perf_counter()
                if problem:
                    errors[problem] += 1
                else:
                    latencies.append(took * 1000)

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = last_end - start
    lat = sorted(latencies)
    return {
        "command": f"{AGI_SCRIPT.relative_to(ROOT)} {SCRIPT} --config {config}",
        "python": str(Path(venv_bin) / "python3"),
        "parallel": parallel,
        "core": core,
        "seconds": round(elapsed, 3),
        "sessions": len(lat),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "sessions_per_s": round(len(lat) / elapsed, 2) if elapsed > 0 else 0.0,
        "p50_ms": round_or_none(percentile(lat, 50), 1),
        "p99_ms": round_or_none(percentile(lat, 99), 1),
    }


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="FastAGI load benchmark: vaihde's FastAGI server vs process-per-call AGI.",
    )
    p.add_argument("--quick", action="store_true", help="short phases (~10 s in all)")
    p.add_argument("--duration", type=float, help="seconds per measured phase (default 5)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="sessions in flight during the throughput phase (default 200)",
    )
    p.add_argument(
        "--latency-concurrency",
        type=int,
        default=500,
        help="calls in progress during the latency phase (default 500)",
    )
    p.add_argument(
        "--media-ms",
        type=float,
        help="latency phase: how long a call's greeting sounds and menu prompt 'play' in all "
        "before Asterisk answers them (default 3000; the arrival rate follows from it)",
    )
    p.add_argument(
        "--latency-rate",
        type=float,
        help="latency phase: new calls per second instead (media time then follows)",
    )
    p.add_argument(
        "--stress-load",
        type=float,
        help="stress phase: arrivals at this fraction of the measured sessions/s, "
        "same concurrency (default 0.5; 0 skips it)",
    )
    p.add_argument("--warmup", type=float, help="seconds of unmeasured load first (default 1)")
    p.add_argument(
        "--baseline-parallel",
        type=int,
        default=2,
        help="process-per-call sessions at once (default 2)",
    )
    p.add_argument("--baseline-duration", type=float, help="seconds of baseline (default 5)")
    p.add_argument(
        "--baseline-min-sessions",
        type=int,
        help="baseline runs at least this many calls (default 30)",
    )
    p.add_argument(
        "--no-ceiling", action="store_true", help="skip measuring the load generator's own ceiling"
    )
    p.add_argument(
        "--server-gc",
        choices=["default", "freeze"],
        default="freeze",
        help="the server's garbage collector: gc.freeze() after start-up as `vaihde serve` does "
        "(default), or Python's default, to measure what freezing changes",
    )
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="uvloop",
        help="the server's event loop: uvloop as `vaihde serve` (default), or the stock "
        "asyncio loop, to measure what uvloop changes",
    )
    p.add_argument(
        "--server-log",
        choices=["service", "off"],
        default="service",
        help="server logging: as `vaihde serve` (INFO to stderr, here a temp file) "
        "or unconfigured (default service)",
    )
    p.add_argument(
        "--profile-server",
        metavar="FILE",
        help="run the server under cProfile and write its stats to FILE",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--seed", type=int, default=1)
    # Internal: this file also runs the server processes.
    p.add_argument(
        "--role", choices=["bench", "server", "fake"], default="bench", help=argparse.SUPPRESS
    )
    p.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    p.add_argument("--profile", help=argparse.SUPPRESS)
    p.add_argument("--commands", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    if args.duration is None:
        args.duration = 1.5 if quick else 5.0
    if args.media_ms is None:
        args.media_ms = 1000.0 if quick else 3000.0
    if args.stress_load is None:
        args.stress_load = 0.0 if quick else 0.5
    if args.warmup is None:
        args.warmup = 0.5 if quick else 1.0
    if args.baseline_duration is None:
        args.baseline_duration = 1.5 if quick else 5.0
    if args.baseline_min_sessions is None:
        args.baseline_min_sessions = 6 if quick else 30
    args.config = args.config.resolve()
    return args


def choose_cores() -> tuple[int | None, int | None, bool]:
    """(server core, generator core, separate): the first two cores this process may use."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        return cores[0], cores[1], True
    return cores[0], cores[0], False


class Meter:
    """Wall-clock window and CPU use of the server and generator processes during one phase."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.window = (0.0, 0.0)  # time.time(), to match loop-lag samples across processes
        self.server_busy = math.nan
        self.generator_busy = math.nan
        self.machine_busy = math.nan
        self.steal = math.nan

    def __enter__(self) -> Meter:
        self._t0 = time.time()
        self._p0 = time.perf_counter()
        self._s0 = proc_cpu_s(self.server_pid)
        self._g0 = self_cpu_s()
        self._m0 = machine_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self._p0
        self.window = (self._t0, time.time())
        self.server_busy = (proc_cpu_s(self.server_pid) - self._s0) / elapsed
        self.generator_busy = (self_cpu_s() - self._g0) / elapsed
        busy, steal = machine_cpu_s()
        self.machine_busy = (busy - self._m0[0]) / elapsed
        self.steal = (steal - self._m0[1]) / elapsed

    def annotate(self, out: dict[str, Any], gen: LoadGenerator, server_key: str) -> None:
        out[f"{server_key}_core_busy"] = round(self.server_busy, 3)
        out["generator_core_busy"] = round(self.generator_busy, 3)
        out["generator_loop_lag"] = lag_summary(gen.lag.samples, self.window)
        # Cores' worth of CPU used by everything else on the machine (other processes, kernel
        # threads): a noisy neighbour makes the figures worse, so it is reported, not hidden.
        other = self.machine_busy - self.server_busy - self.generator_busy
        out["other_cpu_load_cores"] = round(max(other, 0.0), 2)
        out["steal_cores"] = round(self.steal, 3)
        out["_window"] = self.window


async def fastagi_phases(
    args: argparse.Namespace, port: int, server_pid: int
) -> tuple[dict[str, Any], Probe]:
    probe = await LoadGenerator("127.0.0.1", port, network_environment(), None).probe()
    media = probe.media
    gen = LoadGenerator("127.0.0.1", port, network_environment(), probe.dial)
    gen.lag.start()
    out: dict[str, Any] = {}

    warm = await gen.closed_loop("warmup", args.concurrency, args.warmup)
    out["warmup"] = {
        "sessions": warm.completed,
        "errors": sum(warm.errors.values()),
        "error_kinds": dict(warm.errors),
    }
    completed = warm.completed

    with Meter(server_pid) as m:
        thr = await gen.closed_loop("throughput", args.concurrency, args.duration)
    completed += thr.completed
    out["throughput"] = summarize(thr, thr.window[1] - thr.window[0])
    out["throughput"]["concurrency"] = args.concurrency
    m.annotate(out["throughput"], gen, "server")

    # Latency: `latency_concurrency` calls in progress, each spending media × hold s in
    # greeting/prompt playback; arrivals follow from Little's law.
    calls = args.latency_concurrency
    if args.latency_rate:
        rate = args.latency_rate
        hold = calls / rate / media
    else:
        hold = args.media_ms / 1000 / media
        rate = calls / (media * hold)
    plans = [("latency", rate, hold)]
    if args.stress_load > 0 and thr.wall_ms:
        stress_rate = args.stress_load * out["throughput"]["sessions_per_s"]
        plans.append(("stress", stress_rate, calls / stress_rate / media))
    for name, rate, hold in plans:
        with Meter(server_pid) as m:
            phase = await gen.open_loop(
                name,
                rate,
                hold,
                ramp_s=media * hold + 0.5,
                seconds=args.duration,
                seed=args.seed,
            )
        completed += phase.completed
        out[name] = summarize(phase, phase.window[1] - phase.window[0])
        out[name].update(
            rate=round(rate, 1),
            target_concurrency=calls,
            media_commands=media,
            media_hold_ms_per_command=round(hold * 1000, 1),
        )
        m.annotate(out[name], gen, "server")
    gen.lag.stop()
    out["total_completed"] = completed
    return out, probe


async def ceiling_phase(
    args: argparse.Namespace, port: int, expected_dial: str, server_pid: int
) -> dict[str, Any]:
    gen = LoadGenerator("127.0.0.1", port, network_environment(), expected_dial)
    gen.lag.start()
    await gen.closed_loop("ceiling-warmup", args.concurrency, min(args.warmup, 0.5))
    with Meter(server_pid) as m:
        phase = await gen.closed_loop("ceiling", args.concurrency, min(args.duration, 3.0))
    out = summarize(phase, phase.window[1] - phase.window[0])
    m.annotate(out, gen, "fake_server")
    gen.lag.stop()
    return out


def _attach_server_lag(phase: dict[str, Any] | None, server_result: dict[str, Any]) -> None:
    if phase and "_window" in phase:
        window = phase.pop("_window")
        phase["server_loop_lag"] = lag_summary(server_result.get("loop_lag", []), window)
        if "gc" in server_result:
            phase["server_gc"] = gc_summary(server_result["gc"], window)


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from vaihde import __version__

    server_core, gen_core, separate = choose_cores()
    began = time.perf_counter()

    server = ServerProcess.start(
        "server",
        server_core,
        args.config,
        args.server_log,
        args.profile_server,
        args.loop,
        gc_mode=args.server_gc,
    )
    pin(gen_core)
    calibration_start = calibrate()
    idle_rss_kb = proc_status_kb(server.pid, "VmRSS")
    peak_rss_kb = 0
    try:
        phases, probe = asyncio.run(fastagi_phases(args, server.port, server.pid))
        peak_rss_kb = proc_status_kb(server.pid, "VmHWM")
    finally:
        server_result = server.stop()
    outcomes: dict[str, int] = server_result.get("outcomes", {})
    peak_rss_kb = max(peak_rss_kb, server_result.get("peak_rss_kb", 0))
    for key in ("throughput", "latency", "stress"):
        _attach_server_lag(phases.get(key), server_result)

    ceiling: dict[str, Any] | None = None
    if not args.no_ceiling:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="vaihde-bench-") as cmds:
            json.dump(probe.commands, cmds)
            cmds.flush()
            fake = ServerProcess.start(
                "fake", server_core, args.config, "off", None, extra=["--commands", cmds.name]
            )
        try:
            ceiling = asyncio.run(ceiling_phase(args, fake.port, probe.dial, fake.pid))
        finally:
            fake_result = fake.stop()
        _attach_server_lag(ceiling, fake_result)

    baseline = run_baseline(
        args.config,
        server_core,
        args.baseline_parallel,
        args.baseline_duration,
        args.baseline_min_sessions,
        max(args.baseline_duration * 4, 60.0),
        probe.dial,
    )
    calibration_end = calibrate()

    thr, lat, stress = phases["throughput"], phases["latency"], phases.get("stress")
    # Every session the server finished some other way than "done" is an error too, and so is
    # every warning or error the server logged.
    server_not_done = sum(v for k, v in outcomes.items() if k != "done")
    errors = (
        phases["warmup"]["errors"]
        + thr["errors"]
        + lat["errors"]
        + server_not_done
        + (stress["errors"] if stress else 0)
        + server_result.get("log_warnings", 0)
    )
    base_rate = baseline["sessions_per_s"]
    cpu_per_session = (
        thr["server_core_busy"] / thr["sessions_per_s"] if thr["sessions_per_s"] else None
    )
    ratio = thr["sessions_per_s"] / base_rate if base_rate else math.nan
    p99 = lat["server_p99_ms"] if lat["server_p99_ms"] is not None else math.inf
    return {
        "benchmark": "agi",
        "sessions_per_s": thr["sessions_per_s"],
        "concurrency": args.concurrency,
        "p50_ms": lat["server_p50_ms"],
        "p99_ms": lat["server_p99_ms"],
        "latency_concurrency": args.latency_concurrency,
        "latency_concurrency_measured": lat.get("concurrency_mean"),
        "latency_rate": lat["rate"],
        "stress_rate": stress["rate"] if stress else None,
        "stress_p50_ms": stress["server_p50_ms"] if stress else None,
        "stress_p99_ms": stress["server_p99_ms"] if stress else None,
        "closed_loop_p50_ms": thr["wall_p50_ms"],
        "closed_loop_p99_ms": thr["wall_p99_ms"],
        "peak_rss_mb": round(peak_rss_kb / 1024, 1),
        "idle_rss_mb": round(idle_rss_kb / 1024, 1),
        "sessions": thr["sessions"] + lat["sessions"] + (stress["sessions"] if stress else 0),
        "server_cpu_us_per_session": round(cpu_per_session * 1e6) if cpu_per_session else None,
        # Derived, not measured: what the server would do with its core to itself. Steadier than
        # sessions_per_s when neighbours steal CPU; the targets are judged on sessions_per_s.
        "server_capacity_sessions_per_s": round(1 / cpu_per_session) if cpu_per_session else None,
        "sessions_total": phases["total_completed"],
        "errors": errors,
        "baseline_sessions_per_s": base_rate,
        "baseline_errors": baseline["errors"],
        "ratio": round_or_none(ratio, 1),
        "generator_ceiling_sessions_per_s": ceiling["sessions_per_s"] if ceiling else None,
        "targets": {
            "sessions_per_s": {
                "target": TARGET_SESSIONS_PER_S,
                "met": thr["sessions_per_s"] >= TARGET_SESSIONS_PER_S,
            },
            "p99_ms": {"target": TARGET_P99_MS, "met": p99 <= TARGET_P99_MS and lat["errors"] == 0},
            "ratio": {"target": TARGET_RATIO, "met": bool(ratio >= TARGET_RATIO)},
        },
        "cpu": {
            "model": cpu_model(),
            "machine_cores": os.cpu_count(),
            "server_core": server_core,
            "generator_core": gen_core,
            "pinned_apart": separate,
            "baseline_core": server_core,
            "server_core_busy_throughput": thr["server_core_busy"],
            "generator_core_busy_throughput": thr["generator_core_busy"],
        },
        "machine_cores": os.cpu_count(),
        "calibration_ms": {"start": calibration_start, "end": calibration_end},
        # Busiest phase's CPU use by anything other than the server and the generator.
        "other_cpu_load_cores": max(p["other_cpu_load_cores"] for p in (thr, lat, stress) if p),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "vaihde": __version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "server_logging": args.server_log,
        "server_loop": args.loop,
        "server_gc": args.server_gc,
        "server_outcomes": outcomes,
        "server_gc_objects": server_result.get("gc_objects"),
        "server_log_warnings": server_result.get("log_warnings", 0),
        "phases": {**phases, "ceiling": ceiling, "baseline": baseline},
        "probe": {"commands": probe.commands, "dial": probe.dial, "media_commands": probe.media},
        "options": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "quick": args.quick,
            "config": str(args.config.relative_to(ROOT))
            if args.config.is_relative_to(ROOT)
            else str(args.config),
        },
        "run_seconds": round(time.perf_counter() - began, 1),
    }


def render(r: dict[str, Any]) -> str:
    """The figures as a readable table."""
    ph = r["phases"]
    thr, lat, stress = ph["throughput"], ph["latency"], ph.get("stress")
    base, ceil, cpu, t = ph["baseline"], ph["ceiling"], r["cpu"], r["targets"]

    def mark(key: str) -> str:
        return "met" if t[key]["met"] else "NOT MET"

    def open_loop_note(p: dict[str, Any]) -> str:
        return (
            f"{p.get('concurrency_mean', 0):.0f} calls in progress (aim "
            f"{p['target_concurrency']}), {p['rate']:,.0f} new/s, "
            f"{p['media_hold_ms_per_command']:g} ms per prompt, "
            f"server core {p['server_core_busy']:.0%} busy"
        )

    rows = [
        (
            "FastAGI sessions/s",
            f"{r['sessions_per_s']:,.0f}",
            f">= {TARGET_SESSIONS_PER_S:,.0f} ({mark('sessions_per_s')})",
            f"closed loop, {r['concurrency']} in flight, {thr['seconds']:.1f} s, "
            f"server core {thr['server_core_busy']:.0%} busy, "
            f"{r['server_cpu_us_per_session']} µs CPU/session "
            f"(≈ {r['server_capacity_sessions_per_s'] or 0:,}/s with a core to itself)",
        ),
        (
            "p50 / p99 server time",
            f"{r['p50_ms']} / {r['p99_ms']} ms",
            f"p99 <= {TARGET_P99_MS:g} ms ({mark('p99_ms')})",
            open_loop_note(lat),
        ),
        (
            "  decision p99",
            f"{lat['decision_p99_ms']} ms",
            "",
            "caller's key press answered → connection closed (silence before ringing)",
        ),
    ]
    if stress:
        rows.append(
            (
                "  stress p50 / p99",
                f"{stress['server_p50_ms']} / {stress['server_p99_ms']} ms",
                "",
                open_loop_note(stress),
            )
        )
    rows += [
        (
            "  closed-loop p50 / p99",
            f"{r['closed_loop_p50_ms']} / {r['closed_loop_p99_ms']} ms",
            "",
            f"connect → close, {r['concurrency']} always queued (≈ concurrency ÷ sessions/s)",
        ),
        (
            "process-per-call sessions/s",
            f"{r['baseline_sessions_per_s']:,.1f}",
            "",
            f"agi/vaihde-agi, {base['parallel']} at once on CPU {base['core']}, "
            f"{base['sessions']} calls, p50 {base['p50_ms']} ms each",
        ),
        (
            "ratio",
            f"{r['ratio']:,.0f}x" if r["ratio"] is not None else "n/a",
            f">= {TARGET_RATIO:g}x ({mark('ratio')})",
            "FastAGI sessions/s ÷ process-per-call sessions/s, same single core",
        ),
        ("server peak RSS", f"{r['peak_rss_mb']} MB", "", f"VmHWM (idle {r['idle_rss_mb']} MB)"),
        (
            "sessions / errors",
            f"{r['sessions']:,} / {r['errors']}",
            "must be 0",
            f"measured; {r['sessions_total']:,} incl. warm-up and ramps; baseline errors "
            f"{r['baseline_errors']}",
        ),
        (
            "server loop lag p99",
            " / ".join(f"{p['server_loop_lag']['p99_ms']}" for p in (thr, lat)) + " ms",
            "",
            "throughput / latency phase: how late the server's event loop ran",
        ),
        (
            "server GC pauses",
            " / ".join(
                f"{p['server_gc']['gen2_collections']}×{p['server_gc']['gen2_max_ms']}"
                for p in (thr, lat)
            )
            + " ms",
            "",
            "throughput / latency phase: full (gen 2) collections × longest, "
            f"{r['server_gc_objects'] or 0:,} objects tracked at the end",
        ),
        (
            "generator loop lag p99",
            " / ".join(f"{p['generator_loop_lag']['p99_ms']}" for p in (thr, lat)) + " ms",
            "",
            f"generator core {thr['generator_core_busy']:.0%} / "
            f"{lat['generator_core_busy']:.0%} busy",
        ),
    ]
    if ceil:
        rows.append(
            (
                "generator ceiling",
                f"{ceil['sessions_per_s']:,.0f}/s",
                "",
                f"same generator vs a minimal fake peer; cores busy: fake "
                f"{ceil['fake_server_core_busy']:.0%}, generator "
                f"{ceil['generator_core_busy']:.0%}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    pinning = (
        f"server on CPU {cpu['server_core']}, load generator on CPU {cpu['generator_core']}"
        if cpu["pinned_apart"]
        else "ONE core only: server and generator share it"
    )
    lines = [
        f"vaihde FastAGI benchmark — {r['date']}, Python {r['python']}, "
        f"{r['machine_cores']} cores ({cpu['model']}), server loop {r['server_loop']}, "
        f"gc {r['server_gc']}, "
        f"logging {r['server_logging']}",
        f"{pinning}; process-per-call pinned to CPU {cpu['baseline_core']} (same budget)",
        f"machine speed: calibration loop {r['calibration_ms']['start']} ms at start, "
        f"{r['calibration_ms']['end']} ms at end (lower is faster; compare runs by it)",
        "",
    ]
    for a, b, c, d in rows:
        lines.append(f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d}")
    if r["other_cpu_load_cores"] >= 0.1:
        lines += [
            "",
            f"  WARNING: other processes used up to {r['other_cpu_load_cores']} "
            "cores during the measurement; figures are pessimistic, rerun on a quiet "
            "machine",
        ]
    if r["errors"] or r["baseline_errors"]:
        kinds = {k: ph[k]["error_kinds"] for k in ("throughput", "latency", "stress") if ph.get(k)}
        lines += [
            "",
            f"  errors: {kinds} server outcomes {r['server_outcomes']} "
            f"server log warnings {r['server_log_warnings']} baseline {base['error_kinds']}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role != "bench":
        return server_role(args)
    result = run_bench(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwritten: {args.output}")
    return 1 if result["errors"] or result["baseline_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
