"""Kamailio in front of two Asterisks (config/kamailio/kamailio.cfg, Debian's kamailio 5.6).

SIPp plays the carrier and sends INVITEs for the company number to Kamailio, which dispatches
them round-robin to the session's Asterisk (A) and a second sandbox Asterisk (B). No vaihde
service runs: both Asterisks take each caller straight to the operator path, where the test
operator phone answers. Each Asterisk's AMI shows which one got a call (a new PJSIP/kamailio
channel) and that its operator answered it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from amiprobe import AmiProbe, Message
from company import (
    BROKEN_MEDIA_PORT,
    BROKEN_PORT,
    CARRIER_MEDIA_PORT,
    CARRIER_PORT,
    COMPANY_NUMBER,
    KAMAILIO_PORT,
    SECOND_AMI_PORT,
    SECOND_SIP_PORT,
)

from vaihde.sandbox import Instance, InstanceSettings, SandboxError
from vaihde.sandbox.kamailio import Kamailio, KamailioSettings

pytestmark = pytest.mark.asterisk

SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
SIPP_DIR = Path(__file__).resolve().parents[1] / "sipp"
FROM_KAMAILIO = "PJSIP/kamailio-"
OPERATOR_PHONE = "Local/operator@vaihde-test-phones"  # the operators of both: answers at once
HOLD_MS = 2500  # the carrier's caller stays this long after the answer, then hangs up
FR_TIMER_MS = 2000  # the template's default: silence before the next Asterisk is tried
# The first call after an Asterisk stopped is answered by the other one within this, from the
# carrier's INVITE: Kamailio waits FR_TIMER_MS for the stopped one, then the other answers at
# once (measured 2.1 s).
FAILOVER_BOUND_S = FR_TIMER_MS / 1000 + 2.0


def second_settings(a: Instance) -> InstanceSettings:
    """Asterisk B: the session instance A's settings (dialplan, operators, queues) with its own
    name, ports and RTP range, and only the endpoint for Kamailio. Its AGI port is one where
    nothing listens, as A's."""
    return dataclasses.replace(
        a.settings, name=f"kam{SLOT}b", ami_port=SECOND_AMI_PORT, sip_port=SECOND_SIP_PORT,
        rtp_start=31000 + SLOT * 100, rtp_end=31099 + SLOT * 100,
        agi_url=f"agi://127.0.0.1:{a.agi_port + 30}",
        endpoints=[{"name": "kamailio", "contact": f"sip:kamailio@127.0.0.1:{KAMAILIO_PORT}"}],
    )


@pytest.fixture(scope="module")
def asterisk_b(asterisk: Instance) -> Iterator[Instance]:
    instance = Instance(second_settings(asterisk))
    try:
        instance.start(replace=True, tie_to_parent=True)
    except SandboxError as exc:
        pytest.fail(f"second sandbox Asterisk could not be started: {exc}", pytrace=False)
    atexit.register(instance.stop)
    try:
        yield instance
    finally:
        instance.stop()
        atexit.unregister(instance.stop)


class Side:
    """One Asterisk behind Kamailio and an AMI probe on it (reconnected after a restart)."""

    def __init__(self, label: str, instance: Instance) -> None:
        self.label = label
        self.instance = instance
        self.probe: AmiProbe | None = None

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.instance.sip_port}"

    async def connect(self) -> AmiProbe:
        await self.close()
        self.probe = await AmiProbe.connect(self.instance.ami_port, self.instance.driver_username,
                                            self.instance.driver_secret)
        return self.probe

    async def close(self) -> None:
        if self.probe is not None:
            await self.probe.close()
            self.probe = None

    def calls(self, since: int = 0) -> list[Message]:
        """Newchannel events of calls that came in from Kamailio."""
        assert self.probe is not None
        return [e for e in self.probe.events[since:]
                if e.get("Event") == "Newchannel" and e["Channel"].startswith(FROM_KAMAILIO)]

    def mark(self) -> int:
        assert self.probe is not None
        return self.probe.mark()

    async def answered_by_operator(self, call: Message, timeout: float = 10) -> None:
        """The caller's channel was answered and bridged with the operator's phone."""
        assert self.probe is not None
        channel = call["Channel"]
        dial = await self.probe.wait_for(
            lambda e: e.get("Event") == "DialBegin" and e.get("Channel") == channel
            and e.get("DestChannel", "").startswith(OPERATOR_PHONE), timeout)
        enter = await self.probe.wait_for(
            lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == dial["DestChannel"],
            timeout)
        await self.probe.wait_for(
            lambda e: e.get("Event") == "BridgeEnter" and e.get("Channel") == channel
            and e.get("BridgeUniqueid") == enter["BridgeUniqueid"], timeout)


@pytest.fixture
async def sides(asterisk: Instance, asterisk_b: Instance) -> AsyncIterator[tuple[Side, Side]]:
    """A and B, both running (a test may have stopped B), each with an AMI probe."""
    if not asterisk_b.running:
        asterisk_b.start(replace=True, tie_to_parent=True)
    a, b = Side("A", asterisk), Side("B", asterisk_b)
    await a.connect()
    await b.connect()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        for side in (a, b):
            if side.instance.running:
                side.instance.hang_up_all()


@pytest.fixture
def kamailio_for(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Starts Kamailio in front of the given Asterisks; stopped after the test."""
    started: list[Kamailio] = []

    def start(asterisks: list[Instance], ping_interval: int = 1,
              fr_inv_timer_ms: int = 10000) -> Kamailio:
        settings = KamailioSettings(
            name=f"kam{SLOT}", port=KAMAILIO_PORT, numbers=[COMPANY_NUMBER],
            asterisks=[f"127.0.0.1:{a.sip_port}" for a in asterisks],
            # A list, as a carrier with several signalling addresses: SIPp is the second.
            carrier_nets=["192.0.2.0/24", "127.0.0.1/32"], ping_interval=ping_interval,
            fr_timer_ms=FR_TIMER_MS, fr_inv_timer_ms=fr_inv_timer_ms,
        )
        kamailio = Kamailio(settings, tmp_path / "kamailio")
        started.append(kamailio)
        return kamailio.start(tie_to_parent=True)

    try:
        yield start
    finally:
        for kamailio in started:
            kamailio.stop()


async def carrier_calls(kamailio: Kamailio, count: int, cwd: Path,
                        scenario: str = "carrier.xml", *, trace: bool = False) -> str:
    """SIPp as the carrier: `count` calls to the company number through Kamailio, one after the
    other, each held HOLD_MS after the answer. Fails unless every call was answered (200 OK)
    and hung up cleanly (SIPp exits 0 only then). trace: returns the SIP messages SIPp sent and
    received."""
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed: apt-get install sip-tester"
    proc = await asyncio.create_subprocess_exec(
        sipp, kamailio.address, "-sf", str(SIPP_DIR / scenario), "-s", COMPANY_NUMBER,
        "-m", str(count), "-l", "1", "-r", "10", "-d", str(HOLD_MS),
        "-i", "127.0.0.1", "-p", str(CARRIER_PORT), "-mp", str(CARRIER_MEDIA_PORT),
        "-nostdin", "-trace_err", "-timeout", f"{30 + count * 10}s",
        *(["-trace_msg", "-message_file", "messages.log"] if trace else []),
        cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await proc.communicate()
    finally:
        if proc.returncode is None:  # cancelled: no SIPp left behind
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        errors = await asyncio.to_thread(_sipp_errors, cwd)
        pytest.fail(f"SIPp: not every call was answered (exit {proc.returncode}): "
                    f"{err.decode(errors='replace')[-1000:]}\n{errors}\n"
                    f"kamailio:\n{kamailio.log_tail()}", pytrace=False)
    if not trace:
        return ""
    return await asyncio.to_thread((cwd / "messages.log").read_text, errors="replace")


def _sipp_errors(cwd: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in cwd.glob("*errors.log"))


def failovers(kamailio: Kamailio, side: Side) -> int:
    """How often Kamailio gave up on `side` in the middle of a call (the template's log line)."""
    return kamailio.log_path.read_text(errors="replace").count(
        f"vaihde: Asterisk {side.uri} failed the call")


async def wait_state(kamailio: Kamailio, side: Side, state: str, timeout: float) -> float:
    """Seconds until Kamailio's dispatcher shows `side` in `state` (A active, I inactive)."""
    start = time.monotonic()
    while True:
        flags = (await asyncio.to_thread(kamailio.destinations)).get(side.uri, "")
        if flags.startswith(state):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"Asterisk {side.label} is {flags!r} in Kamailio after {timeout} s, "
                        f"not {state}", pytrace=False)
        await asyncio.sleep(0.1)


def who_got(a: Side, b: Side, since_a: int, since_b: int) -> list[str]:
    """Which Asterisk got each call from Kamailio, in the order the calls arrived."""
    arrivals = [(a.probe.time_of(e), a.label) for e in a.calls(since_a)]  # type: ignore[union-attr]
    arrivals += [(b.probe.time_of(e), b.label) for e in b.calls(since_b)]  # type: ignore[union-attr]
    return [label for _, label in sorted(arrivals)]


async def all_answered(side: Side, since: int) -> None:
    for call in side.calls(since):
        await side.answered_by_operator(call)


async def test_calls_are_spread_round_robin_over_the_asterisks_listed(
    sides, kamailio_for, tmp_path
):
    a, b = sides
    kamailio = kamailio_for([a.instance])
    since_a, since_b = a.mark(), b.mark()
    await carrier_calls(kamailio, 2, tmp_path)
    assert who_got(a, b, since_a, since_b) == ["A", "A"]
    # B is added as a site would: a line in dispatcher.list and `kamcmd dispatcher.reload`.
    await asyncio.to_thread(kamailio.set_asterisks, [f"127.0.0.1:{a.instance.sip_port}",
                                                     f"127.0.0.1:{b.instance.sip_port}"])
    await wait_state(kamailio, b, "A", 5)
    since_a, since_b = a.mark(), b.mark()
    await carrier_calls(kamailio, 4, tmp_path)
    order = who_got(a, b, since_a, since_b)
    assert sorted(order) == ["A", "A", "B", "B"], order
    assert order[0] != order[1] and order[1] != order[2] and order[2] != order[3], order
    await all_answered(a, since_a)
    await all_answered(b, since_b)
    # And taken out again: its line removed, reloaded.
    await asyncio.to_thread(kamailio.set_asterisks, [f"127.0.0.1:{a.instance.sip_port}"])
    since_a, since_b = a.mark(), b.mark()
    await carrier_calls(kamailio, 2, tmp_path)
    assert who_got(a, b, since_a, since_b) == ["A", "A"]
    assert failovers(kamailio, a) == failovers(kamailio, b) == 0


async def test_a_stopped_asterisk_is_passed_over_within_the_call_and_used_again_when_back(
    sides, kamailio_for, tmp_path
):
    a, b = sides
    kamailio = kamailio_for([a.instance, b.instance], ping_interval=1)
    await wait_state(kamailio, b, "A", 5)
    # Round-robin: after a call that A took, the next goes to B.
    for _ in range(2):
        since_a = a.mark()
        await carrier_calls(kamailio, 1, tmp_path)
        if a.calls(since_a):
            break
    assert a.calls(since_a), "two calls in a row and A got neither"
    # Pings paused, so that the next call, not an OPTIONS ping, is the first to find B gone.
    await asyncio.to_thread(kamailio.rpc, "dispatcher.ping_active", "0")
    await asyncio.to_thread(b.instance.stop)
    await b.close()

    # 1. The first call after the stop goes to B, gets nothing back within FR_TIMER_MS, and
    #    the same INVITE goes on to A, which answers.
    since_a = a.mark()
    started = time.monotonic()
    await carrier_calls(kamailio, 1, tmp_path)
    [call] = a.calls(since_a)
    up = a.probe.find(  # type: ignore[union-attr]
        lambda e: e.get("Event") == "Newstate" and e.get("Channel") == call["Channel"]
        and e.get("ChannelStateDesc") == "Up", since_a)
    assert up is not None, "A never answered the call"
    took = a.probe.time_of(up) - started  # type: ignore[union-attr]
    assert took <= FAILOVER_BOUND_S, f"the first call was answered by A only after {took:.2f} s"
    await a.answered_by_operator(call)
    assert failovers(kamailio, b) == 1
    assert (await asyncio.to_thread(kamailio.destinations))[b.uri].startswith("I")

    # 2. Later calls are not offered to B at all (no further failover), all reach A.
    await asyncio.to_thread(kamailio.rpc, "dispatcher.ping_active", "1")
    since_a = a.mark()
    await carrier_calls(kamailio, 3, tmp_path)
    assert len(a.calls(since_a)) == 3
    await all_answered(a, since_a)
    assert failovers(kamailio, b) == 1
    assert failovers(kamailio, a) == 0

    # 3. B comes back: its next answered ping makes it active, and it gets calls again.
    # In this (the main) thread: tie_to_parent ties Asterisk to the thread that started it.
    b.instance.start(replace=True, tie_to_parent=True)
    await b.connect()
    back = await wait_state(kamailio, b, "A", 5)
    since_a, since_b = a.mark(), b.mark()
    await carrier_calls(kamailio, 2, tmp_path)
    assert sorted(who_got(a, b, since_a, since_b)) == ["A", "B"], f"after {back:.1f} s"
    await all_answered(a, since_a)
    await all_answered(b, since_b)


async def test_pings_take_a_stopped_asterisk_out_before_any_call_finds_it(
    sides, kamailio_for, tmp_path
):
    a, b = sides
    kamailio = kamailio_for([a.instance, b.instance], ping_interval=1)
    await wait_state(kamailio, b, "A", 5)
    await asyncio.to_thread(b.instance.stop)
    await b.close()
    # A ping within 1 s, unanswered for FR_TIMER_MS: B is inactive with no call having tried it.
    await wait_state(kamailio, b, "I", 1 + FR_TIMER_MS / 1000 + 2)
    since_a = a.mark()
    await carrier_calls(kamailio, 2, tmp_path)
    assert len(a.calls(since_a)) == 2
    await all_answered(a, since_a)
    assert failovers(kamailio, b) == 0


async def test_the_asterisk_s_hangup_reaches_the_carrier_through_kamailio(
    sides, kamailio_for, tmp_path
):
    """The operator hangs up first: Asterisk's BYE follows the recorded route back through
    Kamailio to the carrier, which answers it (SIPp fails the call unless the BYE arrives)."""
    a, _ = sides
    kamailio = kamailio_for([a.instance])
    since_a = a.mark()
    carrier = asyncio.create_task(
        carrier_calls(kamailio, 1, tmp_path, "carrier-hung-up.xml", trace=True))
    try:
        call = await a.probe.wait_for(  # type: ignore[union-attr]
            lambda e: e.get("Event") == "Newchannel"
            and e.get("Channel", "").startswith(FROM_KAMAILIO), 10, since=since_a)
        await a.answered_by_operator(call)
        await a.probe.action("Hangup", Channel=call["Channel"])  # type: ignore[union-attr]
        messages = await asyncio.wait_for(asyncio.shield(carrier), 10)
    finally:
        if not carrier.done():
            carrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await carrier
    # The BYE came through Kamailio: its top Via is Kamailio's, Asterisk's below it.
    bye = messages[messages.index("BYE sip:"):]
    vias = [line.split()[2].split(";")[0] for line in bye.split("\n\n", 1)[0].splitlines()
            if line.lower().startswith("via:")]
    assert vias[:2] == [kamailio.address, f"127.0.0.1:{a.instance.sip_port}"], vias


@pytest.mark.parametrize(("scenario", "code"), [
    ("asterisk-503.xml", "503"),  # answers 503 at once
    ("asterisk-stuck.xml", "408"),  # 100 Trying, then nothing until FR_INV_TIMER
])
async def test_an_asterisk_that_fails_the_call_is_passed_over_within_the_call(
    sides, kamailio_for, tmp_path, scenario, code
):
    """A broken peer (SIPp standing in for an Asterisk that fails) and A in the set: of two
    calls, the one offered to the broken peer first goes on to A within the call, and the peer
    is marked down, so the other call goes to A directly. Both are answered."""
    a, _ = sides
    broken = f"127.0.0.1:{BROKEN_PORT}"
    sipp = shutil.which("sipp")
    assert sipp is not None
    peer = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(BROKEN_PORT),
        "-mp", str(BROKEN_MEDIA_PORT), "-m", "1", "-nostdin", "-trace_err", "-timeout", "60s",
        cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        # Long ping interval and pings off: the peer answers calls only, so a call finds out.
        kamailio = kamailio_for([a.instance], ping_interval=600, fr_inv_timer_ms=3000)
        await asyncio.to_thread(kamailio.rpc, "dispatcher.ping_active", "0")
        await asyncio.to_thread(kamailio.set_asterisks,
                                [broken, f"127.0.0.1:{a.instance.sip_port}"])
        since_a = a.mark()
        await carrier_calls(kamailio, 2, tmp_path)
        assert len(a.calls(since_a)) == 2
        await all_answered(a, since_a)
        log = kamailio.log_path.read_text(errors="replace")
        assert log.count(f"vaihde: Asterisk sip:{broken} failed the call ({code})") == 1, (
            kamailio.log_tail())
        assert (await asyncio.to_thread(kamailio.destinations))[f"sip:{broken}"].startswith("I")
        # The peer saw its call through (stuck: the CANCEL that ended its wait, and the ACK).
        assert await asyncio.wait_for(peer.wait(), 10) == 0
    finally:
        if peer.returncode is None:
            peer.kill()
            await peer.wait()


def _send(source: str, kamailio: Kamailio, method: str, user: str, *, max_forwards: int = 70,
          cseq_method: str = "") -> str:
    """One request from `source` (an address on loopback) straight to Kamailio; the status line
    of its final answer, or "" when none came within 5 s."""
    host, port = kamailio.settings.host, kamailio.settings.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(5)
        lport = sock.getsockname()[1]
        uri = f"sip:{user}@{host}:{port}" if user else f"sip:{host}:{port}"
        request = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{lport};branch=z9hG4bK-{method}-{time.monotonic_ns()}\r\n"
            f"From: <sip:0401112222@{source}>;tag=t{lport}\r\n"
            f"To: <{uri}>\r\n"
            f"Call-ID: {method}-{lport}@{source}\r\n"
            f"CSeq: 1 {cseq_method or method}\r\n"
            f"Contact: <sip:0401112222@{source}:{lport}>\r\n"
            f"Max-Forwards: {max_forwards}\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (host, port))
        while True:
            try:
                line = sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]
            except TimeoutError:
                return ""
            if not line.startswith("SIP/2.0 1"):  # skip 100 Trying
                return line


@pytest.mark.parametrize(("source", "method", "user", "extra", "answer"), [
    ("127.0.0.1", "INVITE", "0209999999", {}, "SIP/2.0 404"),  # not a company number
    ("127.0.0.2", "INVITE", COMPANY_NUMBER, {}, "SIP/2.0 403"),  # not the carrier's address
    ("127.0.0.1", "REGISTER", "anna", {}, "SIP/2.0 403"),  # phones register to their Asterisk
    ("127.0.0.1", "MESSAGE", COMPANY_NUMBER, {}, "SIP/2.0 405"),  # only calls
    ("127.0.0.1", "INVITE", COMPANY_NUMBER, {"max_forwards": 0}, "SIP/2.0 483"),  # a loop
    # Malformed (the CSeq names another method): the sanity checks refuse it.
    ("127.0.0.1", "INVITE", COMPANY_NUMBER, {"cseq_method": "BYE"}, "SIP/2.0 400"),
    ("127.0.0.1", "OPTIONS", "", {}, "SIP/2.0 200"),  # the carrier's keepalive to Kamailio
])
async def test_only_the_carrier_s_calls_to_company_numbers_pass(
    sides, kamailio_for, source, method, user, extra, answer
):
    a, b = sides
    kamailio = kamailio_for([a.instance, b.instance])
    since_a, since_b = a.mark(), b.mark()
    got = await asyncio.to_thread(_send, source, kamailio, method, user, **extra)
    assert got.startswith(answer), got
    await asyncio.sleep(0.3)
    assert a.calls(since_a) == [] and b.calls(since_b) == []
