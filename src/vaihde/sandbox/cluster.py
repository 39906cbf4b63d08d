"""Several machines on one: two sandbox Asterisks, two `vaihde serve` instances and one PostgreSQL
(optionally Kamailio in front of the Asterisks), started and stopped as one cluster, for
`./scripts/cluster`, the integration tests and bench/cluster_bench.py.

Each Asterisk has its own `systemname` and the shipped dialplan; Asterisk 1 sends its callers to
instance A first (VAIHDE_AGI) and B next (VAIHDE_AGI2), Asterisk 2 the other way round; a PJSIP
trunk each way lands in the other's `[vaihde-reach]`. Each instance keeps an AMI link to both
Asterisks (`service.asterisks`, with the `reach` templates), its guard stands in for its own
AGI URL only (`guard.agi_url`), and both share one PostgreSQL database and one company.

What runs where is decided by pure functions (`Ports`, `asterisk_settings`, `service_settings`);
`Cluster` starts the parts and writes each into the state file of its run directory as it goes,
so that `down` stops everything, also after the process that started it died.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from .chroot import SandboxError, build, require_root, sandbox_root
from .instance import Endpoint, Instance, InstanceSettings, _proc_start_time, load_instance
from .kamailio import Kamailio, KamailioSettings
from .service import ServiceProcess

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_COMPANY = REPO_ROOT / "config" / "demo-company.yaml"
POSTGRES_SCRIPT = REPO_ROOT / "scripts" / "postgres"
STATE_FILE = "state.json"
DATABASE = "vaihde"

ASTERISKS = ("ast1", "ast2")
INSTANCES = ("a", "b")
# Which instance each Asterisk tries first (VAIHDE_AGI), and next (VAIHDE_AGI2).
AGI_ORDER: Mapping[str, tuple[str, str]] = {"ast1": ("a", "b"), "ast2": ("b", "a")}
OTHER: Mapping[str, str] = {"ast1": "ast2", "ast2": "ast1"}

# The cluster's name becomes part of each Asterisk's systemname, vaihde-NAME-ast1: at most 32
# characters of letters, digits, - and _ (config.patterns.SYSTEM_NAME).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$")

Log = Callable[[str], None]


def trunk_to(ast: str) -> str:
    """The PJSIP endpoint through which the other Asterisk dials phones on `ast` (it lives on
    the other Asterisk; its calls land in `ast`'s [vaihde-reach])."""
    return f"to-{ast}"


# --- where everything listens -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ports:
    """The cluster's ports, all within base … base + 99: Asterisk n's AMI on +10n and SIP on
    +10n+1, instance A's FastAGI and HTTP on +30 and +31, B's on +40 and +41, PostgreSQL +50,
    Kamailio +60; +70 … +99 are left for what a test or benchmark adds (SIPp, SMTP, …). RTP:
    rtp_base + 100(n-1) … +99 for Asterisk n."""

    base: int
    rtp_base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - 99:
            raise SandboxError(f"port base {self.base}: 1024..{65535 - 99}")
        if not 1024 <= self.rtp_base <= 65535 - 199:
            raise SandboxError(f"RTP base {self.rtp_base}: 1024..{65535 - 199}")

    def ami(self, ast: str) -> int:
        return self.base + 10 * _index(ast, ASTERISKS)

    def sip(self, ast: str) -> int:
        return self.ami(ast) + 1

    def rtp(self, ast: str) -> tuple[int, int]:
        start = self.rtp_base + 100 * (_index(ast, ASTERISKS) - 1)
        return start, start + 99

    def agi(self, instance: str) -> int:
        return self.base + 20 + 10 * _index(instance, INSTANCES)

    def http(self, instance: str) -> int:
        return self.agi(instance) + 1

    @property
    def postgres(self) -> int:
        return self.base + 50

    @property
    def kamailio(self) -> int:
        return self.base + 60

    def spare(self, n: int) -> int:
        """The nth port left free for a test or benchmark (0 … 29)."""
        if not 0 <= n < 30:
            raise SandboxError("spare ports: 0..29")
        return self.base + 70 + n


def _index(key: str, keys: tuple[str, ...]) -> int:
    if key not in keys:
        raise SandboxError(f"{key!r}: one of {', '.join(keys)}")
    return keys.index(key) + 1


def default_ports(slot: int | None) -> tuple[str, int, int]:
    """(name, port base, RTP base) of the cluster for a test slot (VAIHDE_TEST_SLOT=N: 18000 +
    100·N and 35000 + 200·N, clear of the ports the other tests of the slot use), or of
    `./scripts/cluster` without one (17000, 37000)."""
    if slot is None:
        return "cluster", 17000, 37000
    if not 0 <= slot <= 9:
        raise SandboxError(f"test slot {slot}: 0..9")
    return f"cluster{slot}", 18000 + 100 * slot, 35000 + 200 * slot


# --- what runs: the spec and the secrets ---------------------------------------------------------


@dataclass
class ClusterSpec:
    """Everything that makes one cluster differ from another (kept in its state file)."""

    name: str = "cluster"
    port_base: int = 17000
    rtp_base: int = 37000
    company_file: str = str(DEFAULT_COMPANY)
    kamailio: bool = False
    # Dialplan files every Asterisk #includes after the shipped one (callers, phones).
    extra_dialplan: list[str] = field(default_factory=list)
    # Each Asterisk's own PJSIP endpoints (phones), besides the trunks and Kamailio's.
    endpoints: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {ast: [] for ast in ASTERISKS})
    # VAIHDE_OPERATORS and the switchboard queue's members, per Asterisk.
    operators: dict[str, str] = field(default_factory=lambda: {ast: "" for ast in ASTERISKS})
    operator_timeout: int = 30
    team_queues: list[str] = field(default_factory=list)
    # Console and API accounts made in the database: {"name", "role", "sip_endpoint"?}.
    users: list[dict[str, str]] = field(default_factory=list)
    # Top-level sections added to both instances' settings (e.g. `messages:`), YAML text.
    settings_extra: str = ""
    # A second AMI user on each Asterisk that may also Originate (simulated callers).
    driver: bool = True
    timestamp_events: bool = False
    log_format: str = "json"
    run_dir: str = ""  # "" = var/cluster/NAME in this checkout

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise SandboxError(f"cluster name {self.name!r}: 1-20 letters, digits, - or _")
        Ports(self.port_base, self.rtp_base)
        if set(self.endpoints) - set(ASTERISKS) or set(self.operators) - set(ASTERISKS):
            raise SandboxError(f"endpoints and operators are per Asterisk: {ASTERISKS}")
        for ast in ASTERISKS:
            self.endpoints.setdefault(ast, [])
            self.operators.setdefault(ast, "")
            for ep in self.endpoints[ast]:
                Endpoint.from_any(ep)
        for user in self.users:
            if not {"name", "role"} <= set(user) or set(user) - {"name", "role", "sip_endpoint",
                                                                 "display_name"}:
                raise SandboxError(f"user {user}: name, role and optionally sip_endpoint, "
                                   "display_name")
        if self.log_format not in ("text", "json"):
            raise SandboxError("log_format: text or json")

    @property
    def ports(self) -> Ports:
        return Ports(self.port_base, self.rtp_base)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else REPO_ROOT / "var" / "cluster" / self.name

    def instance_name(self, ast: str) -> str:
        """The sandbox instance of Asterisk `ast` (scripts/sandbox --name)."""
        return f"{self.name}-{_check(ast, ASTERISKS)}"

    def system_name(self, ast: str) -> str:
        """Asterisk `ast`'s systemname (the sandbox's vaihde-<instance name>), which begins its
        call ids and names it in service.asterisks."""
        return f"vaihde-{self.instance_name(ast)}"

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.ports.postgres}/{DATABASE}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClusterSpec:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise SandboxError(f"cluster spec: unknown keys {sorted(unknown)}")
        return cls(**data)


def _check(key: str, keys: tuple[str, ...]) -> str:
    _index(key, keys)
    return key


@dataclass
class Secrets:
    """Made once per `up` and kept (0600) in the state file."""

    ami: dict[str, str]
    driver: dict[str, str]
    agi: str  # one FastAGI secret: both Asterisks name both instances with it
    passwords: dict[str, str]  # console users'

    @classmethod
    def new(cls, spec: ClusterSpec) -> Secrets:
        def token() -> str:
            return secrets.token_urlsafe(18)

        return cls({ast: token() for ast in ASTERISKS},
                   {ast: token() if spec.driver else "" for ast in ASTERISKS},
                   token(), {u["name"]: token() for u in spec.users})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Secrets:
        return cls(dict(data["ami"]), dict(data["driver"]), str(data["agi"]),
                   dict(data["passwords"]))


# --- the parts' configuration (pure) -------------------------------------------------------------


def asterisk_settings(spec: ClusterSpec, keys: Secrets, ast: str) -> InstanceSettings:
    """Asterisk `ast`: the shipped dialplan, its own systemname and ports, FastAGI to its first
    instance and then the other, a trunk to the other Asterisk into [vaihde-reach] there (and
    from it, identified by its address), Kamailio's endpoint when there is one."""
    p = spec.ports
    other = OTHER[ast]
    first, second = AGI_ORDER[ast]
    endpoints: list[dict[str, Any]] = [
        {"name": trunk_to(other), "contact": f"sip:127.0.0.1:{p.sip(other)}",
         "context": "vaihde-reach"},
    ]
    if spec.kamailio:
        endpoints.append({"name": "kamailio", "contact": f"sip:kamailio@127.0.0.1:{p.kamailio}"})
    endpoints += spec.endpoints.get(ast, [])
    rtp_start, rtp_end = p.rtp(ast)
    return InstanceSettings(
        name=spec.instance_name(ast), ami_port=p.ami(ast), sip_port=p.sip(ast),
        rtp_start=rtp_start, rtp_end=rtp_end, ami_secret=keys.ami[ast],
        driver_secret=keys.driver[ast], timestamp_events=spec.timestamp_events,
        agi_url=f"agi://127.0.0.1:{p.agi(first)}",
        agi_fallbacks=[f"agi://127.0.0.1:{p.agi(second)}"], agi_secret=keys.agi,
        operators=spec.operators.get(ast, ""), operator_timeout=spec.operator_timeout,
        team_queues=list(spec.team_queues), extra_dialplan=list(spec.extra_dialplan),
        endpoints=[Endpoint.from_any(e) for e in endpoints],
    )


def service_settings(spec: ClusterSpec, keys: Secrets, instance: str, *, company_file: str,
                     prompts_dir: str, prompts_asterisk_dir: str) -> str:
    """Instance `instance`'s settings file: its own FastAGI and HTTP ports, an AMI link to each
    Asterisk with the template by which the other Asterisk reaches that one's phones, the shared
    database and company, prompts in one directory both Asterisks read, and its guard standing
    in for its own AGI URL only."""
    p = spec.ports

    def q(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a YAML string

    lines = [
        f"# generated by vaihde.sandbox.cluster: cluster {spec.name}, instance "
        f"{instance.upper()}",
        "service:",
        f"  fastagi: {{host: 127.0.0.1, port: {p.agi(instance)}, secret: {q(keys.agi)}}}",
        f"  http: {{host: 127.0.0.1, port: {p.http(instance)}}}",
        "  asterisks:",
    ]
    for ast in ASTERISKS:
        lines.append(
            f"    - {{name: {q(spec.system_name(ast))}, host: 127.0.0.1, port: {p.ami(ast)}, "
            f"username: vaihde, secret: {q(keys.ami[ast])}, "
            f"reach: {q('PJSIP/{resource}@' + trunk_to(ast))}}}")
    lines += [
        f"database: {{url: {q(spec.database_url)}}}",
        f"company_file: {q(company_file)}",
        f"prompts: {{dir: {q(prompts_dir)}, asterisk_dir: {q(prompts_asterisk_dir)}}}",
        f"guard: {{agi_url: {q(f'agi://127.0.0.1:{p.agi(instance)}')}}}",
    ]
    if spec.settings_extra.strip():
        lines.append(spec.settings_extra.rstrip("\n"))
    return "\n".join(lines) + "\n"


def kamailio_settings(spec: ClusterSpec, numbers: list[str]) -> KamailioSettings:
    """Kamailio in front of both Asterisks, for the company's numbers, taking calls from this
    machine (the carrier is a local SIPp or softphone)."""
    p = spec.ports
    return KamailioSettings(
        name=f"{spec.name}-kam", port=p.kamailio, numbers=numbers,
        asterisks=[f"127.0.0.1:{p.sip(ast)}" for ast in ASTERISKS],
        carrier_nets=["127.0.0.1/32"])


def default_spec(name: str, port_base: int, rtp_base: int, *, kamailio: bool = False,
                 company_file: str = str(DEFAULT_COMPANY)) -> ClusterSpec:
    """What `./scripts/cluster up` runs: the demo company; softphones register to their own
    Asterisk (the operator and a caller on Asterisk 1, Anna and another caller on Asterisk 2),
    so that calls on either reach both through the trunks; an operator and an admin for the
    console."""
    def phone(name: str, context: str = "vaihde-inbound") -> dict[str, Any]:
        return {"name": name, "password": secrets.token_urlsafe(9), "context": context}

    return ClusterSpec(
        name=name, port_base=port_base, rtp_base=rtp_base, company_file=company_file,
        kamailio=kamailio,
        endpoints={"ast1": [phone("operator"), phone("caller")],
                   "ast2": [phone("anna"), phone("caller")]},
        operators={"ast1": "PJSIP/operator", "ast2": f"PJSIP/operator@{trunk_to('ast1')}"},
        users=[{"name": "operator", "role": "operator", "sip_endpoint": "PJSIP/operator",
                "display_name": "Cluster operator"},
               {"name": "admin", "role": "admin", "display_name": "Cluster admin"}],
    )


# --- processes -----------------------------------------------------------------------------------


def _alive(record: Mapping[str, Any] | None) -> bool:
    """The recorded process still runs (the same one: its start time matches)."""
    if not record:
        return False
    pid = int(record.get("pid", 0))
    return pid > 0 and _proc_start_time(pid) == record.get("start_time")


def _process_record(pid: int) -> dict[str, Any]:
    return {"pid": pid, "start_time": _proc_start_time(pid)}


def stop_recorded(record: Mapping[str, Any] | None, timeout: float = 10.0) -> bool:
    """SIGTERM the recorded process's group (it was started in a session of its own, so its
    children are in it), then SIGKILL what is left. Only if it is still the same process.
    Returns whether it ran."""
    if not _alive(record):
        return False
    assert record is not None
    pid = int(record["pid"])
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while _alive(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(record):
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # workers or children that outlived it
    return True


def postgres(name: str, port: int, action: str) -> str:
    """scripts/postgres --name NAME ACTION on `port`."""
    env = {**os.environ, "VAIHDE_PG_PORT": str(port)}
    result = subprocess.run([str(POSTGRES_SCRIPT), "--name", name, action], env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    if result.returncode not in (0, 3):
        raise SandboxError(f"scripts/postgres --name {name} {action}: "
                           f"{(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def health(port: int, timeout: float = 1.0) -> str:
    """What the instance's /health says (ok, degraded, down), or "unreachable"."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return str(json.loads(r.read()).get("status", "?"))
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError, OSError):
            return str(json.loads(exc.read()).get("status", "?"))
        return f"HTTP {exc.code}"
    except (OSError, ValueError):
        return "unreachable"


class Cluster:
    """Two Asterisks, two vaihde instances, one PostgreSQL (and Kamailio): `await up()`, `down()`.

    tie_to_parent: every process started from the calling thread dies with it (tests: a killed
    test run leaves nothing behind); blocking starts then run on that thread. Without it (the
    CLI, benchmarks) the parts outlive this process and Asterisk starts run in a worker thread.
    """

    def __init__(self, spec: ClusterSpec, *, tie_to_parent: bool = False,
                 root: str | os.PathLike[str] | None = None) -> None:
        self.spec = spec
        self.ports = spec.ports
        self.run_dir = spec.run_path
        self.root = sandbox_root(root)
        self.tie_to_parent = tie_to_parent
        self.keys: Secrets | None = None
        self.asterisks: dict[str, Instance] = {}
        self.services: dict[str, ServiceProcess] = {}
        self.kamailio: Kamailio | None = None
        self._state: dict[str, Any] = {}

    # --- state -----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Cluster | None:
        """The cluster whose state file is in `run_dir` (None if there is none)."""
        try:
            state = json.loads((run_dir / STATE_FILE).read_text())
            spec = ClusterSpec.from_mapping(state["spec"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        cluster = cls(spec)
        cluster._state = state
        with contextlib.suppress(KeyError, TypeError):
            cluster.keys = Secrets.from_mapping(state["secrets"])
        for ast in ASTERISKS:
            inst = load_instance(spec.instance_name(ast), cluster.root)
            if inst is not None:
                cluster.asterisks[ast] = inst
        return cluster

    def _save(self, **changes: Any) -> None:
        self._state.update(changes)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        temp = self.state_path.with_suffix(".tmp")
        temp.write_text(json.dumps(self._state, indent=2) + "\n")
        os.chmod(temp, 0o600)  # secrets
        temp.replace(self.state_path)

    def _record(self, key: str, pid: int | None) -> None:
        processes = dict(self._state.get("processes", {}))
        if pid is None:
            processes.pop(key, None)
        else:
            processes[key] = _process_record(pid)
        self._save(processes=processes)

    def running_parts(self) -> list[str]:
        """What of this cluster runs now (from the state file and the sandbox's pid files)."""
        out = [key for key, record in self._state.get("processes", {}).items()
               if _alive(record)]
        for ast in ASTERISKS:
            inst = load_instance(self.spec.instance_name(ast), self.root)
            if inst is not None and inst.running:
                out.append(ast)
        pg = self._state.get("postgres")
        if pg and postgres(pg["name"], pg["port"], "status").startswith("running"):
            out.append("postgres")
        return out

    # --- paths and addresses -----------------------------------------------------------------

    def settings_path(self, instance: str) -> Path:
        return self.run_dir / f"settings-{_check(instance, INSTANCES)}.yaml"

    def log_path(self, instance: str) -> Path:
        return self.run_dir / f"vaihde-{_check(instance, INSTANCES)}.log"

    def http_base(self, instance: str) -> str:
        return f"http://127.0.0.1:{self.ports.http(instance)}"

    def agi_url(self, instance: str) -> str:
        """The instance's AGI URL as the dialplan names it (without the secret)."""
        return f"agi://127.0.0.1:{self.ports.agi(instance)}"

    @property
    def database_url(self) -> str:
        return self.spec.database_url

    @property
    def prompts(self) -> tuple[Path, str]:
        """The one prompts directory: on the host, and as both Asterisks see it (they run in
        one chroot; a site shares the directory)."""
        inst = Instance(asterisk_settings(self.spec, self._keys(), "ast1"), root=self.root)
        return inst.sounds_dir, inst.sounds_dir_in_asterisk

    def _keys(self) -> Secrets:
        if self.keys is None:
            raise SandboxError(f"cluster {self.spec.name!r} has no secrets yet: not up")
        return self.keys

    # --- bringing it up ----------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        # With tie_to_parent the kernel ties each child to the thread that started it: that
        # must be this (long-lived) thread, not a pool worker.
        if self.tie_to_parent:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def up(self, *, replace: bool = False, log: Log = lambda _line: None) -> Self:
        require_root("starting a cluster")
        old = Cluster.from_run_dir(self.run_dir)
        if old is not None:
            alive = await asyncio.to_thread(old.running_parts)
            if alive and not replace:
                raise SandboxError(
                    f"cluster {self.spec.name!r} still runs ({', '.join(alive)}): "
                    f"`./scripts/cluster down --name {self.spec.name}` first")
            if alive:
                await asyncio.to_thread(old.down, log)
        await asyncio.to_thread(build, self.root, log)
        self.keys = Secrets.new(self.spec)
        self._state = {}
        self._save(spec=self.spec.to_dict(), secrets=asdict(self.keys), status="starting",
                   started_at=datetime.now(UTC).isoformat(timespec="seconds"), processes={})
        try:
            await self._up(log)
        except BaseException:
            log("cluster: starting failed; stopping what was started")
            await asyncio.to_thread(self.down, log)
            raise
        self._save(status="up")
        return self

    async def _up(self, log: Log) -> None:
        spec, keys = self.spec, self._keys()
        log(f"cluster {spec.name}: PostgreSQL on 127.0.0.1:{self.ports.postgres}")
        self._save(postgres={"name": spec.name, "port": self.ports.postgres})
        await asyncio.to_thread(postgres, spec.name, self.ports.postgres, "start")
        await self._prepare_database()
        for ast in ASTERISKS:
            inst = Instance(asterisk_settings(spec, keys, ast), root=self.root)
            self.asterisks[ast] = inst
            log(f"cluster {spec.name}: Asterisk {ast} ({spec.system_name(ast)})")
            await self._blocking(inst.start, 30.0, True, self.tie_to_parent)
        if spec.kamailio:
            numbers = await asyncio.to_thread(_company_numbers, spec.company_file)
            self.kamailio = Kamailio(kamailio_settings(spec, numbers), self.run_dir / "kamailio")
            log(f"cluster {spec.name}: Kamailio on udp 127.0.0.1:{self.ports.kamailio}")
            await self._blocking(self.kamailio.start, 15.0, self.tie_to_parent)
            self._record("kamailio", self.kamailio.pid)
        await asyncio.to_thread(self._write_settings)
        log(f"cluster {spec.name}: vaihde instances A and B")
        await asyncio.gather(*(self.start_service(i) for i in INSTANCES))

    def _write_settings(self) -> None:
        prompts_dir, prompts_in_asterisk = self.prompts
        for instance in INSTANCES:
            path = self.settings_path(instance)
            path.write_text(service_settings(
                self.spec, self._keys(), instance,
                company_file=os.path.abspath(self.spec.company_file),
                prompts_dir=str(prompts_dir), prompts_asterisk_dir=prompts_in_asterisk))
            os.chmod(path, 0o600)  # the AMI secrets

    async def _prepare_database(self) -> None:
        """A fresh database with the schema, the company and the console users, before either
        instance starts (so neither applies the company file on its own)."""
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        from vaihde.auth.passwords import hash_password_async
        from vaihde.auth.store import add_user
        from vaihde.company import load_company
        from vaihde.company.apply import apply_company
        from vaihde.db import open_database
        from vaihde.db.migrate import upgrade_async

        admin = create_async_engine(
            f"postgresql+asyncpg://postgres@127.0.0.1:{self.ports.postgres}/postgres",
            isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
                await conn.execute(text(f"CREATE DATABASE {DATABASE}"))
        finally:
            await admin.dispose()
        company = await asyncio.to_thread(load_company, self.spec.company_file)
        db = open_database(self.database_url)
        try:
            await upgrade_async(db.engine)
            await apply_company(db.sessions, company, applied_by="vaihde cluster",
                                source_name=str(self.spec.company_file))
            for user in self.spec.users:
                hashed = await hash_password_async(self._keys().passwords[user["name"]])
                async with db.sessions() as session, session.begin():
                    await add_user(session, user["name"], role=user["role"],
                                   sip_endpoint=user.get("sip_endpoint") or None,
                                   display_name=user.get("display_name", ""),
                                   password_hash=hashed)
        finally:
            await db.close()

    # --- the parts, one by one (tests and benchmarks stop and start them) ----------------------

    async def start_service(self, instance: str, timeout: float = 60.0) -> float:
        """Start instance `instance` and wait until /health says ok (FastAGI listening, AMI to
        both Asterisks); returns how long that took."""
        began = time.monotonic()
        service = ServiceProcess(self.settings_path(instance), self.log_path(instance),
                                 log_format=self.spec.log_format)
        self.services[instance] = service
        service.start(tie_to_parent=self.tie_to_parent)
        self._record(instance, service.pid)
        await service.wait_healthy(self.ports.http(instance), timeout)
        return time.monotonic() - began

    def kill_service(self, instance: str) -> float:
        """kill -9 instance `instance` (its guards die with it); returns when (wall clock)."""
        service = self.services[instance]
        at = time.time()
        service.kill()
        self._record(instance, None)
        return at

    def stop_service(self, instance: str) -> None:
        service = self.services.get(instance)
        if service is not None:
            service.stop()
        else:
            stop_recorded(self._state.get("processes", {}).get(instance))
        self._record(instance, None)

    async def start_asterisk(self, ast: str) -> float:
        """Start Asterisk `ast` again (after kill_asterisk); returns how long it took to boot."""
        began = time.monotonic()
        inst = self.asterisks[ast]
        await self._blocking(inst.start, 30.0, True, self.tie_to_parent)
        return time.monotonic() - began

    def kill_asterisk(self, ast: str) -> float:
        """kill -9 Asterisk `ast` (its calls die with it); returns when (wall clock)."""
        at = time.time()
        self.asterisks[ast].kill()
        return at

    # --- taking it down ----------------------------------------------------------------------

    def down(self, log: Log = lambda _line: None) -> list[str]:
        """Stop every part this cluster started (from the live objects, else from the state
        file and the sandbox's pid files); returns what was stopped."""
        stopped: list[str] = []
        records = dict(self._state.get("processes", {}))
        for instance in INSTANCES:
            service = self.services.pop(instance, None)
            record = records.pop(instance, None)
            if service is not None and service.proc is not None and service.proc.poll() is None:
                service.stop()
                stopped.append(f"vaihde {instance.upper()}")
            elif stop_recorded(record):
                stopped.append(f"vaihde {instance.upper()}")
        kam = self.kamailio
        self.kamailio = None
        record = records.pop("kamailio", None)
        if kam is not None and kam.running:
            kam.stop()
            stopped.append("kamailio")
        elif stop_recorded(record):
            stopped.append("kamailio")
        for ast in ASTERISKS:
            inst = self.asterisks.pop(ast, None) or load_instance(
                self.spec.instance_name(ast), self.root)
            if inst is not None and inst.running:
                inst.stop()
                stopped.append(f"Asterisk {ast}")
        pg = self._state.get("postgres") or {"name": self.spec.name,
                                             "port": self.ports.postgres}
        with contextlib.suppress(SandboxError):
            if postgres(pg["name"], pg["port"], "status").startswith("running"):
                postgres(pg["name"], pg["port"], "stop")
                stopped.append("postgres")
        if self.state_path.exists():
            self._save(status="down", processes=records,
                       stopped_at=datetime.now(UTC).isoformat(timespec="seconds"))
        for part in stopped:
            log(f"cluster {self.spec.name}: stopped {part}")
        return stopped

    # --- telling where everything is ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        spec, p = self.spec, self.ports
        processes = self._state.get("processes", {})
        asterisks = {}
        for ast in ASTERISKS:
            inst = self.asterisks.get(ast) or load_instance(spec.instance_name(ast), self.root)
            asterisks[ast] = {
                "systemname": spec.system_name(ast), "running": bool(inst and inst.running),
                "ami": f"127.0.0.1:{p.ami(ast)}", "sip": f"udp 127.0.0.1:{p.sip(ast)}",
                "agi_order": [i.upper() for i in AGI_ORDER[ast]],
                "sandbox_name": spec.instance_name(ast),
            }
        instances = {}
        for instance in INSTANCES:
            up = _alive(processes.get(instance))
            instances[instance] = {
                "running": up, "health": health(p.http(instance)) if up else "stopped",
                "fastagi": f"127.0.0.1:{p.agi(instance)}", "http": self.http_base(instance),
                "log": str(self.log_path(instance)),
                "settings": str(self.settings_path(instance)),
            }
        pg = self._state.get("postgres") or {"name": spec.name, "port": p.postgres}
        out: dict[str, Any] = {
            "name": spec.name, "status": self._state.get("status", "unknown"),
            "run_dir": str(self.run_dir), "asterisks": asterisks, "instances": instances,
            "postgres": {"url": self.database_url,
                         "running": postgres(pg["name"], pg["port"], "status").startswith(
                             "running")},
        }
        if spec.kamailio:
            out["kamailio"] = {"running": _alive(processes.get("kamailio")),
                               "sip": f"udp 127.0.0.1:{p.kamailio}"}
        return out

    def describe(self) -> str:
        """How to reach each part (what `up` and `status` print)."""
        s = self.status()
        spec = self.spec
        keys = self.keys
        lines = [f"vaihde cluster {spec.name!r}: {s['status']} (run dir {self.run_dir}; "
                 f"./scripts/cluster down --name {spec.name} stops it)",
                 f"  PostgreSQL  {s['postgres']['url']}"
                 f"{'' if s['postgres']['running'] else '  (stopped)'}"]
        for n, ast in enumerate(ASTERISKS, start=1):
            a = s["asterisks"][ast]
            secret = f" / {keys.ami[ast]}" if keys else ""
            lines.append(
                f"  Asterisk {n}  {a['systemname']}: AMI {a['ami']} (vaihde{secret}), SIP "
                f"{a['sip']}; FastAGI to {' then '.join(a['agi_order'])}"
                f"{'' if a['running'] else '  (stopped)'}")
            if keys and keys.driver[ast]:
                lines.append(f"              simulated callers: AMI user vaihde-test-driver / "
                             f"{keys.driver[ast]}")
            lines.append(f"              CLI: ./scripts/sandbox rx --name {a['sandbox_name']} "
                         "'core show channels'")
            for ep in spec.endpoints.get(ast, []):
                if ep.get("password"):
                    lines.append(f"              softphone {ep['name']} / {ep['password']} "
                                 f"(register at 127.0.0.1:{self.ports.sip(ast)})")
        for instance in INSTANCES:
            i = s["instances"][instance]
            lines.append(f"  Instance {instance.upper()}  FastAGI {i['fastagi']}; console "
                         f"{i['http']}/console, health {i['http']}/health: {i['health']}")
            lines.append(f"              log {i['log']}")
        if "kamailio" in s:
            k = s["kamailio"]
            lines.append(f"  Kamailio    {k['sip']} in front of both Asterisks: send calls for the "
                         f"company's numbers there{'' if k['running'] else '  (stopped)'}")
        for user in spec.users:
            password = keys.passwords.get(user["name"], "?") if keys else "?"
            lines.append(f"  Console     {user['name']} / {password} ({user['role']})")
        return "\n".join(lines)


def _company_numbers(company_file: str) -> list[str]:
    from vaihde.company import load_company

    return [str(n) for n in load_company(company_file).numbers]


# --- command line --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    slot = os.environ.get("VAIHDE_TEST_SLOT", "")
    name, base, rtp = default_ports(int(slot) if slot.isdigit() else None)
    p = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="Two sandbox Asterisks, two vaihde instances and one PostgreSQL on this "
        "machine (optionally Kamailio in front): several machines on one.")
    p.add_argument("--name", default=name, help=f"cluster name (default {name})")
    p.add_argument("--run-dir", type=Path,
                   help="state, settings and logs (default var/cluster/NAME in this checkout)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster and print how to reach each part")
    up.add_argument("--port-base", type=int, default=base,
                    help=f"ports base … base+99 (default {base}; see Ports)")
    up.add_argument("--rtp-base", type=int, default=rtp, help=f"RTP ports (default {rtp})")
    up.add_argument("--kamailio", action="store_true", help="Kamailio in front (port base+60)")
    up.add_argument("--company", default=str(DEFAULT_COMPANY), help="company file")
    up.add_argument("--replace", action="store_true", help="take down a running one first")
    sub.add_parser("down", help="stop every part (also after a crash)")
    st = sub.add_parser("status", help="what runs and where")
    st.add_argument("--json", action="store_true")
    return p


def _run_dir(args: argparse.Namespace) -> Path:
    return Path(args.run_dir) if args.run_dir else REPO_ROOT / "var" / "cluster" / args.name


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.command == "up":
            spec = default_spec(args.name, args.port_base, args.rtp_base,
                                kamailio=args.kamailio, company_file=args.company)
            spec.run_dir = str(args.run_dir or "")
            cluster = Cluster(spec)
            asyncio.run(cluster.up(replace=args.replace, log=say))
            print(cluster.describe())
            return 0
        found = Cluster.from_run_dir(_run_dir(args))
        if args.command == "down":
            cluster = found or Cluster(ClusterSpec(name=args.name, run_dir=str(_run_dir(args))))
            stopped = cluster.down()
            print(f"cluster {args.name}: " + (f"stopped {', '.join(stopped)}" if stopped
                                              else "nothing was running"))
            return 0
        if found is None:
            print(f"cluster {args.name}: no state in {_run_dir(args)} (never up here)")
            return 3
        if args.json:
            print(json.dumps(found.status(), indent=2))
        else:
            print(found.describe())
        return 0
    except SandboxError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `scripts/cluster status | head`: the reader left; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("cluster: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
