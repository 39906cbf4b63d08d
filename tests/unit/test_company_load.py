"""The company file: every rule reports `file:line: field: message`, all problems at once."""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vaihde.calendar.policy import CalendarPolicy
from vaihde.company import (
    CompanyConfig,
    ConfigError,
    company_from_document,
    load_company,
    parse_company,
)
from vaihde.company.schema import Device, EmployeeTarget, ExternalTarget, MessageTarget, TeamTarget

# Line numbers matter: tests below name them.
MINIMAL = """\
company:
  name: Demo Oy
numbers:
  "+358201234567": {label: Vaihde, menu: main}
hours:
  mon-fri: 08:00-16:30
  closed_action: {operator: true}
menus:
  main:
    prompt: Paina 1.
    options:
      1: {employee: anna}
teams:
  ops: {name: Vaihde, kind: operators, members: [anna]}
employees:
  anna:
    name: Anna Virtanen
    extension: 101
    devices:
      - desk: PJSIP/anna
"""


def load(text: str) -> CompanyConfig:
    return parse_company(text, "c.yaml")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(text)
    return err.value.problems


def one_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def with_employee(extra: str) -> str:
    """MINIMAL plus `bob` at line 21 onwards."""
    return MINIMAL + "  bob:\n    name: Bob Berg\n" + extra


# ---- good files ------------------------------------------------------------------------------


def test_demo_company_has_no_problems_and_no_warnings():
    company = load_company("config/demo-company.yaml")
    assert company.warnings == ()
    assert company.company.name == "Demo Oy"
    assert company.company.languages == ("fi", "sv", "en")
    assert company.operators.id == "switchboard"
    assert company.entry_menu("358201234500").id == "support"
    assert company.employees["bjorn"].teams == ("billing",)
    assert company.teams["billing"].members == ("bjorn",)
    # Finnish and Swedish letters survive as written.
    assert company.employees["jorgen"].name == "Jörgen Åström"
    assert company.menus["main"].options["4"].human_only


def test_minimal_file_gets_defaults():
    c = load(MINIMAL)
    assert c.warnings == ()
    assert c.company.timezone == "Europe/Helsinki"
    assert c.company.language == "fi" and c.company.languages == ("fi",)
    main = c.menus["main"]
    assert (main.timeout, main.attempts) == (5, 3)
    # 0 is implied, never stored as a choice.
    assert list(main.options) == ["1"]
    assert main.options["1"].target == EmployeeTarget("anna")
    anna = c.employees["anna"]
    assert anna.devices == (Device("desk", "PJSIP/anna", 20),)
    assert anna.languages == ("fi",) and anna.teams == ("ops",)
    assert c.hours.weekly[5] == () and str(c.hours.weekly[0][0]) == "08:00-16:30"


def test_numbers_and_times_are_read_as_written_not_as_yaml_numbers():
    # YAML 1.1 would make 0401234567 octal, drop the + of +358…, and turn 12:00 into 720.
    text = with_employee(
        "    direct: [0201234599]\n"
        "    devices:\n"
        "      - mobile: +358401234567\n"
        "      - mobile: 0401234568\n"
    ).replace("mon-fri: 08:00-16:30", "mon-fri: 08:00-16:30\n  sat: 10:00-12:00")
    c = load(text)
    bob = c.employees["bob"]
    assert bob.direct == ("0201234599",)
    assert [d.address for d in bob.devices] == ["+358401234567", "0401234568"]
    assert str(c.hours.weekly[5][0]) == "10:00-12:00"


def test_objects_are_immutable():
    c = load(MINIMAL)
    with pytest.raises(TypeError):
        c.employees["eve"] = c.employees["anna"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.company.name = "Other"  # type: ignore[misc]
    assert isinstance(c.employees["anna"].devices, tuple)


def test_document_round_trip_is_equal_and_has_the_same_digest():
    c = load_company("config/demo-company.yaml")
    again = company_from_document(c.to_document())
    assert again == c
    assert again.digest() == c.digest()
    assert len(c.digest()) == 64


def test_membership_written_on_the_employee_joins_the_team():
    text = MINIMAL.replace(
        "teams:\n", "teams:\n  sales: {name: Myynti}\n"
    ) + "    teams: [sales]\n"
    c = load(text)
    assert c.teams["sales"].members == ("anna",)
    assert c.employees["anna"].teams == ("ops", "sales")


# ---- everything at once ----------------------------------------------------------------------


def test_several_typos_are_all_listed_in_file_order():
    text = (
        MINIMAL.replace("  name: Demo Oy", "  nmae: Demo Oy")
        .replace("prompt: Paina 1.", "promt: Paina 1.")
        .replace("    extension: 101", "    extention: 101")
        .replace("  closed_action:", "  closed_actoin:")
    )
    assert problems_of(text) == [
        "c.yaml:1: company.name: is required",
        "c.yaml:2: company.nmae: unknown setting (misspelt?)",
        "c.yaml:5: hours.closed_action: is required: "
        "what callers get when the company is closed",
        "c.yaml:7: hours.closed_actoin: unknown setting (misspelt?)",
        "c.yaml:9: menus.main.prompt: is required: what callers hear, as text per language",
        "c.yaml:10: menus.main.promt: unknown setting (misspelt?)",
        "c.yaml:18: employees.anna.extention: unknown setting (misspelt?)",
    ]


def test_unknown_top_level_key():
    assert one_problem(MINIMAL + "employes: {}\n") == (
        "c.yaml:21: employes: unknown setting (misspelt?)"
    )


def test_broken_yaml_names_the_line():
    assert one_problem("company:\n  name: [Demo\n").startswith("c.yaml:3: not valid YAML")


# ---- company ---------------------------------------------------------------------------------


def test_bad_timezone_and_languages():
    text = MINIMAL.replace(
        "  name: Demo Oy\n",
        "  name: Demo Oy\n  timezone: Europe/Helsinky\n  language: de\n  languages: [sv, en, en]\n",
    )
    assert problems_of(text) == [
        "c.yaml:3: company.timezone: 'Europe/Helsinky' is not a time zone name like "
        "Europe/Helsinki",
        "c.yaml:4: company.language: must be one of fi, sv, en",
        "c.yaml:5: company.languages: must include the default language fi (company.language)",
        "c.yaml:5: company.languages[2]: en is listed twice",
    ]


# ---- numbers ---------------------------------------------------------------------------------


def test_number_must_be_digits_and_its_menu_must_exist():
    text = MINIMAL.replace(
        '  "+358201234567": {label: Vaihde, menu: main}',
        '  "+358 20 123": {menu: main}\n  "+358201234567": {label: Vaihde, menu: mian}',
    )
    assert problems_of(text) == [
        "c.yaml:4: numbers.+358 20 123: '+358 20 123' is not a phone number: digits with an "
        "optional leading +, like +358401234567",
        "c.yaml:5: numbers.+358201234567.menu: no menu 'mian' (did you mean 'main'?)",
    ]


def test_number_language_must_be_offered():
    text = MINIMAL.replace("menu: main}", "menu: main, language: sv}")
    assert one_problem(text) == (
        "c.yaml:4: numbers.+358201234567.language: must be one of the offered languages (fi)"
    )


def test_direct_number_may_not_repeat_a_company_number():
    text = MINIMAL + '    direct: ["358201234567"]\n'
    assert one_problem(text) == (
        "c.yaml:21: employees.anna.direct[0]: 358201234567 is already a company number "
        "(Vaihde) at c.yaml:4"
    )


def test_direct_numbers_unique_across_people_naming_both_lines():
    text = MINIMAL + '    direct: ["+358201234501"]\n' + (
        '  bob:\n    name: Bob Berg\n    direct: ["+358201234501"]\n'
    )
    assert one_problem(text) == (
        "c.yaml:24: employees.bob.direct[0]: +358201234501 is already anna's direct number "
        "at c.yaml:21"
    )


# ---- employees -------------------------------------------------------------------------------


def test_duplicate_extension_names_both_lines():
    assert one_problem(with_employee("    extension: 101\n")) == (
        "c.yaml:23: employees.bob.extension: extension 101 is already anna's at c.yaml:18"
    )


@pytest.mark.parametrize("extension", ["0101", "1", "12a", "123456789"])
def test_extension_shape(extension):
    text = MINIMAL.replace("extension: 101", f'extension: "{extension}"')
    assert one_problem(text) == (
        "c.yaml:18: employees.anna.extension: must be 2 to 8 digits, not starting with 0 "
        "(0 is the operator)"
    )


@pytest.mark.parametrize(
    "device",
    ["PJSIP/anna&PJSIP/evil", "PJSIP/anna,60,tT", "PJSIP/${EVIL}", "Console/dsp", "PJSIP/a b",
     "PJSIP/'x'"],
)
def test_unsafe_dial_strings_are_rejected(device):
    text = MINIMAL.replace("desk: PJSIP/anna", f'desk: "{device}"')
    assert one_problem(text) == (
        "c.yaml:20: employees.anna.devices[0].desk: must be a device like PJSIP/anna or "
        "Local/anna@context (letters, digits and . _ - + @ / only)"
    )


def test_device_kinds():
    text = MINIMAL + (
        "      - mobile: 040-123\n"
        "      - {desk: PJSIP/a, softphone: PJSIP/b}\n"
        "      - tablet: PJSIP/c\n"
        "      - {softphone: PJSIP/anna-soft, seconds: 2}\n"
    )
    assert problems_of(text) == [
        "c.yaml:21: employees.anna.devices[1].mobile: must be a phone number: digits with an "
        "optional leading +, like +358401234567",
        "c.yaml:22: employees.anna.devices[2]: give exactly one of desk:, mobile: or softphone:",
        "c.yaml:23: employees.anna.devices[3]: say which phone this is: desk:, mobile: or "
        "softphone:",
        "c.yaml:23: employees.anna.devices[3].tablet: unknown setting (misspelt?)",
        "c.yaml:24: employees.anna.devices[4].seconds: must be from 5 to 300, not 2",
    ]


def test_device_written_as_a_bare_string():
    assert one_problem(MINIMAL.replace("      - desk: PJSIP/anna", "      - PJSIP/anna")) == (
        "c.yaml:20: employees.anna.devices[0]: say which phone this is, like desk: PJSIP/anna, "
        "mobile: +358401234567 or softphone: PJSIP/anna-soft"
    )


def test_employee_without_devices_is_a_warning():
    c = load(with_employee(""))
    assert c.warnings == (
        "c.yaml:21: employees.bob: has no devices: callers who choose this person get messages "
        "or the operator",
    )


def test_delegates_must_exist_and_not_be_self():
    text = MINIMAL + "    delegates: [anna, bob, anna]\n"
    assert problems_of(text) == [
        "c.yaml:21: employees.anna.delegates[0]: cannot be their own delegate",
        "c.yaml:21: employees.anna.delegates[1]: no employee 'bob'",
        "c.yaml:21: employees.anna.delegates[2]: 'anna' is listed twice (also at line 21)",
    ]


def test_contact_details():
    text = MINIMAL + (
        "    email: anna.virtanen@@demo\n"
        "    sms: +358-40\n"
        "    calendar: ftp://cal.demo.fi/anna.ics\n"
        "    languages: [fi, fin]\n"
    )
    assert problems_of(text) == [
        "c.yaml:21: employees.anna.email: is not an e-mail address like anna@example.fi",
        "c.yaml:22: employees.anna.sms: must be a phone number: digits with an optional "
        "leading +, like +358401234567",
        "c.yaml:23: employees.anna.calendar: must be an https:// (or webcal://) address of an "
        "ICS calendar",
        "c.yaml:24: employees.anna.languages[1]: must be a two-letter language code like fi, sv "
        "or en",
    ]


def test_good_contact_details_are_kept():
    text = MINIMAL + (
        "    email: anna.virtanen@demo.fi\n"
        "    sms: '+358401234567'\n"
        "    calendar: anna.ics\n"
    )
    anna = parse_company(text, "c.yaml", calendars=CAL_DIR).employees["anna"]
    assert (anna.email, anna.sms, anna.calendar) == (
        "anna.virtanen@demo.fi", "+358401234567", "anna.ics"
    )


CAL_DIR = CalendarPolicy(files_dir="/srv/vaihde/calendars")


@pytest.mark.parametrize(
    ("calendar", "policy", "message"),
    [
        ("/etc/shadow", CAL_DIR, "must be a file in calendar.files_dir (/srv/vaihde/calendars)"),
        ("/srv/vaihde/calendars-old/a.ics", CAL_DIR, "must be a file in calendar.files_dir"),
        ("../../etc/passwd", CAL_DIR, "must be a file in calendar.files_dir "
         "(/srv/vaihde/calendars): '..' is not allowed"),
        ("/srv/vaihde/calendars/../secret.ics", CAL_DIR, "must be a file in calendar.files_dir "
         "(/srv/vaihde/calendars): '..' is not allowed"),
        ("file:///srv/vaihde/calendars/a.ics", CAL_DIR, "file:// addresses are not used"),
        ("http://169.254.169.254/latest/meta-data", CAL_DIR, "must be an https:// address: "
         "plain http:// can be read and changed on the way"),
        ("http://127.0.0.1:8080/api/v1/config", CAL_DIR, "must be an https:// address"),
        ("gopher://cal.demo.fi/a.ics", CAL_DIR, "must be an https:// address of an ICS "
         "calendar, or a file in calendar.files_dir (/srv/vaihde/calendars)"),
        ("anna.ics", CalendarPolicy(), "calendar files are not allowed by the service "
         "settings (set calendar.files_dir); use an https:// address"),
        ("calendars/", CAL_DIR, "must name a file"),
    ],
)
def test_calendar_sources_the_service_must_not_read_are_refused(calendar, policy, message):
    text = MINIMAL + f"    calendar: '{calendar}'\n"
    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml", calendars=policy)
    (problem,) = err.value.problems
    assert problem.startswith(f"c.yaml:21: employees.anna.calendar: {message}")


@pytest.mark.parametrize(
    ("calendar", "policy"),
    [
        ("https://outlook.office365.com/owa/calendar/x/calendar.ics", CalendarPolicy()),
        ("webcal://p01-calendars.icloud.com/published/2/x", CalendarPolicy()),
        ("anna.ics", CAL_DIR),
        ("team/anna.ics", CAL_DIR),
        ("/srv/vaihde/calendars/anna.ics", CAL_DIR),
        ("http://127.0.0.1:8000/anna.ics",
         CalendarPolicy(plain_http_hosts=frozenset({"127.0.0.1"}))),
    ],
)
def test_calendar_sources_the_settings_allow(calendar, policy):
    text = MINIMAL + f"    calendar: '{calendar}'\n"
    assert parse_company(text, "c.yaml", calendars=policy).employees["anna"].calendar == calendar


def test_calendar_files_are_refused_by_default():
    """Without the service's settings nothing but https is allowed."""
    text = MINIMAL + "    calendar: /etc/passwd\n"
    assert problems_of(text) == [
        "c.yaml:21: employees.anna.calendar: calendar files are not allowed by the service "
        "settings (set calendar.files_dir); use an https:// address"
    ]


def test_ids_must_be_slugs():
    text = MINIMAL + "  Bob B:\n    name: Bob Berg\n    devices: [{desk: PJSIP/bob}]\n"
    text = text.replace("  main:\n", "  Main:\n").replace("{label: Vaihde, menu: main}",
                                                        "{label: Vaihde, menu: Main}")
    assert problems_of(text) == [
        "c.yaml:9: menus.Main: menu id 'Main' must be lower-case letters, digits, - or _ "
        "(at most 40, starting with a letter or digit)",
        "c.yaml:21: employees.Bob B: employee id 'Bob B' must be lower-case letters, digits, "
        "- or _ (at most 40, starting with a letter or digit)",
    ]


def test_team_and_employee_ids_may_not_clash():
    text = MINIMAL.replace("teams:\n", "teams:\n  anna: {name: Anna's team, members: [anna]}\n")
    assert one_problem(text) == (
        "c.yaml:14: teams.anna: 'anna' is also an employee (c.yaml:17): teams and employees "
        "need different ids"
    )


# ---- teams -----------------------------------------------------------------------------------


def test_team_members_must_exist_and_be_listed_once():
    text = MINIMAL.replace("members: [anna]", "members: [anna, ana, anna]")
    assert problems_of(text) == [
        "c.yaml:14: teams.ops.members[1]: no employee 'ana' (did you mean 'anna'?)",
        "c.yaml:14: teams.ops.members[2]: 'anna' is listed twice (also at line 14)",
    ]


def test_team_settings():
    text = MINIMAL.replace(
        "teams:\n",
        "teams:\n  sales: {name: Myynti, kind: sales, strategy: random, queue: 'my queue'}\n",
    )
    assert problems_of(text) == [
        "c.yaml:14: teams.sales: has no members: list them under members: or give employees "
        "teams:",
        "c.yaml:14: teams.sales.kind: must be one of team, operators",
        "c.yaml:14: teams.sales.queue: must be an Asterisk queue name (letters, digits, - and _)",
        "c.yaml:14: teams.sales.strategy: must be all (ring together) or in_order (one after "
        "another)",
    ]


def test_exactly_one_operators_team():
    none = MINIMAL.replace("kind: operators, ", "")
    assert one_problem(none) == (
        "c.yaml:13: teams: one team needs kind: operators (0 in every menu goes to it)"
    )
    two = MINIMAL.replace(
        "teams:\n", "teams:\n  ops2: {name: Toinen, kind: operators, members: [anna]}\n"
    )
    assert one_problem(two) == (
        "c.yaml:15: teams.ops: only one team can be the operators; 'ops2' already is (c.yaml:14)"
    )


def test_employee_team_must_exist():
    assert one_problem(MINIMAL + "    teams: [sale]\n") == (
        "c.yaml:21: employees.anna.teams[0]: no team 'sale'"
    )


# ---- menus -----------------------------------------------------------------------------------


def menu_option(option: str) -> str:
    """MINIMAL with option 2 (line 13) set to `option`."""
    first = "      1: {employee: anna}\n"
    return MINIMAL.replace(first, f"{first}{option}\n")


def test_zero_cannot_be_reassigned():
    assert one_problem(menu_option("      0: {employee: anna}")) == (
        "c.yaml:13: menus.main.options.0: 0 always goes to the operator in every menu "
        "(callers rely on it); use a digit from 1 to 9"
    )


def test_zero_to_the_operator_may_be_written():
    c = load(menu_option("      0: {operator: true}"))
    assert "0" not in c.menus["main"].options


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ('"*"', "menus.main.options.*: * repeats the menu and # goes back: they cannot be choices"),
        ('"#"', "menus.main.options.#: * repeats the menu and # goes back: they cannot be choices"),
        ("10", "menus.main.options.10: choices are single digits from 1 to 9"),
        ("a", "menus.main.options.a: choices are single digits from 1 to 9"),
    ],
)
def test_reserved_and_invalid_keys(key, message):
    assert one_problem(menu_option(f"      {key}: {{operator: true}}")) == f"c.yaml:13: {message}"


def test_human_only_must_go_to_a_team_or_the_operator():
    assert one_problem(menu_option("      2: {employee: anna, human_only: true}")) == (
        "c.yaml:13: menus.main.options.2.human_only: a human_only choice must reach a person: "
        "point it at a team or the operator, not employee anna"
    )
    assert one_problem(menu_option("      2: {message: ops, human_only: true}")).endswith(
        "not message ops"
    )
    option = load(menu_option("      2: {team: ops, human_only: true}")).menus["main"].options["2"]
    assert option.human_only and option.target == TeamTarget("ops")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("{employee: bob}", "menus.main.options.2.employee: no employee 'bob'"),
        ("{team: opz}", "menus.main.options.2.team: no team 'opz' (did you mean 'ops'?)"),
        ("{menu: sub}", "menus.main.options.2.menu: no menu 'sub'"),
        ("{announcement: news}", "menus.main.options.2.announcement: no announcement 'news'"),
        ("{message: bob}", "menus.main.options.2.message: no employee or team 'bob'"),
    ],
)
def test_menu_references_must_exist(option, message):
    assert one_problem(menu_option(f"      2: {option}")) == f"c.yaml:13: {message}"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("{}", "menus.main.options.2: say where this goes: one of employee:, team:, menu:, "
               "announcement:, operator:, external:, dial_by_name:, message:, language:"),
        ("{team: ops, employee: anna}", "menus.main.options.2: give only one place to go, not "
                                        "employee and team"),
        ("{operator: false}", "menus.main.options.2.operator: write operator: true (or remove "
                              "the choice)"),
        ("{external: '+358 40 1'}", "menus.main.options.2.external: must be a phone number: "
                                    "digits with an optional leading +, like +358401234567"),
        ("{language: sv}", "menus.main.options.2.language: must be one of the offered languages "
                           "(fi)"),
        ("{hangup: true}", "menus.main.options.2.hangup: hangup: is only for "
                           "hours.closed_action; after an announcement use then: hangup"),
        ("{team: ops, then: back}", "menus.main.options.2.then: then: only follows an "
                                    "announcement"),
        ("{team: ops, lable: x}", "menus.main.options.2.lable: unknown setting (misspelt?)"),
        ("anna", "menus.main.options.2: say where this goes, like {employee: anna} or "
                 "{team: sales}"),
    ],
)
def test_menu_option_shapes(option, message):
    assert one_problem(menu_option(f"      2: {option}")) == f"c.yaml:13: {message}"


def test_all_target_kinds():
    text = MINIMAL.replace(
        "      1: {employee: anna}\n",
        "      1: {employee: anna, label: Anna}\n"
        "      2: {team: ops}\n"
        "      3: {menu: sub}\n"
        "      4: {announcement: info, then: hangup}\n"
        "      5: {operator: true}\n"
        "      6: {external: '+358401110000'}\n"
        "      7: {dial_by_name: true}\n"
        "      8: {message: ops}\n"
        "      9: {announcement: info}\n"
        "  sub: {prompt: Alavalikko}\n",
    ).replace("teams:", "announcements:\n  info: {fi: Tiedote}\nteams:")
    options = load(text).menus["main"].options
    assert [str(o.target) for o in options.values()] == [
        "employee anna", "team ops", "menu sub", "announcement info", "operator",
        "external +358401110000", "dial by name", "message ops", "announcement info",
    ]
    assert options["4"].then == "hangup" and options["9"].then == "back"
    assert options["1"].label == "Anna"


def test_submenu_cycle_is_an_error():
    text = MINIMAL.replace(
        "      1: {employee: anna}\n",
        "      1: {menu: sub}\n"
        "  sub:\n"
        "    prompt: Alavalikko\n"
        "    options:\n"
        "      1: {menu: subsub}\n"
        "  subsub:\n"
        "    prompt: Ala-alavalikko\n"
        "    options:\n"
        "      9: {menu: main}\n",
    )
    assert one_problem(text) == (
        "c.yaml:20: menus.subsub.options.9.menu: menu 'main' leads back here "
        "(main → sub → subsub → main): callers go back with #, so a submenu must not lead to a "
        "menu above it"
    )


def test_menu_leading_to_itself_is_a_cycle():
    assert one_problem(menu_option("      2: {menu: main}")).startswith(
        "c.yaml:13: menus.main.options.2.menu: menu 'main' leads back here (main → main)"
    )


def test_shared_submenu_is_not_a_cycle():
    text = MINIMAL.replace(
        "      1: {employee: anna}\n",
        "      1: {menu: a}\n      2: {menu: b}\n"
        "  a: {prompt: A, options: {1: {menu: shared}}}\n"
        "  b: {prompt: B, options: {1: {menu: shared}}}\n"
        "  shared: {prompt: S}\n",
    )
    assert load(text).warnings == ()


def test_unreachable_menu_is_a_warning():
    text = MINIMAL.replace("teams:", "  old:\n    prompt: Vanha\nteams:")
    c = load(text)
    assert c.warnings == (
        "c.yaml:13: menus.old: no number, menu or closed_action leads here (unused)",
    )


def test_menu_reached_only_when_closed_is_used():
    text = MINIMAL.replace("closed_action: {operator: true}", "closed_action: {menu: night}")
    text = text.replace("teams:", "  night: {prompt: Suljettu}\nteams:")
    assert load(text).warnings == ()


def test_menu_timeout_and_attempts_are_bounded():
    text = MINIMAL.replace("    prompt: Paina 1.\n", "    prompt: Paina 1.\n    timeout: 0\n"
                           "    attempts: 11\n")
    assert problems_of(text) == [
        "c.yaml:11: menus.main.timeout: must be from 1 to 30, not 0",
        "c.yaml:12: menus.main.attempts: must be from 1 to 10, not 11",
    ]


# ---- texts and announcements -----------------------------------------------------------------


def languages(text: str) -> str:
    return text.replace("  name: Demo Oy\n", "  name: Demo Oy\n  languages: [fi, sv, en]\n")


def test_text_needs_the_default_language():
    text = languages(MINIMAL).replace("prompt: Paina 1.", "prompt: {sv: Tryck 1., en: Press 1.}")
    assert one_problem(text) == (
        "c.yaml:11: menus.main.prompt: needs a text in fi (company.language), even with a "
        "recording: it is the fallback and what the console shows"
    )


def test_missing_offered_language_is_a_warning():
    c = load(languages(MINIMAL).replace("prompt: Paina 1.", "prompt: {fi: Paina 1., sv: Tryck 1.}"))
    assert c.warnings == (
        "c.yaml:11: menus.main.prompt: no text in en: those callers hear the fi text",
    )
    assert c.menus["main"].prompt.text("en", "fi") == "Paina 1."


def test_text_in_a_language_not_offered_is_a_warning():
    c = load(MINIMAL.replace("prompt: Paina 1.", "prompt: {fi: Paina 1., en: Press 1.}"))
    assert c.warnings == (
        "c.yaml:10: menus.main.prompt.en: en is not in company.languages, so callers never hear "
        "this text",
    )


def test_sound_name_and_empty_text():
    text = MINIMAL.replace("prompt: Paina 1.", "prompt: {fi: '', sound: welcome.wav}")
    assert problems_of(text) == [
        "c.yaml:10: menus.main.prompt: needs a text in fi (company.language), even with a "
        "recording: it is the fallback and what the console shows",
        "c.yaml:10: menus.main.prompt.fi: is empty: write the text or remove the line",
        "c.yaml:10: menus.main.prompt.sound: must be a sound name like custom/welcome (letters, "
        "digits, - _ /; no extension): Asterisk picks the recording in the caller's language",
    ]


def test_announcement_validity_window():
    text = MINIMAL.replace(
        "teams:",
        "announcements:\n"
        "  news:\n"
        "    fi: Uusi portaali.\n"
        "    sound: custom/news\n"
        "    from: 2026-12-01 08:00\n"
        "    until: 2026-12-31\n"
        "teams:",
    )
    news = load(text).announcements["news"]
    assert news.say.sound == "custom/news"
    helsinki_8 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert not news.active(helsinki_8.replace(minute=0, hour=5))
    assert news.active(helsinki_8)
    # until: a date includes that whole day.
    assert news.active(datetime(2026, 12, 31, 21, 59, tzinfo=UTC))
    assert not news.active(datetime(2026, 12, 31, 22, 0, tzinfo=UTC))


def test_announcement_window_problems():
    text = MINIMAL.replace(
        "teams:",
        "announcements:\n"
        "  news: {fi: Uutinen, from: 2026-12-31, until: 2026-12-01}\n"
        "  bad: {fi: Huono, from: huomenna}\n"
        "teams:",
    )
    assert problems_of(text) == [
        "c.yaml:14: announcements.news.until: ends before it starts (from)",
        "c.yaml:15: announcements.bad.from: must be a date like 2025-12-24 or a time like "
        "2025-12-24 08:00",
    ]


# ---- hours -----------------------------------------------------------------------------------


def hours(lines: str) -> str:
    """MINIMAL with `lines` replacing the weekly hours (line 6 onwards)."""
    return MINIMAL.replace("  mon-fri: 08:00-16:30\n", lines)


def test_hours_forms():
    c = load(hours(
        "  mon: 08:00-11:30, 12:00-16:30\n"
        "  tue: [08:00-11:30, '12:00-16:30']\n"
        "  wed-thu: 8:00-16:00\n"
        "  fri: closed\n"
        "  sun: 00:00-24:00\n"
    ))
    weekly = [", ".join(map(str, day)) for day in c.hours.weekly]
    assert weekly == [
        "08:00-11:30, 12:00-16:30", "08:00-11:30, 12:00-16:30", "08:00-16:00", "08:00-16:00",
        "", "", "00:00-24:00",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8-16", "'8-16' is not a time range: write HH:MM-HH:MM like 08:00-16:30, or closed"),
        ("08:00-25:00", "'08:00-25:00': not a time of day (00:00 to 24:00)"),
        ("08:60-16:00", "'08:60-16:00': not a time of day (00:00 to 24:00)"),
        ("16:30-08:00", "'16:30-08:00': closes before it opens (a range cannot cross midnight: "
                        "split it at 24:00 and 00:00)"),
        ("08:00-08:00", "'08:00-08:00': closes before it opens (a range cannot cross midnight: "
                        "split it at 24:00 and 00:00)"),
        ("08:00-12:00, 11:00-16:00", "08:00-12:00 and 11:00-16:00 overlap"),
        ("open", "'open' is not a time range: write HH:MM-HH:MM like 08:00-16:30, or closed"),
    ],
)
def test_bad_hours(value, message):
    assert one_problem(hours(f"  mon: {value}\n")) == f"c.yaml:6: hours.mon: {message}"


def test_touching_ranges_are_fine():
    c = load(hours("  mon: 08:00-12:00, 12:00-16:00\n"))
    assert len(c.hours.weekly[0]) == 2


def test_day_given_twice_and_unknown_days():
    text = hours("  mon-fri: 08:00-16:30\n  fri: 08:00-15:00\n  fri-mon: closed\n  thurs: closed\n")
    assert problems_of(text) == [
        "c.yaml:7: hours.fri: fri is already given at line 6",
        "c.yaml:8: hours.fri-mon: day ranges go from Monday towards Sunday, like mon-fri",
        "c.yaml:9: hours.thurs: unknown setting (misspelt?)",
    ]


def test_holidays_and_exceptions():
    c = load(hours(
        "  mon-fri: 08:00-16:30\n"
        "  holidays:\n"
        "    2026-12-25..2026-12-26: Joulu\n"
        "    2027-01-01: Uudenvuodenpäivä\n"
        "  exceptions:\n"
        "    2026-12-24: {hours: 08:00-12:00, name: Jouluaatto}\n"
        "    2026-12-31: 08:00-14:00\n"
        "    2027-07-01..2027-07-31: {hours: closed, name: Kesäloma}\n"
    ))
    assert [(h.key, h.name) for h in c.hours.holidays] == [
        ("2026-12-25..2026-12-26", "Joulu"), ("2027-01-01", "Uudenvuodenpäivä")
    ]
    assert [(e.key, e.name, e.ranges and str(e.ranges[0])) for e in c.hours.exceptions] == [
        ("2026-12-24", "Jouluaatto", "08:00-12:00"),
        ("2026-12-31", "", "08:00-14:00"),
        ("2027-07-01..2027-07-31", "Kesäloma", ()),
    ]


def test_bad_dates_and_overlaps():
    text = hours(
        "  mon-fri: 08:00-16:30\n"
        "  holidays:\n"
        "    2026-12-25..2026-12-26: Joulu\n"
        "    2026-02-30: Karkauspäivä\n"
        "    2027-01-06..2027-01-01: Väärinpäin\n"
        "    2027-05-01:\n"
        "  exceptions:\n"
        "    2026-12-26: 10:00-12:00\n"
        "    24.12.2026: 08:00-12:00\n"
        "    2026-12-20..2026-12-31: {name: Joulukuu}\n"
    )
    assert problems_of(text) == [
        "c.yaml:9: hours.holidays.2026-02-30: '2026-02-30' is not a date: write YYYY-MM-DD like "
        "2025-12-24, or a range like 2025-12-24..2025-12-26",
        "c.yaml:10: hours.holidays.2027-01-06..2027-01-01: '2027-01-06..2027-01-01': the range "
        "ends before it starts",
        "c.yaml:11: hours.holidays.2027-05-01: give the holiday's name, like 2025-12-25: "
        "Joulupäivä",
        "c.yaml:13: hours.exceptions.2026-12-26: 2026-12-26 is also in holiday "
        "2026-12-25..2026-12-26 (c.yaml:8): each date may have one rule only",
        "c.yaml:14: hours.exceptions.24.12.2026: '24.12.2026' is not a date: write YYYY-MM-DD "
        "like 2025-12-24, or a range like 2025-12-24..2025-12-26",
        "c.yaml:15: hours.exceptions.2026-12-20..2026-12-31.hours: is required: like "
        "08:00-12:00, or closed",
    ]


def test_duplicate_date_overlapping_exception_ranges():
    text = hours(
        "  exceptions:\n"
        "    2027-07-01..2027-07-31: closed\n"
        "    2027-07-15: 09:00-12:00\n"
    )
    assert one_problem(text) == (
        "c.yaml:8: hours.exceptions.2027-07-15: 2027-07-15 is also in exception "
        "2027-07-01..2027-07-31 (c.yaml:7): each date may have one rule only"
    )


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{hangup: true}", "c.yaml:7: hours.closed_action: hangup needs an announcement: to say "
                           "first (callers must not be cut off silently)"),
        ("{}", "c.yaml:7: hours.closed_action: say where this goes: one of menu:, team:, "
               "employee:, message:, external:, operator:, hangup:"),
        ("{dial_by_name: true}", "c.yaml:7: hours.closed_action.dial_by_name: dial_by_name: is "
                                 "not possible here (use one of menu, team, employee, message, "
                                 "external, operator, hangup)"),
        ("{announcement: closed, message: ops}", "c.yaml:7: hours.closed_action.announcement: "
                                                 "no announcement 'closed'"),
        ("{external: '112'}", None),
    ],
)
def test_closed_action(action, message):
    text = MINIMAL.replace("closed_action: {operator: true}", f"closed_action: {action}")
    if message is None:
        assert load(text).hours.closed_action.target == ExternalTarget("112")
    else:
        assert one_problem(text) == message


def test_closed_action_with_announcement():
    text = MINIMAL.replace(
        "closed_action: {operator: true}", "closed_action: {announcement: closed, message: ops}"
    ).replace("teams:", "announcements:\n  closed: {fi: Suljettu.}\nteams:")
    action = load(text).hours.closed_action
    assert (action.announcement, action.target) == ("closed", MessageTarget("ops"))


# ---- employees_file --------------------------------------------------------------------------


def test_employees_file(tmp_path):
    main = MINIMAL.replace("employees:\n", "employees_file: people.yaml\nemployees:\n")
    (tmp_path / "company.yaml").write_text(main, encoding="utf-8")
    (tmp_path / "people.yaml").write_text(
        "employees:\n  bob:\n    name: Bob Berg\n    devices: [{desk: PJSIP/bob}]\n",
        encoding="utf-8",
    )
    c = load_company(tmp_path / "company.yaml")
    assert set(c.employees) == {"anna", "bob"}
    bob = "  bob:\n    name: Bob Berg\n    devices: [{desk: PJSIP/bob}]\n"
    again = parse_company(MINIMAL + bob)
    assert c == again


def test_employees_file_problems_name_that_file(tmp_path):
    main = MINIMAL.replace("employees:\n", "employees_file: people.yaml\nemployees:\n")
    (tmp_path / "company.yaml").write_text(main, encoding="utf-8")
    (tmp_path / "people.yaml").write_text(
        "employees:\n"
        "  bob:\n"
        "    name: Bob Berg\n"
        "    extension: 101\n"
        "    devices: [{desk: 'PJSIP/bob&PJSIP/x'}]\n"
        "  anna:\n"
        "    name: Anna Toinen\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_company(tmp_path / "company.yaml")
    people = tmp_path / "people.yaml"
    company = tmp_path / "company.yaml"
    assert err.value.problems == [
        f"{people}:4: employees.bob.extension: extension 101 is already anna's at {company}:19",
        f"{people}:5: employees.bob.devices[0].desk: must be a device like PJSIP/anna or "
        "Local/anna@context (letters, digits and . _ - + @ / only)",
        f"{people}:6: employees.anna: employee 'anna' is also defined at {company}:17",
    ]


def test_missing_employees_file(tmp_path):
    text = MINIMAL.replace("employees:\n", "employees_file: nobody.yaml\nemployees:\n")
    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml", base_dir=tmp_path)
    assert err.value.problems == [
        f"c.yaml:15: employees_file: no such file: {tmp_path / 'nobody.yaml'}"
    ]


def test_the_demo_companys_calendars_are_in_the_repository_and_parse(monkeypatch):
    """The demo's calendars are files next to it, so a fresh clone syncs them without a network;
    the demo settings' calendar.files_dir (by default) is where they are."""
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "not-the-example")
    from datetime import timedelta

    from vaihde.calendar import parse_busy
    from vaihde.company.load import load_company
    from vaihde.config.settings import load as load_settings

    config = Path(__file__).resolve().parents[2] / "config"
    policy = load_settings(config / "demo.yaml").calendar
    assert policy.files_dir == str(config / "calendars")
    company = load_company(config / "demo-company.yaml", calendars=policy)
    sources = [e.calendar for e in company.employees.values() if e.calendar]
    assert sources
    start = datetime(2026, 11, 23, tzinfo=UTC)
    for source in sources:
        file = Path(policy.resolve(source))
        busy = parse_busy(file.read_bytes(), window_start=start, window_end=start + timedelta(7))
        assert busy, source
