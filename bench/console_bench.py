"""Console benchmark: how long from an AMI event reaching the service to the change showing on
the operator's console page, with 100 concurrent calls in real Asterisk; and how many AMI events
per second the service's reader ingests. Writes bench/results/console.json.

1. Live: a sandbox Asterisk (`bench-console`, its own ports) and the vaihde service in this
   process (so the AMI arrival time is taken inside the service: a listener on its AmiClient,
   called with each event as it is read). --calls (100) simulated callers are originated over
   --ramp seconds; each chooses 0 and waits for an operator (the operator group's phones ring
   unanswered), so all of them are on the board at once; then they hang up one by one.
   The operator's console runs in Debian's chromium (Playwright); a MutationObserver in the page
   stamps `performance.timeOrigin + performance.now()` when a call's row is added or removed.
   - appear: the AMI event after which the board's rule (`board.call_state` on the tracker
     state it produced) counts the caller's channel as a call for the operators (with the
     operators' queue: its QueueCallerJoin) → the row is in the waiting list.
   - gone: the event after which it no longer does (the caller hung up) → the row is removed.
   Baseline, same run: the page's EventSource is wrapped (an init script, before the page's
   own) to stamp when the `call`/`gone` message for that call arrives, before the page handles
   it: the delay of the transport alone (service hub, SSE, browser), against which the page's
   own cost can be judged. The service's
   own part is stamped too (when its console hub publishes the change), and the page's long
   main-thread tasks are counted.
2. Ingest: AMI wire bytes → the client's framing and parsing → listeners → the call tracker, with
   no socket (as bench/ami_ingest.py), on the events this run's real Asterisk sent (recorded in
   step 1) and on ami_ingest's synthetic 100-call recording.

Targets: p99 <= 150 ms event → page; >= 20,000 events/s ingest.
Run: .venv/bin/python bench/console_bench.py [--quick] [--calls N] [--ramp S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import ami_ingest  # noqa: E402  (bench/ami_ingest.py: the synthetic recording)
from vaihde.ami.client import AmiClient, _AmiProtocol  # noqa: E402
from vaihde.ami.tracker import CallTracker  # noqa: E402
from vaihde.auth import passwords  # noqa: E402
from vaihde.auth.store import add_user  # noqa: E402
from vaihde.config.settings import loads  # noqa: E402
from vaihde.console.board import call_state  # noqa: E402
from vaihde.sandbox import Instance, InstanceSettings, build  # noqa: E402
from vaihde.service import Service  # noqa: E402

RESULTS = HERE / "results" / "console.json"
CHROMIUM = "/usr/bin/chromium"
TEST_DIALPLAN = ROOT / "tests" / "asterisk" / "vaihde-test.conf"  # simulated callers, phones
PHONES = "vaihde-test-phones"
OPERATOR_CONTEXT = "vaihde-operator"
COMPANY_NUMBER = "0201234567"
PASSWORD = "bench password 1"
PORT_BASE = 17500  # AMI +38, SIP +60, FastAGI +73 (tests use 14573-15999, calls bench 16500)
TARGET_P99_MS = 150.0
TARGET_INGEST = 20_000

COMPANY = f"""\
company: {{name: Bench Oy, language: en, languages: [en]}}
numbers:
  "{COMPANY_NUMBER}": {{label: Main, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    greeting: {{en: Hello, sound: beep}}
    prompt: {{en: Choose, sound: beep}}
    timeout: 3
    attempts: 1
    options:
      1: {{employee: anna}}
teams:
  ops: {{name: Operators, kind: operators, members: [olga]}}
employees:
  anna: {{name: Anna Virtanen, devices: [desk: Local/anna@{PHONES}]}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""

# Before the page's own scripts: the console's EventSource, wrapped so that each `call` (the
# first for a call) and `gone` message is stamped as it arrives, before the page handles it
# (the transport-only baseline, on the page's one connection); and long main-thread tasks.
INIT = """(() => {
  const now = () => performance.timeOrigin + performance.now();
  const rec = window.__bench = {rows: [], sse: [], long: []};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) rec.long.push(e.duration);
  }).observe({entryTypes: ["longtask"]});
  const first = new Set();
  const Real = window.EventSource;
  window.EventSource = class extends Real {
    constructor(url, options) {
      super(url, options);
      super.addEventListener("call", (e) => {
        const t = now();
        const id = JSON.parse(e.data).id;
        if (!first.has(id)) { first.add(id); rec.sse.push(["appear", id, t]); }
      });
      super.addEventListener("gone", (e) => rec.sse.push(["gone", JSON.parse(e.data).id, now()]));
    }
  };
})();"""

# Stamps rows added to / removed from the call lists (a row moved between lists is not gone).
OBSERVER = """() => {
  const now = () => performance.timeOrigin + performance.now();
  const rec = window.__bench;
  const seen = new Set();
  const obs = new MutationObserver((muts) => {
    const t = now();
    for (const m of muts) {
      for (const n of m.addedNodes) {
        if (n.dataset && n.dataset.id && !seen.has(n.dataset.id)) {
          seen.add(n.dataset.id);
          rec.rows.push(["appear", n.dataset.id, t]);
        }
      }
      for (const n of m.removedNodes) {
        if (n.dataset && n.dataset.id && !n.isConnected) rec.rows.push(["gone", n.dataset.id, t]);
      }
    }
  });
  for (const id of ["waiting", "active", "parked"]) {
    obs.observe(document.getElementById(id), {childList: true});
  }
}"""


def log(msg: str) -> None:
    print(f"[console bench] {msg}", file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(pct(90), 1),
        "p99_ms": round(pct(99), 1),
        "max_ms": round(ordered[-1], 1),
    }


class AmiStamps:
    """A listener on the service's AmiClient, after its call tracker: when (epoch ms) the event
    arrived after which the board counts a channel as a call for the operators, and the one
    after which it no longer does (the board's own rule, `board.call_state`, on the tracker
    state that event produced); and every event, for the ingest measurement."""

    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        self.appear: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.on_board: set[str] = set()
        self.events: list[dict[str, str]] = []

    def __call__(self, event: Mapping[str, Any]) -> None:
        t = time.time() * 1000
        self.events.append({str(k): str(v) for k, v in event.items()})
        uid = event.get("Uniqueid")
        if not uid:
            return
        channel = self.tracker.channels.get(uid)
        on = channel is not None and call_state(self.tracker, channel) is not None
        if on and uid not in self.on_board:
            self.on_board.add(uid)
            self.appear.setdefault(uid, t)
        elif not on and uid in self.on_board:
            self.on_board.discard(uid)
            self.gone.setdefault(uid, t)


def stamp_publish(service: Service) -> list[list[Any]]:
    """When (epoch ms) the service's console hub hands a call's first `call` and its `gone` to
    the streams: splits event → page into the service's part and the rest (SSE, browser).
    Wraps a private method on purpose: the hub has no hook for this."""
    console = service.console
    assert console is not None
    out: list[list[Any]] = []
    first: set[str] = set()
    publish = console._publish

    def stamped(event: str, data: Any) -> None:
        if event == "call" and data["id"] not in first:
            first.add(data["id"])
            out.append(["appear", data["id"], time.time() * 1000])
        elif event == "gone":
            out.append(["gone", data["id"], time.time() * 1000])
        publish(event, data)

    console._publish = stamped  # type: ignore[method-assign]
    return out


def delays(stamps: AmiStamps, seen: list[list[Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"appear": [], "gone": []}
    for kind, call_id, t in seen:
        start = (stamps.appear if kind == "appear" else stamps.gone).get(call_id)
        if start is not None:
            out[kind].append(t - start)
    return out


def ingest_rate(events: list[dict[str, str]], rounds: int) -> dict[str, Any]:
    """Wire bytes → framing, parsing, dispatch → tracker, as the service's reader does."""
    data = ami_ingest.wire(events)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    loop = asyncio.new_event_loop()
    try:
        def once() -> None:
            client = AmiClient("bench", 0, "bench", "unused")
            tracker = CallTracker()
            client.add_event_listener(tracker.apply)
            proto = _AmiProtocol(client, loop)
            proto.banner.set_result("bench")
            for c in chunks:
                proto.data_received(c)
            assert client.stats["events"] == len(events), client.stats

        secs = ami_ingest.best_of(rounds, once)
    finally:
        loop.close()
    return {"events": len(events), "seconds": round(secs, 4),
            "events_per_s": round(len(events) / secs), "target_events_per_s": TARGET_INGEST}


async def originate(ami: AmiClient, n: int, hold: int) -> None:
    await ami.action({
        "Action": "Originate", "Channel": f"Local/{COMPANY_NUMBER}@vaihde-inbound/n",
        "Context": "vaihde-test-caller", "Exten": "s", "Priority": "1", "Async": "true",
        "CallerID": f"04010{n:05d}",
        "Variable": f"CALLER_DELAY=0.3,CALLER_DIGITS=0,CALLER_HOLD={hold}",
    })


async def live(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    build(log=log)
    instance = Instance(InstanceSettings(
        name="bench-console", ami_port=PORT_BASE + 38, sip_port=PORT_BASE + 60,
        rtp_start=32000, rtp_end=32099, agi_url=f"agi://127.0.0.1:{PORT_BASE + 73}",
        operators=f"Local/noanswer@{PHONES}", operator_timeout=300,
        extra_dialplan=[str(TEST_DIALPLAN)],
        driver_secret=secrets.token_urlsafe(16),  # the callers: the vaihde user may not Originate
    ))
    instance.start(replace=True, tie_to_parent=True)
    service: Service | None = None
    driver = AmiClient("127.0.0.1", instance.ami_port, instance.driver_username,
                       instance.driver_secret)
    try:
        (tmp / "company.yaml").write_text(COMPANY)
        settings = loads(instance.service_settings(
            database_url=f"sqlite+aiosqlite:///{tmp}/vaihde.db", company_file="company.yaml",
        ), str(tmp / "settings.yaml"))
        for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL"):
            os.environ.pop(name, None)
        service = Service(settings)
        await service.start()
        await driver.connect()
        for _ in range(200):
            if service.ami.connected:
                break
            await asyncio.sleep(0.05)
        async with service.db.sessions.begin() as session:
            await add_user(session, "olga", role="operator", employee_id="olga",
                           sip_endpoint=f"Local/operator@{PHONES}",
                           password_hash=passwords.hash_password(PASSWORD))
        stamps = AmiStamps(service.tracker)
        service.ami.add_event_listener(stamps)
        published = stamp_publish(service)
        base = f"http://127.0.0.1:{service.http_port}"
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM)
            try:
                page = await browser.new_page(viewport={"width": 1366, "height": 768})
                await page.add_init_script(INIT)
                await page.goto(f"{base}/login?next=/console")
                await page.fill("#username", "olga")
                await page.fill("#password", PASSWORD)
                async with page.expect_navigation():
                    await page.click("#login-button")
                await page.locator("#conn.live").wait_for(timeout=15_000)
                await page.evaluate(OBSERVER)

                hold = int(args.ramp + args.settle + 60)
                log(f"{args.calls} callers over {args.ramp:g} s, each waits for an operator")
                gap = args.ramp / max(1, args.calls)
                for n in range(args.calls):
                    await originate(driver, n, hold)
                    await asyncio.sleep(gap)
                rows = page.locator("#waiting li.call")
                await rows.nth(args.calls - 1).wait_for(timeout=(args.ramp + 60) * 1000)
                on_board = await page.locator("#waiting li.call").count()
                log(f"{on_board} calls waiting on the console; hanging up one by one")
                await asyncio.sleep(args.settle)
                ids = list(stamps.appear)
                for uid in ids:
                    channel = service.tracker.channels.get(uid)
                    if channel is not None:
                        await service.ami.action({"Action": "Hangup", "Channel": channel.name})
                    await asyncio.sleep(gap)
                try:
                    await rows.first.wait_for(state="detached", timeout=20_000)
                except Exception:
                    left = await page.evaluate(
                        "() => [...document.querySelectorAll('#waiting li.call')]"
                        ".map(li => li.dataset.id)")
                    log(f"still on the board: {left}")
                    raise
                await asyncio.sleep(0.5)
                seen = await page.evaluate("window.__bench")
            finally:
                await browser.close()
    finally:
        await driver.close()
        if service is not None:
            with contextlib.suppress(Exception):
                await service.stop()
        instance.stop()

    page_delays = delays(stamps, seen["rows"])
    sse_delays = delays(stamps, seen["sse"])
    service_delays = delays(stamps, published)
    return {
        "calls": args.calls,
        "ramp_s": args.ramp,
        "peak_waiting_on_page": on_board,
        "event_to_page": {k: percentiles(v) for k, v in page_delays.items()},
        "event_to_page_all": percentiles(page_delays["appear"] + page_delays["gone"]),
        "baseline_event_to_sse_message": {k: percentiles(v) for k, v in sse_delays.items()},
        "event_to_service_publish": {k: percentiles(v) for k, v in service_delays.items()},
        "browser_long_tasks": {"count": len(seen["long"]),
                               "max_ms": round(max(seen["long"], default=0), 1)},
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "target_p99_ms": TARGET_P99_MS,
        "_events": stamps.events,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (20 calls)")
    parser.add_argument("--calls", type=int, default=None, help="concurrent callers (100)")
    parser.add_argument("--ramp", type=float, default=None, help="seconds to start them (10)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds all calls wait together before hanging up")
    args = parser.parse_args()
    args.calls = args.calls or (20 if args.quick else 100)
    args.ramp = args.ramp if args.ramp is not None else (3.0 if args.quick else 10.0)

    with tempfile.TemporaryDirectory(prefix="vaihde-console-bench-") as tmp:
        result = asyncio.run(live(args, Path(tmp)))
    recorded = result.pop("_events")
    result["ingest_recorded"] = ingest_rate(recorded, 5) if recorded else {"events": 0}
    result["ingest_synthetic"] = ingest_rate(ami_ingest.recording(), 3)
    result.update(quick=args.quick, python=sys.version.split()[0],
                  machine=platform.machine(), cpus=os.cpu_count())
    ok = (result["event_to_page_all"].get("p99_ms", 1e9) <= TARGET_P99_MS
          and result["ingest_synthetic"]["events_per_s"] >= TARGET_INGEST)
    result["meets_targets"] = ok
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    for kind in ("appear", "gone"):
        page, sse = result["event_to_page"][kind], result["baseline_event_to_sse_message"][kind]
        hub = result["event_to_service_publish"][kind]
        print(f"{kind:7s} event → page  p50 {page.get('p50_ms')} ms  p99 {page.get('p99_ms')} ms"
              f"  (n={page['n']});  → SSE message p50 {sse.get('p50_ms')}  p99 "
              f"{sse.get('p99_ms')};  → service publishes p50 {hub.get('p50_ms')}  p99 "
              f"{hub.get('p99_ms')}")
    print(f"browser long tasks: {result['browser_long_tasks']}; "
          f"load average {result['load_average_1m_after']} on {os.cpu_count()} cores")
    print(f"ingest: {result['ingest_recorded'].get('events_per_s')} events/s on this run's "
          f"recording ({result['ingest_recorded']['events']} events), "
          f"{result['ingest_synthetic']['events_per_s']} on the synthetic one")
    print(f"wrote {RESULTS}; targets {'met' if ok else 'NOT met'}")
    missing = result["calls"] - result["event_to_page"]["appear"].get("n", 0)
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
