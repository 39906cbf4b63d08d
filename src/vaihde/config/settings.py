"""The service's settings file: where it listens, how it reaches Asterisk and its database.

The company itself (numbers, menus, people) is the admin's company file, applied into the
database (see vaihde.company). Validated as a whole; any problem rejects the whole file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from vaihde.calendar.policy import CalendarPolicy
from vaihde.config.patterns import AGI_SECRET, DEVICE, ENV_NAME, HOST, SYSTEM_NAME
from vaihde.config.source import ConfigError, Node, Reader, load_yaml, parse_yaml
from vaihde.http.settings import HttpSettings, parse_http
from vaihde.messages.settings import MessagingSettings, parse_messaging


@dataclass(frozen=True, slots=True)
class FastAgiSettings:
    host: str
    port: int
    # Peers allowed to connect (Asterisk servers); FastAGI itself has no authentication.
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # A shared secret carried as the first path segment of the AGI URL
    # (agi://host:port/SECRET/inbound); "" = none.
    secret: str = field(default="", repr=False)


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
GUARD_MODES = ("child", "external", "off")


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str
    port: int
    username: str
    secret: str = field(repr=False)


# Placeholders of a `reach` template: the phone's device (PJSIP/op1) and its part after the
# technology (op1).
REACH_FIELDS = ("device", "resource")


@dataclass(frozen=True, slots=True)
class AsteriskSettings:
    """One Asterisk the service keeps an AMI connection to (service.asterisks, or the single
    service.ami, whose name is "": then nothing is checked against Asterisk's systemname)."""

    name: str
    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    # How another Asterisk dials a phone that lives on this one: (that Asterisk's name, or "*"
    # for any, → a Dial() template with {device} or {resource}), e.g. PJSIP/{resource}@to-ast1.
    reach: tuple[tuple[str, str], ...] = ()

    def reach_from(self, other: str) -> str:
        """The template `other` uses to dial a phone here ("" = none: it dials the device)."""
        given = dict(self.reach)
        return given.get(other) or given.get("*", "")


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    fastagi: FastAgiSettings
    http: HttpSettings
    ami: AmiSettings  # the first (or only) Asterisk, as before service.asterisks existed
    database_url: str  # "" = the default (vaihde.db.engine.DEFAULT_URL)
    company_file: str  # applied at start when the database holds no company yet; "" = none
    mobile_dial: str  # Dial() template for mobile numbers, e.g. PJSIP/{number}@trunk; "" = none
    calendar_interval_s: int = 300
    # Several companies (issue 12): their files, applied at start when the database holds no
    # company yet, each as its own company (after company_file, if both are given).
    company_files: tuple[str, ...] = ()
    prompts_dir: str = "var/prompts"  # where synthesized prompts are written
    prompts_asterisk_dir: str = ""  # the same directory as Asterisk sees it; "" = prompts_dir
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    log_format: str = "text"
    console_bounce_s: int = 20  # a blind transfer rings this long before it comes back
    console_ring_s: int = 30  # the console rings an operator's own phone this long
    console_streams_per_user: int = 5  # open console event streams per user at most
    # After a talk the operator's wrap-up counts until they mark it done or take the next
    # call, at most this long (vaihde.reports.usage).
    wrap_up_max_s: int = 120
    # The guard (src/vaihde/guard/): "child" of vaihde serve, "external" (its own systemd unit),
    # or "off"; it moves a caller out of an AGI session Asterisk has waited on for stall_s.
    guard_mode: str = "child"
    guard_stall_s: float = 2.5
    # With several instances on the same Asterisks: the AGI URL (as in the dialplan's
    # VAIHDE_AGI…, without the secret) whose sessions this instance's guard stands in for.
    guard_agi_url: str = ""
    calendar: CalendarPolicy = field(default_factory=CalendarPolicy)  # what calendars may be read
    # Every Asterisk, in the order configured; empty = just `ami` (settings made in code).
    asterisks: tuple[AsteriskSettings, ...] = ()

    def all_asterisks(self) -> tuple[AsteriskSettings, ...]:
        if self.asterisks:
            return self.asterisks
        ami = self.ami
        return (AsteriskSettings("", ami.host, ami.port, ami.username, ami.secret),)


def load(path: str | Path) -> Settings:
    """Read and validate a settings file; raises ConfigError listing every problem."""
    return _build(load_yaml(path))


def loads(text: str, file: str = "<config>") -> Settings:
    return _build(parse_yaml(text, file))


def _fastagi(r: Reader) -> FastAgiSettings:
    host = r.host("host", "127.0.0.1")
    port = r.int("port", 4573, low=0, high=65535)
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for node in r.list("allow"):
        try:
            allow.append(ipaddress.ip_network(str(node.value), strict=False))
        except ValueError:
            r.error(node, f"not an address or network: {node.value!r}")
    if not r.has("allow"):
        allow = list(LOOPBACK)
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        if not loopback:
            r.problems.append(f"{r.where}.allow: FastAGI on {host} needs the list of Asterisk "
                              "servers' addresses allowed to connect (it has no authentication "
                              "of its own)")
    secret = os.environ.get("VAIHDE_AGI_SECRET") or r.str("secret", "")
    if secret and not AGI_SECRET.match(secret):
        r.problems.append(f"{r.where}.secret: must be 16-128 letters, digits, - or _ (it is part "
                          "of a URL)")
    r.done()
    return FastAgiSettings(host, port, tuple(allow), secret)


def _build(root: Node) -> Settings:
    problems: list[str] = []
    top = Reader(root, problems)
    service = top.section("service")
    fastagi = _fastagi(service.section("fastagi"))
    http = parse_http(service.section("http"))
    asterisks = _asterisks(service, problems)
    log_format = service.str("log_format", "text")
    if log_format not in ("text", "json"):
        problems.append(f"{service.where}.log_format: must be text or json")
    mobile_dial = service.str("mobile_dial", "")
    if mobile_dial and not DEVICE.match(mobile_dial.replace("{number}", "358401234567")):
        problems.append(f"{service.where}.mobile_dial: must be a device template like "
                        "PJSIP/{number}@trunk")
    calendar_interval = service.int("calendar_interval_s", 300, low=30, high=86400)
    service.done()

    # The database URL may come from the environment so that secrets stay out of the file.
    db = top.section("database")
    # "" leaves the choice to vaihde.db.database_url() ($VAIHDE_DB_URL, else var/vaihde.db).
    database_url = db.str("url", "")
    database_url = os.environ.get("VAIHDE_DB_URL") or database_url
    db.done()
    prompts = top.section("prompts")
    # The environment may say where the prompts go (the demo script knows the sandbox's paths).
    prompts_dir = os.environ.get("VAIHDE_PROMPTS_DIR") or prompts.str("dir", "var/prompts")
    prompts_asterisk_dir = (os.environ.get("VAIHDE_PROMPTS_ASTERISK_DIR")
                            or prompts.str("asterisk_dir", ""))
    if prompts_asterisk_dir and not prompts_asterisk_dir.startswith("/"):
        problems.append(f"{prompts.where}.asterisk_dir: must be an absolute path")
    prompts.done()
    messaging = parse_messaging(top.section("messages"))
    console = top.section("console")
    console_bounce_s = console.int("bounce_back_s", 20, low=5, high=300)
    console_ring_s = console.int("ring_s", 30, low=5, high=300)
    console_streams = console.int("streams_per_user", 5, low=1, high=100)
    wrap_up_max_s = console.int("wrap_up_max_s", 120, low=0, high=3600)
    console.done()
    guard = top.section("guard")
    guard_mode = os.environ.get("VAIHDE_GUARD_MODE") or guard.str("mode", "child")
    if guard_mode not in GUARD_MODES:
        problems.append(f"{guard.where}.mode: must be one of {', '.join(GUARD_MODES)}")
    guard_stall_ms = guard.int("stall_ms", 2500, low=500, high=10_000)
    guard_agi_url = guard.str("agi_url", "")
    authority = guard_agi_url.removeprefix("agi://").rstrip("/")
    if guard_agi_url and (not guard_agi_url.startswith("agi://") or not HOST.match(authority)):
        problems.append(f"{guard.where}.agi_url: must be this instance's agi://HOST:PORT")
    guard.done()
    company_file = top.str("company_file", "")
    if company_file and not Path(company_file).is_absolute():
        # Relative to the settings file, so the pair can move together.
        company_file = str(Path(root.where.file).parent / company_file)
    company_files: list[str] = []
    for node in top.list("company_files"):
        if not isinstance(node.value, str) or not node.value.strip():
            problems.append(f"{node.where}: must be a company file's path")
            continue
        path = node.value if Path(node.value).is_absolute() else str(
            Path(root.where.file).parent / node.value)
        if path in company_files or path == company_file:
            problems.append(f"{node.where}: {node.value} is listed twice")
        company_files.append(path)
    # The calendar files' default place is beside the (first) company file (or this file).
    calendar = _calendar(top.section("calendar"),
                         company_file or next(iter(company_files), "") or root.where.file)
    top.done()
    if problems:
        raise ConfigError(problems)
    first = asterisks[0]
    return Settings(
        source=root.where.file, fastagi=fastagi, http=http,
        ami=AmiSettings(first.host, first.port, first.username, first.secret),
        asterisks=asterisks, database_url=database_url, company_file=company_file,
        company_files=tuple(company_files),
        mobile_dial=mobile_dial, calendar_interval_s=calendar_interval, prompts_dir=prompts_dir,
        prompts_asterisk_dir=prompts_asterisk_dir, messaging=messaging, log_format=log_format,
        console_bounce_s=console_bounce_s, console_ring_s=console_ring_s,
        console_streams_per_user=console_streams, guard_mode=guard_mode,
        wrap_up_max_s=wrap_up_max_s,
        guard_stall_s=guard_stall_ms / 1000,
        guard_agi_url=guard_agi_url.rstrip("/") + "/" if guard_agi_url else "",
        calendar=calendar,
    )


def _secret(r: Reader, problems: list[str], env_default: str | None) -> str:
    """An AMI user's secret: `secret_env` names the environment variable that holds it;
    `env_default` (VAIHDE_AMI_SECRET, for a single Asterisk) wins over `secret` when set."""
    secret = r.str("secret")
    env_name = r.str("secret_env")
    given = ""
    where_env = "VAIHDE_AMI_SECRET" if env_default is not None else "the environment"
    if env_name:
        node = r.child("secret_env")
        assert node is not None
        if not ENV_NAME.match(env_name):
            r.error(node, "must be the name of an environment variable")
            return ""
        if secret:
            r.error(node, "give secret or secret_env, not both")
        secret = os.environ.get(env_name, "")
        if not secret:
            r.error(node, f"the environment variable {env_name} is not set")
            return ""
        given = f" (given in {env_name})"
    elif env_default:
        secret, given = env_default, " (given in VAIHDE_AMI_SECRET)"
    if not secret:
        hint = "VAIHDE_AMI_SECRET in the environment" if env_default is not None else (
            "secret_env: NAME of an environment variable that holds it")
        problems.append(f"{r.where}.secret: is required (or set {hint})")
    elif is_example_secret(secret):
        problems.append(f"{r.where}.secret: is the example secret of "
                        f"config/asterisk/manager-vaihde.conf{given}, which anyone can read: "
                        "choose your own (e.g. `openssl rand -base64 24`) and set it in "
                        f"manager-vaihde.conf and here or in {where_env}")
    return secret


def _ami(r: Reader, problems: list[str], name: str, env_default: str | None) -> AsteriskSettings:
    host = r.host("host", "127.0.0.1")
    port = r.int("port", 5038, low=1, high=65535)
    username = r.str("username", "vaihde")
    return AsteriskSettings(name, host, port, username, _secret(r, problems, env_default))


def _reach(r: Reader, names: list[str], own: str) -> tuple[tuple[str, str], ...]:
    """`reach`: one template for every other Asterisk, or a mapping of their names to one."""
    node = r.child("reach")
    if node is None or node.value is None:
        return ()
    pairs = list(node.value.items()) if isinstance(node.value, dict) else [("*", node)]
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key != "*" and (key not in names or key == own):
            r.error(value, f"{key!r} is not the name of another of service.asterisks")
            continue
        if not isinstance(value.value, str):
            r.error(value, "must be a Dial() template like PJSIP/{resource}@to-ast1")
            continue
        problem = reach_problem(value.value)
        if problem:
            r.error(value, problem)
            continue
        out.append((key, value.value))
    return tuple(out)


def reach_problem(template: str) -> str:
    """What is wrong with a `reach` template ("" = nothing)."""
    try:
        sample = template.format(device="PJSIP/op1", resource="op1")
    except (KeyError, IndexError, ValueError):
        return "a template may only use {device} and {resource} (e.g. PJSIP/{resource}@to-ast1)"
    if not any("{" + f + "}" in template for f in REACH_FIELDS):
        return "must place the phone with {device} or {resource} (e.g. PJSIP/{resource}@to-ast1)"
    if not DEVICE.match(sample):
        return "must be a device template like PJSIP/{resource}@to-ast1 (no & , $ or spaces)"
    return ""


def _asterisks(service: Reader, problems: list[str]) -> tuple[AsteriskSettings, ...]:
    """`service.asterisks` (every Asterisk, each its own AMI connection), or the single
    `service.ami` as before."""
    env_secret = os.environ.get("VAIHDE_AMI_SECRET") or ""
    if not service.has("asterisks"):
        ami = _ami(r := service.section("ami"), problems, "", env_secret)
        r.done()
        return (ami,)
    nodes = service.list("asterisks")
    node = service.child("asterisks")
    assert node is not None
    if service.has("ami"):
        service.child("ami")
        problems.append(f"{service.where}.ami: give service.ami or service.asterisks, not both")
    if not nodes:
        if isinstance(node.value, list) or node.value is None:
            service.error(node, "must list at least one Asterisk")
        return (AsteriskSettings("", "127.0.0.1", 5038, "vaihde", ""),)
    readers = [Reader(n, problems) for n in nodes]
    names: list[str] = []
    seen: dict[str, str] = {}
    for r in readers:
        name = r.str("name", required=True)
        name_node = r.child("name")
        if name and not SYSTEM_NAME.match(name) and name_node is not None:
            r.error(name_node, "must be the Asterisk's systemname: 1-32 letters, digits, - or _ "
                    "(asterisk.conf [options] systemname)")
        elif name in seen and name_node is not None:
            r.error(name_node, f"{name!r} is already the name of {seen[name]}: each Asterisk "
                    "needs a systemname of its own")
        elif name:
            seen[name] = str(r.where.field)
        names.append(name)
    out = []
    single = len(readers) == 1
    for r, name in zip(readers, names, strict=True):
        ami = _ami(r, problems, name, env_secret if single else None)
        out.append(AsteriskSettings(ami.name, ami.host, ami.port, ami.username, ami.secret,
                                    _reach(r, names, name)))
        r.done()
    return tuple(out)


def is_example_secret(secret: str) -> bool:
    """The placeholder shipped in manager-vaihde.conf (and its obvious spellings)."""
    return secret.strip().lower().replace("-", "").replace("_", "") == "changeme"


def _calendar(r: Reader, beside: str) -> CalendarPolicy:
    """Which calendars may be read (vaihde.calendar.policy): `files_dir`, the directory calendar
    files must be in (default `calendars` beside the company file, or beside the settings file
    when there is none; a relative path is relative to the settings file); `plain_http_hosts`,
    hosts whose calendars may come over plain http (tests and local development only)."""
    given = r.str("files_dir", "")
    if not given:
        files_dir = os.path.abspath(Path(beside).parent / "calendars")
    elif Path(given).is_absolute():
        files_dir = os.path.abspath(given)
    else:
        files_dir = os.path.abspath(Path(r.where.file).parent / given)
    hosts: list[str] = []
    for node in r.list("plain_http_hosts"):
        host = node.text if node.text is not None else ""
        if not isinstance(node.value, str | int) or not HOST.match(host):
            r.error(node, "must be a host name or address like 127.0.0.1")
            continue
        hosts.append(host.lower())
    r.done()
    return CalendarPolicy(files_dir=files_dir, plain_http_hosts=frozenset(hosts))
