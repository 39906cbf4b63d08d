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
from vaihde.config.patterns import AGI_SECRET, DEVICE, HOST
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


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    fastagi: FastAgiSettings
    http: HttpSettings
    ami: AmiSettings
    database_url: str  # "" = the default (vaihde.db.engine.DEFAULT_URL)
    company_file: str  # applied at start when the database holds no company yet; "" = none
    mobile_dial: str  # Dial() template for mobile numbers, e.g. PJSIP/{number}@trunk; "" = none
    calendar_interval_s: int = 300
    prompts_dir: str = "var/prompts"  # where synthesized prompts are written
    prompts_asterisk_dir: str = ""  # the same directory as Asterisk sees it; "" = prompts_dir
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    log_format: str = "text"
    console_bounce_s: int = 20  # a blind transfer rings this long before it comes back
    console_ring_s: int = 30  # the console rings an operator's own phone this long
    console_streams_per_user: int = 5  # open console event streams per user at most
    # The guard (src/vaihde/guard/): "child" of vaihde serve, "external" (its own systemd unit),
    # or "off"; it moves a caller out of an AGI session Asterisk has waited on for stall_s.
    guard_mode: str = "child"
    guard_stall_s: float = 2.5
    # With several instances on the same Asterisks: the AGI URL (as in the dialplan's
    # VAIHDE_AGI…, without the secret) whose sessions this instance's guard stands in for.
    guard_agi_url: str = ""
    calendar: CalendarPolicy = field(default_factory=CalendarPolicy)  # what calendars may be read


def load(path: str | Path) -> Settings:
    """Read and validate a settings file; raises ConfigError listing every problem."""
    return _build(load_yaml(path))


def loads(text: str, file: str = "<config>") -> Settings:
    return _build(parse_yaml(text, file))


def _fastagi(r: Reader) -> FastAgiSettings:
    host = r.str("host", "127.0.0.1")
    if not HOST.match(host):
        r.problems.append(f"{r.where}.host: not a host name or address: {host!r}")
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
            r.problems.append(
                f"{r.where}.allow: FastAGI on {host} needs the list of Asterisk servers' "
                "addresses allowed to connect (it has no authentication of its own)"
            )
    secret = os.environ.get("VAIHDE_AGI_SECRET") or r.str("secret", "")
    if secret and not AGI_SECRET.match(secret):
        r.problems.append(
            f"{r.where}.secret: must be 16-128 letters, digits, - or _ (it is part of a URL)"
        )
    r.done()
    return FastAgiSettings(host, port, tuple(allow), secret)


def _build(root: Node) -> Settings:
    problems: list[str] = []
    top = Reader(root, problems)
    service = top.section("service")
    fastagi = _fastagi(service.section("fastagi"))
    http = parse_http(service.section("http"), 8080)
    ami_r = service.section("ami")
    ami_host = ami_r.str("host", "127.0.0.1")
    ami_port = ami_r.int("port", 5038, low=1, high=65535)
    ami_user = ami_r.str("username", "vaihde")
    # The secret may come from the environment so that the file can be committed.
    secret = ami_r.str("secret")
    from_env = os.environ.get("VAIHDE_AMI_SECRET")
    secret = from_env or secret
    if not secret:
        problems.append(
            f"{ami_r.where}.secret: is required (or set VAIHDE_AMI_SECRET in the environment)"
        )
    elif is_example_secret(secret):
        given = " (given in VAIHDE_AMI_SECRET)" if from_env else ""
        problems.append(
            f"{ami_r.where}.secret: is the example secret of config/asterisk/manager-vaihde.conf"
            f"{given}, which anyone can read: choose your own (e.g. `openssl rand -base64 24`) "
            "and set it in manager-vaihde.conf and here or in VAIHDE_AMI_SECRET"
        )
    ami_r.done()
    log_format = service.str("log_format", "text")
    if log_format not in ("text", "json"):
        problems.append(f"{service.where}.log_format: must be text or json")
    mobile_dial = service.str("mobile_dial", "")
    if mobile_dial and not DEVICE.match(mobile_dial.replace("{number}", "358401234567")):
        problems.append(
            f"{service.where}.mobile_dial: must be a device template like PJSIP/{{number}}@trunk"
        )
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
    prompts_asterisk_dir = os.environ.get("VAIHDE_PROMPTS_ASTERISK_DIR") or prompts.str(
        "asterisk_dir", ""
    )
    if prompts_asterisk_dir and not prompts_asterisk_dir.startswith("/"):
        problems.append(f"{prompts.where}.asterisk_dir: must be an absolute path")
    prompts.done()
    messaging = parse_messaging(top.section("messages"))
    console = top.section("console")
    console_bounce_s = console.int("bounce_back_s", 20, low=5, high=300)
    console_ring_s = console.int("ring_s", 30, low=5, high=300)
    console_streams = console.int("streams_per_user", 5, low=1, high=100)
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
    # The calendar files' default place is beside the company file (or this file).
    calendar = _calendar(top.section("calendar"), company_file or root.where.file)
    top.done()
    if problems:
        raise ConfigError(problems)
    return Settings(
        source=root.where.file,
        fastagi=fastagi,
        http=http,
        ami=AmiSettings(ami_host, ami_port, ami_user, secret),
        database_url=database_url,
        company_file=company_file,
        mobile_dial=mobile_dial,
        calendar_interval_s=calendar_interval,
        prompts_dir=prompts_dir,
        prompts_asterisk_dir=prompts_asterisk_dir,
        messaging=messaging,
        log_format=log_format,
        console_bounce_s=console_bounce_s,
        console_ring_s=console_ring_s,
        console_streams_per_user=console_streams,
        guard_mode=guard_mode,
        guard_stall_s=guard_stall_ms / 1000,
        guard_agi_url=guard_agi_url.rstrip("/") + "/" if guard_agi_url else "",
        calendar=calendar,
    )


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
