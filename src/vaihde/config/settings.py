"""The service's settings file: where it listens, how it reaches Asterisk and its database.

The company itself (numbers, menus, people) is the admin's company file, applied into the
database (see vaihde.company). Validated as a whole; any problem rejects the whole file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vaihde.config.patterns import DEVICE
from vaihde.config.source import ConfigError, Node, Reader, load_yaml, parse_yaml
from vaihde.http.settings import HttpSettings, parse_http
from vaihde.messages.settings import MessagingSettings, parse_messaging

_HOST = re.compile(r"^[A-Za-z0-9.\-:]{1,253}$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str
    port: int
    username: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    fastagi: Endpoint
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


def load(path: str | Path) -> Settings:
    """Read and validate a settings file; raises ConfigError listing every problem."""
    return _build(load_yaml(path))


def loads(text: str, file: str = "<config>") -> Settings:
    return _build(parse_yaml(text, file))


def _endpoint(r: Reader, default_port: int) -> Endpoint:
    host = r.str("host", "127.0.0.1")
    if not _HOST.match(host):
        r.problems.append(f"{r.where}.host: not a host name or address: {host!r}")
    # 0 = any free port (tests, several instances on one machine).
    port = r.int("port", default_port, low=0, high=65535)
    r.done()
    return Endpoint(host, port)


def _build(root: Node) -> Settings:
    problems: list[str] = []
    top = Reader(root, problems)
    service = top.section("service")
    fastagi = _endpoint(service.section("fastagi"), 4573)
    http = parse_http(service.section("http"), 8080)
    ami_r = service.section("ami")
    ami_host = ami_r.str("host", "127.0.0.1")
    ami_port = ami_r.int("port", 5038, low=1, high=65535)
    ami_user = ami_r.str("username", "vaihde")
    # The secret may come from the environment so that the file can be committed.
    secret = ami_r.str("secret")
    secret = os.environ.get("VAIHDE_AMI_SECRET") or secret
    if not secret:
        problems.append(
            f"{ami_r.where}.secret: is required (or set VAIHDE_AMI_SECRET in the environment)"
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
    company_file = top.str("company_file", "")
    if company_file and not Path(company_file).is_absolute():
        # Relative to the settings file, so the pair can move together.
        company_file = str(Path(root.where.file).parent / company_file)
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
    )
