"""Many companies in one service (issue 12): routing decisions at 500 calls in progress, one
company's change applied and visible to its next call while the other companies' calls go on,
and the console's directory search over HTTP, with 200 companies and 10,000 employees; the same
figures for one company of the same total size as the baseline, measured in the same run.

* Server: `vaihde serve` (the real service: FastAGI, HTTP, the live companies, the directory
  index, presence) in a process of its own, on a SQLite file filled before it starts by
  `apply_company` (the same code `vaihde config apply` runs). Its AMI points at a closed port
  (no Asterisk: every phone's state unknown, so rung) and the guard is off.
* Calls: this process plays Asterisk's side of FastAGI (`agi://…/inbound?did=NUMBER`), each
  call to a random company's number: greeting played, caller presses 1, the route set. The
  greeting and prompt are answered as if they played 1.5 s each, and arrivals are paced so that
  500 calls are in progress. A call's **decision time** is connect → close minus that media
  time: how long the caller waited on vaihde. A call is right only if it ends with
  `VAIHDE_ROUTE=dial` and the device of the employee its company's menu option 1 names now.
* Apply: while those calls go on, `--applies` times one company's file with option 1 moved to
  another of its employees is POSTed to /api/v1/config/apply?company=ID (an admin's token);
  from the POST until a new call to that company is routed to the new employee is
  `apply_ms`. `disturbed_calls` counts calls to the other companies during the applies that
  were wrong, failed, or waited on vaihde longer than 100 ms.
* Search: GET /api/v1/directory/search?q=NAME&company=ID (an operator's token), one at a time,
  names of the company's own people: `search_p99_ms`.
* cross_company_leaks: the authorisation walk of tests/authwalk.py (every API route and page
  with users of two companies), with the routes, pages and requests it walked.

Writes bench/results/tenants.json. Run: .venv/bin/python bench/tenants_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tenants.json"
TARGETS = {"decision_p99_ms": 10.0, "apply_p99_ms": 1000.0, "search_p99_ms": 20.0}
MEDIA_S = float(os.environ.get("BENCH_MEDIA_S", "3.0"))  # greeting + prompt, as they would play
SLOW_MS = 100.0  # a call that waited on vaihde longer than this during an apply is disturbed
FIRST = ("Aino", "Eero", "Helmi", "Ilkka", "Johanna", "Kalle", "Leena", "Mikko", "Noora",
         "Oskari", "Päivi", "Riikka", "Sami", "Tiina", "Ulla", "Ville", "Åsa", "Örjan")
LAST = ("Virtanen", "Mäkinen", "Nieminen", "Korhonen", "Hämäläinen", "Laine", "Heikkinen",
        "Koskinen", "Järvinen", "Lehtonen", "Saarinen", "Salminen", "Lindqvist", "Öhman")


def company_yaml(cid: str, number: str, people: int, target: int, first_ext: int) -> str:
    lines = [
        f'company: {{id: {cid}, name: "{cid.upper()} Oy", language: fi, languages: [fi]}}',
        f'numbers: {{"{number}": {{label: Vaihde, menu: main}}}}',
        "hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}",
        "menus:",
        "  main:",
        "    greeting: {fi: Tervetuloa, sound: hello-world}",
        "    prompt: {fi: Valitse, sound: vm-enter-num-to-call}",
        f"    options: {{1: {{employee: {cid}-{target}}}}}",
        f"teams: {{{cid}-ops: {{name: Vaihde, kind: operators, members: [{cid}-0]}}}}",
        "employees:",
    ]
    for j in range(people):
        name = f"{FIRST[(j + len(cid)) % len(FIRST)]} {LAST[(j * 7 + first_ext) % len(LAST)]}"
        lines.append(f'  {cid}-{j}: {{name: "{name} {j}", extension: "{first_ext + j}", '
                     f"devices: [desk: PJSIP/{cid}-{j}]}}")
    return "\n".join(lines) + "\n"


class Tenant:
    def __init__(self, cid: str, number: str, people: int, first_ext: int) -> None:
        self.cid, self.number, self.people, self.first_ext = cid, number, people, first_ext
        self.target = 0

    def yaml(self) -> str:
        return company_yaml(self.cid, self.number, self.people, self.target, self.first_ext)

    @property
    def dial(self) -> str:
        return f"PJSIP/{self.cid}-{self.target}"


def tenants_of(companies: int, employees: int, prefix: str) -> list[Tenant]:
    people = employees // companies
    return [Tenant(f"{prefix}{i:03d}", f"0209{i:06d}", people, 10_000 + i * people)
            for i in range(companies)]


async def fill(url: str, tenants: list[Tenant]) -> float:
    """Every company applied as `vaihde config apply` does; plus an admin and an operator."""
    from vaihde.auth.store import add_user, create_token
    from vaihde.company.apply import apply_company
    from vaihde.company.load import parse_company
    from vaihde.db import open_database
    from vaihde.db.migrate import upgrade_async

    db = open_database(url)
    start = time.perf_counter()
    try:
        await upgrade_async(db.engine)
        for t in tenants:
            await apply_company(db.sessions, parse_company(t.yaml(), f"{t.cid}.yaml"),
                                applied_by="bench", source_name=f"{t.cid}.yaml")
        tokens = {}
        async with db.sessions.begin() as s:
            for name, role in (("root", "admin"), ("olli", "operator")):
                await add_user(s, name, role=role)
                tokens[name], _ = await create_token(s, name, label="bench")
    finally:
        await db.close()
    os.environ[f"BENCH_TOKENS_{id(tenants)}"] = json.dumps(tokens)
    return time.perf_counter() - start


def pin_apart(server_pid: int) -> dict[str, Any]:
    """The service on the first core this process may use, the generator (this process) on
    the second; nothing pinned with fewer than two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return {"pinned_apart": False, "cores": cores}
    os.sched_setaffinity(server_pid, {cores[0]})
    os.sched_setaffinity(0, {cores[1]})
    return {"pinned_apart": True, "server_core": cores[0], "generator_core": cores[1]}


def rss_mb(pid: int) -> float:
    """A process's resident memory (MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`vaihde serve` on its own settings and database."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.agi, self.http = free_port(), free_port()
        settings = tmp / "settings.yaml"
        settings.write_text(
            "service:\n"
            f"  fastagi: {{host: 127.0.0.1, port: {self.agi}}}\n"
            f"  http: {{host: 127.0.0.1, port: {self.http}}}\n"
            f"  ami: {{host: 127.0.0.1, port: {free_port()}, secret: bench}}\n"
            f"database: {{url: {json.dumps(url)}}}\n"
            f"prompts: {{dir: {json.dumps(str(tmp / 'prompts'))}}}\n"
            "guard: {mode: \"off\"}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAIHDE_")}
        self.log = open(tmp / "serve.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vaihde", "serve", "--config", str(settings)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        # As the agi benchmark: the service on one core, this load generator on another, so
        # that the calls' times are the service's, not the generator's turns on a shared core.
        self.cores = pin_apart(self.proc.pid)

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.flush()
                tail = Path(self.log.name).read_text()[-3000:]
                raise SystemExit(f"vaihde serve exited:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/health", timeout=2):
                    return
            except OSError as exc:
                if "503" in str(exc):
                    return  # up, degraded: no Asterisk, as meant
            time.sleep(0.2)
        raise SystemExit("vaihde serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- calls ------------------------------------------------------------------------------------

_uid = iter(range(1, 10**9))


async def one_call(port: int, tenant: Tenant, transcript: list[str] | None = None,
                   media_s: float = MEDIA_S, want: str = "") -> dict[str, Any]:
    """One caller: greeting, presses 1, routed. The time it waited on vaihde, and the route:
    right if it is `want`, or (by default) the company's option 1 at the call's start or end
    (an apply may land while the caller listens to the greeting)."""
    wanted = {want} if want else {tenant.dial}
    from vaihde.agi.peer import environment

    script = f"inbound?did={tenant.number}"
    uid = f"1700000000.{next(_uid)}"
    env = environment(script, agi_network_script=script, agi_uniqueid=uid,
                      agi_request=f"agi://127.0.0.1/{script}", agi_dnid=tenant.number,
                      agi_callerid=f"040{random.randrange(10**7):07d}")
    media = 0.0
    route = dial = problem = ""
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return {"ms": None, "ok": False, "problem": f"connect: {exc!r}", "cid": tenant.cid}
    writer.write(env)
    try:
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode().rstrip("\n")
            if not line:
                break
            if transcript is not None:
                transcript.append(line)
            if line.startswith("SET VARIABLE "):
                name, _, value = line[13:].partition(" ")
                if name == '"VAIHDE_ROUTE"':
                    route = value.strip('"')
                elif name == '"VAIHDE_DIAL"':
                    dial = value.strip('"')
                writer.write(b"200 result=1\n")
            elif line.startswith('EXEC "MSet" '):
                values = dict(p.partition("=")[::2]
                              for p in line[len('EXEC "MSet" '):].strip('"').split(","))
                route, dial = values.get("VAIHDE_ROUTE", route), values.get("VAIHDE_DIAL", dial)
                writer.write(b"200 result=0\n")
            elif line.startswith("SET AUTOHANGUP "):
                writer.write(b"200 result=0\n")
            elif line.startswith(("STREAM FILE ", "GET DATA ", "WAIT FOR DIGIT ")):
                # Greeting and prompt play to the end; the caller presses 1 and nothing more.
                t = time.perf_counter()
                await asyncio.sleep(media_s / 2 if not line.startswith("WAIT")
                                    else min(media_s, 0.05))
                media += time.perf_counter() - t
                writer.write(b"200 result=0 endpos=8000\n" if line.startswith("STREAM")
                             else b"200 result=1\n" if line.startswith("GET DATA")
                             else b"200 result=0\n")  # no further digit
            else:
                problem = f"unexpected: {line[:40]}"
                writer.write(b"510 Invalid or unknown command\n")
    except (TimeoutError, OSError) as exc:
        problem = f"session: {exc!r}"
    finally:
        writer.close()
    ms = (time.perf_counter() - start - media) * 1000
    if not want:
        wanted.add(tenant.dial)
    ok = not problem and route == "dial" and dial in wanted
    return {"ms": ms, "ok": ok, "problem": problem or ("" if ok else f"{route} {dial}"),
            "cid": tenant.cid, "at": start}


class Load:
    """Open-loop callers keeping `concurrency` calls in progress until stopped."""

    def __init__(self, port: int, tenants: list[Tenant], concurrency: int) -> None:
        self.port, self.tenants = port, tenants
        self.rate = concurrency / (MEDIA_S + 0.02)
        self.results: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.running = True

    async def _call(self, tenant: Tenant) -> None:
        self.results.append(await one_call(self.port, tenant))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.running:
            next_at += random.expovariate(self.rate)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            task = loop.create_task(self._call(random.choice(self.tenants)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        self.running = False
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=20)


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)


def http(method: str, url: str, token: str, body: str | None = None,
         timeout: float = 300) -> tuple[int, Any]:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/yaml"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (OSError, TimeoutError) as exc:
        return 0, repr(exc)


async def measure(tenants: list[Tenant], server: Server, tokens: dict[str, str],
                  args: argparse.Namespace) -> dict[str, Any]:
    """Decision times at `concurrency`; applies under that load; then directory searches."""
    load = Load(server.agi, tenants, args.concurrency)
    runner = asyncio.get_running_loop().create_task(load.run())
    await asyncio.sleep(MEDIA_S + 1)  # ramp up to the calls in progress
    steady = time.perf_counter()
    cpu0 = (cpu_s(server.proc.pid), time.process_time(), os.getloadavg()[0])
    rss_start = rss_mb(server.proc.pid)
    await asyncio.sleep(args.seconds)
    steady_end = time.perf_counter()
    # How busy each side was while decisions were measured (a core each: 1.0 is saturated).
    busy = {"server_core_busy": round((cpu_s(server.proc.pid) - cpu0[0])
                                      / (steady_end - steady), 3),
            "generator_core_busy": round((time.process_time() - cpu0[1])
                                         / (steady_end - steady), 3),
            "load_average_1min": round(os.getloadavg()[0], 2), **server.cores}
    # The calls measured end before the first apply (calls started late in the window are
    # still listening to the greeting): the same steady load until they have.
    await asyncio.sleep(MEDIA_S + 1)
    apply_ms: list[float] = []
    apply_errors: list[str] = []
    apply_started = time.perf_counter()
    base = f"http://127.0.0.1:{server.http}/api/v1"
    applies = args.applies if len(tenants) > 1 else min(args.applies, args.baseline_applies)
    for n in range(applies):
        tenant = tenants[(n * 37) % len(tenants)]
        tenant.target = (tenant.target + 1) % tenant.people
        t0 = time.perf_counter()
        status, body = await asyncio.to_thread(
            http, "POST", f"{base}/config/apply?company={tenant.cid}&name={tenant.cid}.yaml",
            tokens["root"], tenant.yaml())
        if status != 200 or not body.get("applied"):
            apply_errors.append(f"{tenant.cid}: {status} {str(body)[:200]}")
            continue
        # Visible when a new call to that company is routed to the new employee.
        # Probes with no playback time: from the POST to a call routed the new way.
        while time.perf_counter() - t0 < 10:
            probe = await one_call(server.agi, tenant, media_s=0, want=tenant.dial)
            if probe["ok"]:
                apply_ms.append((time.perf_counter() - t0) * 1000)
                break
        else:
            apply_errors.append(f"{tenant.cid}: the change not visible within 10 s")
    changed = time.perf_counter()
    rss_end = rss_mb(server.proc.pid)
    await load.stop()
    runner.cancel()
    decided = [r for r in load.results if steady <= r.get("at", 0) < steady_end]
    during = [r for r in load.results if apply_started <= r.get("at", 0) < changed]
    touched = {tenants[(n * 37) % len(tenants)].cid for n in range(applies)}
    print(f"  decisions and {applies} applies done; searching", flush=True)
    others = [r for r in during if r["cid"] not in touched]
    disturbed = [r for r in others if not r["ok"] or r["ms"] is None or r["ms"] > SLOW_MS]
    search_ms: list[float] = []
    search_errors = 0
    for n in range(args.searches):
        tenant = tenants[(n * 13) % len(tenants)]
        j = (n * 7) % tenant.people
        word = FIRST[(j + len(tenant.cid)) % len(FIRST)]
        url = (f"{base}/directory/search?q={urllib.parse.quote(word)}&company={tenant.cid}"
               "&limit=20")
        t0 = time.perf_counter()
        status, body = await asyncio.to_thread(http, "GET", url, tokens["olli"])
        search_ms.append((time.perf_counter() - t0) * 1000)
        hits = body.get("hits", body.get("results", [])) if isinstance(body, dict) else []
        if status != 200 or not hits or any(
                not str(h.get("employee_id", h.get("id", ""))).startswith(tenant.cid + "-")
                for h in hits):
            search_errors += 1
    return {
        "decision_p99_ms": p99([r["ms"] for r in decided if r["ms"] is not None]),
        "decision_p50_ms": _p50([r["ms"] for r in decided if r["ms"] is not None]),
        "calls_measured": len(decided),
        "wrong_calls": sum(1 for r in decided if not r["ok"]),
        "calls_in_progress": args.concurrency,
        "cpu_during_decisions": busy,
        "apply_p99_ms": p99(apply_ms),
        "apply_max_ms": round(max(apply_ms), 1) if apply_ms else None,
        "applies": len(apply_ms),
        "apply_errors": apply_errors,
        "calls_during_applies": len(others),
        "disturbed_calls": len(disturbed),
        "disturbed_examples": [d["problem"] or f"{d['ms']:.0f} ms" for d in disturbed[:5]],
        "decision_p99_during_applies_ms": p99([r["ms"] for r in others if r["ms"] is not None]),
        "search_p99_ms": p99(search_ms),
        "searches": len(search_ms),
        "search_errors": search_errors,
        # The service's memory when the decisions' window began and after the applies: the
        # collector's older generations are collected on the service's own schedule only.
        "service_rss_mb": {"steady_start": rss_start, "after_applies": rss_end},
    }


def _p50(values: list[float]) -> float | None:
    if not values:
        return None
    return round(sorted(values)[len(values) // 2], 2)


def walk() -> dict[str, Any]:
    """The authorisation walk of tests/authwalk.py (every API route and page, as users of two
    companies) on a SQLite file of its own: what crossed from one company to the other."""
    sys.path.insert(0, str(ROOT / "tests"))
    import authwalk

    with tempfile.TemporaryDirectory(prefix="vaihde-walk-") as name:
        report = asyncio.run(authwalk.walk_sqlite(Path(name)))
    return {"leaks": report.leaks, "routes": report.routes, "pages": report.pages,
            "requests": report.requests, "undeclared": list(report.undeclared),
            "errors": list(report.errors), "details": list(report.details)[:20]}


def gc_pauses(log: Path) -> dict[str, Any]:
    """The service's garbage collections that held its loop over 20 ms (it logs each) while
    it served (until "vaihde stopping"): how many, the longest, their sum, per generation;
    and the full collections vaihde.collector scheduled."""
    text = log.read_text(errors="replace").partition("vaihde stopping")[0]
    pauses = [(int(g), float(ms)) for g, ms in re.findall(
        r"garbage collection paused the loop.*?generation=(\d).*?pause_ms=([\d.]+)", text)]
    return {"count": len(pauses), "max_ms": max((ms for _, ms in pauses), default=None),
            "total_ms": round(sum(ms for _, ms in pauses), 1),
            "by_generation": {str(g): sum(1 for gen, _ in pauses if gen == g) for g in (0, 1, 2)},
            "scheduled_full": len(re.findall(r"full garbage collection", text))}


def run_setup(tmp: Path, tenants: list[Tenant], name: str,
              args: argparse.Namespace) -> dict[str, Any]:
    from vaihde import collector
    from vaihde.cli import run_loop

    url = f"sqlite+aiosqlite:///{tmp / name}.db"
    print(f"[{name}] applying {len(tenants)} companies, "
          f"{sum(t.people for t in tenants)} employees", flush=True)
    fill_s = asyncio.run(fill(url, tenants))
    tokens = json.loads(os.environ.pop(f"BENCH_TOKENS_{id(tenants)}"))
    (tmp / name).mkdir()
    cores = os.sched_getaffinity(0)
    server = Server(tmp / name, url)
    try:
        server.wait()
        print(f"[{name}] service up; measuring", flush=True)
        # The callers' side on uvloop and with the service's garbage collection (after the fill,
        # its heap is large): it plays Asterisk (C), and its own loop's lateness would otherwise
        # count as the callers' wait on vaihde.
        collector.settle()
        figures = run_loop(measure(tenants, server, tokens, args))
    finally:
        server.stop()
        os.sched_setaffinity(0, cores)
    figures["fill_s"] = round(fill_s, 1)
    figures["gc_pauses"] = gc_pauses(Path(server.log.name))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--applies", type=int, default=20)
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--baseline-applies", type=int, default=3,
                        help="applies of the one big company (each re-reads all 10,000)")
    args = parser.parse_args(argv)
    if args.quick:
        args.companies, args.employees, args.concurrency = 20, 1000, 100
        args.seconds, args.applies, args.searches = 3.0, 3, 50
    random.seed(12)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="vaihde-tenants-") as name:
        tmp = Path(name)
        many = run_setup(tmp, tenants_of(args.companies, args.employees, "c"), "many", args)
        one = run_setup(tmp, tenants_of(1, args.employees, "solo"), "one", args)
    walked = walk()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
        "companies": args.companies,
        "employees": args.employees,
        "decision_p99_ms": many["decision_p99_ms"],
        "apply_p99_ms": many["apply_p99_ms"],
        "disturbed_calls": many["disturbed_calls"],
        "search_p99_ms": many["search_p99_ms"],
        "cross_company_leaks": walked["leaks"],
        "authorisation_walk": walked,
        "targets": TARGETS,
        "many_companies": many,
        "baseline_one_company": one,
        "run_s": round(time.time() - started, 1),
    }
    errors = (walked["leaks"] + len(walked["errors"]) + len(walked["undeclared"])
              + many["wrong_calls"] + len(many["apply_errors"]) + many["search_errors"]
              + one["wrong_calls"] + len(one["apply_errors"]) + one["search_errors"])
    result["errors"] = errors
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in result.items()
                      if k not in ("many_companies", "baseline_one_company")}, indent=2))
    print("many:", json.dumps(many))
    print("one:", json.dumps(one))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
