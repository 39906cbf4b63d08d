"""Benchmark: AMI events/s through the call tracker (and the client's parser in front of
it) on a synthetic recording of 100 concurrent calls; writes bench/results/ami_ingest.json."""

# Run: .venv/bin/python bench/ami_ingest.py

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from panoramisk.message import Message

from vaihde.ami.client import AmiClient, _AmiProtocol
from vaihde.ami.tracker import CallTracker

CONCURRENT = 100
ROUNDS = 20  # waves of CONCURRENT calls; each call is ~30 events


def _snap(uid: str, chan: str, state: int, linkedid: str, prefix: str = "") -> dict[str, str]:
    desc = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}[state]
    fields = {
        "Channel": chan,
        "ChannelState": str(state),
        "ChannelStateDesc": desc,
        "CallerIDNum": "0401234567",
        "CallerIDName": "Mäkinen Matti",
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "fi",
        "AccountCode": "",
        "Context": "vaihde-main",
        "Exten": "200",
        "Priority": "1",
        "Uniqueid": uid,
        "Linkedid": linkedid,
    }
    return {prefix + k: v for k, v in fields.items()}


def _ev(name: str, *blocks: dict[str, str], **extra: str) -> dict[str, str]:
    out = {"Event": name, "Privilege": "call,all"}
    for b in blocks:
        out.update(b)
    out.update(extra)
    return out


def call_events(n: int) -> list[dict[str, str]]:
    """One inbound call: IVR, a queue, a dial to a desk, a bridge, both hang up."""
    a, b, br = f"1718000000.{2 * n}", f"1718000000.{2 * n + 1}", f"bridge-{n}"
    ca, cb = f"PJSIP/trunk-{n:08x}", f"PJSIP/101-{n:08x}"
    bridge = {"BridgeUniqueid": br, "BridgeType": "basic", "BridgeTechnology": "simple_bridge"}
    return [
        _ev("Newchannel", _snap(a, ca, 4, a)),
        _ev("VarSet", _snap(a, ca, 4, a), Variable="__VAIHDE_CALL_ID", Value=f"c{n}"),
        *[_ev("Newexten", _snap(a, ca, 4, a), Application="NoOp") for _ in range(4)],
        _ev("VarSet", _snap(a, ca, 4, a), Variable="DIALSTATUS", Value=""),
        _ev("Newstate", _snap(a, ca, 6, a)),
        _ev("DTMFEnd", _snap(a, ca, 6, a), Digit="1", Direction="Received"),
        _ev("QueueCallerJoin", _snap(a, ca, 6, a), Queue="myynti", Position="1", Count="1"),
        _ev("Newchannel", _snap(b, cb, 0, a)),
        _ev("DialBegin", _snap(a, ca, 6, a), _snap(b, cb, 0, a, "Dest"), DialString="101"),
        _ev("Newstate", _snap(b, cb, 5, a)),
        _ev("Newstate", _snap(b, cb, 6, a)),
        _ev("DialEnd", _snap(a, ca, 6, a), _snap(b, cb, 6, a, "Dest"), DialStatus="ANSWER"),
        _ev("QueueCallerLeave", _snap(a, ca, 6, a), Queue="myynti", Position="1", Count="0"),
        _ev("BridgeCreate", bridge),
        _ev("BridgeEnter", bridge, _snap(a, ca, 6, a)),
        _ev("BridgeEnter", bridge, _snap(b, cb, 6, a)),
        *[_ev("RTCPSent", _snap(a, ca, 6, a)) for _ in range(6)],  # ignored noise
        _ev("BridgeLeave", bridge, _snap(b, cb, 6, a)),
        _ev("Hangup", _snap(b, cb, 6, a), Cause="16", **{"Cause-txt": "Normal Clearing"}),
        _ev("BridgeLeave", bridge, _snap(a, ca, 6, a)),
        _ev("BridgeDestroy", bridge),
        _ev("Hangup", _snap(a, ca, 6, a), Cause="16", **{"Cause-txt": "Normal Clearing"}),
    ]


def recording() -> list[dict[str, str]]:
    """ROUNDS waves of CONCURRENT calls, their events interleaved round-robin."""
    stream: list[dict[str, str]] = []
    for r in range(ROUNDS):
        calls = [call_events(r * CONCURRENT + i) for i in range(CONCURRENT)]
        for step in range(max(len(c) for c in calls)):
            stream.extend(c[step] for c in calls if step < len(c))
    return stream


def wire(events: list[dict[str, str]]) -> bytes:
    return b"".join(
        ("".join(f"{k}: {v}\r\n" for k, v in e.items()) + "\r\n").encode() for e in events
    )


def best_of(n: int, fn: Any) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


async def main() -> None:
    events = recording()
    messages = [Message(e) for e in events]  # what AmiClient hands to listeners
    data = wire(events)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    loop = asyncio.get_running_loop()

    def apply_dicts() -> None:
        t = CallTracker()
        for e in events:
            t.apply(e)

    def apply_messages() -> None:
        t = CallTracker()
        for m in messages:
            t.apply(m)

    def wire_to_tracker() -> None:
        # Private API on purpose: measure framing + parsing + dispatch without a socket.
        client = AmiClient("bench", 0, "bench", "unused")
        t = CallTracker()
        client.add_event_listener(t.apply)
        q = t.subscribe(maxsize=1000)
        proto = _AmiProtocol(client, loop)
        proto.banner.set_result("bench")
        for c in chunks:
            proto.data_received(c)
        assert client.stats["events"] == len(events), client.stats
        assert q.dropped > 0 or q.qsize() > 0

    peak, t = 0, CallTracker()
    for e in events:  # warm-up, and the peak number of live channels
        t.apply(e)
        peak = max(peak, len(t.channels))
    results: dict[str, Any] = {
        "events": len(events),
        "concurrent_calls": CONCURRENT,
        "peak_channels": peak,
        "wire_bytes": len(data),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    for name, fn in (
        ("tracker_apply_dict", apply_dicts),
        ("tracker_apply_panoramisk_message", apply_messages),
        ("wire_parse_dispatch_apply", wire_to_tracker),
    ):
        secs = best_of(5, fn)
        results[name] = {
            "seconds": round(secs, 4),
            "events_per_s": round(len(events) / secs),
            "us_per_event": round(secs / len(events) * 1e6, 2),
        }
        print(
            f"{name:34s} {len(events) / secs:>10,.0f} events/s  "
            f"{secs / len(events) * 1e6:6.2f} µs/event"
        )
    out = Path(__file__).parent / "results" / "ami_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{len(events)} events, peak {peak} live channels; wrote {out}")


if __name__ == "__main__":
    asyncio.run(main())
