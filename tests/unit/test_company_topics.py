"""Titles and topics of employees and teams in the company file: what the directory search finds
("fishing permits", "kalastuslupa" → the person responsible). Problems name file:line: field."""

from __future__ import annotations

import pytest

from vaihde.company import ConfigError, company_from_document, parse_company
from vaihde.company.apply import to_directory
from vaihde.company.diff import diff_company

# Line numbers matter: tests below name them.
COMPANY = """\
company:
  name: Demo Oy
numbers:
  "+358201234567": {label: Vaihde, menu: main}
hours:
  closed_action: {operator: true}
menus:
  main:
    prompt: Paina 1.
    options:
      1: {employee: anna}
teams:
  ops: {name: Vaihde, kind: operators, members: [anna]}
  billing:
    name: Laskutus
    members: [anna]
    title: Laskutus ja reskontra
    topics: [laskut, invoices]
employees:
  anna:
    name: Anna Virtanen
    title: Myyntipäällikkö
    topics: [fishing permits, kalastuslupa, Fiskelov]
    devices: [desk: PJSIP/anna]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml")
    return err.value.problems


def test_titles_and_topics_are_read_and_kept_in_order():
    company = parse_company(COMPANY, "c.yaml")
    anna, billing = company.employees["anna"], company.teams["billing"]
    assert anna.title == "Myyntipäällikkö"
    assert anna.topics == ("fishing permits", "kalastuslupa", "Fiskelov")
    assert (billing.title, billing.topics) == ("Laskutus ja reskontra", ("laskut", "invoices"))
    assert company.teams["ops"].topics == () and company.teams["ops"].title == ""


def test_they_survive_the_canonical_document_and_reach_the_directory():
    company = parse_company(COMPANY, "c.yaml")
    again = company_from_document(company.to_document())
    assert again == company
    assert again.employees["anna"].topics == company.employees["anna"].topics
    directory = to_directory(company)
    (anna,) = directory.employees
    assert anna.title == "Myyntipäällikkö" and "kalastuslupa" in anna.topics
    billing = next(t for t in directory.teams if t.id == "billing")
    assert billing.topics == ("laskut", "invoices")


def test_a_changed_topic_list_is_one_change_in_the_diff():
    before = parse_company(COMPANY, "c.yaml")
    after = parse_company(COMPANY.replace("[laskut, invoices]", "[laskut, invoices, perintä]"),
                          "c.yaml")
    (change,) = diff_company(before, after)
    assert change.path == "teams.billing.topics"
    assert change.new == ["laskut", "invoices", "perintä"]


@pytest.mark.parametrize(
    ("line", "replace", "expected"),
    [
        ("    topics: [fishing permits, kalastuslupa, Fiskelov]",
         "    topics: [fishing permits, Kalastuslupa, kalastuslupa]",
         "c.yaml:23: employees.anna.topics[2]: 'kalastuslupa' is listed twice (also at line 23)"),
        ("    topics: [laskut, invoices]", "    topics: [laskut, '']",
         "c.yaml:18: teams.billing.topics[1]: a topic is one line of text, 1 to 100 characters, "
         "like fishing permits"),
        ("    topics: [laskut, invoices]", "    topics: [laskut, {a: 1}]",
         "c.yaml:18: teams.billing.topics[1]: a topic is one line of text, 1 to 100 characters, "
         "like fishing permits"),
        ("    topics: [laskut, invoices]", "    topics: laskut",
         "c.yaml:18: teams.billing.topics: must be a list"),
        ("    topics: [laskut, invoices]", "    topics: [" + "x" * 101 + "]",
         "c.yaml:18: teams.billing.topics[0]: a topic is one line of text, 1 to 100 characters, "
         "like fishing permits"),
        ("    title: Myyntipäällikkö", "    title: " + "y" * 201,
         "c.yaml:22: employees.anna.title: must be one line of at most 200 characters"),
    ],
)
def test_bad_topics_and_titles_name_their_line(line, replace, expected):
    assert line in COMPANY
    assert problems(COMPANY.replace(line, replace)) == [expected]


def test_too_many_topics():
    many = "[" + ", ".join(f"t{i}" for i in range(51)) + "]"
    (problem,) = problems(COMPANY.replace("[laskut, invoices]", many))
    assert problem == "c.yaml:18: teams.billing.topics: at most 50 topics"


def test_a_misspelt_key_is_still_an_error():
    (problem,) = problems(COMPANY.replace("    topics: [laskut", "    topic: [laskut"))
    assert problem.startswith("c.yaml:18: teams.billing.topic: unknown setting")
