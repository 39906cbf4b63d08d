"""Company files applied per company with `vaihde config apply FILE --company ID` (another
process, as an admin runs it), on SQLite and PostgreSQL: each company's directory and version of
its own; an id or number another company holds is refused naming file:line and that company, and
nothing of the refused file is written; callers' consent is per company."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from dbdata import row_counts  # tests/db is on sys.path (no package)

from vaihde.company.apply import current_company
from vaihde.directory import store


def company(cid: str, number: str, person: str, extension: str) -> str:
    return f"""\
company: {{id: {cid}, name: {cid.title()} Oy}}
numbers:
  "{number}": {{menu: main}}
hours: {{mon-sun: 00:00-24:00, closed_action: {{operator: true}}}}
menus:
  main:
    prompt: Valitse
    options: {{1: {{employee: {person}}}}}
teams:
  {cid}-ops: {{name: Vaihde, kind: operators, members: [{person}]}}
employees:
  {person}: {{name: {person.title()}, extension: "{extension}", devices: [desk: PJSIP/{person}]}}
"""


async def vaihde(db, *args: str) -> subprocess.CompletedProcess[str]:
    url = db.url.render_as_string(hide_password=False)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "vaihde", *args, "--db", url],
        capture_output=True, text=True, timeout=120, check=False)


async def test_companies_are_applied_each_on_its_own(db, tmp_path: Path):
    (tmp_path / "alfa.yaml").write_text(company("alfa", "0201230000", "aino", "201"))
    (tmp_path / "beta.yaml").write_text(company("beta", "0201239999", "bea", "301"))
    for name in ("alfa", "beta"):
        done = await vaihde(db, "config", "apply", str(tmp_path / f"{name}.yaml"))
        assert done.returncode == 0, done.stderr
        assert f"of company '{name}'" in done.stdout
    async with db.sessions() as session:
        assert await store.list_companies(session) == [("alfa", "Alfa Oy"), ("beta", "Beta Oy")]
        assert [e.id for e in await store.list_employees(session, company_id="beta")] == ["bea"]
        alfa = await current_company(session, "alfa")
        assert alfa is not None and list(alfa.employees) == ["aino"]

    # Two companies now: a file must say which (here by --company), and may not take what the
    # other holds: Alfa's number, Alfa's employee id and extension, and an id Alfa's team has.
    (tmp_path / "beta.yaml").write_text(
        company("beta", "0201230000", "bea", "301")
        + '  aino: {name: Aino Again, devices: [desk: PJSIP/aino2]}\n'
        + '  cy: {name: Cy, extension: "201", devices: [desk: PJSIP/cy]}\n'
        + '  alfa-ops: {name: Alf, devices: [desk: PJSIP/alf]}\n')
    before = await row_counts(db)
    refused = await vaihde(db, "config", "apply", str(tmp_path / "beta.yaml"))
    assert refused.returncode == 2 and "say which" in refused.stderr
    refused = await vaihde(db, "config", "apply", str(tmp_path / "beta.yaml"), "--company", "beta")
    assert refused.returncode == 2
    beta_file = tmp_path / "beta.yaml"
    assert f"{beta_file}:3: numbers.0201230000: 0201230000 is already company 'alfa''s number" \
        in refused.stderr
    assert f"{beta_file}:13: employees.aino: id already used by company 'alfa'" in refused.stderr
    assert (f"{beta_file}:14: employees.cy.extension: 201 is already an extension of company "
            "'alfa'") in refused.stderr
    assert f"{beta_file}:15: employees.alfa-ops: id already used by company 'alfa'" \
        in refused.stderr
    wrong = await vaihde(db, "config", "apply", str(beta_file), "--company", "alfa")
    assert wrong.returncode == 2 and "the file is company 'beta', not 'alfa'" in wrong.stderr
    assert await row_counts(db) == before  # nothing of it written

    # Consent to be greeted by name is given to one company.
    async with db.sessions.begin() as session:
        await store.upsert_caller(session, "0401234567", name="Pekka", greet_by_name=True,
                                  company_id="alfa")
    async with db.sessions() as session:
        alfa_caller = await store.get_caller(session, "0401234567", "alfa")
        assert alfa_caller is not None and alfa_caller.greet_by_name
        assert await store.get_caller(session, "0401234567", "beta") is None


async def test_the_running_service_swaps_in_one_company_and_keeps_the_others(db, tmp_path):
    from dataclasses import replace

    from vaihde.company.apply import apply_company
    from vaihde.company.live import LiveCompany
    from vaihde.company.load import parse_company
    from vaihde.jobs import Background
    from vaihde.prompts import PromptLibrary

    alfa = parse_company(company("alfa", "0201230000", "aino", "201"), "alfa.yaml")
    beta = parse_company(company("beta", "0201239999", "bea", "301"), "beta.yaml")
    for config in (alfa, beta):
        await apply_company(db.sessions, config, applied_by="test", source_name="t")
    jobs = Background()
    live = LiveCompany(db.sessions, PromptLibrary(tmp_path / "sounds", "/sounds"), jobs)
    try:
        await live.load()
        first_alfa, first_beta = live.tenant("alfa"), live.tenant("beta")
        assert first_alfa is not None and first_beta is not None
        assert live.for_call("0201239999").id == "beta"
        assert first_beta.prompts.dir == (tmp_path / "sounds" / "companies" / "beta").resolve()
        # Beta is applied anew (elsewhere): only Beta is swapped in; Alfa's calls see the very
        # same object as before.
        renamed = replace(beta, company=replace(beta.company, name="Beeta Ab"))
        await apply_company(db.sessions, renamed, applied_by="test", source_name="t")
        assert await live.check_for_changes()
        assert live.tenant("alfa") is first_alfa
        new_beta = live.tenant("beta")
        assert new_beta is not None and new_beta.config.company.name == "Beeta Ab"
        assert new_beta.version > first_beta.version
        # Greetings by name: the caller agreed with Beta only, so only Beta greets them.
        async with db.sessions.begin() as session:
            await store.upsert_caller(session, "0401234567", name="Pekka Puu",
                                      greet_by_name=True, company_id="beta")
        await live.check_for_changes()
        assert live.for_call("0201239999").greetings == {"0401234567": "Pekka"}
        assert live.for_call("0201230000").greetings == {}
    finally:
        await jobs.cancel()
