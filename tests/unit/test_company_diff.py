"""What changes between two versions of the company file, as data and as the admin reads it."""

from vaihde.company import CompanyConfig, load_company, parse_company
from vaihde.company.diff import Change, diff_company, render_diff

BASE = """\
company:
  name: Demo Oy
  languages: [fi, sv]
numbers:
  "+358201234567": {label: Vaihde, menu: main}
hours:
  mon: 08:00-16:30
  tue: 08:00-16:30
  wed: 08:00-16:30
  thu: 08:00-16:30
  fri: 08:00-11:30, 12:00-15:00
  holidays:
    2026-12-25: Joulupäivä
  closed_action:
    announcement: closed
    message: sales
announcements:
  closed:
    fi: Olemme suljettu.
    sv: Vi är stängda.
menus:
  main:
    prompt:
      fi: Myynti 1, Anna 2.
      sv: Försäljning 1, Anna 2.
    options:
      1: {team: sales, label: Myynti}
      2: {employee: anna}
teams:
  ops: {name: Vaihde, kind: operators, members: [anna]}
  sales: {name: Myynti, members: [anna, bjorn]}
employees:
  anna:
    name: Anna Virtanen
    extension: 101
    devices:
      - desk: PJSIP/anna
      - mobile: "+358401234567"
  bjorn:
    name: Björn Ekström
    devices:
      - desk: PJSIP/bjorn
"""

# The same company written differently: other order, flow style, day ranges, lists, defaults
# spelt out, membership on the employees, comments.
REFORMATTED = """\
# Demo Oy, tidied up
employees:
  bjorn: {name: Björn Ekström, devices: [{desk: PJSIP/bjorn, seconds: 20}], teams: [sales]}
  anna:
    teams: [sales]
    ring_seconds: 20
    strategy: all
    devices: [{desk: PJSIP/anna}, {mobile: '+358401234567'}]
    extension: "101"
    name: Anna Virtanen
teams:
  sales: {name: Myynti, kind: team, members: [anna]}  # bjorn joins from his own teams:
  ops: {kind: operators, name: Vaihde, members: [anna], strategy: all, ring_seconds: 20}
menus:
  main:
    options: {2: {employee: anna}, 1: {label: Myynti, team: sales}}
    prompt: {sv: "Försäljning 1, Anna 2.", fi: "Myynti 1, Anna 2."}
    timeout: 5
    attempts: 3
announcements:
  closed: {sv: Vi är stängda., fi: Olemme suljettu.}
hours:
  closed_action: {message: sales, announcement: closed}
  holidays: {"2026-12-25": Joulupäivä}
  sat: closed
  fri: ["08:00-11:30", "12:00-15:00"]
  mon-thu: 08:00-16:30
numbers:
  "+358201234567": {menu: main, label: Vaihde, language: fi}
company: {languages: [fi, sv], name: Demo Oy, timezone: Europe/Helsinki, language: fi}
"""


def company(text: str = BASE) -> CompanyConfig:
    return parse_company(text, "c.yaml")


def edited(old: str, new: str) -> CompanyConfig:
    assert old in BASE, old
    return company(BASE.replace(old, new))


def test_same_file_has_no_changes():
    assert diff_company(company(), company()) == []
    assert render_diff([]) == "No changes."


def test_reformatted_but_equal_file_has_no_changes():
    before, after = company(), company(REFORMATTED)
    assert diff_company(before, after) == []
    assert before == after
    assert before.to_document() == after.to_document()
    assert before.digest() == after.digest()


def test_digest_changes_with_content():
    assert company().digest() != edited("Demo Oy", "Demo Ab").digest()


def test_added_employee():
    after = company(BASE + "  cecilia:\n    name: Cecilia Öhman\n    devices: [{desk: PJSIP/c}]\n")
    (change,) = diff_company(company(), after)
    assert (change.kind, change.path, change.old) == ("added", "employees.cecilia", None)
    assert change.new["name"] == "Cecilia Öhman"
    assert change.summary == "employee cecilia added (Cecilia Öhman)"


def test_removed_employee_also_leaves_the_team():
    without = company(
        BASE.replace("members: [anna, bjorn]", "members: [anna]").replace(
            "  bjorn:\n    name: Björn Ekström\n    devices:\n      - desk: PJSIP/bjorn\n", ""
        )
    )
    assert "bjorn" not in without.employees
    changes = diff_company(company(), without)
    assert [(c.kind, c.path, c.summary) for c in changes] == [
        ("changed", "teams.sales.members",
         "team sales: members (ring order): anna, bjorn → anna"),
        ("removed", "employees.bjorn", "employee bjorn removed (Björn Ekström)"),
    ]


def test_changed_device_order():
    after = edited(
        '      - desk: PJSIP/anna\n      - mobile: "+358401234567"\n',
        '      - mobile: "+358401234567"\n      - desk: PJSIP/anna\n',
    )
    (change,) = diff_company(company(), after)
    assert (change.kind, change.path) == ("changed", "employees.anna.devices")
    assert change.old == [
        {"desk": "PJSIP/anna", "seconds": 20}, {"mobile": "+358401234567", "seconds": 20}
    ]
    assert change.summary == (
        "employee anna: phones (ring order): new order: desk PJSIP/anna (20 s), "
        "mobile +358401234567 (20 s) → mobile +358401234567 (20 s), desk PJSIP/anna (20 s)"
    )


def test_changed_menu_option():
    after = edited("1: {team: sales, label: Myynti}", "1: {employee: bjorn, label: Myynti}")
    (change,) = diff_company(company(), after)
    assert (change.kind, change.path) == ("changed", "menus.main.options.1")
    assert change.old == {"team": "sales", "label": "Myynti"}
    assert change.new == {"employee": "bjorn", "label": "Myynti"}
    assert change.summary == "menu main: key 1: team sales (Myynti) → employee bjorn (Myynti)"


def test_added_and_removed_menu_options():
    after = edited("      2: {employee: anna}\n", "      3: {team: ops, human_only: true}\n")
    assert [(c.kind, c.path, c.summary) for c in diff_company(company(), after)] == [
        ("removed", "menus.main.options.2", "menu main: key 2: removed (was employee anna)"),
        ("added", "menus.main.options.3", "menu main: key 3: added team ops (people only)"),
    ]


def test_hours_and_texts():
    holiday = "    2026-12-25: Joulupäivä\n"
    changed = company(
        BASE.replace("fri: 08:00-11:30, 12:00-15:00", "fri: 08:00-15:00")
        .replace(holiday, holiday + "    2027-01-01: Uusi vuosi\n")
        .replace("fi: Olemme suljettu.", "fi: Olemme nyt suljettu.")
        .replace("message: sales", "operator: true")
    )
    assert [c.summary for c in diff_company(company(), changed)] == [
        "Friday: 08:00-11:30, 12:00-15:00 → 08:00-15:00",
        "when closed: announcement closed, then message sales → announcement closed, then "
        "operator",
        "holiday 2027-01-01: added Uusi vuosi",
        "announcement closed: fi: Olemme suljettu. → Olemme nyt suljettu.",
    ]


def test_first_apply_adds_everything():
    changes = diff_company(None, company())
    assert {c.kind for c in changes} == {"added"}
    paths = [c.path for c in changes]
    assert paths[:4] == ["company.language", "company.languages", "company.name",
                         "company.timezone"]
    assert {"numbers.+358201234567", "employees.anna", "employees.bjorn", "teams.ops",
            "menus.main", "hours.mon", "hours.closed_action"} <= set(paths)


def test_render_groups_by_section():
    after = company(
        BASE.replace("name: Demo Oy", "name: Demo Ab")
        .replace("2: {employee: anna}", "2: {employee: bjorn}")
        + "  cecilia:\n    name: Cecilia Öhman\n"
    )
    text = render_diff(diff_company(company(), after))
    assert text == (
        "Company\n"
        "  ~ company name: Demo Oy → Demo Ab\n"
        "\n"
        "Menus\n"
        "  ~ menu main: key 2: employee anna → employee bjorn\n"
        "\n"
        "Employees\n"
        "  + employee cecilia added (Cecilia Öhman)\n"
        "\n"
        "3 changes: 1 added, 0 removed, 2 changed."
    )


def test_demo_file_against_itself_and_first_apply():
    demo = load_company("config/demo-company.yaml")
    assert diff_company(demo, demo) == []
    rendered = render_diff(diff_company(None, demo))
    assert rendered.startswith("Company\n  + company language: added fi\n")
    assert "  + employee jorgen added (Jörgen Åström)" in rendered


def test_change_is_plain_data():
    change = Change("changed", "company.name", "A", "B", "company name: A → B")
    assert change == Change("changed", "company.name", "A", "B", "company name: A → B")
