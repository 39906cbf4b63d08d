"""Several machines on one (vaihde.sandbox.cluster, `./scripts/cluster`): two sandbox Asterisks
with the shipped dialplan, two `vaihde serve` instances on one PostgreSQL, Kamailio in front.
Asterisk 1 names instance A first (VAIHDE_AGI) and B next (VAIHDE_AGI2), Asterisk 2 the other
way round; each instance has AMI to both.

Asserted from each Asterisk's own AMI events (AmiProbe, as the test driver), the consoles' HTTP
boards and event streams of both instances, and the shared database: a call on either Asterisk
is served by its first instance, and by the other while that one is killed; both consoles show
the same waiting calls of both Asterisks; an availability change made through one instance is
what the other routes by; carrier calls through Kamailio reach both Asterisks; and `down` from
another process stops everything the cluster started.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from amiprobe import AmiProbe
from company import COMPANY, COMPANY_NUMBER, PHONES
from sqlalchemy import select
from test_cluster_ami import Recorded
from test_first_call import assert_bridged_with, call, device
from test_kamailio import HOLD_MS

from conftest import OPERATORS, TEST_DIALPLAN
from vaihde.auth.store import add_user, create_token
from vaihde.db import open_database
from vaihde.db.message_models import Callback
from vaihde.sandbox import SandboxError
from vaihde.sandbox.cluster import ASTERISKS, INSTANCES, Cluster, ClusterSpec, default_ports

pytestmark = pytest.mark.asterisk

SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
NAME, PORT_BASE, RTP_BASE = default_ports(SLOT)
REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "sipp"
ANNA = f"Local/anna@{PHONES}"
QUEUE = "vaihde-switchboard"
# The operators' phones ring and nobody answers: callers for the operators stay waiting.
NOBODY = f"Local/noanswer@{PHONES}"
CALLER_LEG = f"Local/{COMPANY_NUMBER}@vaihde-inbound-"


def _progress(line: str) -> None:
    print(line, file=sys.__stderr__, flush=True)


async def _operator_token(url: str) -> str:
    db = open_database(url)
    try:
        async with db.sessions() as session, session.begin():
            await add_user(session, "olli", role="operator", sip_endpoint=OPERATORS)
            token, _ = await create_token(session, "olli", label="cluster test")
    finally:
        await db.close()
    return token


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The slot's cluster (ports 18000 + 100·slot …), up for this module; always taken down.
    Every process it starts is tied to the test run, and down() stops what is left."""
    work = tmp_path_factory.mktemp("cluster")
    (work / "company.yaml").write_text(COMPANY)
    spec = ClusterSpec(
        name=NAME, port_base=PORT_BASE, rtp_base=RTP_BASE, company_file=str(work / "company.yaml"),
        kamailio=True, extra_dialplan=[str(TEST_DIALPLAN)],
        operators={ast: NOBODY for ast in ASTERISKS}, operator_timeout=20,
        run_dir=str(work / "run"),
    )
    harness = Cluster(spec, tie_to_parent=True)
    try:
        asyncio.run(harness.up(replace=True, log=_progress))
        harness.token = asyncio.run(_operator_token(harness.database_url))  # type: ignore[attr-defined]
    except SandboxError as exc:
        harness.down()
        pytest.fail(f"the cluster could not be started: {exc}", pytrace=False)
    try:
        yield harness
    finally:
        harness.down()


@pytest.fixture
async def probes(cluster: Cluster) -> AsyncIterator[dict[str, AmiProbe]]:
    """The test driver's AMI on each Asterisk; every channel hung up afterwards."""
    out: dict[str, AmiProbe] = {}
    for ast in ASTERISKS:
        inst = cluster.asterisks[ast]
        out[ast] = await AmiProbe.connect(inst.ami_port, inst.driver_username,
                                          inst.driver_secret)
    try:
        yield out
    finally:
        for ast, probe in out.items():
            await probe.close()
            if cluster.asterisks[ast].running:
                cluster.asterisks[ast].hang_up_all()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def headers(cluster: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.token}"}  # type: ignore[attr-defined]


def agi_at(port: int) -> Any:
    """The caller's leg entering AGI() with the URL of the instance on `port`."""
    return lambda e: (e.get("Event") == "Newexten" and e.get("Application") == "AGI"
                      and e.get("Channel", "").startswith(CALLER_LEG)
                      and f"127.0.0.1:{port}/" in e.get("AppData", ""))


def agi_urls(probe: AmiProbe, since: int) -> list[str]:
    """Which instances (by port) the callers' legs were sent to, in order."""
    return [e["AppData"].split("/")[2] for e in probe.events[since:]
            if e.get("Event") == "Newexten" and e.get("Application") == "AGI"
            and e.get("Channel", "").startswith(CALLER_LEG)]


async def board(http: aiohttp.ClientSession, cluster: Cluster, instance: str) -> dict[str, Any]:
    async with http.get(f"{cluster.http_base(instance)}/api/v1/console/board",
                        headers=headers(cluster)) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


def same_calls(b: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(c["id"], c["asterisk"], c["state"], c["queue"], c["position"],
             c["caller"]["number"]) for c in b["waiting"]]


def waiting_ids(b: dict[str, Any]) -> list[str]:
    return [c["id"] for c in b["waiting"]]


async def test_each_asterisk_sends_its_callers_to_its_own_instance_first(cluster, probes):
    one, two = probes["ast1"], probes["ast2"]
    marks = {ast: p.mark() for ast, p in probes.items()}
    await call(one, "1", callerid="0403330001")
    await call(two, "1", callerid="0403330002")
    for ast, probe in probes.items():
        first = "a" if ast == "ast1" else "b"
        entered = await probe.wait_for(agi_at(cluster.ports.agi(first)), 10, since=marks[ast])
        # Call ids begin with the Asterisk's own systemname.
        assert entered["Uniqueid"].startswith(cluster.spec.system_name(ast) + "-")
        await assert_bridged_with(probe, ANNA, timeout=15)
    assert agi_urls(one, marks["ast1"]) == [f"127.0.0.1:{cluster.ports.agi('a')}"]
    assert agi_urls(two, marks["ast2"]) == [f"127.0.0.1:{cluster.ports.agi('b')}"]


async def test_with_instance_a_killed_instance_b_serves_both_asterisks(cluster, probes, http):
    one, two = probes["ast1"], probes["ast2"]
    cluster.kill_service("a")
    try:
        async with http.get(f"{cluster.http_base('b')}/health") as reply:
            assert (await reply.json())["status"] == "ok"
        # Asterisk 2 names B first: B serves its caller, who reaches Anna.
        mark = two.mark()
        await call(two, "1", callerid="0403330003")
        await two.wait_for(agi_at(cluster.ports.agi("b")), 10, since=mark)
        await assert_bridged_with(two, ANNA, timeout=15)
        assert agi_urls(two, mark) == [f"127.0.0.1:{cluster.ports.agi('b')}"]
        # Asterisk 1 names A first: refused at once, its VAIHDE_AGI2 (B) takes the caller.
        mark = one.mark()
        await call(one, "1", callerid="0403330004")
        tried = await one.wait_for(agi_at(cluster.ports.agi("a")), 10, since=mark)
        served = await one.wait_for(agi_at(cluster.ports.agi("b")), 10, since=mark)
        assert served["Channel"] == tried["Channel"]
        assert one.time_of(served) - one.time_of(tried) < 0.5
        await assert_bridged_with(one, ANNA, timeout=15)
        assert one.find(lambda e: e.get("Event") == "QueueCallerJoin", since=mark) is None
    finally:
        await cluster.start_service("a")
    async with http.get(f"{cluster.http_base('a')}/health") as reply:
        assert (await reply.json())["status"] == "ok"


async def test_both_consoles_show_the_same_waiting_calls_of_both_asterisks(cluster, probes, http):
    one, two = probes["ast1"], probes["ast2"]
    await call(one, "0", callerid="0403330005")
    await probes["ast1"].wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                  and e.get("CallerIDNum") == "0403330005", 15)
    await call(two, "0", callerid="0403330006")
    joined = await two.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                and e.get("CallerIDNum") == "0403330006", 15)
    on_1 = one.find(lambda e: e.get("Event") == "QueueCallerJoin"
                    and e.get("CallerIDNum") == "0403330005")
    assert on_1 is not None
    want = [on_1["Uniqueid"], joined["Uniqueid"]]  # the longest waiting first
    boards = {}
    deadline = time.monotonic() + 5
    while True:
        boards = {i: await board(http, cluster, i) for i in INSTANCES}
        if all(waiting_ids(b) == want for b in boards.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    for instance, b in boards.items():
        assert waiting_ids(b) == want, (instance, b["waiting"])
        assert [c["asterisk"] for c in b["waiting"]] == [cluster.spec.system_name(a)
                                                          for a in ASTERISKS]
        assert b["ami"]["connected"] is True
    # The same calls in the same places. (What each caller did before, the call's story, is
    # known only to the instance that served the call on main: it lives in that process.)
    assert same_calls(boards["a"]) == same_calls(boards["b"])
    # The caller on Asterisk 1 hangs up: both consoles' streams say it is gone.
    streams = []
    responses = []
    try:
        for instance in INSTANCES:
            response = await http.get(f"{cluster.http_base(instance)}/api/v1/console/stream",
                                      headers=headers(cluster))
            responses.append(response)
            stream = Recorded(response)
            await stream.until("board")
            streams.append(stream)
        await one.action("Hangup", Channel=on_1["Channel"])
        for stream in streams:
            await stream.until("gone", lambda d: d["id"] == on_1["Uniqueid"], timeout=5)
    finally:
        for response in responses:
            response.close()
    for instance in INSTANCES:
        assert waiting_ids(await board(http, cluster, instance)) == [joined["Uniqueid"]]


async def test_a_caller_connected_from_the_menu_is_active_on_both_consoles(
        cluster, probes, http):
    """Served by A (Asterisk 1), connected to Anna: B, which has no story of the call, shows it
    as active too (the dialplan marks the caller's leg with its call id)."""
    one = probes["ast1"]
    mark = one.mark()
    await call(one, "1", callerid="0403330008")
    entered = await one.wait_for(agi_at(cluster.ports.agi("a")), 10, since=mark)
    await assert_bridged_with(one, ANNA, timeout=15)
    found: dict[str, Any] = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(found) < 2:
        for instance in INSTANCES:
            active = [c for c in (await board(http, cluster, instance))["active"]
                      if c["id"] == entered["Uniqueid"]]
            if active:
                found[instance] = active[0]
        await asyncio.sleep(0.1)
    assert set(found) == {"a", "b"}, found
    for c in found.values():
        assert c["state"] == "active" and c["asterisk"] == cluster.spec.system_name("ast1")
        assert [device(p["channel"]) for p in c["parties"]] == [ANNA]
    assert found["a"]["sought"]["id"] == "anna"  # A served the menu: it has the story


async def test_availability_set_through_a_is_what_b_routes_by(cluster, probes, http):
    two = probes["ast2"]  # served by B
    url = f"{cluster.http_base('a')}/api/v1/employees/anna/availability"
    response = await http.get(f"{cluster.http_base('b')}/api/v1/console/stream",
                              headers=headers(cluster))
    try:
        stream = Recorded(response)
        await stream.until("board")
        async with http.put(url, headers=headers(cluster),
                            json={"state": "away", "note_for_callers": "back soon"}) as reply:
            assert reply.status == 200, await reply.text()
        told = time.monotonic()
        seen = await stream.until("availability", lambda d: d["employee"] == "anna"
                                  and d["state"] == "away", timeout=5)
        # Within the 1 s. On main instances see each other's changes by polling the
        # revision counters (every 0.1 s); LISTEN/NOTIFY is to make it the commit's moment.
        assert time.monotonic() - told <= 1.0
        assert seen["reachable"] is False and seen["note_for_callers"] == "back soon"
    finally:
        response.close()
    try:
        # A caller on Asterisk 2 chooses Anna: B offers the alternatives instead of ringing her,
        # and takes their callback request.
        mark = two.mark()
        await call(two, "1", callerid="0403330007", hold=30)
        offer = await two.wait_for(lambda e: e.get("Event") == "AGIExecStart"
                                   and e.get("Channel", "").startswith(CALLER_LEG)
                                   and "GET DATA" in e.get("Command", "")
                                   and "beep" not in e.get("Command", ""), 15, since=mark)
        assert agi_urls(two, mark) == [f"127.0.0.1:{cluster.ports.agi('b')}"]
        await two.action("PlayDTMF", Channel=offer["Channel"].replace(";2", ";1"), Digit="3")
        await two.wait_for(lambda e: e.get("Event") == "AGIExecEnd"
                           and e.get("Channel") == offer["Channel"], 10, since=mark)
        db = open_database(cluster.database_url)
        try:
            stored: list[Any] = []
            for _ in range(50):
                async with db.sessions() as session:
                    stored = list((await session.execute(select(Callback.for_id, Callback.call_id)
                                   .where(Callback.caller_number == "0403330007"))).all())
                if stored:
                    break
                await asyncio.sleep(0.1)
        finally:
            await db.close()
        assert stored == [("anna", offer["Uniqueid"])]
        assert not [e for e in two.events[mark:] if e.get("Event") == "DialBegin"
                    and e.get("DestChannel", "").startswith(ANNA)]
    finally:
        async with http.put(url.replace(cluster.http_base("a"), cluster.http_base("b")),
                            headers=headers(cluster), json={"state": "available"}) as reply:
            assert reply.status == 200


async def test_an_asterisk_killed_and_restarted_is_followed_again_by_both_instances(
        cluster, probes, http):
    """kill -9 of Asterisk 2 under both instances, started again 2 s later (their AMI retries
    backed off meanwhile, and may find it still loading its modules): both are connected to it
    again and both consoles show its caller waiting for the operators, within 5 s of it having
    booted (the issue: consoles agree within 2 s, calls are handled again within 5 s)."""
    await probes["ast2"].close()
    cluster.kill_asterisk("ast2")
    await asyncio.sleep(2)
    await cluster.start_asterisk("ast2")
    booted = time.monotonic()
    inst = cluster.asterisks["ast2"]
    two = await AmiProbe.connect(inst.ami_port, inst.driver_username, inst.driver_secret)
    try:
        await call(two, "0", callerid="0403330010")
        joined = await two.wait_for(lambda e: e.get("Event") == "QueueCallerJoin"
                                    and e.get("CallerIDNum") == "0403330010", 15)
        shown: dict[str, float] = {}
        while len(shown) < 2 and time.monotonic() - booted < 10:
            for instance in INSTANCES:
                b = await board(http, cluster, instance)
                if instance not in shown and joined["Uniqueid"] in waiting_ids(b) and all(
                        a["connected"] for a in b["ami"]["asterisks"]):
                    shown[instance] = time.monotonic() - booted
            await asyncio.sleep(0.1)
        assert set(shown) == {"a", "b"}, shown
        assert max(shown.values()) <= 5.0, shown
    finally:
        await two.close()
        inst.hang_up_all()


async def test_carrier_calls_through_kamailio_reach_both_asterisks(cluster, probes, tmp_path):
    sipp = "/usr/bin/sipp"
    assert cluster.kamailio is not None and cluster.kamailio.running
    marks = {ast: p.mark() for ast, p in probes.items()}
    proc = await asyncio.create_subprocess_exec(
        sipp, cluster.kamailio.address, "-sf", str(SIPP_DIR / "carrier.xml"),
        "-s", COMPANY_NUMBER, "-m", "2", "-l", "1", "-r", "10", "-d", str(HOLD_MS),
        "-i", "127.0.0.1", "-p", str(cluster.ports.spare(0)),
        "-mp", str(cluster.ports.spare(2)), "-nostdin", "-trace_err", "-timeout", "60s",
        cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-1000:]
    for ast, probe in probes.items():
        # One call each (round-robin), answered by the dialplan and sent to that Asterisk's
        # first instance.
        arrived = [e for e in probe.events[marks[ast]:] if e.get("Event") == "Newchannel"
                   and e.get("Channel", "").startswith("PJSIP/kamailio-")]
        assert len(arrived) == 1, ast
        first = "a" if ast == "ast1" else "b"
        entered = [e for e in probe.events[marks[ast]:] if e.get("Event") == "Newexten"
                   and e.get("Application") == "AGI"
                   and e.get("Uniqueid") == arrived[0]["Uniqueid"]]
        assert [e["AppData"].split("/")[2] for e in entered][:1] == [
            f"127.0.0.1:{cluster.ports.agi(first)}"]


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "vaihde.sandbox.cluster", "--name", NAME,
                           "--run-dir", str(cluster.run_dir), *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_from_another_process_stops_everything_the_cluster_started(cluster):
    """Last: as after a crash of whatever started it, the state in the run dir is enough."""
    status = _cli(cluster, "status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert all(a["running"] for a in state["asterisks"].values())
    assert [i["health"] for i in state["instances"].values()] == ["ok", "ok"]
    assert state["kamailio"]["running"] and state["postgres"]["running"]
    pids = [r["pid"] for r in json.loads(cluster.state_path.read_text())["processes"].values()]
    assert len(pids) == 3  # A, B and Kamailio
    down = _cli(cluster, "down")
    assert down.returncode == 0, down.stderr
    for part in ("vaihde A", "vaihde B", "kamailio", "Asterisk ast1", "Asterisk ast2",
                 "postgres"):
        assert part in down.stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
            f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    ports = cluster.ports
    for port in (ports.ami("ast1"), ports.ami("ast2"), ports.http("a"), ports.http("b"),
                 ports.agi("a"), ports.agi("b"), ports.postgres):
        assert not _listening(port), port
    again = _cli(cluster, "status", "--json")
    assert json.loads(again.stdout)["status"] == "down"
