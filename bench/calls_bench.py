"""Benchmark: simulated callers through the real sandbox Asterisk and the real vaihde service,
menu → presence → employee phone, 100 at once against one at a time; writes
bench/results/calls.json. See bench/README.md ("calls").

Run: bench/run calls   (or .venv/bin/python bench/calls_bench.py --help); needs root, as the
integration tests do, to run the sandbox Asterisk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import calls_measure as cm  # bench/ is on sys.path: it is this script's directory
from vaihde.company import CompanyConfig, load_company
from vaihde.company.apply import apply_company
from vaihde.db import models as m
from vaihde.db import open_database
from vaihde.db.migrate import upgrade_async
from vaihde.presence.model import Source, State
from vaihde.presence.store import set_availability
from vaihde.sandbox import Instance, InstanceSettings, SandboxError, build
from vaihde.sandbox.service import ServiceProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "calls.json"
DIALPLAN = HERE / "calls.conf"
COMPANY = HERE / "calls-company.yaml"
COMPANY_NUMBER = "0201234567"
PHONES = "bench-phones"
OPERATORS = f"Local/operator@{PHONES}"
INSTANCE = "bench-calls"
SILENCE_LIMIT_S = 3.0
DTMF_MS = 100  # each key's tone length

# Who is away, set in the presence store before the service starts (bench/calls-company.yaml:
# person 4 of each department is on vacation without a delegate, person 5 is in a meeting and
# has person 6 as delegate).
AWAY: dict[str, tuple[State, timedelta]] = {
    f"{dept}{person}": (state, length)
    for dept in "stbo"
    for person, state, length in ((4, State.VACATION, timedelta(days=7)),
                                  (5, State.MEETING, timedelta(hours=2)))
}


def log(line: str) -> None:
    print(line, flush=True)


# --- Asterisk ----------------------------------------------------------------------------------


def bench_manager_conf(manager_conf: str, secret: str) -> str:
    """The sandbox's manager.conf plus the benchmark's own AMI user, which reads the `agi` class
    (AGIExecStart/End, the silence measurement) that the service's user does not (and `agent`,
    for QueueCallerJoin); and every
    event carries Asterisk's own timestamp, so no figure depends on when the benchmark read it."""
    general = "[general]\n"
    if general not in manager_conf:
        raise SandboxError("manager.conf has no [general] section")
    text = manager_conf.replace(general, general + "timestampevents = yes\n", 1)
    return text + (
        "\n[bench]\n"
        f"secret = {secret}\n"
        "deny = 0.0.0.0/0.0.0.0\n"
        "permit = 127.0.0.1/255.255.255.255\n"
        "read = call,dtmf,agi,agent,user,originate\n"
        "write = call,originate\n"
        "writetimeout = 5000\n"
    )


class BenchInstance(Instance):
    """The sandbox instance with the benchmark's AMI user added to its manager.conf."""

    def __init__(self, settings: InstanceSettings, bench_secret: str) -> None:
        super().__init__(settings)
        self.bench_secret = bench_secret

    def config_files(self) -> dict[str, str]:
        files = super().config_files()
        files["manager.conf"] = bench_manager_conf(files["manager.conf"], self.bench_secret)
        return files


class Ami:
    """A bare AMI connection: actions, and every event kept in order (with its arrival time in
    `_received`) and handed to the listeners. Shares nothing with vaihde.ami, which it checks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, str]]] = {}
        self.events: list[dict[str, Any]] = []
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, username: str, secret: str, events: bool = True) -> Ami:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        ami = cls(reader, writer)
        await asyncio.wait_for(reader.readline(), 5)  # banner
        ami._task = asyncio.create_task(ami._read())
        response = await ami.action("Login", Username=username, Secret=secret,
                                    Events="on" if events else "off")
        if response.get("Response") != "Success":
            raise SandboxError(f"AMI login as {username} failed: {response}")
        return ami

    async def _read(self) -> None:
        buffer = ""
        while chunk := await self._reader.read(262144):
            received = time.time()
            buffer += chunk.decode(errors="replace")
            *blocks, buffer = buffer.split("\r\n\r\n")
            for block in blocks:
                msg: dict[str, Any] = {}
                for line in block.split("\r\n"):
                    key, sep, value = line.partition(":")
                    if sep:
                        msg.setdefault(key.strip(), value.strip())
                if "Event" in msg:
                    msg["_received"] = received
                    self.events.append(msg)
                    for listener in self.listeners:
                        listener(msg)
                else:
                    fut = self._pending.pop(msg.get("ActionID", ""), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("AMI connection closed"))

    async def action(self, name: str, timeout: float = 10, **fields: str) -> dict[str, str]:
        action_id = fields.pop("ActionID", None) or f"bench-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        fut: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.action("Logoff", timeout=2)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task


# --- the service -------------------------------------------------------------------------------


async def prepare_database(url: str) -> CompanyConfig:
    """The company applied and the absences set, as `vaihde config apply` and the presence API
    store them; the service reads both from the database when it starts."""
    company = load_company(COMPANY)
    db = open_database(url)
    try:
        await upgrade_async(db.engine)
        await apply_company(db.sessions, company, applied_by="calls bench",
                            source_name=str(COMPANY))
        now = datetime.now(UTC)
        async with db.sessions() as session, session.begin():
            for employee, (state, length) in AWAY.items():
                await set_availability(session, employee, state, source=Source.MANUAL,
                                       set_by="calls bench", until=now + length)
    finally:
        await db.close()
    return company


def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    with open(path, "w") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)


def service_log_summary(log_path: Path) -> dict[str, Any]:
    """Warnings and errors the service logged, counted by message."""
    counts: dict[str, dict[str, int]] = {"warning": {}, "error": {}}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                counts["error"]["traceback"] = counts["error"].get("traceback", 0) + 1
            continue
        level = "error" if record.get("level") in ("error", "critical") else record.get("level")
        if level in counts:
            msg = str(record.get("msg", ""))[:120]
            counts[level][msg] = counts[level].get(msg, 0) + 1
    return {"warnings": sum(counts["warning"].values()), "errors": sum(counts["error"].values()),
            "messages": counts}


async def stored_stories(db_url: str, call_ids: list[str], wait_s: float) -> dict[str, Any]:
    """The call stories the service stored as contacts when each caller hung up."""
    db = open_database(db_url)
    found: dict[str, Any] = {}
    deadline = time.monotonic() + wait_s
    try:
        while True:
            async with db.sessions() as session:
                rows = (await session.execute(
                    m.Contact.__table__.select().where(m.Contact.call_id.in_(call_ids))
                )).mappings().all()
            found = {row["call_id"]: row["details"] for row in rows}
            if len(found) >= len(call_ids) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.25)
    finally:
        await db.close()


# --- callers -----------------------------------------------------------------------------------


@dataclass
class Call:
    plan: cm.CallPlan
    origin_id: str  # the Originate's own leg: runs [bench-caller], where the keys are pressed
    call_id: str  # the leg into vaihde-inbound: the call the service and its story know
    channel: str = ""
    call_channel: str = ""
    presses: list[str] = field(default_factory=list)
    pressed: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Callers:
    """Simulated callers: each listens for the service asking for a key (AGI GET DATA on its
    call) and presses the next one of its plan `reaction` seconds later, as a person would after
    hearing the prompt start.

    Keys go through a pool of AMI sessions (`keypads`): Asterisk runs one session's actions one
    after another, and PlayDTMF holds its session for the tone's length, so through a single
    session 100 callers' keys would queue behind each other."""

    def __init__(self, ami: Ami, keypads: list[Ami], reaction: float) -> None:
        self.ami, self.reaction = ami, reaction
        self.keypads: asyncio.Queue[Ami] = asyncio.Queue()
        for keypad in keypads:
            self.keypads.put_nowait(keypad)
        self.by_origin: dict[str, Call] = {}
        self.by_call: dict[str, Call] = {}
        self.by_action: dict[str, Call] = {}
        self.live: set[str] = set()  # every channel Asterisk has now
        self.idle = asyncio.Event()
        self.idle.set()
        self.queue_hold = 1.0  # seconds a caller waits in the switchboard queue, then hangs up
        self._tasks: set[asyncio.Task[None]] = set()
        ami.listeners.append(self.on_event)

    def on_event(self, e: Mapping[str, Any]) -> None:
        name, uid = e.get("Event"), str(e.get("Uniqueid", ""))
        if name == "Newchannel":
            self.live.add(uid)
            self.idle.clear()
            if uid in self.by_origin:
                self.by_origin[uid].channel = str(e.get("Channel", ""))
            if uid in self.by_call:
                self.by_call[uid].call_channel = str(e.get("Channel", ""))
        elif name == "Hangup":
            self.live.discard(uid)
            if not self.live:
                self.idle.set()
            if uid in self.by_call:
                self.by_call[uid].done.set()
        elif name == "AGIExecStart" and uid in self.by_call:
            call = self.by_call[uid]
            if str(e.get("Command", "")).upper().startswith("GET DATA") and call.presses:
                key = call.presses.pop(0)
                loop = asyncio.get_running_loop()
                loop.call_later(self.reaction, self._spawn, self._press(call, key))
        elif name == "QueueCallerJoin" and uid in self.by_call:
            # A caller in the switchboard queue waits a while, then gives up: the one operator
            # phone takes one call at a time (ringinuse = no).
            call = self.by_call[uid]
            asyncio.get_running_loop().call_later(
                self.queue_hold, self._spawn, self._give_up(call))
        elif name == "OriginateResponse" and e.get("Response") != "Success":
            call = self.by_action.get(str(e.get("ActionID", "")))
            if call is not None:
                call.failures.append(f"originate failed: {e.get('Reason', '')}")
                call.done.set()

    def _spawn(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _press(self, call: Call, key: str) -> None:
        call.pressed.append((time.time(), key))
        keypad = await self.keypads.get()
        try:
            response = await keypad.action("PlayDTMF", Channel=call.channel, Digit=key,
                                           Duration=str(DTMF_MS))
        except (TimeoutError, ConnectionError) as exc:
            call.failures.append(f"PlayDTMF {key}: {exc!r}")
            return
        finally:
            self.keypads.put_nowait(keypad)
        if response.get("Response") != "Success":
            call.failures.append(f"PlayDTMF {key}: {response.get('Message')}")

    async def _give_up(self, call: Call) -> None:
        if call.done.is_set():
            return
        with contextlib.suppress(TimeoutError, ConnectionError):
            await self.ami.action("Hangup", Channel=call.call_channel)

    async def originate(self, phase: str, plan: cm.CallPlan) -> Call:
        base = f"bench.{phase}.{plan.index:04d}"
        # Neither id may be a prefix of another: Asterisk's lookup by uniqueid matches prefixes.
        call = Call(plan, f"{base}.o", f"{base}.c", presses=list(plan.presses))
        self.by_origin[call.origin_id] = call
        self.by_call[call.call_id] = call
        action_id = f"originate-{base}"
        self.by_action[action_id] = call
        response = await self.ami.action(
            "Originate", ActionID=action_id,
            Channel=f"Local/{COMPANY_NUMBER}@vaihde-inbound/n", Context="bench-caller",
            Exten="s", Priority="1", Async="true", Timeout="30000",
            CallerID=f'"Bench Caller {plan.index}" <0401{plan.index:06d}>',
            ChannelId=call.origin_id, OtherChannelId=call.call_id,
        )
        if response.get("Response") != "Success":
            call.failures.append(f"originate: {response.get('Message')}")
            call.done.set()
        return call

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


# --- phases ------------------------------------------------------------------------------------


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def run_baseline(callers: Callers, plans: list[cm.CallPlan], timeout: float) -> list[Call]:
    calls = []
    for plan in plans:
        call = await callers.originate("base", plan)
        calls.append(call)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.done.wait(), timeout)
        if not await callers.wait_idle(10):
            call.failures.append("channels still up 10 s after the call")
        log(f"  baseline call {plan.index + 1}/{len(plans)}: {plan.expect} "
            f"{'/'.join(plan.presses)} → {plan.expect_phone}")
    return calls


async def run_load(
    callers: Callers, plans: list[cm.CallPlan], ramp: float, timeout: float
) -> list[Call]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    calls = []
    interval = ramp / max(1, len(plans) - 1) if len(plans) > 1 else 0.0
    for i, plan in enumerate(plans):
        delay = start + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(await callers.originate("load", plan))
        if (i + 1) % 25 == 0 or i + 1 == len(plans):
            log(f"  {i + 1}/{len(plans)} callers in, {len(callers.live)} channels up")
    deadline = loop.time() + timeout
    for call in calls:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.done.wait(), max(0.1, deadline - loop.time()))
    if not await callers.wait_idle(15):
        log(f"  {len(callers.live)} channels still up after the calls")
    return calls


def analyse(calls: list[Call], events: list[Mapping[str, Any]],
            stories: Mapping[str, Any]) -> dict[str, Any]:
    lines = cm.timelines(events, [c.call_id for c in calls])
    misrouted: list[dict[str, Any]] = []
    silent: list[dict[str, Any]] = []
    to_ring: dict[str, list[float]] = {"employee": [], "delegate": [], "operator": []}
    longest: list[float] = []
    key_lag: list[float] = []
    for call in calls:
        tl = lines[call.call_id]
        problems = call.failures + cm.check_call(call.plan, tl, stories.get(call.call_id))
        if not call.done.is_set():
            problems.append("the call did not end in time")
        if problems:
            misrouted.append({"call": call.call_id, "plan": call.plan.presses,
                              "expected": call.plan.expect_device, "problems": problems})
        gap = cm.longest_silence(tl)
        longest.append(gap)
        if gap > SILENCE_LIMIT_S:
            silent.append({"call": call.call_id, "longest_silence_s": round(gap, 3),
                           "gaps": [(round(a - (tl.answered or a), 3), round(b - a, 3))
                                    for a, b in cm.silence_gaps(tl)]})
        # The driver's own lateness: key decided → Asterisk has the whole tone.
        for (sent, _), (heard, _) in zip(call.pressed, tl.digits, strict=False):
            key_lag.append(max(0.0, heard - sent - DTMF_MS / 1000))
        seconds = cm.digit_to_ringing(tl)
        if seconds is not None:
            to_ring[call.plan.expect].append(seconds)
    employee_phone = to_ring["employee"] + to_ring["delegate"]
    spans = [(tl.created, tl.hangup) for tl in lines.values() if tl.created is not None]
    return {
        "calls": len(calls),
        "misrouted": len(misrouted),
        "calls_with_silence_over_3s": len(silent),
        "digit_to_ringing": cm.summary_ms(employee_phone),
        "digit_to_ringing_by_route": {k: cm.summary_ms(v) for k, v in to_ring.items()},
        "longest_silence": cm.summary_ms(longest),
        "key_lag": cm.summary_ms(key_lag),
        "peak_concurrent_calls": cm.peak_concurrency(spans),
        "routes": {k: sum(1 for c in calls if c.plan.expect == k) for k in to_ring},
        "stories_stored": sum(1 for c in calls if c.call_id in stories),
        "misrouted_calls": misrouted[:20],
        "silent_calls": silent[:20],
    }


def ratio(load: float | None, base: float | None) -> float | None:
    return round(load / base, 2) if load is not None and base else None


def print_table(base: dict[str, Any], load: dict[str, Any], callers: int) -> None:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f} ms"

    rows = [
        ("digit→ringing median", base["digit_to_ringing"]["median_ms"],
         load["digit_to_ringing"]["median_ms"]),
        ("digit→ringing p95", base["digit_to_ringing"]["p95_ms"],
         load["digit_to_ringing"]["p95_ms"]),
        ("longest silence, median call", base["longest_silence"]["median_ms"],
         load["longest_silence"]["median_ms"]),
        ("longest silence, worst call", base["longest_silence"]["max_ms"],
         load["longest_silence"]["max_ms"]),
    ]
    log(f"\n{'':32s}{'1 at a time':>14s}{f'{callers} callers':>14s}{'ratio':>9s}")
    for label, b, lo in rows:
        r = ratio(lo, b)
        log(f"{label:32s}{ms(b):>14s}{ms(lo):>14s}{'-' if r is None else f'{r:.2f}×':>9s}")
    for key, label in (("misrouted", "misrouted calls"),
                       ("calls_with_silence_over_3s", "calls with silence > 3 s")):
        b, lo = f"{base[key]}/{base['calls']}", f"{load[key]}/{load['calls']}"
        log(f"{label:32s}{b:>14s}{lo:>14s}")


# --- main --------------------------------------------------------------------------------------


FULL = {"callers": 100, "ramp": 5.0, "baseline_calls": 24, "hold": 10.0}
QUICK = {"callers": 20, "ramp": 2.0, "baseline_calls": 6, "hold": 3.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a short run: 20 callers over 2 s, 6 baseline calls, phones hold 3 s")
    p.add_argument("--callers", type=int, help="callers in the load phase (100)")
    p.add_argument("--ramp", type=float,
                   help="seconds over which the load phase's callers arrive, evenly (5)")
    p.add_argument("--baseline-calls", type=int,
                   help="calls made one at a time for the baseline (24: everyone in the menus "
                        "once, the same mix of routes as the load phase)")
    p.add_argument("--hold", type=float,
                   help="seconds the phones hold an answered call in the load phase, so that "
                        "every caller is on the line at once (10)")
    p.add_argument("--reaction", type=float, default=0.5,
                   help="seconds from a prompt starting to the caller's key")
    p.add_argument("--keypads", type=int, default=16,
                   help="AMI sessions pressing keys (each is busy for a tone's length)")
    p.add_argument("--ring", type=float, default=0.5, help="seconds a phone rings before answering")
    p.add_argument("--port-base", type=int, default=16500,
                   help="AMI on +38, FastAGI +73, HTTP +80, SIP +60 (tests use 14573-15999)")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--events", type=Path, help="also write every AMI event read (JSON lines)")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


async def run(args: argparse.Namespace) -> int:
    build(log=log)
    base_port = args.port_base
    instance = BenchInstance(
        InstanceSettings(
            name=INSTANCE, ami_port=base_port + 38, sip_port=base_port + 60,
            rtp_start=31000, rtp_end=31099, agi_url=f"agi://127.0.0.1:{base_port + 73}",
            operators=OPERATORS, operator_timeout=20, extra_dialplan=[str(DIALPLAN)],
        ),
        bench_secret=secrets.token_urlsafe(16),
    )
    http_port = base_port + 80
    tmp = Path(tempfile.mkdtemp(prefix="vaihde-calls-bench-"))
    db_url = f"sqlite+aiosqlite:///{tmp}/vaihde.db"
    log_path = tmp / "vaihde.log"
    service: ServiceProcess | None = None
    ami: Ami | None = None
    keypads: list[Ami] = []
    log(f"Asterisk {INSTANCE}: AMI {instance.ami_port}, FastAGI {instance.agi_port}; "
        f"vaihde HTTP {http_port}; work dir {tmp}")
    instance.start(replace=True, tie_to_parent=True)
    try:
        company = await prepare_database(db_url)
        settings_path = tmp / "settings.yaml"
        settings_path.write_text(instance.service_settings(
            database_url=db_url, company_file=str(COMPANY), http_port=http_port,
        ))
        service = ServiceProcess(settings_path, log_path)
        service.start()
        await service.wait_healthy(http_port)
        ami = await Ami.connect(instance.ami_port, "bench", instance.bench_secret)
        keypads = [await Ami.connect(instance.ami_port, "bench", instance.bench_secret,
                                     events=False) for _ in range(args.keypads)]
        callers = Callers(ami, keypads, args.reaction)
        states = {emp: str(state) for emp, (state, _) in AWAY.items()}
        plan_args = {"operators": OPERATORS, "phones_context": PHONES,
                     "operator_queue": instance.settings.queue}
        base_plans = cm.plan_calls(company, states, args.baseline_calls, **plan_args)
        load_plans = cm.plan_calls(company, states, args.callers, **plan_args)

        async def globals_(hold: float) -> None:
            for name, value in (("BENCH_PHONE_RING", args.ring), ("BENCH_PHONE_HOLD", hold),
                                ("BENCH_CALLER_HOLD", 120)):
                await ami.action("Setvar", Variable=name, Value=str(value))

        log(f"baseline: {len(base_plans)} calls, one at a time")
        await globals_(0.2)
        callers.queue_hold = 1.0
        mark = len(ami.events)
        base_calls = await run_baseline(callers, base_plans, timeout=60)
        base_events = ami.events[mark:]

        log(f"load: {len(load_plans)} callers arriving over {args.ramp:g} s, "
            f"phones hold {args.hold:g} s")
        await globals_(args.hold)
        callers.queue_hold = args.hold
        mark = len(ami.events)
        cpu0 = (proc_cpu_s(instance.pid), proc_cpu_s(service.pid), machine_busy_s(),
                time.monotonic(), time.process_time())
        load_calls = await run_load(callers, load_plans, args.ramp,
                                    timeout=args.ramp + args.hold + 60)
        cpu1 = (proc_cpu_s(instance.pid), proc_cpu_s(service.pid), machine_busy_s(),
                time.monotonic(), time.process_time())
        load_events = ami.events[mark:]

        all_ids = [c.call_id for c in base_calls + load_calls]
        stories = await stored_stories(db_url, all_ids, wait_s=10)
        if args.events is not None:
            write_events(args.events, ami.events)
        base = analyse(base_calls, base_events, stories)
        load = analyse(load_calls, load_events, stories)
    finally:
        for session in keypads:
            await session.close()
        if ami is not None:
            await ami.close()
        if service is not None:
            service.stop()
        instance.stop()

    wall = cpu1[3] - cpu0[3]
    asterisk_cpu, service_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    machine_cpu, bench_cpu = cpu1[2] - cpu0[2], cpu1[4] - cpu0[4]
    service_log = service_log_summary(log_path)
    result: dict[str, Any] = {
        "callers": args.callers,
        "ramp_s": args.ramp,
        "arrival_rate_per_s": round(args.callers / args.ramp, 1) if args.ramp else None,
        "peak_concurrent_calls": load["peak_concurrent_calls"],
        "misrouted": load["misrouted"] + base["misrouted"],
        "calls_with_silence_over_3s": (load["calls_with_silence_over_3s"]
                                       + base["calls_with_silence_over_3s"]),
        "digit_to_ringing_median_ms": load["digit_to_ringing"]["median_ms"],
        "digit_to_ringing_p95_ms": load["digit_to_ringing"]["p95_ms"],
        "baseline_digit_to_ringing_median_ms": base["digit_to_ringing"]["median_ms"],
        "baseline_digit_to_ringing_p95_ms": base["digit_to_ringing"]["p95_ms"],
        "ratio_median": ratio(load["digit_to_ringing"]["median_ms"],
                              base["digit_to_ringing"]["median_ms"]),
        "ratio_p95": ratio(load["digit_to_ringing"]["p95_ms"],
                           base["digit_to_ringing"]["p95_ms"]),
        "longest_silence_ms": load["longest_silence"]["max_ms"],
        "baseline_longest_silence_ms": base["longest_silence"]["max_ms"],
        "driver_key_lag_max_ms": load["key_lag"]["max_ms"],
        "phases": {"baseline": base, "load": load},
        "load_cpu": {  # first arrival to the last channel gone
            "wall_s": round(wall, 2),
            "asterisk_cores": round(asterisk_cpu / wall, 2),
            "service_cores": round(service_cpu / wall, 2),
            "bench_driver_cores": round(bench_cpu / wall, 2),
            "machine_busy_cores": round(machine_cpu / wall, 2),
            "other_cpu_load_cores": round(
                max(0.0, machine_cpu - asterisk_cpu - service_cpu - bench_cpu) / wall, 2
            ),
        },
        "service_log": service_log,
        "presence": {emp: str(state) for emp, (state, _) in AWAY.items()},
        "machine_cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    result["targets"] = {
        "misrouted == 0": result["misrouted"] == 0,
        "calls with silence > 3 s == 0": result["calls_with_silence_over_3s"] == 0,
    }
    print_table(base, load, args.callers)
    log(f"{args.callers} callers over {args.ramp:g} s: peak {load['peak_concurrent_calls']} "
        f"calls at once; Asterisk {result['load_cpu']['asterisk_cores']} cores, vaihde "
        f"{result['load_cpu']['service_cores']} cores, this driver "
        f"{result['load_cpu']['bench_driver_cores']}, anything else "
        f"{result['load_cpu']['other_cpu_load_cores']} (of {os.cpu_count()})")
    for phase_name, phase in (("1 at a time", base), (f"{args.callers} callers", load)):
        routes = ", ".join(
            f"{route} {fig['median_ms']}/{fig['p95_ms']} ms (n={fig['n']})"
            for route, fig in phase["digit_to_ringing_by_route"].items() if fig["n"]
        )
        log(f"digit→ringing median/p95 by route, {phase_name}: {routes}")
    lag = load["key_lag"]
    log(f"the driver's key lag (key decided → Asterisk heard it), {args.callers} callers: "
        f"median {lag['median_ms']} ms, max {lag['max_ms']} ms")
    log(f"service log: {service_log['warnings']} warnings, {service_log['errors']} errors")
    for phase in (base, load):
        for bad in phase["misrouted_calls"][:5] + phase["silent_calls"][:5]:
            log(f"  ! {bad}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    failed = not all(result["targets"].values()) or service_log["errors"] > 0
    if not failed:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"kept {tmp} (service log, database) for a look")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("calls bench: needs root to run the sandbox Asterisk", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
