"""Starting `vaihde serve` (Service.start) on SQLite, without Asterisk (AMI is a closed port):
FastAGI listens last, once everything the call handlers use is ready and the rest of the start
is done. An instance that is starting (after a crash, on a deploy) must refuse calls rather than
take them: refused, Asterisk tries the next AGI URL at once (VAIHDE_AGI2, another instance);
taken too early, a caller went to the operators instead of where they chose ("not started") or
waited ~2 s in silence while the instance finished starting (found by bench/cluster_bench.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from vaihde.config.settings import loads
from vaihde.flows.router import CallHost
from vaihde.service import Service

COMPANY = """\
company: {name: Testi Oy, language: en, languages: [en]}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus: {main: {greeting: {en: Hello}, prompt: {en: Choose}, options: {1: {employee: anna}}}}
teams: {ops: {name: Operators, kind: operators, members: [olga]}}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna]}
  olga: {name: Olga Operator, devices: [desk: PJSIP/olga]}
"""
# Everything of CallHost that the service fills in while starting (the rest is made with it).
STARTED = ("company", "presence", "greetings", "messages", "set_from_phone")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fastagi_listens_only_once_the_call_handlers_have_what_they_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(STARTED) <= set(dir(CallHost))  # the protocol still names them
    (tmp_path / "company.yaml").write_text(COMPANY)
    text = "\n".join([
        "service:",
        "  fastagi: {host: 127.0.0.1, port: 0}",
        "  http: {host: 127.0.0.1, port: 0}",
        f"  ami: {{host: 127.0.0.1, port: {closed_port()}, username: vaihde, secret: s3cret}}",
        f"database: {{url: {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/vaihde.db')}}}",
        "company_file: company.yaml",
        f"prompts: {{dir: {json.dumps(str(tmp_path / 'prompts'))}}}",
        "guard: {mode: 'off'}", ""])
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    service = Service(loads(text, str(tmp_path / "settings.yaml")))
    at_listen: dict[str, str] = {}
    listen = service.agi.start

    async def start() -> None:
        for name in STARTED:
            try:
                getattr(service, name)
                at_listen[name] = "ready"
            except Exception as exc:
                at_listen[name] = repr(exc)
        # The rest of the start (consoles, the HTTP server) done too: it would hold up calls.
        at_listen["http"] = "ready" if service.http_port and service.console else "not yet"
        await listen()

    monkeypatch.setattr(service.agi, "start", start)
    await service.start(listen=False)  # as `vaihde serve` does, to freeze the heap first
    try:
        assert not service.agi.listening and not at_listen
        assert service.status()["status"] == "degraded"
        await service.listen()
        assert at_listen == dict.fromkeys([*STARTED, "http"], "ready")
        assert service.agi.listening
    finally:
        await service.stop()


async def test_vaihde_serve_collects_its_older_garbage_on_its_own_schedule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README ("Memory"): the running `vaihde serve` leaves only the young generation to
    Python's automatic collector and schedules the full collections itself; read from its own
    log, as it runs in production (its own process, JSON logs)."""
    import asyncio
    import socket as sockets

    from vaihde import collector
    from vaihde.sandbox.service import ServiceProcess

    with sockets.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = s.getsockname()[1]
    (tmp_path / "company.yaml").write_text(COMPANY)
    settings = tmp_path / "settings.yaml"
    settings.write_text("\n".join([
        "service:",
        "  fastagi: {host: 127.0.0.1, port: 0}",
        f"  http: {{host: 127.0.0.1, port: {http_port}}}",
        f"  ami: {{host: 127.0.0.1, port: {closed_port()}, username: vaihde, secret: s3cret}}",
        f"database: {{url: {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/vaihde.db')}}}",
        "company_file: company.yaml",
        f"prompts: {{dir: {json.dumps(str(tmp_path / 'prompts'))}}}",
        "guard: {mode: 'off'}", ""]))
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    served = ServiceProcess(settings, tmp_path / "vaihde.log")
    served.start()
    try:
        found: dict[str, dict[str, object]] = {}
        for _ in range(300):
            for line in served.log_path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    record = json.loads(line)
                    found.setdefault(record.get("msg", record.get("message", "")), record)
            if "full garbage collections scheduled" in found and "vaihde serving" in found:
                break
            await asyncio.sleep(0.1)
        settled = found["garbage collection settled"]
        assert settled["threshold"] == [collector.YOUNG_THRESHOLD, collector.NEVER,
                                        collector.NEVER]
        frozen = settled["frozen"]
        assert isinstance(frozen, int) and frozen > 100_000  # modules, settings, the company
        scheduled = found["full garbage collections scheduled"]
        assert (scheduled["grow_blocks"], scheduled["every_s"]) == (
            collector.GROW_BLOCKS, collector.EVERY_S)
    finally:
        await asyncio.to_thread(served.stop)
