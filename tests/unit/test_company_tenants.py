"""Many companies, the pure parts (vaihde.company.tenants): the company of a call by the number
dialled or by the employee whose phone forwarded it, what a company file may not take from
another company (with file:line), and which company a config command acts on."""

from __future__ import annotations

import pytest

from vaihde.company.load import parse_company
from vaihde.company.tenants import (
    CompanyIndex,
    Owners,
    check_collisions,
    collisions,
    company_id_for,
)
from vaihde.config.source import ConfigError


def company(cid: str, number: str, people: str, ops: str = "ops") -> str:
    return f"""\
company: {{id: {cid}, name: {cid.title()} Oy}}
numbers:
  "{number}": {{menu: main}}
hours: {{mon-sun: 00:00-24:00, closed_action: {{operator: true}}}}
menus:
  main:
    prompt: Valitse
    options: {{}}
teams:
  {ops}: {{name: Vaihde, kind: operators, members: [{people.split(":")[0].strip()}]}}
employees:
{people}"""


ALFA = parse_company(company("alfa", "+358201230000", """\
  aino: {name: Aino, extension: "201", devices: [desk: PJSIP/aino], direct: ["+358201230001"]}
""", "alfa-ops"), "alfa.yaml")
BETA = parse_company(company("beta", "0201239999", """\
  bea:
    name: Bea
    extension: "301"
    devices: [{desk: PJSIP/bea}, {mobile: "+358401234599"}]
""", "beta-ops"), "beta.yaml")
INDEX = CompanyIndex.build({"alfa": ALFA, "beta": BETA})


@pytest.mark.parametrize(("dialled", "company_id"), [
    ("358201230000", "alfa"),  # with or without its +
    ("+358201230000", "alfa"),
    ("0201239999", "beta"),
    ("0209999999", "alfa"),  # unknown: the first company
    ("", "alfa"),
])
def test_a_call_belongs_to_the_company_whose_number_was_dialled(dialled, company_id):
    assert INDEX.company_for(dialled) == company_id


@pytest.mark.parametrize("forwarder", ["+358401234599", "358401234599", "0401234599", "301"])
def test_a_forwarded_call_belongs_to_the_forwarding_employee_s_company(forwarder):
    # Dialled Alfa's number, forwarded from Bea's mobile (any form of it) or extension.
    assert INDEX.company_for("358201230000", forwarder) == "beta"


def test_a_forward_from_a_stranger_goes_by_the_dialled_number():
    assert INDEX.company_for("0201239999", "0409999999") == "beta"
    assert INDEX.company_for("358201230000", "0409999999") == "alfa"
    # Alfa's own direct number forwarding is Alfa's.
    assert INDEX.company_for("0201239999", "0201230001") == "alfa"


def test_an_empty_service_sends_everything_to_main():
    assert CompanyIndex.build({}).company_for("0201230000", "0401234599") == "main"


def test_collisions_name_what_another_company_holds():
    others = Owners(employees={"aino": "acme"}, teams={"alfa-ops": "acme"},
                    extensions={"201": "acme"}, numbers={"358201230000": "acme",
                                                         "358201230001": "acme"})
    assert collisions(ALFA, others) == [
        (("numbers", "+358201230000"), "+358201230000 is already company 'acme''s number"),
        (("teams", "alfa-ops"), "id already used by company 'acme'"),
        (("employees", "aino"), "id already used by company 'acme'"),
        (("employees", "aino", "extension"), "201 is already an extension of company 'acme'"),
        (("employees", "aino", "direct"), "+358201230001 is already company 'acme''s number"),
    ]
    assert collisions(ALFA, Owners()) == []
    # A team of one company and an employee of another may not share an id either.
    assert collisions(ALFA, Owners(teams={"aino": "acme"})) == [
        (("employees", "aino"), "id already used by company 'acme'")]


def test_collisions_are_reported_with_the_file_s_lines():
    text = company("alfa", "+358201230000", """\
  aino: {name: Aino, extension: "201", devices: [desk: PJSIP/aino]}
""", "alfa-ops")
    config = parse_company(text, "alfa.yaml")
    with pytest.raises(ConfigError) as exc:
        check_collisions(config, Owners(employees={"aino": "acme"}, numbers={
            "358201230000": "beta"}), text=text, file="alfa.yaml")
    assert exc.value.problems == [
        "alfa.yaml:3: numbers.+358201230000: +358201230000 is already company 'beta''s number",
        "alfa.yaml:12: employees.aino: id already used by company 'acme'",
    ]


def test_which_company_a_command_acts_on():
    assert company_id_for("", None, []) == "main"  # a file without company.id
    assert company_id_for("", None, ["main"]) == "main"
    assert company_id_for("beta", None, ["alfa"]) == "beta"
    assert company_id_for("", "beta", ["alfa", "beta"]) == "beta"
    assert company_id_for("beta", "beta", ["alfa", "beta"]) == "beta"
    with pytest.raises(ConfigError, match="the file is company 'beta', not 'alfa'"):
        company_id_for("beta", "alfa", ["alfa", "beta"])
    with pytest.raises(ConfigError, match=r"2 companies \(alfa, beta\): say which"):
        company_id_for("beta", None, ["alfa", "beta"])
