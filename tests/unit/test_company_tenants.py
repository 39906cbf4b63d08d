"""Many companies, the pure parts (vaihde.company.tenants): the company of a call by the number
dialled or by the employee whose phone forwarded it, what a company file may not take from
another company (with file:line), and which company a config command acts on."""

from __future__ import annotations

import pytest

from vaihde.company.load import parse_company
from vaihde.company.tenants import (
    CompanyIndex,
    Owners,
    Roster,
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


# --- every company served: the roster, queue names ------------------------------------------

QUEUED = parse_company(company("gamma", "0201237777", """\
  gus: {name: Gus, languages: [en], devices: [{desk: PJSIP/gus}, {mobile: "+358401237777"}]}
""", "gamma-ops").replace("{id: gamma, name: Gamma Oy}",
                          "{id: gamma, name: Gamma Oy, timezone: Europe/Stockholm}")
    .replace("employees:\n", "  gamma-desk: {name: Desk, members: [gus], queue: gamma-q}\n"
             "employees:\n"), "gamma.yaml")
ROSTER = Roster.build({"alfa": ALFA, "beta": BETA, "gamma": QUEUED})


def test_the_roster_finds_anyone_of_any_company():
    assert set(ROSTER.employees) == {"aino", "bea", "gus"}
    assert set(ROSTER.teams) == {"alfa-ops", "beta-ops", "gamma-ops", "gamma-desk"}
    assert ROSTER.company_of("bea") is BETA and ROSTER.company_of("gamma-desk") is QUEUED
    assert ROSTER.company_of("nobody") is None
    # Desk phones identify their owner in whichever company; mobiles identify no one.
    assert ROSTER.employee_by_device("PJSIP/bea").id == "bea"
    assert ROSTER.company_by_device("PJSIP/gus") is QUEUED
    assert ROSTER.employee_by_device("+358401237777") is None
    assert ROSTER.company_by_device("PJSIP/nobody") is None
    # Each employee's company's time zone (the first company's default for nobody).
    assert ROSTER.timezone_of("gus") == "Europe/Stockholm"
    assert ROSTER.timezone_of("aino") == "Europe/Helsinki"
    assert ROSTER.timezone_of("nobody", "UTC") == "UTC"


def test_team_queues_and_their_members_come_from_every_company():
    from vaihde.ami.queues import seats, team_queues

    assert team_queues(ROSTER) == ["gamma-q"]
    assert [(s.queue, s.interface, s.employee) for s in seats(ROSTER)] == [
        ("gamma-q", "PJSIP/gus", "gus")]
    assert team_queues(ALFA) == []  # the first company alone has none


def test_a_team_queue_of_another_company_is_refused_with_its_line():
    text = company("delta", "0201236666", """\
  dan: {name: Dan, devices: [desk: PJSIP/dan]}
""", "delta-ops").replace("employees:\n", "  delta-desk: {name: Desk, members: [dan], "
                          "queue: gamma-q}\nemployees:\n")
    config = parse_company(text, "delta.yaml")
    assert collisions(config, Owners(queues={"gamma-q": "gamma"})) == [
        (("teams", "delta-desk", "queue"), "queue 'gamma-q' is already used by company 'gamma'")]
    with pytest.raises(ConfigError) as exc:
        check_collisions(config, Owners(queues={"gamma-q": "gamma"}), text=text,
                         file="delta.yaml")
    assert exc.value.problems == [
        "delta.yaml:11: teams.delta-desk.queue: queue 'gamma-q' is already used by company "
        "'gamma'"]
    assert collisions(config, Owners(queues={"other-q": "gamma"})) == []


def test_a_phone_of_any_company_shows_its_owner_on_a_call():
    from vaihde.ami.phones import PhonePresence

    class Phones:
        def __init__(self) -> None:
            self.in_use: dict[str, bool] = {}

        def add_listener(self, cb): ...
        def add_reach_listener(self, cb): ...
        def reach(self, device):
            from vaihde.company.dials import Reach

            return Reach.REACHABLE

    class Presence:
        def __init__(self) -> None:
            self.on_call: dict[str, bool] = {}

        def set_on_call(self, employee_id: str, busy: bool) -> None:
            self.on_call[employee_id] = busy

    phones, presence = Phones(), Presence()
    watcher = PhonePresence(phones, lambda: ROSTER, lambda: presence, lambda: None)
    assert sorted(watcher.watched()) == ["PJSIP/aino", "PJSIP/bea", "PJSIP/gus"]
    phones.in_use = {"PJSIP/gus": True}
    watcher.in_use_changed("PJSIP/gus", True)
    assert presence.on_call == {"gus": True}
    # Another company's employee's phones, as the console lists them.
    assert watcher.device_json("bea") == [
        {"kind": "desk", "dial": "PJSIP/bea", "reach": "reachable"},
        {"kind": "mobile", "dial": "+358401234599", "reach": "unknown"}]


def test_feature_codes_are_confirmed_in_the_employee_s_or_their_company_s_language():
    from vaihde.flows.feature_codes import confirmation_language

    assert confirmation_language(QUEUED, QUEUED.employees["gus"]) == "en"  # his own
    assert confirmation_language(ALFA, ALFA.employees["aino"]) == "fi"  # Alfa's


# --- one company applied: its part replaced, the same as a rebuild -------------------------

def _state(index: CompanyIndex, roster: Roster) -> tuple[object, ...]:
    return (index.order, dict(index.by_number), dict(index.by_extension),
            dict(index._by_tail), dict(roster.employees), dict(roster.teams),
            dict(roster._company_of), dict(roster._by_device), list(roster.companies))


def test_replacing_one_company_gives_what_a_full_rebuild_gives():
    """The number index and roster after one company's new version: swapped in its part
    only, equal to building them from every company again (a number moved to another
    employee, an extension and a device changed, a forwarding mobile added and one gone)."""
    before = {"alfa": ALFA, "beta": BETA, "gamma": QUEUED}
    beta2 = parse_company(company("beta", "0201239998", """\
  bea: {name: Bea, extension: "302", devices: [{desk: PJSIP/bea2}]}
  ben: {name: Ben, extension: "303", devices: [{mobile: "+358401230001"}]}
""", "beta-ops"), "beta.yaml")
    after = {"alfa": ALFA, "beta": beta2, "gamma": QUEUED}
    index, roster = CompanyIndex.build(before), Roster.build(before)
    swapped = (index.replaced(after, BETA, beta2), roster.replaced(after, BETA, beta2))
    assert _state(*swapped) == _state(CompanyIndex.build(after), Roster.build(after))
    assert swapped[0].company_for("0201239998") == "beta"
    assert swapped[0].company_for("0201239999") == "alfa"  # no longer anyone's: the first
    assert swapped[0].company_for("", "0401234599") == "alfa"  # Bea's old mobile: nobody's
    assert swapped[0].company_for("", "0401230001") == "beta"  # Ben's
    assert swapped[1].employee_by_device("PJSIP/bea") is None
    assert swapped[1].company_of("ben") is beta2
    # The other companies' entries are the very objects they were.
    assert swapped[1].employees["aino"] is roster.employees["aino"]


def test_a_collision_or_a_new_company_rebuilds_everything():
    both = {"alfa": ALFA, "beta": BETA}
    clash = parse_company(company("beta", "0201239999", """\
  bea: {name: Bea, extension: "201", devices: [{desk: PJSIP/aino}]}
""", "beta-ops"), "beta.yaml")  # Aino's extension and phone
    after = {"alfa": ALFA, "beta": clash}
    index, roster = CompanyIndex.build(both), Roster.build(both)
    assert _state(index.replaced(after, BETA, clash), roster.replaced(after, BETA, clash)) == \
        _state(CompanyIndex.build(after), Roster.build(after))
    three = {**both, "gamma": QUEUED}
    assert _state(index.replaced(three, None, QUEUED), roster.replaced(three, None, QUEUED)) == \
        _state(CompanyIndex.build(three), Roster.build(three))
