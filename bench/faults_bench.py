"""Benchmark: faults under real calls through the sandbox Asterisk and `vaihde serve` in its own
process: the service frozen (SIGSTOP) or killed (kill -9) at random points of the menu, the
database stopped while calls arrive, Asterisk restarted under open consoles, kill -9 while callers
leave messages; writes bench/results/faults.json. See bench/README.md ("faults").

Run: bench/run faults   (or .venv/bin/python bench/faults_bench.py --help); needs root, as the
integration tests do, to run the sandbox Asterisk and a private PostgreSQL cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

import faults_measure as fm  # bench/ is on sys.path: it is this script's directory
from calls_bench import machine_busy_s, service_log_summary
from calls_measure import event_time, summary_ms
from vaihde.company import load_company
from vaihde.company.apply import apply_company
from vaihde.db import open_database
from vaihde.db.migrate import upgrade_async
from vaihde.presence.model import Source, State
from vaihde.presence.store import set_availability
from vaihde.sandbox import Instance, InstanceSettings, SandboxError, build
from vaihde.sandbox.service import ServiceProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "faults.json"
DIALPLAN = HERE / "faults.conf"
COMPANY = HERE / "faults-company.yaml"
COMPANY_NUMBER = "0201234567"
PHONES = "faults-phones"
OPERATOR = f"Local/operator@{PHONES}"
QUEUE = "vaihde-switchboard"
GREETING = "hello-world"  # the menu's greeting sound (bench/faults-company.yaml)
MENU_PROMPT = "beep"  # the menu's prompt sound: any other GET DATA is the "is away" offer
DTMF_MS = 100
CONSOLE_USERS = ("faults-op1", "faults-op2")

# Targets of issue 9, section 2.
SIGSTOP_RESCUE_MAX_MS = 3000
KILL9_RESCUE_MAX_MS = 2000
RESYNC_MAX_S = 10.0
# Longer than the service's AMI reconnect_max (10 s when these figures were first taken; 2 s
# since vaihde.service.AMI_RETRY_MAX_S), after which a session up resets its backoff.
AMI_SETTLE_S = 10.5

# Who is away (set in the presence store before the service starts): Bob on vacation without a
# delegate (his offer: 2 message, 3 callback), Erik in a meeting with Carl as delegate (offer 1).
AWAY: dict[str, tuple[State, timedelta]] = {
    "bob": (State.VACATION, timedelta(days=7)),
    "erik": (State.MEETING, timedelta(hours=3)),
}
# Menu key → (phone that must ring, offer key that reaches it or "").
EMPLOYEE_KEYS: dict[str, tuple[str, str]] = {
    "1": ("anna", ""), "3": ("carl", ""), "4": ("dora", ""), "6": ("carl", "1"),
}


def log(line: str) -> None:
    print(line, flush=True)


def default_slot() -> int | None:
    value = os.environ.get("VAIHDE_TEST_SLOT", "")
    return int(value) if value.isdigit() else None


# --- Asterisk ----------------------------------------------------------------------------------


def bench_manager_conf(manager_conf: str, secret: str) -> str:
    """The sandbox's manager.conf plus the benchmark's own AMI user: it reads the `agi` class
    (AGIExecStart/End), `dialplan` (Newexten: when a channel enters and leaves AGI()), `agent`
    (QueueCallerJoin), may run CoreShowChannels (`reporting`); every event carries Asterisk's own
    timestamp, so no figure depends on when the benchmark read it."""
    general = "[general]\n"
    if general not in manager_conf:
        raise SandboxError("manager.conf has no [general] section")
    text = manager_conf.replace(general, general + "timestampevents = yes\n", 1)
    return text + (
        "\n[bench]\n"
        f"secret = {secret}\n"
        "deny = 0.0.0.0/0.0.0.0\n"
        "permit = 127.0.0.1/255.255.255.255\n"
        "read = call,dtmf,agi,agent,user,originate,dialplan\n"
        "write = call,originate,agent,reporting\n"
        "writetimeout = 5000\n"
    )


class FaultsInstance(Instance):
    def __init__(self, settings: InstanceSettings, bench_secret: str) -> None:
        super().__init__(settings)
        self.bench_secret = bench_secret

    def config_files(self) -> dict[str, str]:
        files = super().config_files()
        files["manager.conf"] = bench_manager_conf(files["manager.conf"], self.bench_secret)
        return files


class Ami:
    """A bare AMI connection: actions (with their event lists), and every event appended to a
    shared list and handed to the listeners. A header that repeats (ChanVariable) keeps every
    value. Shares nothing with vaihde.ami, which it checks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 events: list[dict[str, Any]]) -> None:
        self._reader, self._writer = reader, writer
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self.events = events
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, port: int, username: str, secret: str, events: list[dict[str, Any]],
                      *, with_events: bool = True) -> Ami:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        ami = cls(reader, writer, events)
        await asyncio.wait_for(reader.readline(), 5)  # banner
        ami._task = asyncio.create_task(ami._read())
        response = await ami.action("Login", Username=username, Secret=secret,
                                    Events="on" if with_events else "off")
        if response.get("Response") != "Success":
            raise SandboxError(f"AMI login as {username} failed: {response}")
        return ami

    @staticmethod
    def parse(block: str) -> dict[str, Any]:
        msg: dict[str, Any] = {}
        for line in block.split("\r\n"):
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            if key in msg:
                old = msg[key]
                msg[key] = [*old, value] if isinstance(old, list) else [old, value]
            else:
                msg[key] = value
        return msg

    async def _read(self) -> None:
        buffer = ""
        try:
            while chunk := await self._reader.read(262144):
                received = time.time()
                buffer += chunk.decode(errors="replace")
                *blocks, buffer = buffer.split("\r\n\r\n")
                for block in blocks:
                    msg = self.parse(block)
                    action_id = str(msg.get("ActionID", ""))
                    if "Event" in msg:
                        if action_id in self._lists:  # part of an action's event list
                            self._lists[action_id].append(msg)
                            if msg.get("EventList") == "Complete":
                                fut = self._pending.pop(action_id, None)
                                if fut is not None and not fut.done():
                                    fut.set_result({"events": self._lists.pop(action_id)})
                            continue
                        msg["_received"] = received
                        self.events.append(msg)
                        for listener in self.listeners:
                            listener(msg)
                    elif action_id in self._lists:
                        if msg.get("Response") != "Success":
                            fut = self._pending.pop(action_id, None)
                            self._lists.pop(action_id, None)
                            if fut is not None and not fut.done():
                                fut.set_result(msg)
                    else:
                        fut = self._pending.pop(action_id, None)
                        if fut is not None and not fut.done():
                            fut.set_result(msg)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("AMI connection closed"))

    async def action(self, name: str, timeout: float = 10, listing: bool = False,
                     **fields: str) -> dict[str, Any]:
        """One action; `listing`: the reply is {"events": [...]} of its event list."""
        if self.closed.is_set():
            raise ConnectionError("AMI connection closed")
        action_id = f"faults-{next(self._ids)}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        if listing:
            self._lists[action_id] = []
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(Exception):
                await self.action("Logoff", timeout=2)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task


# --- callers -----------------------------------------------------------------------------------


def _left(e: Mapping[str, Any]) -> bool:
    """The call has left the menu: rescued to the operators, ringing a phone, or gone."""
    return e.get("Event") in ("QueueCallerJoin", "DialBegin", "Hangup")


@dataclass
class Call:
    label: str
    call_id: str  # the leg into vaihde-inbound: the service's call id (VAIHDE_CALL_ID)
    origin_id: str  # the caller's own leg: keys are played on it
    channel: str = ""
    call_channel: str = ""
    linkedid: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    originated: float | None = None
    failures: list[str] = field(default_factory=list)

    async def wait(self, pred: Callable[[Mapping[str, Any]], bool], timeout: float,
                   *, abort: Callable[[Mapping[str, Any]], bool] | None = None,
                   ) -> dict[str, Any] | None:
        """The first of this call's events (so far or to come) that `pred` accepts; None after
        `timeout`, or at an event `abort` accepts first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while True:
            while seen < len(self.events):
                e = self.events[seen]
                seen += 1
                if pred(e):
                    return e
                if abort is not None and abort(e):
                    return None
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return None

    async def command(self, verb: str, nth: int = 1, timeout: float = 20,
                      contains: str = "", excludes: str = "") -> dict[str, Any] | None:
        """The AGIExecStart of the `nth` `verb` command (whose text has `contains` and not
        `excludes`) Asterisk ran for this call; None if the call left the menu first."""
        count = 0

        def pred(e: Mapping[str, Any]) -> bool:
            nonlocal count
            text = str(e.get("Command", ""))
            if e.get("Event") == "AGIExecStart" and e.get("Uniqueid") == self.call_id and (
                text.upper().startswith(verb) and contains in text
                and not (excludes and excludes in text)
            ):
                count += 1
                return count == nth
            return False

        return await self.wait(pred, timeout, abort=_left)

    async def ended(self, timeout: float) -> bool:
        return await self.wait(lambda e: e.get("Event") == "Hangup"
                               and e.get("Uniqueid") == self.call_id, timeout) is not None


class Callers:
    """Simulated callers: AMI Originate of Local/<number>@vaihde-inbound/n into [faults-caller];
    keys with AMI PlayDTMF on the caller's own leg, through a pool of AMI sessions (PlayDTMF
    holds its session for the tone's length)."""

    def __init__(self, id_prefix: str = "") -> None:
        # With several Asterisks a call id begins with its Asterisk's systemname (and "-"), as
        # Asterisk's own Uniqueids do: vaihde tells the Asterisks' calls apart by it.
        self.id_prefix = id_prefix
        self.ami: Ami | None = None
        self.keypads: asyncio.Queue[Ami] = asyncio.Queue()
        self.by_uid: dict[str, Call] = {}
        self.by_link: dict[str, Call] = {}
        self.counter = itertools.count(1)

    def attach(self, ami: Ami, keypads: list[Ami]) -> None:
        self.ami = ami
        ami.listeners.append(self.on_event)
        self.keypads = asyncio.Queue()
        for keypad in keypads:
            self.keypads.put_nowait(keypad)

    def on_event(self, e: Mapping[str, Any]) -> None:
        uid = str(e.get("Uniqueid", ""))
        call = self.by_uid.get(uid)
        if call is None and e.get("Event") == "UserEvent":
            call = self.by_link.get(str(e.get("Linkedid", "")))
        if call is None:
            return
        if e.get("Event") == "Newchannel":
            if uid == call.origin_id:
                call.channel = str(e.get("Channel", ""))
            else:
                call.call_channel = str(e.get("Channel", ""))
            call.linkedid = str(e.get("Linkedid", ""))
            self.by_link[call.linkedid] = call
        call.events.append(dict(e))
        call.changed.set()

    async def originate(self, label: str, *, number: str = COMPANY_NUMBER,
                        context: str = "vaihde-inbound", then: str = "faults-caller",
                        callerid: str = "") -> Call:
        n = next(self.counter)
        base = f"{self.id_prefix}f.{label}.{n:04d}"
        # Neither id may be a prefix of another: Asterisk's lookup by uniqueid matches prefixes.
        call = Call(label, f"{base}.c", f"{base}.o")
        self.by_uid[call.call_id] = call
        self.by_uid[call.origin_id] = call
        assert self.ami is not None
        caller = callerid or f"0401{n:06d}"
        call.originated = time.time()
        try:
            response = await self.ami.action(
                "Originate", Channel=f"Local/{number}@{context}/n", Context=then, Exten="s",
                Priority="1", Async="true", Timeout="30000",
                CallerID=f'"Faults Caller {n}" <{caller}>',
                ChannelId=call.origin_id, OtherChannelId=call.call_id,
            )
        except (TimeoutError, ConnectionError) as exc:
            call.failures.append(f"originate: {exc!r}")
            return call
        if response.get("Response") != "Success":
            call.failures.append(f"originate: {response.get('Message')}")
        return call

    async def press(self, call: Call, key: str) -> float:
        """Play `key` on the caller's leg; returns when it was sent (wall clock)."""
        keypad = await self.keypads.get()
        sent = time.time()
        try:
            response = await keypad.action("PlayDTMF", Channel=call.channel, Digit=key,
                                           Duration=str(DTMF_MS))
            if response.get("Response") != "Success":
                call.failures.append(f"PlayDTMF {key}: {response.get('Message')}")
        except (TimeoutError, ConnectionError) as exc:
            call.failures.append(f"PlayDTMF {key}: {exc!r}")
        finally:
            self.keypads.put_nowait(keypad)
        return sent


# --- PostgreSQL --------------------------------------------------------------------------------


class Postgres:
    """The benchmark's private cluster (scripts/postgres) and its database."""

    def __init__(self, name: str, port: int, database: str = "faults_bench") -> None:
        self.name, self.port, self.database = name, port, database

    def _run(self, action: str) -> str:
        env = {**os.environ, "VAIHDE_PG_PORT": str(self.port)}
        result = subprocess.run([str(ROOT / "scripts" / "postgres"), "--name", self.name, action],
                                env=env, capture_output=True, text=True, timeout=180)
        if result.returncode not in (0, 3):
            raise SandboxError(f"scripts/postgres {action}: {result.stderr.strip()}")
        return result.stdout.strip()

    async def run(self, action: str) -> str:
        return await asyncio.to_thread(self._run, action)

    @property
    def dsn(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    async def fresh_database(self) -> None:
        import asyncpg

        admin = await asyncpg.connect(f"{self.dsn}/postgres")
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {self.database}")
        finally:
            await admin.close()

    async def answers(self) -> bool:
        import asyncpg

        try:
            conn = await asyncio.wait_for(asyncpg.connect(f"{self.dsn}/{self.database}"), 2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            return await conn.fetchval("SELECT 1") == 1
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()


# --- the rig: Asterisk, PostgreSQL, the service, the benchmark's AMI ----------------------------


class Rig:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        base = args.port_base
        self.args = args
        self.tmp = tmp
        self.instance = FaultsInstance(
            InstanceSettings(
                name=args.name, ami_port=base + 40, sip_port=base + 62,
                rtp_start=args.rtp_start, rtp_end=args.rtp_start + 99,
                agi_url=f"agi://127.0.0.1:{base + 75}", operators=OPERATOR,
                operator_timeout=20, extra_dialplan=[str(DIALPLAN)],
            ),
            bench_secret=secrets.token_urlsafe(16),
        )
        self.http_port = base + 82
        self.pg = Postgres(args.name, base + 52)
        self.settings_path = tmp / "settings.yaml"
        self.log_path = tmp / "vaihde.log"
        self.service: ServiceProcess | None = None
        self.events: list[dict[str, Any]] = []
        self.ami: Ami | None = None
        self.keypads: list[Ami] = []
        self.callers = Callers()
        self.passwords: dict[str, str] = {}
        self.service_starts: list[float] = []  # seconds from start() to healthy

    async def start(self) -> None:
        await asyncio.to_thread(build, log=log)
        log(f"Asterisk {self.args.name}: AMI {self.instance.ami_port}, FastAGI "
            f"{self.instance.agi_port}; vaihde HTTP {self.http_port}; PostgreSQL {self.pg.port}; "
            f"work dir {self.tmp}")
        self.instance.start(replace=True, tie_to_parent=True)
        await self.pg.run("start")
        await self.pg.fresh_database()
        await self.prepare_database()
        self.settings_path.write_text(self.instance.service_settings(
            database_url=self.pg.url, company_file=str(COMPANY), http_port=self.http_port,
        ))
        for user in CONSOLE_USERS:
            self.passwords[user] = secrets.token_urlsafe(12)
            await self.vaihde_cli(["user", "add", user, "--role", "operator", "--password-stdin",
                                   "--settings", str(self.settings_path)],
                                  stdin=self.passwords[user] + "\n")
        await self.start_service()
        await self.connect_ami()

    async def prepare_database(self) -> None:
        company = load_company(COMPANY)
        db = open_database(self.pg.url)
        try:
            await upgrade_async(db.engine)
            await apply_company(db.sessions, company, applied_by="faults bench",
                                source_name=str(COMPANY))
            now = datetime.now(UTC)
            async with db.sessions() as session, session.begin():
                for employee, (state, length) in AWAY.items():
                    await set_availability(session, employee, state, source=Source.MANUAL,
                                           set_by="faults bench", until=now + length)
        finally:
            await db.close()

    async def vaihde_cli(self, argv: list[str], stdin: str = "") -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAIHDE_")}

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "vaihde", *argv], input=stdin,
                                  capture_output=True, text=True, env=env, timeout=120,
                                  cwd=self.tmp)

        result = await asyncio.to_thread(run)
        if result.returncode != 0:
            raise SandboxError(f"vaihde {' '.join(argv[:3])}: {result.stderr.strip()}")
        return result.stdout

    async def connect_ami(self) -> None:
        for old in [self.ami, *self.keypads]:
            if old is not None:
                await old.close()
        port, secret = self.instance.ami_port, self.instance.bench_secret
        self.ami = await Ami.connect(port, "bench", secret, self.events)
        self.keypads = [await Ami.connect(port, "bench", secret, [], with_events=False)
                        for _ in range(self.args.keypads)]
        self.callers.attach(self.ami, self.keypads)

    async def start_service(self) -> float:
        started = time.monotonic()
        self.service = ServiceProcess(self.settings_path, self.log_path)
        self.service.start()
        await self.service.wait_healthy(self.http_port)
        took = time.monotonic() - started
        self.service_starts.append(took)
        return took

    def freeze(self) -> float:
        assert self.service is not None
        at = time.time()
        self.service.freeze()
        return at

    def thaw(self) -> None:
        assert self.service is not None
        self.service.thaw()

    def kill(self) -> float:
        """SIGKILL; returns when it was sent (the process is reaped later, off the loop)."""
        assert self.service is not None and self.service.proc is not None
        at = time.time()
        os.kill(self.service.proc.pid, signal.SIGKILL)
        return at

    def terminate(self) -> float:
        assert self.service is not None and self.service.proc is not None
        at = time.time()
        self.service.proc.send_signal(signal.SIGTERM)
        return at

    async def reap(self, timeout: float = 15.0) -> int | None:
        assert self.service is not None and self.service.proc is not None
        proc = self.service.proc
        try:
            return await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return await asyncio.to_thread(proc.wait)

    async def hang_up_all(self) -> None:
        """Every channel of the instance hung up, and gone (between rounds)."""
        await asyncio.to_thread(self.instance.hang_up_all, 10.0)

    async def setvar(self, name: str, value: str) -> None:
        assert self.ami is not None
        await self.ami.action("Setvar", Variable=name, Value=value)

    async def stop(self) -> None:
        for session in [*self.keypads, self.ami]:
            if session is not None:
                await session.close()
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)
        await asyncio.to_thread(self.instance.stop)
        with contextlib.suppress(SandboxError):
            await self.pg.run("stop")
        recordings = self.instance.sounds_dir / "recordings"
        for path in recordings.glob("msg-f.*"):
            path.unlink(missing_ok=True)


# --- caller behaviours ---------------------------------------------------------------------------


Spawn = Callable[[Awaitable[Any]], None]


async def sleep_then_press(rig: Rig, call: Call, key: str, delay: float) -> float:
    await asyncio.sleep(delay)
    return await rig.callers.press(call, key)


async def greeting_key(rig: Rig, call: Call, key: str, delay: float) -> None:
    if await call.command("STREAM FILE", contains=GREETING) is not None:
        await sleep_then_press(rig, call, key, delay)


async def menu_key(rig: Rig, call: Call, key: str | None, delay: float) -> None:
    if await call.command("GET DATA", contains=MENU_PROMPT) is not None and key is not None:
        await sleep_then_press(rig, call, key, delay)


async def offer_keys(rig: Rig, call: Call, key: str, delay: float, reply: str | None,
                     reply_delay: float) -> None:
    """Choose an absent employee in the menu, then answer the offer (None: no key)."""
    await menu_key(rig, call, key, delay)
    if await call.command("GET DATA", excludes=MENU_PROMPT) is not None and reply is not None:
        await sleep_then_press(rig, call, reply, reply_delay)


def bystander(rig: Rig, call: Call, rng: random.Random) -> Awaitable[None]:
    """A caller who does what callers do, whatever happens to the service."""
    kind = rng.choice(("greeting_key", "menu_key", "menu_key", "offer"))
    if kind == "greeting_key":
        return greeting_key(rig, call, rng.choice("134"), rng.uniform(0.1, 1.2))
    if kind == "menu_key":
        key = rng.choice("134") if rng.random() > 0.15 else None
        return menu_key(rig, call, key, rng.uniform(0.1, 2.5))
    return offer_keys(rig, call, "6", rng.uniform(0.2, 0.8), "1", rng.uniform(0.2, 2.5))


# --- fault rounds: SIGSTOP, kill -9, and stopping normally ---------------------------------------

# The phases the fault is aimed at, in turn. The short-lived ones come first (a --quick run has
# only two rounds); bystanders are often in the greeting or waiting for a key anyway.
ANCHORS = ("offer", "after_key", "greeting", "key_wait")


@dataclass
class Round:
    kind: str  # sigstop | kill9 | stop
    anchor: str
    at: float | None = None  # wall clock of the signal
    calls: list[Call] = field(default_factory=list)
    recovery: dict[str, Any] = field(default_factory=dict)
    restart_s: float | None = None
    resumed: float | None = None  # SIGCONT, or the restarted service healthy


async def anchor_callers(rig: Rig, calls: list[Call], anchor: str, rng: random.Random,
                         fire: Callable[[], None], spawn: Spawn) -> None:
    """The callers the fault is aimed at (one, or two side by side for the short-lived
    phases): the signal goes at a random moment of `anchor`."""
    call = calls[0]
    if anchor == "greeting":
        if await call.command("STREAM FILE", contains=GREETING) is not None:
            await asyncio.sleep(rng.uniform(0.05, 1.3))
        fire()
        if rng.random() < 0.5:
            await sleep_then_press(rig, call, "1", rng.uniform(0.1, 1.0))
    elif anchor == "key_wait":
        if await call.command("GET DATA", contains=MENU_PROMPT) is not None:
            await asyncio.sleep(rng.uniform(0.05, 2.6))
        fire()
        if rng.random() < 0.5:
            await sleep_then_press(rig, call, rng.choice("134"), rng.uniform(0.1, 1.0))
    elif anchor == "after_key":
        # Right after the key: the signal follows the key press by 10-90 ms (the tone lasts
        # 100 ms and ends the prompt; the service answers a key within a few ms when healthy).
        waits = await asyncio.gather(*(c.command("GET DATA", contains=MENU_PROMPT)
                                       for c in calls))
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        for c, started in zip(calls, waits, strict=True):
            if started is not None:
                spawn(rig.callers.press(c, rng.choice("1236")))
        await asyncio.sleep(rng.uniform(0.01, 0.09))
        fire()
    else:  # the absent employee's offer
        # The first caller chooses Bob (on vacation) and, once the service has stopped, asks
        # for a callback (3): a request made while the service cannot act on it. The other
        # chooses Bob or Erik (delegate: 1) and may answer or not.
        keys = ["2"] + [rng.choice("26") for _ in calls[1:]]
        replies = [True] + [rng.random() < 0.7 for _ in calls[1:]]
        menus = await asyncio.gather(*(c.command("GET DATA", contains=MENU_PROMPT)
                                       for c in calls))
        await asyncio.gather(*(sleep_then_press(rig, c, key, rng.uniform(0.2, 0.8))
                               for c, key, started in zip(calls, keys, menus, strict=True)
                               if started is not None))
        await asyncio.gather(*(c.command("GET DATA", excludes=MENU_PROMPT) for c in calls))
        await asyncio.sleep(rng.uniform(0.05, 3.0))
        fire()
        await asyncio.gather(*(sleep_then_press(rig, c, "3" if key == "2" else "1",
                                                rng.uniform(0.1, 1.0))
                               for c, key, reply in zip(calls, keys, replies, strict=True)
                               if reply))


async def recovery_call(rig: Rig, since: float) -> dict[str, Any]:
    """A normal call after the fault (SIGCONT or restart): key 1 in the greeting must ring
    Anna's phone, through the service."""
    call = await rig.callers.originate("check")
    await greeting_key(rig, call, "1", 0.3)
    dial = await call.wait(lambda e: e.get("Event") in ("DialBegin", "QueueCallerJoin"), 15)
    ok = bool(dial and dial.get("Event") == "DialBegin"
              and str(dial.get("DestChannel", "")).startswith(f"Local/anna@{PHONES}"))
    await call.ended(10)
    return {"call": call.call_id, "ok": ok,
            "routed_s": round(event_time(dial) - since, 3) if dial else None,
            "failures": call.failures}


async def fault_round(rig: Rig, kind: str, anchor: str, rng: random.Random, *,
                      bystanders: int, arrival: bool) -> Round:
    """Callers at random points of the menu, one aimed at `anchor`; the fault hits them all at
    once. Then every caller must reach the operators, and the service must serve again."""
    loop = asyncio.get_running_loop()
    rnd = Round(kind, anchor)
    fired: asyncio.Future[float] = loop.create_future()
    tasks: set[asyncio.Task[Any]] = set()
    exit_task: asyncio.Task[int | None] | None = None

    def spawn(job: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(job)
        tasks.add(task)

    def fire() -> None:
        nonlocal exit_task
        if fired.done():
            return
        if kind == "sigstop":
            at = rig.freeze()
        elif kind == "kill9":
            at = rig.kill()
        else:
            at = rig.terminate()
        exit_task = None if kind == "sigstop" else asyncio.ensure_future(rig.reap())
        fired.set_result(at)

    async def start_anchor() -> None:
        # After most bystanders, so that the fault finds them in the menu rather than arriving.
        await asyncio.sleep(1.5)
        calls = []
        for _ in range(2 if anchor in ("after_key", "offer") else 1):
            calls.append(await rig.callers.originate(f"{kind}-anchor"))
        rnd.calls.extend(calls)
        await anchor_callers(rig, calls, anchor, rng, fire, spawn)

    async def start_bystander(delay: float) -> None:
        await asyncio.sleep(delay)
        call = await rig.callers.originate(f"{kind}-by")
        rnd.calls.append(call)
        await bystander(rig, call, rng)

    async def start_arrival() -> None:
        await fired
        await asyncio.sleep(rng.uniform(0.0, 0.8))
        call = await rig.callers.originate(f"{kind}-arrival")
        rnd.calls.append(call)
        await greeting_key(rig, call, "1", 0.3)

    spawn(start_anchor())
    for _ in range(bystanders):
        spawn(start_bystander(rng.uniform(0.5, 3.5)))
    if arrival:
        spawn(start_arrival())
    try:
        rnd.at = await asyncio.wait_for(asyncio.shield(fired), 30)
    except TimeoutError:
        fire()  # the anchor never got where it was going: fault now, and say so
        rnd.at = fired.result()
        rnd.recovery["anchor_missed"] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    # Every caller leaves the menu: the operators (rescued), a phone (routed before), or gone.
    await asyncio.gather(*(c.wait(_left, 25) for c in rnd.calls))
    if kind == "sigstop":
        await asyncio.sleep(0.3)
        thawed = rnd.resumed = time.time()
        rig.thaw()
        # The late service must not act on a rescued call: give it time to try.
        await asyncio.sleep(1.5)
    else:
        assert exit_task is not None
        await exit_task
        thawed = time.time()
        rnd.restart_s = round(await rig.start_service(), 2)
        rnd.resumed = time.time()
    await rig.hang_up_all()
    rnd.recovery.update(await recovery_call(rig, thawed))
    await rig.hang_up_all()
    return rnd


async def fault_phase(rig: Rig, kind: str, trials: int, rounds_min: int, rounds_max: int,
                      rng: random.Random, bystanders: int) -> dict[str, Any]:
    rounds: list[Round] = []
    counted = 0
    while len(rounds) < rounds_max and (counted < trials or len(rounds) < rounds_min):
        anchor = ANCHORS[len(rounds) % len(ANCHORS)]
        rnd = await fault_round(rig, kind, anchor, rng, bystanders=bystanders,
                                arrival=len(rounds) % 2 == 1)
        rounds.append(rnd)
        tls = fm.timelines(rig.events, [c.call_id for c in rnd.calls])
        assert rnd.at is not None
        these = [fm.trial(tls[c.call_id], rnd.at, queue=QUEUE, operator_device=OPERATOR)
                 for c in rnd.calls]
        counted += sum(1 for t in these if t.phase != fm.DONE)
        worst = max((t.rescue_s or 0 for t in these if t.phase != fm.DONE), default=0)
        log(f"  {kind} round {len(rounds)} ({anchor}): "
            + ", ".join(f"{t.phase} {'-' if t.rescue_s is None else f'{t.rescue_s * 1000:.0f} ms'}"
                        for t in these)
            + f"; worst {worst * 1000:.0f} ms; recovery call "
            + ("ok" if rnd.recovery.get("ok") else "FAILED")
            + (f"; restart {rnd.restart_s} s" if rnd.restart_s is not None else ""))
    stored = await stored_requests_at(rig, [c.call_id for r in rounds for c in r.calls])
    return analyse_rounds(rig, rounds, stored)


def analyse_rounds(rig: Rig, rounds: list[Round],
                   stored: Mapping[str, list[tuple[str, float]]]) -> dict[str, Any]:
    all_ids = [c.call_id for r in rounds for c in r.calls]
    check_ids = [r.recovery.get("call", "") for r in rounds]
    tls = fm.timelines(rig.events, all_ids + check_ids)
    trials: list[fm.Trial] = []
    gaps: list[tuple[str, float]] = []
    details = []
    for r in rounds:
        assert r.at is not None
        these = [fm.trial(tls[c.call_id], r.at, queue=QUEUE, operator_device=OPERATOR,
                          stored=stored.get(c.call_id, ()), resumed=r.resumed)
                 for c in r.calls]
        trials += these
        for c in r.calls:
            gaps += fm.service_gaps(tls[c.call_id], before=r.at)
        check = r.recovery.get("call")
        if check:
            gaps += fm.service_gaps(tls[check])
        details.append({
            "anchor": r.anchor, "restart_s": r.restart_s,
            "recovery": {k: v for k, v in r.recovery.items() if k != "failures"},
            "trials": [{"call": t.call_id, "phase": t.phase,
                        "rescue_ms": None if t.rescue_s is None else round(t.rescue_s * 1000, 1),
                        "reason": t.reason} for t in these],
            "failures": [f for c in r.calls for f in c.failures][:5],
        })
    out = fm.trials_summary(trials)
    out["recovery_calls_ok"] = sum(1 for r in rounds if r.recovery.get("ok"))
    out["recovery_calls"] = len(rounds)
    out["recovery_routed_s"] = summary_ms([r.recovery["routed_s"] for r in rounds
                                           if r.recovery.get("routed_s") is not None])
    out["healthy_gaps"] = fm.gaps_summary(gaps)
    restarts = [r.restart_s for r in rounds if r.restart_s is not None]
    if restarts:
        out["service_restart_s"] = {"median": sorted(restarts)[len(restarts) // 2],
                                    "max": max(restarts)}
    out["rounds"] = details
    return out


# --- the database stopped while calls arrive ----------------------------------------------------


@dataclass
class FeatureAttempt:
    minutes: int
    call: Call
    started: float


async def feature_code(rig: Rig, minutes: int) -> FeatureAttempt:
    """Frida dials *71<minutes> (in a meeting) from her desk phone."""
    started = time.time()
    call = await rig.callers.originate("feature", number=f"*71{minutes}",
                                       context="faults-frida-phone", then="faults-hold")
    return FeatureAttempt(minutes, call, started)


async def feature_outcome(attempt: FeatureAttempt, timeout: float = 15) -> tuple[str, float | None]:
    """What Frida heard: `activated` (stored), `im-sorry` (refused), or nothing; and when it began
    (Asterisk's clock)."""
    def heard(e: Mapping[str, Any]) -> bool:
        if e.get("Uniqueid") != attempt.call.call_id:
            return False  # the other leg plays silence
        if e.get("Event") == "AGIExecStart":
            return "STREAM FILE" in str(e.get("Command", ""))
        return e.get("Event") == "Newexten" and e.get("Application") == "Playback"

    e = await attempt.call.wait(heard, timeout)
    if e is None:
        return "nothing", None
    text = str(e.get("Command", "")) + str(e.get("AppData", ""))
    what = "activated" if "activated" in text and "de-activated" not in text else (
        "im-sorry" if "im-sorry" in text else text[:40])
    return what, event_time(e)


async def stored_meetings(rig: Rig) -> set[int]:
    """Minutes of Frida's phone-set meetings in the database (each attempt's own length)."""
    import asyncpg

    conn = await asyncpg.connect(f"{rig.pg.dsn}/{rig.pg.database}")
    try:
        rows = await conn.fetch(
            "SELECT starts_at, until FROM availability_entries WHERE employee_id = 'frida' "
            "AND source = 'phone' AND state = 'meeting'")
    finally:
        await conn.close()
    return {round((r["until"] - r["starts_at"]).total_seconds() / 60) for r in rows}


async def db_phase(rig: Rig, calls: int, rng: random.Random) -> dict[str, Any]:
    minutes = itertools.count(10)
    # Baseline: the feature code with the database up.
    baseline = []
    for _ in range(3):
        attempt = await feature_code(rig, next(minutes))
        what, at = await feature_outcome(attempt)
        baseline.append((what, None if at is None else at - attempt.started, attempt.minutes))
        await attempt.call.ended(10)
    stored = await stored_meetings(rig)
    baseline_ok = [b for b in baseline if b[0] == "activated" and b[2] in stored]
    log("  feature code with the database up: "
        + ", ".join(f"{w} {t:.2f} s" if t is not None else w for w, t, _ in baseline))

    assert rig.service is not None
    pid = rig.service.pid
    stopped_at = time.time()
    await rig.pg.run("stop")
    log(f"  PostgreSQL stopped ({time.time() - stopped_at:.1f} s); {calls} callers choose people")
    plans = [list(EMPLOYEE_KEYS)[i % len(EMPLOYEE_KEYS)] for i in range(calls)]
    placed: list[tuple[str, Call]] = []

    async def caller(key: str, delay: float) -> None:
        await asyncio.sleep(delay)
        call = await rig.callers.originate("db")
        placed.append((key, call))
        reply = EMPLOYEE_KEYS[key][1]
        if reply:
            await offer_keys(rig, call, key, rng.uniform(0.2, 0.8), reply, rng.uniform(0.3, 1.2))
        else:
            await greeting_key(rig, call, key, rng.uniform(0.2, 1.0))

    await asyncio.gather(*(caller(k, i * 4.0 / max(1, calls - 1)) for i, k in enumerate(plans)))
    down_attempt = await feature_code(rig, next(minutes))
    await asyncio.gather(*(c.wait(lambda e: e.get("Event") in ("DialBegin", "QueueCallerJoin"), 20)
                           for _, c in placed))
    down_heard, _ = await feature_outcome(down_attempt)
    await asyncio.sleep(1.0)  # the phones announce themselves and answer
    tls = fm.timelines(rig.events, [c.call_id for _, c in placed])
    wrong = []
    for key, call in placed:
        phone = EMPLOYEE_KEYS[key][0]
        tl = tls[call.call_id]
        devices = [d for _, d in tl.dials]
        problems = list(call.failures)
        if devices != [f"Local/{phone}@{PHONES}"]:
            problems.append(f"dialled {devices or 'nothing'}")
        if phone not in tl.phones:
            problems.append(f"phones {tl.phones or 'none'} announced")
        if tl.queued:
            problems.append("joined the operators' queue")
        if problems:
            wrong.append({"call": call.call_id, "key": key, "expected": phone,
                          "problems": problems})
    routed = len(placed) - len(wrong)
    log(f"  with the database down: {routed}/{len(placed)} callers reached the right phone; "
        f"Frida's feature code: {down_heard}")

    # The database comes back: how long until the feature code works again, end to end.
    attempts: list[FeatureAttempt] = []
    ready: list[float] = []

    async def watch_ready() -> None:
        while not await rig.pg.answers():  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.05)
        ready.append(time.time())

    restart = asyncio.ensure_future(rig.pg.run("start"))
    watcher = asyncio.ensure_future(watch_ready())
    recovered: tuple[FeatureAttempt, float] | None = None
    deadline = time.monotonic() + 60
    outcomes: dict[int, asyncio.Task[tuple[str, float | None]]] = {}
    while recovered is None and time.monotonic() < deadline:
        attempt = await feature_code(rig, next(minutes))
        attempts.append(attempt)
        outcomes[attempt.minutes] = asyncio.ensure_future(feature_outcome(attempt))
        await asyncio.sleep(0.2)
        for a in attempts:
            task = outcomes[a.minutes]
            if task.done() and task.result()[0] == "activated" and ready:
                recovered = (a, task.result()[1] or 0.0)
                break
    await restart
    await watcher
    results = await asyncio.gather(*outcomes.values())
    stored = await stored_meetings(rig)
    heard = {a.minutes: r for a, r in zip(attempts, results, strict=True)}
    first_ok = None
    for a in attempts:  # the first attempt confirmed to Frida AND in the database
        what, at = heard[a.minutes]
        if what == "activated" and a.minutes in stored and at is not None:
            first_ok = (a, at)
            break
    untrue = [a.minutes for a in attempts if heard[a.minutes][0] == "activated"
              and a.minutes not in stored]
    await rig.hang_up_all()
    same_service = rig.service.pid == pid and rig.service.proc is not None and (
        rig.service.proc.poll() is None)
    recovered_s = None
    if first_ok is not None and ready:
        recovered_s = round(max(0.0, first_ok[1] - ready[0]), 2)
    log(f"  PostgreSQL answering {ready[0] - stopped_at:.1f} s after the stop; feature code "
        f"stored again {recovered_s} s after that ({len(attempts)} attempts); "
        f"same service process: {same_service}")
    return {
        "calls": len(placed),
        "routed": routed,
        "routed_ratio": round(routed / len(placed), 3) if placed else None,
        "misrouted_calls": wrong[:20],
        "feature_code_while_down": down_heard,
        "recovered_s": recovered_s,
        "attempts_after_restart": len(attempts),
        # Attempts begun after PostgreSQL answered that still failed (stale pooled connections).
        "failed_after_ready": [a.minutes for a in attempts if ready and a.started >= ready[0]
                               and heard[a.minutes][0] != "activated"],
        "attempts_heard": dict(sorted(
            {w: sum(1 for v in heard.values() if v[0] == w) for w, _ in heard.values()}.items())),
        "confirmed_but_not_stored": untrue,
        "same_service_process": same_service,
        "baseline_feature_code_s": summary_ms([t for w, t, _ in baseline_ok if t is not None]),
        "baseline_ok": len(baseline_ok),
    }


# --- Asterisk restarted under open consoles ------------------------------------------------------


class Console:
    """An operator's console: logged in through the HTTP API, reading the event stream and
    keeping the board it describes (docs/console-api.md)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base, self.username, self.password = base, username, password
        self.http: aiohttp.ClientSession | None = None
        self.calls: dict[str, dict[str, Any]] = {}
        self.ami_connected: bool | None = None
        self.log: list[tuple[float, str, Any]] = []
        self.changed = asyncio.Event()
        self.streams = 0
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with self.http.post(f"{self.base}/session", json={
            "username": self.username, "password": self.password,
        }) as response:
            if response.status != 200:
                raise SandboxError(f"login as {self.username}: {response.status} "
                                   f"{await response.text()}")
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        assert self.http is not None
        while True:
            try:
                async with self.http.get(f"{self.base}/console/stream",
                                         timeout=aiohttp.ClientTimeout(total=None)) as response:
                    if response.status != 200:
                        raise SandboxError(f"stream: {response.status}")
                    self.streams += 1
                    event: dict[str, str] = {}
                    async for raw in response.content:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith(":"):
                            continue
                        if line:
                            name, _, value = line.partition(":")
                            event[name] = value.lstrip(" ")
                            continue
                        if "event" in event and "data" in event:
                            self.apply(event["event"], json.loads(event["data"]))
                        event = {}
            except (aiohttp.ClientError, SandboxError, ValueError) as exc:
                self.log.append((time.time(), "error", repr(exc)))
            await asyncio.sleep(2.0)  # EventSource's retry

    def apply(self, kind: str, data: Any) -> None:
        self.log.append((time.time(), kind, data if kind in ("ami", "gone") else None))
        if kind == "board":
            self.calls = {str(c["id"]): c for k in ("waiting", "active", "parked")
                          for c in data.get(k, ())}
            self.ami_connected = bool(data.get("ami", {}).get("connected"))
        elif kind == "call":
            self.calls[str(data["id"])] = data
        elif kind == "gone":
            self.calls.pop(str(data.get("id")), None)
        elif kind == "ami":
            self.ami_connected = bool(data.get("connected"))
        self.changed.set()

    def view(self) -> dict[str, set[str]]:
        lists: dict[str, set[str]] = {"waiting": set(), "active": set(), "parked": set()}
        for call_id, call in self.calls.items():
            state = call.get("state")
            key = ("waiting" if state in ("waiting", "ringing") else
                   "parked" if state == "parked" else "active")
            lists[key].add(call_id)
        return lists

    async def board(self) -> dict[str, set[str]]:
        assert self.http is not None
        async with self.http.get(f"{self.base}/console/board") as response:
            return fm.board_ids(await response.json())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.http is not None:
            await self.http.close()


async def queued_ids(rig: Rig) -> set[str] | None:
    """The callers Asterisk has in the operators' queue now (QueueStatus), None if AMI is down."""
    if rig.ami is None or rig.ami.closed.is_set():
        return None
    try:
        reply = await rig.ami.action("QueueStatus", listing=True, timeout=3, Queue=QUEUE)
    except (TimeoutError, ConnectionError):
        return None
    return {str(e.get("Uniqueid")) for e in reply.get("events", ())
            if e.get("Event") == "QueueEntry"}


async def wait_consoles(rig: Rig, consoles: list[Console], want: set[str], timeout: float
                        ) -> float | None:
    """Until Asterisk's queue holds exactly `want` and every console and the board API show
    exactly that; returns when (wall clock), None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = await queued_ids(rig)
        if queued is not None and queued == want:
            views = [c.view() for c in consoles]
            if all(fm.matches_asterisk(v, queued) for v in views):
                with contextlib.suppress(aiohttp.ClientError, ValueError):
                    if fm.matches_asterisk(await consoles[0].board(), queued):
                        return time.time()
        await asyncio.sleep(0.1)
    return None


async def waiting_callers(rig: Rig, count: int, label: str) -> list[Call]:
    """Callers who choose the operator (0) during the greeting and wait in the queue."""
    calls, keys = [], []
    for _ in range(count):
        call = await rig.callers.originate(label)
        calls.append(call)
        keys.append(asyncio.ensure_future(greeting_key(rig, call, "0", 0.3)))
        await asyncio.sleep(0.2)
    await asyncio.gather(*keys)
    for call in calls:
        await call.wait(lambda e: e.get("Event") == "QueueCallerJoin", 15)
    return calls


async def restart_asterisk(rig: Rig) -> tuple[float, float, float]:
    """Stop the instance (its channels die with it) and start it again; returns when it was
    stopped, how long stopping took, and when AMI accepted connections again (wall clock)."""
    stopped = time.time()
    await asyncio.to_thread(rig.instance.stop)
    down_s = time.time() - stopped
    accepting: list[float] = []

    async def watch_ami() -> None:
        while not accepting:
            with contextlib.suppress(OSError, TimeoutError):
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", rig.instance.ami_port), 1)
                banner = await asyncio.wait_for(reader.readline(), 2)
                writer.close()
                if banner.startswith(b"Asterisk Call Manager"):
                    accepting.append(time.time())
            await asyncio.sleep(0.02)

    watcher = asyncio.ensure_future(watch_ami())
    await asyncio.to_thread(rig.instance.start, 30.0, False, True)
    await watcher
    await rig.connect_ami()
    return stopped, down_s, accepting[0]


async def asterisk_phase(rig: Rig, before: int, after: int, restarts: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{rig.http_port}/api/v1"
    consoles = [Console(base, user, rig.passwords[user]) for user in CONSOLE_USERS]
    for console in consoles:
        await console.open()
    try:
        # Baseline: callers arriving in the queue with Asterisk healthy → on every console.
        calls = await waiting_callers(rig, before, "queued")
        ids = {c.call_id for c in calls}
        shown = await wait_consoles(rig, consoles, ids, 15)
        joins = [event_time(e) for c in calls for e in c.events
                 if e.get("Event") == "QueueCallerJoin"]
        baseline_s = round(shown - max(joins), 3) if shown is not None and joins else None
        log(f"  {len(ids)} callers waiting, on both consoles {baseline_s} s after the last "
            f"joined the queue")
        runs: list[dict[str, Any]] = []
        settled = time.time()
        for n in range(restarts):
            # The service resets its AMI reconnect backoff only after a session stayed up for
            # reconnect_max (see AMI_SETTLE_S): restarts closer together than that measure the
            # backoff growing, not a restart.
            await asyncio.sleep(max(0.0, settled + AMI_SETTLE_S - time.time()))
            waiting = len(ids)
            stopped, down_s, ami_at = await restart_asterisk(rig)
            # New callers, as soon as Asterisk takes calls: the consoles must show exactly
            # them (the callers of before the restart are gone with it).
            new = await waiting_callers(rig, after, "requeued")
            ids = {c.call_id for c in new}
            right = await wait_consoles(rig, consoles, ids, 30)
            resync_s = round(right - ami_at, 2) if right is not None else None
            back = [min((t for t, kind, data in c.log if t >= ami_at and (
                (kind == "ami" and data and data.get("connected")) or kind == "board")),
                default=None) for c in consoles]
            joins = [event_time(e) for c in new for e in c.events
                     if e.get("Event") == "QueueCallerJoin"]
            settled = max([t for t in back if t is not None], default=time.time())
            runs.append({
                "resync_s": resync_s,
                "waiting_before": waiting,
                "waiting_after": len(ids),
                "asterisk_stop_s": round(down_s, 2),
                "asterisk_boot_s": round(ami_at - stopped - down_s, 2),
                "service_ami_back_s": [None if t is None else round(t - ami_at, 2)
                                       for t in back],
                "new_callers_queued_s": round(max(joins) - ami_at, 2) if joins else None,
            })
            log(f"  restart {n + 1}: stopped in {down_s:.1f} s, AMI accepting "
                f"{runs[-1]['asterisk_boot_s']} s later; the service back on AMI after "
                f"{runs[-1]['service_ami_back_s']} s; {len(ids)} new callers queued after "
                f"{runs[-1]['new_callers_queued_s']} s; consoles and board right after "
                f"{resync_s} s")
        values = [r["resync_s"] for r in runs]
        return {
            "resync_s": None if None in values else max(values),
            "restarts": runs,
            "consoles": len(consoles),
            "baseline_queue_to_consoles_s": baseline_s,
            "stream_connections": [c.streams for c in consoles],
        }
    finally:
        for console in consoles:
            await console.close()
        await rig.hang_up_all()


# --- kill -9 while callers leave messages and callback requests ---------------------------------


async def message_caller(rig: Rig, call: Call, kind: str, rng: random.Random) -> None:
    if kind == "message":
        if await call.command("STREAM FILE", contains=GREETING) is None:
            return
        await sleep_then_press(rig, call, "5", rng.uniform(0.2, 1.0))
        if await call.command("RECORD FILE", timeout=20) is None:
            return
        await sleep_then_press(rig, call, "#", rng.uniform(0.6, 2.0))
    else:
        if await call.command("STREAM FILE", contains=GREETING) is None:
            return
        await sleep_then_press(rig, call, "2", rng.uniform(0.2, 1.0))
        if await call.command("GET DATA", excludes=MENU_PROMPT) is None:
            return
        await sleep_then_press(rig, call, "3", rng.uniform(0.3, 1.5))


@dataclass
class Batch:
    at: float | None = None
    aimed: bool = False
    target: tuple[str, float] | None = None  # aimed: the caller and when their request ended
    calls: list[tuple[str, Call]] = field(default_factory=list)


async def message_batch(rig: Rig, size: int, aimed: bool, rng: random.Random) -> Batch:
    batch = Batch(aimed=aimed)

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        kind = "message" if rng.random() < 0.55 else "callback"
        call = await rig.callers.originate(f"msg-{kind[0]}")
        batch.calls.append((kind, call))
        await message_caller(rig, call, kind, rng)

    callers = [asyncio.ensure_future(one(rng.uniform(0.0, 2.5))) for _ in range(size)]
    if aimed:
        # At the moment a request is being stored: right after a recording ends or the offer
        # is answered, for a caller chosen at random.
        while len(batch.calls) < size:  # noqa: ASYNC110 - the callers are being originated
            await asyncio.sleep(0.05)
        kind, target = rng.choice(batch.calls)
        ending = await target.wait(
            lambda e: e.get("Event") == "AGIExecEnd" and (
                "RECORD FILE" in str(e.get("Command", "")) or (
                    kind == "callback" and "GET DATA" in str(e.get("Command", ""))
                    and MENU_PROMPT not in str(e.get("Command", "")))), 20, abort=_left)
        if ending is not None:
            # The service takes ~10-30 ms from here to the confirmation (store_to_told).
            await asyncio.sleep(rng.uniform(0.0, 0.02))
            batch.target = (target.call_id, event_time(ending))
    else:
        await asyncio.sleep(rng.uniform(1.5, 10.0))
    batch.at = rig.kill()
    await rig.reap()
    await asyncio.gather(*callers, return_exceptions=True)
    # Everyone still in the service goes to the operators; the told finish their confirmation.
    await asyncio.gather(*(c.wait(lambda e: e.get("Event") in ("QueueCallerJoin", "Hangup"), 20)
                           for _, c in batch.calls))
    await rig.hang_up_all()
    await rig.start_service()
    return batch


async def stored_requests_at(rig: Rig, call_ids: list[str]) -> dict[str, list[tuple[str, float]]]:
    """(message | callback, when stored) per call id."""
    import asyncpg

    conn = await asyncpg.connect(f"{rig.pg.dsn}/{rig.pg.database}")
    try:
        rows = await conn.fetch(
            "SELECT 'message' AS what, call_id, created_at FROM messages "
            "WHERE call_id = ANY($1::text[]) UNION ALL SELECT 'callback', call_id, created_at "
            "FROM callbacks WHERE call_id = ANY($1::text[])", call_ids)
    finally:
        await conn.close()
    out: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        out.setdefault(row["call_id"], []).append((row["what"], row["created_at"].timestamp()))
    return out


async def stored_requests(rig: Rig, call_ids: list[str]) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(f"{rig.pg.dsn}/{rig.pg.database}")
    try:
        rows = await conn.fetch(
            "SELECT call_id FROM messages WHERE call_id = ANY($1::text[]) "
            "UNION ALL SELECT call_id FROM callbacks WHERE call_id = ANY($1::text[])", call_ids)
    finally:
        await conn.close()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["call_id"]] = counts.get(row["call_id"], 0) + 1
    return counts


async def messages_phase(rig: Rig, trials: int, size: int, max_batches: int,
                         rng: random.Random) -> dict[str, Any]:
    batches: list[Batch] = []
    in_flight = 0
    while in_flight < trials and len(batches) < max_batches:
        batch = await message_batch(rig, size, aimed=len(batches) % 2 == 1, rng=rng)
        batches.append(batch)
        tls = fm.timelines(rig.events, [c.call_id for _, c in batch.calls])
        assert batch.at is not None
        now_in = sum(1 for _, c in batch.calls if fm.in_service_at(tls[c.call_id], batch.at))
        in_flight += now_in
        log(f"  batch {len(batches)} ({'at a store' if batch.aimed else 'random moment'}): "
            f"{now_in}/{len(batch.calls)} callers in the service at the kill; {in_flight} so far")
    ids = [c.call_id for b in batches for _, c in b.calls]
    counts = await stored_requests(rig, ids)
    tls = fm.timelines(rig.events, ids)
    requests = []
    for b in batches:
        assert b.at is not None
        for kind, call in b.calls:
            tl = tls[call.call_id]
            requests.append(fm.Request(call.call_id, kind, fm.told_at(tl, kind, MENU_PROMPT),
                                       counts.get(call.call_id, 0),
                                       fm.in_service_at(tl, b.at),
                                       fm.taken_at(tl, kind, MENU_PROMPT), b.at,
                                       tl.agi_start))
    out = fm.requests_summary(requests)
    out["batches"] = [{"aimed": b.aimed, "killed_in_service": sum(
        1 for r in requests if r.killed == b.at and r.in_flight),
        "kill_after_request_ms": None if b.target is None or b.at is None else round(
            (b.at - b.target[1]) * 1000, 1)} for b in batches]
    out["batch_size"] = size
    out["kills_aimed_at_a_store"] = sum(1 for b in batches if b.aimed)
    stray = sorted(set(counts) - set(ids))
    out["stored_for_unknown_calls"] = stray[:10]
    return out


# --- main --------------------------------------------------------------------------------------

PHASES = ("sigstop", "kill9", "messages", "db", "asterisk")
FULL = {"sigstop_trials": 20, "kill9_trials": 20, "stop_rounds": 3, "db_calls": 20,
        "message_trials": 100, "rounds_min": 8, "restarts": 3}
QUICK = {"sigstop_trials": 6, "kill9_trials": 6, "stop_rounds": 1, "db_calls": 6,
         "message_trials": 16, "rounds_min": 2, "restarts": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run (fewer trials than the issue's targets ask for)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"which phases, comma-separated ({','.join(PHASES)})")
    p.add_argument("--sigstop-trials", type=int, help="callers frozen in the menu (20)")
    p.add_argument("--kill9-trials", type=int, help="callers whose service is killed (20)")
    p.add_argument("--stop-rounds", type=int, help="rounds with the service stopped normally, "
                   "the kill -9 baseline (3)")
    p.add_argument("--rounds-min", type=int, help="fault rounds at least, per kind (8: each "
                   "aimed phase twice)")
    p.add_argument("--bystanders", type=int, default=3,
                   help="callers per fault round besides the one the fault is aimed at")
    p.add_argument("--db-calls", type=int, help="calls while the database is down (20)")
    p.add_argument("--message-trials", type=int,
                   help="callers in the service at a kill -9 while leaving requests (100)")
    p.add_argument("--message-batch", type=int, default=14, help="callers per message batch")
    p.add_argument("--restarts", type=int, help="Asterisk restarts under the consoles (3)")
    p.add_argument("--seed", type=int, help="random seed (default: from the clock; recorded)")
    p.add_argument("--keypads", type=int, default=8, help="AMI sessions pressing keys")
    slot = default_slot()
    p.add_argument("--port-base", type=int,
                   default=15000 + 100 * slot if slot is not None else 16600,
                   help="AMI +40, PostgreSQL +52, SIP +62, FastAGI +75, HTTP +82 (default 16600, "
                        "or 15000 + 100 × VAIHDE_TEST_SLOT)")
    p.add_argument("--rtp-start", type=int,
                   default=32000 + 100 * slot if slot is not None else 31200)
    p.add_argument("--name", default=f"faults{slot}" if slot is not None else "bench-faults",
                   help="sandbox instance and PostgreSQL cluster name")
    p.add_argument("--keep", action="store_true",
                   help="keep the work dir (service log, settings) even when every target is met")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--events", type=Path, help="also write every AMI event read (JSON lines)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)} (have {', '.join(PHASES)})")
    if args.seed is None:
        args.seed = int(time.time())
    return args


def targets(result: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    out: dict[str, bool] = {}
    if "sigstop" in args.phases:
        s = result["sigstop"]
        out[f"sigstop_trials >= {args.sigstop_trials}"] = s["trials"] >= args.sigstop_trials
        out[f"sigstop_rescue_max_ms <= {SIGSTOP_RESCUE_MAX_MS}"] = (
            result["sigstop_rescue_max_ms"] is not None and not s["stranded"]
            and result["sigstop_rescue_max_ms"] <= SIGSTOP_RESCUE_MAX_MS)
        out["sigstop: no call handled twice"] = not s["handled_twice"]
        out["sigstop: the service serves again after SIGCONT"] = (
            s["recovery_calls_ok"] == s["recovery_calls"])
    if "kill9" in args.phases:
        k = result["kill9"]
        out[f"kill9_trials >= {args.kill9_trials}"] = k["trials"] >= args.kill9_trials
        out[f"kill9_rescue_max_ms <= {KILL9_RESCUE_MAX_MS}"] = (
            result["kill9_rescue_max_ms"] is not None and not k["stranded"]
            and result["kill9_rescue_max_ms"] <= KILL9_RESCUE_MAX_MS)
        out["kill9: the restarted service serves"] = k["recovery_calls_ok"] == k["recovery_calls"]
        out["stop: every caller reaches the operators"] = not result["stop"]["stranded"]
    if "db" in args.phases:
        d = result["db"]
        out[f"db_down_calls >= {args.db_calls}"] = d["calls"] >= args.db_calls
        out["db_down_routed_ratio == 1.0"] = d["routed_ratio"] == 1.0
        out["db_recovered_s measured, same process"] = (
            result["db_recovered_s"] is not None and d["same_service_process"]
            and not d["confirmed_but_not_stored"])
    if "asterisk" in args.phases:
        value = result["asterisk_restart_resync_s"]
        out[f"asterisk_restart_resync_s <= {RESYNC_MAX_S:g}"] = (
            value is not None and value <= RESYNC_MAX_S)
    if "messages" in args.phases:
        out[f"message_trials >= {args.message_trials}"] = (
            result["message_trials"] >= args.message_trials)
        out["messages_lost == 0"] = result["messages_lost"] == 0
        out["duplicates == 0"] = result["messages"]["duplicates"] == 0
    return out


def error_records(log_path: Path, limit: int = 20) -> list[dict[str, str]]:
    """The service's error records (message, error, call, the exception's last line), to read
    what went wrong without the work dir; lines that are not JSON (asyncio's own reports on
    stderr) by their first line."""
    out: list[dict[str, str]] = []
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    for n, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line or "exception" in line.lower():
                out.append({"msg": line[:200], "next": " | ".join(lines[n + 1:n + 6])[:600]})
            continue
        if record.get("level") not in ("error", "critical"):
            continue
        exc = str(record.get("exc", "")).strip().splitlines()
        out.append({"ts": str(record.get("ts", "")), "msg": str(record.get("msg", ""))[:200],
                    "error": str(record.get("error", ""))[:300],
                    "call": str(record.get("uniqueid", record.get("call_id", ""))),
                    "exc": exc[-1][:300] if exc else ""})
    return out[:limit]


def ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def print_table(result: dict[str, Any]) -> None:
    log("")
    if "sigstop" in result:
        s = result["sigstop"]
        log(f"SIGSTOP: {s['trials']} callers frozen, by phase {s['phases']}; rescue median "
            f"{ms(s['rescue']['median_ms'])}, max {ms(s['rescue']['max_ms'])} (target ≤ 3,000); "
            f"the healthy service's answer: median {ms(s['healthy_gaps']['all']['median_ms'])}, "
            f"max {ms(s['healthy_gaps']['all']['max_ms'])}")
    if "kill9" in result:
        k, st = result["kill9"], result["stop"]
        log(f"kill -9: {k['trials']} callers, by phase {k['phases']}; rescue median "
            f"{ms(k['rescue']['median_ms'])}, max {ms(k['rescue']['max_ms'])} (target ≤ 2,000); "
            f"stopped normally: median {ms(st['rescue']['median_ms'])}, max "
            f"{ms(st['rescue']['max_ms'])} ({st['trials']} callers)")
    if "db" in result:
        d = result["db"]
        log(f"database down: {d['routed']}/{d['calls']} callers reached the right phone; "
            f"back to normal {d['recovered_s']} s after PostgreSQL answered (the feature code "
            f"with the database up: median {ms(d['baseline_feature_code_s']['median_ms'])})")
    if "asterisk_restart" in result:
        a = result["asterisk_restart"]
        log(f"Asterisk restarted {len(a['restarts'])}×: consoles, board and tracker right at "
            f"worst {a['resync_s']} s after AMI accepted again (target ≤ 10); the service back "
            f"on AMI after {[r['service_ami_back_s'] for r in a['restarts']]} s; healthy "
            f"queue→consoles {a['baseline_queue_to_consoles_s']} s")
    if "messages" in result:
        m = result["messages"]
        log(f"messages under kill -9: {m['trials']} callers in the service at a kill "
            f"({m['callers']} in all): told {m['told']}, not told {m['not_told']}, "
            f"stored but not told {m['stored_not_told']}; lost {m['lost']}, duplicates "
            f"{m['duplicates']}")


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="vaihde-faults-bench-"))
    rig = Rig(args, tmp)
    result: dict[str, Any] = {}
    started = time.monotonic()
    cpu0 = (machine_busy_s(), time.monotonic())
    failed = True
    try:
        await rig.start()
        await rig.setvar("FAULTS_CALLER_HOLD", "60")
        if "sigstop" in args.phases:
            log(f"SIGSTOP: rounds of {args.bystanders + 1}+ callers, until "
                f"{args.sigstop_trials} trials")
            s = await fault_phase(rig, "sigstop", args.sigstop_trials, args.rounds_min, 24, rng,
                                  args.bystanders)
            result["sigstop"] = s
            result["sigstop_trials"] = s["trials"]
            result["sigstop_rescue_max_ms"] = s["rescue"]["max_ms"]
        if "kill9" in args.phases:
            log(f"kill -9: rounds until {args.kill9_trials} trials, then {args.stop_rounds} "
                f"rounds stopped normally (SIGTERM)")
            k = await fault_phase(rig, "kill9", args.kill9_trials, args.rounds_min, 24, rng,
                                  args.bystanders)
            st = await fault_phase(rig, "stop", 0, args.stop_rounds, args.stop_rounds, rng,
                                   args.bystanders)
            result["kill9"] = k
            result["stop"] = st
            result["kill9_trials"] = k["trials"]
            result["kill9_rescue_max_ms"] = k["rescue"]["max_ms"]
            result["stop_rescue_max_ms"] = st["rescue"]["max_ms"]
        if "messages" in args.phases:
            log(f"messages: batches of {args.message_batch} callers leaving messages and "
                f"callback requests, kill -9 in each, until {args.message_trials} trials")
            m = await messages_phase(rig, args.message_trials, args.message_batch, 20, rng)
            result["messages"] = m
            result["message_trials"] = m["trials"]
            result["messages_lost"] = m["lost"]
        if "db" in args.phases:
            log("database down")
            d = await db_phase(rig, args.db_calls, rng)
            result["db"] = d
            result["db_down_calls"] = d["calls"]
            result["db_down_routed_ratio"] = d["routed_ratio"]
            result["db_recovered_s"] = d["recovered_s"]
        if "asterisk" in args.phases:
            log("Asterisk restart")
            a = await asterisk_phase(rig, 4, 3, args.restarts)
            result["asterisk_restart"] = a
            result["asterisk_restart_resync_s"] = a["resync_s"]
        failed = False
    finally:
        if args.events is not None:
            args.events.write_text("".join(json.dumps(e) + "\n" for e in rig.events))
        await rig.stop()
    wall = time.monotonic() - started
    cpu1 = (machine_busy_s(), time.monotonic())
    result["service_log"] = service_log_summary(rig.log_path)
    result["service_log"]["errors_seen"] = error_records(rig.log_path)
    result["service_restarts"] = len(rig.service_starts) - 1
    result["service_start_s"] = summary_ms(rig.service_starts)
    result["run_s"] = round(wall, 1)
    result["machine_busy_cores"] = round((cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1]), 2)
    result["load_average_1m_after"] = os.getloadavg()[0]
    result["machine_cores"] = os.cpu_count()
    result["python"] = sys.version.split()[0]
    result["platform"] = platform.platform()
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["targets"] = targets(result, args)
    print_table(result)
    for name, ok in result["targets"].items():
        log(f"  {'ok  ' if ok else 'MISS'} {name}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    ordered = {k: result[k] for k in sorted(result, key=lambda k: (isinstance(result[k], dict), k))}
    args.output.write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output} ({wall:.0f} s)")
    failed = failed or not all(result["targets"].values())
    if not failed and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"kept {tmp} (service log, settings) for a look")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("faults bench: needs root to run the sandbox Asterisk", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
