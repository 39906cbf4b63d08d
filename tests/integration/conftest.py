"""Fixtures for tests against a real Asterisk from the sandbox chroot.

`asterisk` (session): the running instance `test`; `ami`: a logged-in AmiProbe; `sipp_phone`: SIPp
answering as PJSIP/sipp-phone. If Asterisk cannot be built or started, these tests fail: never skip.
Every test runs with the service's own logging configuration (`vaihde.logs.setup`, INFO), as
`vaihde serve` does, so a log line that breaks only at INFO breaks here too.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from amiprobe import AmiProbe  # tests/integration is on sys.path (no package)
from company import KAMAILIO_PORT, REG_PASSWORD, SOFT_OFF_PORT, TEAM_QUEUE, TRUNK_PORT

from vaihde import logs
from vaihde.sandbox import Instance, InstanceSettings, SandboxError, build

REPO = Path(__file__).resolve().parents[2]
TEST_DIALPLAN = REPO / "tests" / "asterisk" / "vaihde-test.conf"

# VAIHDE_TEST_SLOT=N (0-9) lets several test runs share one machine: each slot has its own
# instance name and ports.
SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
INSTANCE_NAME = "test" if SLOT == 0 else f"test{SLOT}"
AMI_PORT = 15038 + SLOT * 100
SIP_PORT = 15060 + SLOT * 100
AGI_PORT = 14573 + SLOT * 100  # nothing listens here unless a test starts a FastAGI server
SIPP_PORT = 15070 + SLOT * 100
SIPP_MEDIA_PORT = 15072 + SLOT * 100
RTP_START = 21000 + SLOT * 1000
OPERATORS = "Local/operator@vaihde-test-phones"
# A second Asterisk for the tests of several Asterisks (test_cluster_ami.py), within the slot's
# own ports (not the +50 ones of the browser tests' instance): `peer_test_settings()`. The two
# reach each other's phones through a PJSIP trunk each (the shipped [vaihde-reach] context on
# the receiving side).
PEER_NAME = f"{INSTANCE_NAME}b"
PEER_AMI_PORT = 15084 + SLOT * 100
PEER_SIP_PORT = 15086 + SLOT * 100
PEER_RTP_START = 33000 + SLOT * 100
TRUNK_TO_A = "peer-a"  # B's endpoint for calls to A
TRUNK_TO_B = "peer-b"  # A's endpoint for calls to B (and for calls from B)

ASTERISK_FIXTURES = {"asterisk", "ami", "sipp_phone", "clean_channels"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the sandbox is an asterisk test even if someone forgot the marker, so
    # `-m "not asterisk"` never starts Asterisk.
    for item in items:
        if ASTERISK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(scope="session", autouse=True)
def service_logging() -> Iterator[None]:
    """The logging `vaihde serve` sets up (cli.cmd_serve: `logs.setup(settings.log_format)`,
    text at INFO); pytest's own capture handlers are kept, so failures still show the lines."""
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level
    logs.setup("text", logging.INFO)
    for handler in kept:
        root.addHandler(handler)
    try:
        yield
    finally:
        root.handlers[:] = kept
        root.setLevel(level)


@pytest.fixture(autouse=True)
def no_shadowed_log_keys(service_logging: None) -> Iterator[None]:
    """A log call whose `extra=` shadows a LogRecord attribute fails the test that made it (the
    guard in logs.setup keeps the service running, and counts it)."""
    before = dict(logs.collisions)
    yield
    new = {k: n - before.get(k, 0) for k, n in logs.collisions.items() if n > before.get(k, 0)}
    assert not new, f"log extra= keys shadowing LogRecord attributes (logger: key): {new}"


def sandbox_test_settings() -> InstanceSettings:
    return InstanceSettings(
        name=INSTANCE_NAME,
        ami_port=AMI_PORT,
        sip_port=SIP_PORT,
        rtp_start=RTP_START,
        rtp_end=RTP_START + 999,
        ami_secret=secrets.token_urlsafe(16),
        # The probe places calls as the test driver; the vaihde user has the shipped privileges.
        driver_secret=secrets.token_urlsafe(16),
        agi_url=f"agi://127.0.0.1:{AGI_PORT}",
        operators=OPERATORS,
        operator_timeout=20,
        endpoints=[
            {"name": "sipp-phone", "contact": f"sip:sipp@127.0.0.1:{SIPP_PORT}"},
            {"name": "soft-off", "contact": f"sip:soft@127.0.0.1:{SOFT_OFF_PORT}", "qualify": 1},
            {"name": "reg-phone", "password": REG_PASSWORD},
            {"name": "trunk", "contact": f"sip:trunk@127.0.0.1:{TRUNK_PORT}"},
            # Calls Kamailio forwards (test_kamailio.py), identified by its address.
            {"name": "kamailio", "contact": f"sip:kamailio@127.0.0.1:{KAMAILIO_PORT}"},
            # The second Asterisk (only started by the tests of several Asterisks).
            {"name": TRUNK_TO_B, "contact": f"sip:127.0.0.1:{PEER_SIP_PORT}",
             "context": "vaihde-reach"},
        ],
        team_queues=[TEAM_QUEUE],
        extra_dialplan=[str(TEST_DIALPLAN)],
    )


def peer_test_settings(first: InstanceSettings) -> InstanceSettings:
    """A second Asterisk beside `first` (the slot's own): the same dialplan, callers and
    Local phones, FastAGI to the same service (its port and secret), a trunk to `first`, and
    none of first's SIP phones (a phone lives on one Asterisk)."""
    return InstanceSettings(
        name=PEER_NAME,
        ami_port=PEER_AMI_PORT,
        sip_port=PEER_SIP_PORT,
        rtp_start=PEER_RTP_START,
        rtp_end=PEER_RTP_START + 99,
        ami_secret=secrets.token_urlsafe(16),
        driver_secret=secrets.token_urlsafe(16),
        agi_url=first.agi_url,
        agi_secret=first.agi_secret,
        operators=OPERATORS,
        operator_timeout=20,
        endpoints=[{"name": TRUNK_TO_A, "contact": f"sip:127.0.0.1:{first.sip_port}",
                    "context": "vaihde-reach"}],
        team_queues=[TEAM_QUEUE],
        extra_dialplan=[str(TEST_DIALPLAN)],
    )


def _progress(line: str) -> None:
    # Past pytest's capture: a first build takes a minute and should not look like a hang.
    print(line, file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Instance]:
    """The sandbox instance `test`, started once per session and always stopped at the end."""
    instance = Instance(sandbox_test_settings())
    problem = None
    try:
        build(log=_progress)
        # replace: a test run killed with SIGKILL may have left one; tie_to_parent: if this one
        # is killed so, the kernel stops Asterisk too.
        instance.start(replace=True, tie_to_parent=True)
    except SandboxError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"sandbox Asterisk could not be started: {problem}", pytrace=False)
    atexit.register(instance.stop)  # in case the session ends without running teardown
    try:
        yield instance
    finally:
        instance.stop()
        atexit.unregister(instance.stop)



@pytest.fixture
def clean_channels(asterisk: Instance) -> Iterator[None]:
    """Hangs up every channel after the test, so calls never leak into the next one."""
    yield
    asterisk.hang_up_all()


@pytest.fixture
async def ami(asterisk: Instance, clean_channels: None) -> AsyncIterator[AmiProbe]:
    """An AmiProbe logged in as the test instance's driver: it places the simulated calls and
    sees every event (the vaihde user may not Originate: tests/integration/test_ami_user.py)."""
    probe = await AmiProbe.connect(asterisk.ami_port, asterisk.driver_username,
                                   asterisk.driver_secret)
    try:
        yield probe
    finally:
        await probe.close()


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture
def sipp_phone(asterisk: Instance, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """SIPp as a UAS on 127.0.0.1:15070: answers every call to PJSIP/sipp-phone."""
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("sipp is not installed: apt-get install sip-tester", pytrace=False)
    if _udp_port_taken(SIPP_PORT):
        pytest.fail(f"udp/{SIPP_PORT} is taken: a stray sipp?", pytrace=False)
    cmd = [
        sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(SIPP_PORT),
        "-mi", "127.0.0.1", "-mp", str(SIPP_MEDIA_PORT),
        "-nostdin", "-aa", "-trace_err",
        "-timeout", "300s",  # a leaked SIPp still goes away by itself
    ]  # fmt: skip
    out_path = tmp_path / "sipp.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 5
        while not _udp_port_taken(SIPP_PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = out_path.read_bytes()[-2000:].decode(errors="replace")
                pytest.fail(f"sipp did not start listening: {tail}", pytrace=False)
            time.sleep(0.02)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def vaihde(asterisk: Instance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The vaihde service on the test instance's FastAGI port, with the test company."""
    from company import start_vaihde

    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    service = await start_vaihde(asterisk, tmp_path)
    try:
        yield service
    finally:
        await service.stop()
