"""The service's configuration file: where it listens, how it reaches Asterisk, and the company's
numbers, people and menu. Validated as a whole; any problem rejects the whole file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vaihde.config.source import ConfigError, Node, Reader, load_yaml, parse_yaml

# Dial strings reach Dial() as they are, so only plain device names are allowed: no '&' (extra
# legs), ',' (Dial options), '$' or quotes (expressions).
_DEVICE = re.compile(r"^(PJSIP|SIP|IAX2|DAHDI|Local)/[A-Za-z0-9_.+@\-/]{1,80}$")
_SOUND = re.compile(r"^[A-Za-z0-9_\-/]{1,120}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
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
class Employee:
    id: str
    name: str
    devices: tuple[str, ...]
    ring_seconds: int

    @property
    def dial_string(self) -> str:
        return "&".join(self.devices)


@dataclass(frozen=True, slots=True)
class MenuOption:
    digit: str
    kind: str  # "employee" | "operator"
    target: str = ""  # employee id for kind "employee"


@dataclass(frozen=True, slots=True)
class Menu:
    greeting: tuple[str, ...]
    prompt: str
    options: dict[str, MenuOption]
    wait_ms: int
    attempts: int
    invalid: str


@dataclass(frozen=True, slots=True)
class Company:
    name: str
    numbers: tuple[str, ...]
    operator_devices: tuple[str, ...]
    operator_ring_seconds: int
    employees: dict[str, Employee]
    menu: Menu


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    fastagi: Endpoint
    http: Endpoint
    ami: AmiSettings
    company: Company
    log_format: str = "text"


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


def _devices(r: Reader, key: str, why: str) -> tuple[str, ...]:
    nodes = r.list(key)
    if not nodes:
        r.problems.append(f"{r.where}.{key}: at least one device is required: {why}")
    out = []
    for node in nodes:
        value = node.value
        if not isinstance(value, str) or not _DEVICE.match(value):
            r.error(
                node,
                "must be a device like PJSIP/anna or Local/anna@context "
                "(letters, digits and . _ - + @ / only)",
            )
            continue
        out.append(value)
    return tuple(out)


def _build(root: Node) -> Settings:
    problems: list[str] = []
    top = Reader(root, problems)
    service = top.section("service")
    fastagi = _endpoint(service.section("fastagi"), 4573)
    http = _endpoint(service.section("http"), 8080)
    ami_r = service.section("ami")
    ami_host = ami_r.str("host", "127.0.0.1")
    ami_port = ami_r.int("port", 5038, low=1, high=65535)
    ami_user = ami_r.str("username", "vaihde")
    # The secret may come from the environment so that the file can be committed.
    secret = os.environ.get("VAIHDE_AMI_SECRET") or ami_r.str("secret")
    if not secret:
        problems.append(
            f"{ami_r.where}.secret: is required (or set VAIHDE_AMI_SECRET in the environment)"
        )
    ami_r.done()
    log_format = service.str("log_format", "text")
    if log_format not in ("text", "json"):
        problems.append(f"{service.where}.log_format: must be text or json")
    service.done()

    company = _company(top.section("company", required=True), problems)
    top.done()
    if problems:
        raise ConfigError(problems)
    return Settings(
        source=root.where.file,
        fastagi=fastagi,
        http=http,
        ami=AmiSettings(ami_host, ami_port, ami_user, secret),
        company=company,
        log_format=log_format,
    )


def _company(r: Reader, problems: list[str]) -> Company:
    name = r.str("name", required=True)
    numbers = []
    for node in r.list("numbers"):
        value = str(node.value) if isinstance(node.value, str | int) else ""
        if not re.fullmatch(r"\+?[0-9]{3,20}", value):
            r.error(node, "must be a phone number: digits, optionally a leading +")
        numbers.append(value.lstrip("+"))

    op = r.section("operator", required=True)
    operator_devices = _devices(op, "devices", "the phones that answer for operators")
    operator_ring = op.int("ring_seconds", 30, low=5, high=300)
    op.done()

    employees: dict[str, Employee] = {}
    for emp_id, node in r.section("employees").items():
        er = Reader(node, problems)
        if not _ID.match(emp_id):
            er.error(node, "employee id must be lower-case letters, digits, - or _")
        devices = _devices(er, "devices", "the phones this employee answers on")
        employees[emp_id] = Employee(
            id=emp_id,
            name=er.str("name", required=True),
            devices=devices,
            ring_seconds=er.int("ring_seconds", 20, low=5, high=300),
        )
        er.done()

    menu = _menu(r.section("menu", required=True), employees, problems)
    r.done()
    return Company(name, tuple(numbers), operator_devices, operator_ring, employees, menu)


def _sound(r: Reader, node: Node | None) -> str:
    if node is None:
        return ""
    if not isinstance(node.value, str) or not _SOUND.match(node.value):
        r.error(node, "must be a sound name like custom/welcome (no extension)")
        return ""
    return node.value


def _menu(r: Reader, employees: dict[str, Employee], problems: list[str]) -> Menu:
    greeting = tuple(s for s in (_sound(r, n) for n in r.list("greeting")) if s)
    prompt = _sound(r, r.child("prompt"))
    if not prompt:
        problems.append(f"{r.where}.prompt: is required: the sound that lists the choices")
    invalid = _sound(r, r.child("invalid")) or "pm-invalid-option"
    wait_ms = r.int("wait_ms", 5000, low=1000, high=30000)
    attempts = r.int("attempts", 3, low=1, high=10)
    options: dict[str, MenuOption] = {}
    for digit, node in r.section("options").items():
        orr = Reader(node, problems)
        if not re.fullmatch(r"[0-9]", digit):
            orr.error(node, "menu keys are single digits 0-9 (* and # are reserved)")
            continue
        if orr.has("employee"):
            target = orr.str("employee")
            if target not in employees:
                orr.error(
                    orr.child("employee") or node,
                    f"no employee {target!r} (known: {', '.join(sorted(employees)) or 'none'})",
                )
            options[digit] = MenuOption(digit, "employee", target)
        elif orr.has("operator"):
            orr.child("operator")
            options[digit] = MenuOption(digit, "operator")
        else:
            orr.error(node, "say where this choice goes: employee: <id> or operator: true")
        orr.done()
    # "0 is the operator everywhere": callers rely on it, so the config cannot take it away.
    if "0" in options and options["0"].kind != "operator":
        problems.append(f"{r.where}.options.0: 0 is always the operator")
    options.setdefault("0", MenuOption("0", "operator"))
    r.done()
    return Menu(greeting, prompt, options, wait_ms, attempts, invalid)
