"""Benchmark: presence-aware routing through the real sandbox Asterisk and `vaihde serve` —
callers choosing teams (ring all, in order, an Asterisk queue, one nobody can answer) and people
while about 30 % of the sought members are away and availability changes during the run, calls
forwarded from employees' phones over a SIPp trunk, phones that cannot ring; writes
bench/results/presence_routing.json. See bench/README.md ("presence_routing").

Run: bench/run presence_routing   (or .venv/bin/python bench/presence_routing_bench.py --help);
needs root, as the integration tests do, to run the sandbox Asterisk.
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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

import calls_measure as cm  # bench/ is on sys.path: it is this script's directory
import presence_measure as pm
from calls_bench import (
    Ami,
    BenchInstance,
    Call,
    Callers,
    log,
    machine_busy_s,
    proc_cpu_s,
    service_log_summary,
    start_service,
    stop_process,
    wait_healthy,
    write_events,
)
from vaihde.auth.store import add_user, create_token
from vaihde.company import CompanyConfig, load_company
from vaihde.company.apply import apply_company
from vaihde.db import models as m
from vaihde.db import open_database
from vaihde.db.migrate import upgrade_async
from vaihde.presence.model import Source, State
from vaihde.presence.store import set_availability
from vaihde.sandbox import InstanceSettings, SandboxError, build

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "presence_routing.json"
DIALPLAN = HERE / "calls.conf"  # [bench-caller] and [bench-phones], shared with the calls bench
COMPANY = HERE / "presence-company.yaml"
SIPP = ROOT / "tests" / "sipp"
COMPANY_NUMBER = "0201234567"
OPERATORS = "Local/operator@bench-phones"
INSTANCE = "bench-presence"
BILLING_QUEUE = "bench-billing-q"
GRACE_S = 1.0  # a change reaches the service within this (the CLI's path: its 0.1 s poll)

# Away for the whole run (about a third of each team and of the people menu), set before the
# service starts. Night service's only member is away: nobody there can answer.
AWAY: dict[str, State] = {
    "s2": State.VACATION, "s5": State.MEETING, "t1": State.VACATION, "t4": State.OFF_WORK,
    "b1": State.VACATION, "b3": State.SICK, "p2": State.VACATION, "n1": State.OFF_WORK,
}  # fmt: skip
# Whose availability flips during the run, between available and a meeting: one in each team
# and in the people menu; three in the queue team (their pauses are timed).
CHURN = ("b2", "s3", "b4", "t2", "b6", "p3")


# --- the service's database --------------------------------------------------------------------


async def prepare_database(url: str) -> tuple[CompanyConfig, str]:
    """The company applied, the absences set, and an operator's API token (the web's path for
    availability changes during the run)."""
    company = load_company(COMPANY)
    db = open_database(url)
    try:
        await upgrade_async(db.engine)
        await apply_company(db.sessions, company, applied_by="presence bench",
                            source_name=str(COMPANY))
        now = datetime.now(UTC)
        async with db.sessions() as session, session.begin():
            for employee, state in AWAY.items():
                await set_availability(session, employee, state, source=Source.MANUAL,
                                       set_by="presence bench", until=now + timedelta(days=2))
            await add_user(session, "bench", role="operator")
            token, _ = await create_token(session, "bench", label="presence bench")
    finally:
        await db.close()
    return company, token


class Changer:
    """Changes availability as people do: through the web API (the service writes and acts at
    once) and as the CLI does (another process writes the database; the service polls). Every
    change is recorded for the checks: when it started and when it was surely stored."""

    def __init__(self, db_url: str, api: str, token: str, presence: pm.Presence) -> None:
        self.db = open_database(db_url)
        self.api, self.token, self.presence = api, token, presence
        self.http: aiohttp.ClientSession | None = None
        self.queue_changes: list[tuple[float, str, bool]] = []  # (started, interface, paused)
        self.queue_change_via: list[str] = []  # api | cli, per queue change
        self.count = {"api": 0, "cli": 0}
        self.failures: list[str] = []
        self.interfaces: dict[str, list[str]] = {}  # employee → their queue interfaces

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        await self.db.close()

    async def set(self, employee: str, state: State, via: str) -> None:
        until = datetime.now(UTC) + timedelta(hours=1)
        started = time.time()
        try:
            if via == "api":
                if self.http is None:
                    self.http = aiohttp.ClientSession()
                body: dict[str, Any] = {"state": str(state)}
                if state is not State.AVAILABLE:
                    body["until"] = until.isoformat()
                async with self.http.put(
                    f"{self.api}/employees/{employee}/availability", json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                ) as reply:
                    if reply.status != 200:
                        self.failures.append(f"PUT {employee} {state}: {reply.status} "
                                             f"{await reply.text()}")
                        return
            else:
                async with self.db.sessions() as session, session.begin():
                    await set_availability(
                        session, employee, state, source=Source.MANUAL, set_by="bench cli",
                        until=None if state is State.AVAILABLE else until)
        except Exception as exc:  # counted: a change that did not happen
            self.failures.append(f"{via} {employee} {state}: {exc!r}")
            return
        done = time.time()
        reachable = state is State.AVAILABLE
        self.presence.set(employee, started if via == "api" else done, done, reachable)
        self.count[via] += 1
        # From the moment the change exists: the request for the API, the commit for the CLI.
        at = started if via == "api" else done
        for interface in self.interfaces.get(employee, ()):
            self.queue_changes.append((at, interface, not reachable))
            self.queue_change_via.append(via)

    async def churn(self, stop: asyncio.Event, interval: float,
                    members: tuple[str, ...] = CHURN) -> None:
        """Flip the churn members one after another until `stop`; each member's changes
        alternate between the two paths."""
        away: dict[str, bool] = dict.fromkeys(members, False)
        for n, employee in enumerate(itertools.cycle(members)):
            if stop.is_set():
                return
            away[employee] = not away[employee]
            via = ("api", "cli")[(n // len(members) + n) % 2]
            await self.set(employee, State.MEETING if away[employee] else State.AVAILABLE, via)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


# --- forwarded calls by SIPp -------------------------------------------------------------------


def sipp_forwarded(
    instance: BenchInstance, calls: list[pm.Forwarded], header: str, port: int, rate: float,
    hold_ms: int, work: Path,
) -> subprocess.Popen[bytes] | None:
    """SIPp as the carrier's trunk: these calls, forwarded on the way, to the company number."""
    rows = [c for c in calls if c.header == header]
    if not rows:
        return None
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SandboxError("sipp is not installed: apt-get install sip-tester")
    scenario = "forwarded.xml" if header == "diversion" else "forwarded-history-info.xml"
    data = work / f"{header}.csv"
    data.write_text("SEQUENTIAL\n" + "".join(f"{c.caller};{c.number};{c.reason}\n"
                                              for c in rows))
    return subprocess.Popen(
        [sipp, f"127.0.0.1:{instance.sip_port}", "-sf", str(SIPP / scenario), "-s",
         COMPANY_NUMBER, "-inf", str(data), "-m", str(len(rows)), "-r", str(rate), "-d",
         str(hold_ms), "-i", "127.0.0.1", "-p", str(port), "-mp", str(port + 2), "-nostdin",
         "-timeout", "120s", "-trace_err"],
        cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


async def stored_by_caller(db_url: str, numbers: list[str], wait_s: float) -> dict[str, Any]:
    """The call stories the service stored when each forwarded caller hung up, by number."""
    db = open_database(db_url)
    deadline = time.monotonic() + wait_s
    found: dict[str, Any] = {}
    try:
        while True:
            async with db.sessions() as session:
                rows = (await session.execute(
                    m.Contact.__table__.select().where(m.Contact.caller_number.in_(numbers))
                )).mappings().all()
            found = {row["caller_number"]: row["details"] for row in rows}
            if len(found) >= len(numbers) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.25)
    finally:
        await db.close()


# --- phases ------------------------------------------------------------------------------------


async def call_all(callers: Callers, phase: str, plans: list[pm.Plan], ramp: float,
                   timeout: float, one_at_a_time: bool = False) -> list[Call]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    calls: list[Call] = []
    interval = ramp / max(1, len(plans) - 1) if len(plans) > 1 else 0.0
    for i, plan in enumerate(plans):
        if one_at_a_time:
            call = await callers.originate(phase, plan)  # type: ignore[arg-type]
            calls.append(call)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.done.wait(), timeout)
            if not await callers.wait_idle(10):
                call.failures.append("channels still up 10 s after the call")
            continue
        delay = start + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(await callers.originate(phase, plan))  # type: ignore[arg-type]
        if (i + 1) % 30 == 0 or i + 1 == len(plans):
            log(f"  {i + 1}/{len(plans)} callers in, {len(callers.live)} channels up")
    if not one_at_a_time:
        deadline = loop.time() + timeout
        for call in calls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.done.wait(), max(0.1, deadline - loop.time()))
    return calls


def analyse(calls: list[Call], events: list[dict[str, Any]], company: CompanyConfig,
            presence: pm.Presence) -> dict[str, Any]:
    lines = cm.timelines(events, [c.call_id for c in calls])
    busy = pm.Busy(events)
    misrouted, to_ring = [], []
    sought = away = 0
    for call in calls:
        plan: pm.Plan = call.plan  # type: ignore[assignment]
        tl = lines[call.call_id]
        problems = list(call.failures)
        problems += pm.check_call(plan, tl, company, presence, busy)
        if not call.done.is_set():
            problems.append("the call did not end in time")
        if problems:
            misrouted.append({"call": call.call_id, "target": plan.target, "problems": problems})
        if tl.digits:
            at = tl.digits[min(len(plan.keys), len(tl.digits)) - 1][0]
            members = (company.teams[plan.target].members if plan.kind == "team"
                       else (plan.target,))
            sought += len(members)
            away += sum(1 for mb in members if presence.possible(mb, at) == {False})
        seconds = cm.digit_to_ringing(tl)
        if seconds is not None and tl.dials:
            to_ring.append(seconds)
    spans = [(tl.created, tl.hangup) for tl in lines.values() if tl.created is not None]
    decided = {}
    for call in calls:
        tl = lines[call.call_id]
        keys = len(call.plan.keys)  # type: ignore[attr-defined]
        if len(tl.digits) >= keys:
            decided[call.call_id] = pm.decided_at(tl, tl.digits[keys - 1][0])
    return {
        "_decided": decided,
        "calls": len(calls),
        "misrouted": len(misrouted),
        "sought_members_absent_share": round(away / sought, 2) if sought else None,
        "digit_to_ringing": cm.summary_ms(to_ring),
        "peak_concurrent_calls": cm.peak_concurrency(spans),
        "kinds": {k: sum(1 for c in calls if c.plan.target == k) for k in  # type: ignore[attr-defined]
                  sorted({c.plan.target for c in calls})},  # type: ignore[attr-defined]
        "misrouted_calls": misrouted[:20],
    }


def latency(values: list[float]) -> dict[str, float | int | None]:
    out = cm.summary_ms(values)
    out["p99_ms"] = round(cm.percentile(values, 0.99) * 1000, 1) if values else None
    return out


# --- main --------------------------------------------------------------------------------------


FULL = {"callers": 120, "ramp": 6.0, "baseline_calls": 10, "hold": 10.0, "forwarded": 24,
        "idle_changes": 20}
QUICK = {"callers": 30, "ramp": 3.0, "baseline_calls": 10, "hold": 4.0, "forwarded": 6,
         "idle_changes": 8}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a short run (30 callers, 6 forwarded calls): the size targets are "
                        "then not judged")
    p.add_argument("--callers", type=int, help="callers in the load phase (120)")
    p.add_argument("--ramp", type=float, help="seconds over which they arrive, evenly (6)")
    p.add_argument("--baseline-calls", type=int,
                   help="calls one at a time, before the load (10: every team and person once)")
    p.add_argument("--hold", type=float,
                   help="seconds the phones hold an answered call in the load phase (10)")
    p.add_argument("--forwarded", type=int,
                   help="calls forwarded from employees' phones during the load (24)")
    p.add_argument("--idle-changes", type=int,
                   help="availability changes of queue members with no calls (the baseline)")
    p.add_argument("--churn-interval", type=float, default=0.5,
                   help="seconds between availability changes during the load")
    p.add_argument("--reaction", type=float, default=0.5,
                   help="seconds from a prompt starting to the caller's key")
    p.add_argument("--keypads", type=int, default=16, help="AMI sessions pressing keys")
    p.add_argument("--ring", type=float, default=0.5, help="seconds a phone rings before answering")
    p.add_argument("--port-base", type=int, default=16700,
                   help="AMI on +38, FastAGI +73, HTTP +80, SIP +60, SIPp trunks +90/+98")
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
    base = args.port_base
    trunks = (base + 90, base + 98)  # each SIPp also takes the 4 ports after its media port
    company_conf = load_company(COMPANY)
    off = sorted({d.address[len("PJSIP/"):] for e in company_conf.employees.values()
                  for d in e.devices if d.address.startswith(pm.OFF_PREFIX)})
    instance = BenchInstance(
        InstanceSettings(
            name=INSTANCE, ami_port=base + 38, sip_port=base + 60, rtp_start=32000,
            rtp_end=32199, agi_url=f"agi://127.0.0.1:{base + 73}", operators=OPERATORS,
            operator_timeout=20, extra_dialplan=[str(DIALPLAN)], team_queues=[BILLING_QUEUE],
            endpoints=[
                # Softphones that never register: PJSIP would still "ring" them.
                *({"name": name, "password": secrets.token_urlsafe(12)} for name in off),
                {"name": "trunk-diversion", "contact": f"sip:trunk@127.0.0.1:{trunks[0]}"},
                {"name": "trunk-history", "contact": f"sip:trunk@127.0.0.1:{trunks[1]}"},
            ],
        ),
        bench_secret=secrets.token_urlsafe(16),
    )
    http_port = base + 80
    tmp = Path(tempfile.mkdtemp(prefix="vaihde-presence-bench-"))
    db_url = f"sqlite+aiosqlite:///{tmp}/vaihde.db"
    log_path = tmp / "vaihde.log"
    service: subprocess.Popen[bytes] | None = None
    ami: Ami | None = None
    keypads: list[Ami] = []
    changer: Changer | None = None
    sipps: list[subprocess.Popen[bytes]] = []
    presence = pm.Presence(grace=GRACE_S)
    log(f"Asterisk {INSTANCE}: AMI {instance.ami_port}, FastAGI {instance.agi_port}; "
        f"vaihde HTTP {http_port}; work dir {tmp}")
    instance.start(replace=True, tie_to_parent=True)
    try:
        company, token = await prepare_database(db_url)
        for employee in AWAY:
            presence.set(employee, 0.0, 0.0, False)
        settings_path = tmp / "settings.yaml"
        settings_path.write_text(instance.service_settings(
            database_url=db_url, company_file=str(COMPANY), http_port=http_port,
        ))
        service = start_service(settings_path, log_path)
        await wait_healthy(service, http_port, log_path)
        ami = await Ami.connect(instance.ami_port, "bench", instance.bench_secret)
        keypads = [await Ami.connect(instance.ami_port, "bench", instance.bench_secret,
                                     events=False) for _ in range(args.keypads)]
        callers = Callers(ami, keypads, args.reaction)
        changer = Changer(db_url, f"http://127.0.0.1:{http_port}/api/v1", token, presence)
        billing = company.teams["billing"]
        changer.interfaces = {
            mb: [d.address for d in company.employees[mb].devices if d.kind != "mobile"]
            for mb in billing.members}
        await wait_queue_members(ami, billing, len(billing.members) + 1)

        async def globals_(hold: float) -> None:
            for name, value in (("BENCH_PHONE_RING", args.ring), ("BENCH_PHONE_HOLD", hold),
                                ("BENCH_CALLER_HOLD", 120)):
                await ami.action("Setvar", Variable=name, Value=str(value))

        # Baseline: changes with no calls at all, then calls one at a time.
        log(f"baseline: {args.idle_changes} availability changes of queue members, no calls")
        mark = len(ami.events)
        for i in range(args.idle_changes):
            employee = ("b2", "b4")[i % 2]
            state = State.MEETING if i % 4 < 2 else State.AVAILABLE
            await changer.set(employee, state, ("api", "cli")[i // 2 % 2])
            await asyncio.sleep(0.6)
        await asyncio.sleep(1.5)
        idle_changes = list(changer.queue_changes)
        idle_lat, idle_missing = pm.pause_latencies(idle_changes, ami.events[mark:])
        base_plans = pm.plan_calls(company, args.baseline_calls)
        log(f"baseline: {len(base_plans)} calls, one at a time")
        await globals_(0.2)
        callers.queue_hold = 2.0
        mark = len(ami.events)
        base_calls = await call_all(callers, "base", base_plans, 0, 60, one_at_a_time=True)
        base_events = ami.events[mark:]

        # Load: many callers at once while availability changes and forwarded calls arrive.
        load_plans = pm.plan_calls(company, args.callers)
        forwarded = pm.forwarded_plan(company, args.forwarded)
        log(f"load: {len(load_plans)} callers over {args.ramp:g} s, phones hold {args.hold:g} s;"
            f" availability changes every {args.churn_interval:g} s; {len(forwarded)} forwarded "
            f"calls by SIPp")
        await globals_(args.hold)
        callers.queue_hold = args.hold
        mark = len(ami.events)
        changes_mark = len(changer.queue_changes)
        changer.count = {"api": 0, "cli": 0}
        stop = asyncio.Event()
        churn = asyncio.create_task(changer.churn(stop, args.churn_interval))
        rate = max(1.0, len(forwarded) / max(args.ramp, 1.0))
        hold_ms = int((args.hold + 25) * 1000)  # past the offers, into the switchboard queue
        for header, port in (("diversion", trunks[0]), ("history-info", trunks[1])):
            proc = sipp_forwarded(instance, forwarded, header, port, rate / 2, hold_ms, tmp)
            if proc is not None:
                sipps.append(proc)
        cpu0 = (proc_cpu_s(instance.pid), proc_cpu_s(service.pid), machine_busy_s(),
                time.monotonic())
        load_calls = await call_all(callers, "load", load_plans, args.ramp,
                                    timeout=args.ramp + args.hold + 60)
        for proc in sipps:  # availability keeps changing until the forwarded calls are done
            await asyncio.to_thread(proc.wait, 150)
        stop.set()
        await churn
        if not await callers.wait_idle(20):
            log(f"  {len(callers.live)} channels still up after the calls")
        cpu1 = (proc_cpu_s(instance.pid), proc_cpu_s(service.pid), machine_busy_s(),
                time.monotonic())
        await asyncio.sleep(1.0)  # the last pauses
        load_events = ami.events[mark:]
        load_lat, load_missing = pm.pause_latencies(changer.queue_changes[changes_mark:],
                                                    load_events)
        by_path = {
            via: pm.pause_latencies(
                [c for c, v in zip(changer.queue_changes[changes_mark:],
                                   changer.queue_change_via[changes_mark:], strict=True)
                 if v == via], load_events)[0]
            for via in ("api", "cli")}
        stories = await stored_by_caller(db_url, [f.caller for f in forwarded], wait_s=15)
        if args.events is not None:
            write_events(args.events, ami.events)
        base_result = analyse(base_calls, base_events, company, presence)
        load_result = analyse(load_calls, load_events, company, presence)
        everything = ami.events
        decided = {**base_result.pop("_decided"), **load_result.pop("_decided")}
        absent = pm.absent_rung(everything, presence, decided)
        unreachable = pm.unreachable_rung(everything)
        forwarded_problems = {
            f.caller: problems for f in forwarded
            if (problems := pm.check_forwarded(f, stories.get(f.caller), load_events, company))
        }
        churn_counts = dict(changer.count)
        change_failures = list(changer.failures)
    finally:
        for proc in sipps:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if changer is not None:
            await changer.close()
        for session in keypads:
            await session.close()
        if ami is not None:
            await ami.close()
        if service is not None:
            stop_process(service)
        instance.stop()

    wall = cpu1[3] - cpu0[3]
    service_log = service_log_summary(log_path)
    recognised = len(forwarded) - len(forwarded_problems)
    result: dict[str, Any] = {
        "calls": load_result["calls"],
        "peak_concurrent_calls": load_result["peak_concurrent_calls"],
        "sought_members_absent_share": load_result["sought_members_absent_share"],
        "availability_changes_during_load": churn_counts,
        "absent_rung": len(absent),
        "unreachable_rung": len(unreachable),
        "misrouted": load_result["misrouted"] + base_result["misrouted"],
        "queue_pause_p50_ms": latency(load_lat)["median_ms"],
        "queue_pause_p99_ms": latency(load_lat)["p99_ms"],
        "baseline_queue_pause_p50_ms": latency(idle_lat)["median_ms"],
        "baseline_queue_pause_p99_ms": latency(idle_lat)["p99_ms"],
        "queue_pause": {"load": latency(load_lat), "idle": latency(idle_lat),
                        "load_by_path": {k: latency(v) for k, v in by_path.items()},
                        "missing": load_missing + idle_missing},
        "forwarded_calls": len(forwarded),
        "forwarded_recognised_ratio": round(recognised / len(forwarded), 3) if forwarded else None,
        "digit_to_ringing_median_ms": load_result["digit_to_ringing"]["median_ms"],
        "digit_to_ringing_p95_ms": load_result["digit_to_ringing"]["p95_ms"],
        "baseline_digit_to_ringing_median_ms": base_result["digit_to_ringing"]["median_ms"],
        "baseline_digit_to_ringing_p95_ms": base_result["digit_to_ringing"]["p95_ms"],
        "phases": {"baseline": base_result, "load": load_result},
        "absent_rung_events": absent[:20],
        "unreachable_rung_events": unreachable[:20],
        "forwarded_problems": dict(list(forwarded_problems.items())[:20]),
        "availability_change_failures": change_failures[:20],
        # What the benchmark set, per employee: (started, surely stored, can take calls).
        "availability_set": {k: [(round(a, 3), round(b, 3), c) for a, b, c in v]
                             for k, v in presence.changes.items()},
        "load_cpu": {
            "wall_s": round(wall, 2),
            "asterisk_cores": round((cpu1[0] - cpu0[0]) / wall, 2),
            "service_cores": round((cpu1[1] - cpu0[1]) / wall, 2),
            "machine_busy_cores": round((cpu1[2] - cpu0[2]) / wall, 2),
        },
        "service_log": service_log,
        "away_all_run": {k: str(v) for k, v in AWAY.items()},
        "changing": list(CHURN),
        "grace_s": GRACE_S,
        "machine_cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    targets = {
        "absent_rung == 0": result["absent_rung"] == 0,
        "unreachable_rung == 0": result["unreachable_rung"] == 0,
        "misrouted == 0": result["misrouted"] == 0,
        "queue_pause_p99_ms <= 1000": (result["queue_pause_p99_ms"] or 1e9) <= 1000
        and not result["queue_pause"]["missing"],
        "forwarded_recognised_ratio == 1.0": result["forwarded_recognised_ratio"] == 1.0,
        "no failed availability change": not change_failures,
    }
    if not args.quick:
        targets["calls >= 100 (peak concurrent >= 100)"] = (
            result["calls"] >= 100 and result["peak_concurrent_calls"] >= 100)
        targets["forwarded_calls >= 20"] = result["forwarded_calls"] >= 20
    result["targets"] = targets
    show(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    failed = not all(targets.values()) or service_log["errors"] > 0
    if not failed:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"kept {tmp} (service log, database, SIPp errors) for a look")
    return 1 if failed else 0


async def wait_queue_members(ami: Ami, team: Any, want: int, timeout: float = 20) -> None:
    """The service has filled the team's queue (it does so when it connects to AMI)."""
    deadline = time.monotonic() + timeout
    while True:
        before = len(ami.events)
        await ami.action("QueueStatus", Queue=team.queue)
        await asyncio.sleep(0.3)
        members = [e for e in ami.events[before:] if e.get("Event") == "QueueMember"]
        if len(members) >= want:
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"the service did not fill {team.queue}: {len(members)} members")
        await asyncio.sleep(0.5)


def show(result: dict[str, Any]) -> None:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f} ms"

    log(f"\n{'':40s}{'baseline':>14s}{'load':>14s}")
    rows: list[tuple[str, Any, Any]] = [
        ("presence change → QueueMemberPause p50", result["baseline_queue_pause_p50_ms"],
         result["queue_pause_p50_ms"]),
        ("presence change → QueueMemberPause p99", result["baseline_queue_pause_p99_ms"],
         result["queue_pause_p99_ms"]),
        ("digit → ringing median", result["baseline_digit_to_ringing_median_ms"],
         result["digit_to_ringing_median_ms"]),
        ("digit → ringing p95", result["baseline_digit_to_ringing_p95_ms"],
         result["digit_to_ringing_p95_ms"]),
    ]
    for label, b, lo in rows:
        log(f"{label:40s}{ms(b):>14s}{ms(lo):>14s}")
    log(f"calls {result['calls']} (peak {result['peak_concurrent_calls']} at once), sought "
        f"members away {result['sought_members_absent_share']}, availability changes "
        f"{result['availability_changes_during_load']}")
    log(f"absent_rung {result['absent_rung']}, unreachable_rung {result['unreachable_rung']}, "
        f"misrouted {result['misrouted']}, forwarded {result['forwarded_calls']} recognised "
        f"{result['forwarded_recognised_ratio']}")
    for name, ok in result["targets"].items():
        log(f"  {'ok  ' if ok else 'FAIL'} {name}")
    for key in ("absent_rung_events", "unreachable_rung_events", "forwarded_problems",
                "availability_change_failures"):
        if result[key]:
            log(f"  ! {key}: {result[key]}")
    for phase in result["phases"].values():
        for bad in phase["misrouted_calls"][:5]:
            log(f"  ! {bad}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("presence_routing bench: needs root to run the sandbox Asterisk", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
