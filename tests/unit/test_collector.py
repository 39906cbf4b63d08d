"""The service's garbage collection policy (vaihde.collector): no automatic pass over the older
generations while calls are in progress, and reference cycles still freed on its own schedule.
The collector's state is the process's, so each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from vaihde.collector import YOUNG_THRESHOLD, due


def run(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_full_collection_is_due_after_the_growth_or_the_interval_and_not_before() -> None:
    assert due(100.0, 0.0, 1_000, 900, grow_blocks=500, every_s=600) == ""
    assert due(100.0, 0.0, 1_400, 900, grow_blocks=500, every_s=600) == "grown"
    assert due(600.0, 0.0, 1_000, 900, grow_blocks=500, every_s=600) == "interval"
    # Memory given back since (fewer blocks) is not growth.
    assert due(10.0, 0.0, 100, 900, grow_blocks=500, every_s=600) == ""


CYCLE = """
import gc, json, weakref
from vaihde import collector

collector.settle()
class Node:
    pass
def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a
kept = cycle()
ref = weakref.ref(kept)
# Alive through a young collection: promoted out of the young generation, as a call's objects
# are while the caller listens to a greeting.
gc.collect(0)
del kept
# Much allocation: many automatic young collections, none of the older generations.
junk = [[i] for i in range(200_000)]
del junk
stats = [s["collections"] for s in gc.get_stats()]
"""


def test_after_start_up_python_collects_only_the_young_generation_by_itself() -> None:
    found = run(CYCLE + """
print(json.dumps({"alive": ref() is not None, "threshold": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "collections": stats}))
""")
    assert found["alive"] is True  # garbage now, but in an older generation: not walked
    threshold = found["threshold"]
    assert isinstance(threshold, list) and threshold[0] == YOUNG_THRESHOLD
    assert threshold[1] >= 1 << 30 and threshold[2] >= 1 << 30
    assert isinstance(found["frozen"], int) and found["frozen"] > 1000  # modules and all
    collections = found["collections"]
    assert isinstance(collections, list) and collections[0] > 100


def test_the_scheduled_collection_frees_a_cycle_once_memory_grew() -> None:
    found = run(CYCLE + """
quiet = collector.Collector(grow_blocks=10**9, every_s=3600)
first = quiet.tick()
after_quiet = ref() is not None
grown = collector.Collector(grow_blocks=40_000, every_s=3600)
keep = [[i] for i in range(1000, 51_000)]  # memory grows by 100,000 blocks (lists and ints)
why = grown.tick()
print(json.dumps({"first": first, "after_quiet": after_quiet, "why": why,
                  "alive": ref() is not None, "collections": grown.collections,
                  "pause_ms": grown.last_pause_ms}))
""")
    assert found["first"] == "" and found["after_quiet"] is True
    assert found["why"] == "grown"
    assert found["alive"] is False
    assert found["collections"] == 1
    assert isinstance(found["pause_ms"], float) and found["pause_ms"] > 0


def test_the_scheduled_collection_comes_at_the_latest_after_its_interval() -> None:
    found = run(CYCLE + """
import time
late = collector.Collector(grow_blocks=10**9, every_s=0.05)
before = late.tick()
time.sleep(0.1)
why = late.tick()
print(json.dumps({"before": before, "why": why, "alive": ref() is not None}))
""")
    assert found == {"before": "", "why": "interval", "alive": False}
