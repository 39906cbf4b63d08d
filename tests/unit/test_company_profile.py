"""The company file's `profile:` (what operators see and say for the company) and how `profile:`
and `oncall:` changes read in `vaihde config diff`."""

from __future__ import annotations

import pytest

from vaihde.company import ConfigError, company_from_document, parse_company
from vaihde.company.diff import diff_company, render_diff

BASE = """\
company: {{name: Testi Oy, language: fi, languages: [fi, en]}}
numbers:
  "0201234567": {{menu: main}}
hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: {{fi: Valitse, en: Choose}}
teams:
  ops: {{name: Vaihde, kind: operators, members: [olga]}}
employees:
  olga: {{name: Olga, devices: [desk: PJSIP/olga]}}
  mikko: {{name: Mikko, devices: [desk: PJSIP/mikko]}}
{extra}"""

PROFILE = """\
profile:
  answer: {fi: "Testi Oy, {operator} puhelimessa", en: "Testi Oy, {operator} speaking"}
  instructions: |
    Ask for the customer number first.
    Never give out mobile numbers.
  ask: [Name, Customer number]
  urgent:
    - {when: A customer's production is down, contact: mikko}
    - {when: Anything about the invoice run}
"""


def load(extra: str):
    return parse_company(BASE.format(extra=extra), "c.yaml")


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(extra)
    return err.value.problems


def test_the_profile_is_read_whole():
    profile = load(PROFILE).profile
    assert profile.answer == {"fi": "Testi Oy, {operator} puhelimessa",
                              "en": "Testi Oy, {operator} speaking"}
    assert profile.instructions == ("Ask for the customer number first.\n"
                                    "Never give out mobile numbers.")
    assert profile.ask == ("Name", "Customer number")
    assert [(u.when, u.contact) for u in profile.urgent] == [
        ("A customer's production is down", "mikko"), ("Anything about the invoice run", "")]


def test_the_answer_phrase_falls_back_to_the_company_language():
    profile = load(PROFILE.replace(', en: "Testi Oy, {operator} speaking"', "")).profile
    assert profile.answer_in("en", "fi") == "Testi Oy, {operator} puhelimessa"
    assert load(PROFILE).profile.answer_in("en", "fi") == "Testi Oy, {operator} speaking"


def test_one_answer_text_is_in_the_company_language():
    profile = load('profile: {answer: "Testi Oy, hyvää päivää"}\n').profile
    assert profile.answer == {"fi": "Testi Oy, hyvää päivää"}


def test_without_a_profile_nothing_changes_in_the_document_or_digest():
    plain = load("")
    assert plain.profile.empty and "profile" not in plain.to_document()
    assert "oncall" not in plain.to_document()


def test_round_trip():
    company = load(PROFILE)
    again = company_from_document(company.to_document())
    assert again == company and again.digest() == company.digest()


@pytest.mark.parametrize("extra, problem", [
    ('profile: {answer: "Testi Oy, {name} speaking"}\n',
     "c.yaml:15: profile.answer: fi: {name} is no placeholder: only {operator} (the "
     "operator's name) is"),
    ('profile: {answer: "Testi Oy, {operator speaking"}\n',
     "c.yaml:15: profile.answer: fi: has an unmatched { or }: write {operator} for the "
     "operator's name, or {{ }}"),
    ('profile: {answer: {en: "Testi Oy"}}\n',
     "c.yaml:15: profile.answer: needs a phrase in fi (company.language): operators answer "
     "in it when the caller's language has none"),
    ('profile: {answer: {fi: "Testi", de: "Testi"}}\n',
     "c.yaml:15: profile.answer: de: is no language vaihde knows (fi, sv, en)"),
    ("profile: {urgent: [{contact: mikko}]}\n",
     "c.yaml:15: profile.urgent[0].when: is required: when a message is urgent, in words"),
    ("profile: {urgent: [{when: Fire, contact: mikk}]}\n",
     "c.yaml:15: profile.urgent[0].contact: no employee, team or on-call rota 'mikk' (did "
     "you mean 'mikko'?)"),
    ("profile: {instructions: " + "x" * 4001 + "}\n",
     "c.yaml:15: profile.instructions: must be at most 4000 characters (operators read it "
     "during a call)"),
    ("profile: {asks: [Name]}\n", "c.yaml:15: profile.asks: unknown setting (misspelt?)"),
    ("profile: {ask: [" + ", ".join(f"q{i}" for i in range(31)) + "]}\n",
     "c.yaml:15: profile.ask: at most 30 items"),
])
def test_profile_problems_name_file_line_and_field(extra, problem):
    assert problems(extra) == [problem]


def test_an_answer_in_a_language_not_offered_is_a_warning():
    company = load('profile: {answer: {fi: Testi, sv: Testi}}\n')
    assert company.warnings == ("c.yaml:15: profile.answer: sv is not in company.languages, so "
                                "no call is answered in it",)


def test_the_diff_names_profile_and_rota_changes_in_plain_words():
    rota = """\
oncall:
  duty:
    name: Päivystys
    weekly:
      - {days: mon-fri, hours: 16:00-08:00, people: [mikko, olga]}
"""
    old = load(PROFILE + rota)
    new = load(PROFILE.replace("Customer number", "Invoice number")
               .replace("{operator} speaking", "{operator} here")
               + rota.replace("[mikko, olga]", "[olga, mikko]")
               + "    exceptions:\n      - {from: 2026-12-24, until: 2026-12-26, people: []}\n")
    text = render_diff(diff_company(old, new))
    assert text.splitlines() == [
        "Account profile (for operators)",
        "  ~ answer phrase (en): Testi Oy, {operator} speaking → Testi Oy, {operator} here",
        "  ~ questions to ask: Name, Customer number → Name, Invoice number",
        "",
        "On-call rotas",
        "  + on-call rota duty: exceptions: added 2026-12-24 00:00 – 2026-12-27 00:00: nobody",
        "  - on-call rota duty: weekly shifts: removed mon-fri 16:00-08:00: mikko, olga",
        "  + on-call rota duty: weekly shifts: added mon-fri 16:00-08:00: olga, mikko",
        "",
        "5 changes: 2 added, 1 removed, 2 changed.",
    ]
    first = render_diff(diff_company(None, old))
    assert "  + on-call rota duty added (Päivystys)" in first.splitlines()


def test_the_demo_company_has_a_profile_and_a_support_rota_its_menus_use():
    from datetime import datetime
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from vaihde.company import load_company
    from vaihde.company.oncall import on_call_now
    from vaihde.company.schema import OncallTarget

    demo = load_company(Path(__file__).resolve().parents[2] / "config" / "demo-company.yaml")
    assert demo.profile.answer_in("fi", "fi") == "Demo Oy, {operator} puhelimessa"
    assert demo.profile.ask and demo.profile.instructions
    hki = ZoneInfo("Europe/Helsinki")
    tuesday_evening = datetime(2027, 3, 2, 20, 0, tzinfo=hki)
    assert on_call_now(demo, "support_duty", tuesday_evening).people == ("sofia", "elina")
    christmas = datetime(2026, 12, 25, 12, 0, tzinfo=hki)
    assert on_call_now(demo, "support_duty", christmas).people == ("jorgen",)
    targets = [o.target for m in demo.menus.values() for o in m.options.values()]
    assert OncallTarget("support_duty") in targets
