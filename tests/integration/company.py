"""The test company and a vaihde service serving it against the sandbox Asterisk."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from vaihde.config.settings import loads
from vaihde.service import Service

COMPANY_NUMBER = "0201234567"
PHONES = "vaihde-test-phones"

# SIP endpoints of the test instance besides SIPp's phone (conftest.sandbox_test_settings), per
# VAIHDE_TEST_SLOT as the other ports.
_SLOT = int(os.environ.get("VAIHDE_TEST_SLOT", "0"))
# A softphone that is off: its contact is qualified every second and nothing answers there.
SOFT_OFF_PORT = 15074 + _SLOT * 100
TRUNK_PORT = 15078 + _SLOT * 100  # SIPp as a carrier trunk sending (forwarded) calls in
TRUNK_MEDIA_PORT = 15080 + _SLOT * 100
REG_PORT = 15082 + _SLOT * 100  # SIPp as a softphone that registers (PJSIP/reg-phone)
REG_PASSWORD = "reg-phone-secret"
# Kamailio in front of two Asterisks (tests/integration/test_kamailio.py): the proxy, SIPp as the
# carrier sending to it, and the second Asterisk (AMI, SIP). Not the browser tests' +50 offset:
# their Asterisk may still run in the same session.
KAMAILIO_PORT = 15068 + _SLOT * 100  # not 15086: the second Asterisk of test_cluster_ami.py
CARRIER_PORT = 15090 + _SLOT * 100
CARRIER_MEDIA_PORT = 15092 + _SLOT * 100
SECOND_AMI_PORT = 15094 + _SLOT * 100
SECOND_SIP_PORT = 15096 + _SLOT * 100
BROKEN_PORT = 15098 + _SLOT * 100  # SIPp as an Asterisk that fails calls, behind Kamailio
BROKEN_MEDIA_PORT = 15064 + _SLOT * 100
TEAM_QUEUE = "test-sales-q"  # a team's own queue (vaihde adds its members)

COMPANY = f"""\
company: {{name: Testi Oy, language: en, languages: [en]}}
numbers:
  "{COMPANY_NUMBER}": {{label: Main, menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    greeting: {{en: Hello, sound: hello-world}}
    prompt: {{en: Choose, sound: beep}}
    timeout: 2
    attempts: 2
    options:
      1: {{employee: anna}}
      2: {{employee: bob}}
      3: {{employee: carl}}
      4: {{employee: sipp}}
      5: {{message: anna}}
teams:
  ops: {{name: Operators, kind: operators, members: [olga]}}
employees:
  anna: {{name: Anna Virtanen, devices: [desk: Local/anna@{PHONES}], ring_seconds: 10}}
  bob: {{name: Bob Ringing, devices: [desk: Local/noanswer@{PHONES}], ring_seconds: 5}}
  carl: {{name: Carl Busy, devices: [desk: Local/busy@{PHONES}], ring_seconds: 10}}
  sipp: {{name: Sipp Phone, devices: [desk: PJSIP/sipp-phone], ring_seconds: 10}}
  olga: {{name: Olga Operator, devices: [desk: Local/operator@{PHONES}]}}
"""



async def start_vaihde(
    asterisk, tmp_path: Path, company: str = COMPANY, *, service_extra: str = "",
    settings_extra: str = "",
) -> Service:
    """vaihde serving the test instance from an empty SQLite database and `company`.
    `service_extra` adds lines under `service:` (indented two spaces), `settings_extra` top-level
    sections."""
    (tmp_path / "company.yaml").write_text(company)
    text = asterisk.service_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/vaihde.db", company_file="company.yaml",
        service_extra=service_extra,
    ) + settings_extra
    settings = loads(text, str(tmp_path / "settings.yaml"))
    service = Service(settings)
    await service.start()
    for _ in range(100):
        if service.ami.connected:
            break
        await asyncio.sleep(0.05)
    return service


@contextlib.asynccontextmanager
async def serving_companies(
    asterisk: Any, monkeypatch: Any, tmp_path: Path, files: dict[str, str],
    ready: Callable[[Service], bool] = lambda s: s.ami.connected,
) -> AsyncIterator[Service]:
    """One service answering for several companies, each file (name → YAML) applied as its own
    company from `company_files` on a fresh database; yields once `ready(service)` (AMI up by
    default) or after 10 s."""
    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    text = asterisk.service_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/vaihde.db", company_file="",
        extra=f"company_files: [{', '.join(files)}]")
    service = Service(loads(text, str(tmp_path / "settings.yaml")))
    await service.start()
    try:
        for _ in range(200):
            if ready(service):
                break
            await asyncio.sleep(0.05)
        yield service
    finally:
        await service.stop()
