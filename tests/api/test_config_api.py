"""The company configuration over HTTP (admins): check, diff, apply and read it. A file with a
mistake is refused whole, with file:line: field for each problem, and nothing changes."""

from __future__ import annotations

from sqlalchemy import select

from vaihde.company.synthetic import synthetic_company_yaml
from vaihde.db import models as m

YAML = {"Content-Type": "application/yaml"}


async def test_check_a_good_file(api):
    reply = await api.call("POST", "/config/check", data=api.company_yaml, headers=YAML,
                           as_="root")
    assert reply.status == 200
    assert reply.json["ok"] is True
    assert reply.json["problems"] == []
    assert reply.json["company"] == "Testi Oy"
    assert reply.json["counts"] == {"employees": 3, "teams": 2, "menus": 1, "numbers": 1}


async def test_check_reports_a_typo_with_file_line_and_field(api):
    before = await api.counts()
    text = api.company_yaml.replace("    extension: 102", "    extensoin: 102")
    reply = await api.call("POST", "/config/check?name=people.yaml", data=text,
                           headers={"Content-Type": "text/yaml"}, as_="root")
    assert reply.status == 200
    assert reply.json["ok"] is False
    assert reply.json["problems"] == [
        {
            "file": "people.yaml",
            "line": 27,
            "field": "employees.matti.extensoin",
            "message": "unknown setting (misspelt?)",
            "text": "people.yaml:27: employees.matti.extensoin: unknown setting (misspelt?)",
        }
    ]
    assert await api.counts() == before


async def test_diff_and_apply(api):
    diff = await api.call("POST", "/config/diff", data=api.company_yaml, headers=YAML,
                          as_="root")
    assert diff.status == 200
    paths = {c["path"] for c in diff.json["changes"]}
    assert {"company.name", "employees.anna", "teams.sales"} <= paths
    assert "employee anna added (Anna Virtanen)" in diff.json["text"]

    applied = await api.call("POST", "/config/apply", data=api.company_yaml, headers=YAML,
                             as_="root")
    assert applied.status == 200
    assert applied.json["applied"] is True
    version = applied.json["version"]
    assert isinstance(version, int)
    assert api.applied == ["applied"]  # the service's hook ran

    current = await api.call("GET", "/config", as_="root")
    assert current.status == 200
    assert current.json["version"] == version
    assert current.json["applied_by"] == "root"
    assert current.json["source_name"] == "api:company.yaml"
    assert current.json["document"]["company"]["name"] == "Testi Oy"
    assert current.json["document"]["employees"]["anna"]["title"] == "Myyntipäällikkö"

    # Applying the same file again changes nothing.
    again = await api.call("POST", "/config/apply", data=api.company_yaml, headers=YAML,
                           as_="root")
    assert again.json == {"applied": False, "version": None, "changes": [],
                          "text": "No changes."}
    nothing = await api.call("POST", "/config/diff", data=api.company_yaml, headers=YAML,
                             as_="root")
    assert nothing.json["changes"] == []

    # A removed employee is deactivated; the directory and the cache follow.
    smaller = api.company_yaml.replace("    delegates: [matti]\n", "").replace(
        "members: [anna, matti]", "members: [anna]"
    )
    smaller = smaller[: smaller.index("  matti:\n")] + smaller[smaller.index("  asa:\n"):]
    applied = await api.call("POST", "/config/apply", data=smaller, headers=YAML, as_="root")
    assert applied.status == 200 and applied.json["version"] > version
    assert "employees.matti" in {c["path"] for c in applied.json["changes"]}
    assert "matti" not in api.cache.employees
    employees = await api.call("GET", "/employees", as_="anna")
    assert [e["id"] for e in employees.json["employees"]] == ["anna", "asa"]


async def test_apply_with_a_typo_changes_nothing(api):
    assert (await api.call("POST", "/config/apply", data=api.company_yaml, headers=YAML,
                           as_="root")).status == 200
    before = await api.counts()
    broken = api.company_yaml.replace("Testi Oy", "Uusi Oy").replace(
        "      1: {team: sales}", "      1: {team: salse}"
    )
    for path in ("/config/apply", "/config/diff"):
        reply = await api.call("POST", path, data=broken, headers=YAML, as_="root")
        assert reply.status == 400
        assert reply.error["code"] == "invalid_config"
        assert reply.error["field"] == "body"
        problems = reply.error["problems"]
        assert problems == [
            {
                "file": "company.yaml",
                "line": 12,
                "field": "menus.main.options.1.team",
                "message": "no team 'salse' (did you mean 'sales'?)",
                "text": "company.yaml:12: menus.main.options.1.team: no team 'salse' (did you "
                "mean 'sales'?)",
            }
        ]
    assert await api.counts() == before
    async with api.db.sessions() as session:
        names = (await session.scalars(select(m.ConfigVersion.document))).all()
    assert all("Uusi Oy" not in d for d in names)


async def test_yaml_that_is_not_yaml(api):
    reply = await api.call("POST", "/config/check", data="company: [unclosed\n", headers=YAML,
                           as_="root")
    assert reply.json["ok"] is False
    assert reply.json["problems"][0]["line"] == 2
    assert "not valid YAML" in reply.json["problems"][0]["text"]
    bad_utf8 = await api.call("POST", "/config/check", data=b"company: \xff\n", headers=YAML,
                              as_="root")
    assert bad_utf8.status == 400 and bad_utf8.error["field"] == "body"


async def test_includes_are_not_read_from_the_server(api):
    text = api.company_yaml + "employees_file: ../../../../etc/passwd\n"
    reply = await api.call("POST", "/config/check", data=text, headers=YAML, as_="root")
    assert reply.json["ok"] is False
    assert any("cannot be read here" in p["message"] for p in reply.json["problems"])
    assert "root:" not in reply.text


async def test_config_needs_yaml_and_a_plain_name(api):
    reply = await api.call("POST", "/config/check", json={"company": {}}, as_="root")
    assert reply.status == 415
    reply = await api.call("POST", "/config/check?name=../x.yaml", data="x: 1", headers=YAML,
                           as_="root")
    assert reply.status == 400 and reply.error["field"] == "name"
    reply = await api.call("GET", "/config", as_="root")
    assert reply.status == 404  # nothing applied yet


async def test_large_company_files_are_accepted_up_to_the_limit(api):
    # Beyond the service's 64 KiB default: the API reads config bodies itself, up to the YAML
    # limit (8 MiB: a company of 10,000 people written out in full is 4.5 MiB).
    text = synthetic_company_yaml(2_000)
    assert len(text) > 800_000
    reply = await api.call("POST", "/config/check", data=text, headers=YAML, as_="root")
    assert reply.status == 200 and reply.json["ok"] is True, reply.json
    assert reply.json["counts"]["employees"] == 2_000
    padding = "# " + "x" * 1000 + "\n"
    # Over 4 MiB and under 8: the service's own body limit (service.http, default) lets through
    # what the company file's limit allows.
    large = padding * (5 * 1024) + synthetic_company_yaml(20)
    reply = await api.call("POST", "/config/check", data=large, headers=YAML, as_="root")
    assert reply.status == 200 and reply.json["counts"]["employees"] == 20, reply.json
    huge = padding * (9 * 1024)
    reply = await api.call("POST", "/config/check", data=huge, headers=YAML, as_="root")
    assert reply.status == 413


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


async def test_hostile_yaml_is_refused_by_its_line_and_changes_nothing(api):
    """A python tag (500 before), an alias bomb (seconds of a blocked loop before): both are
    the admin's mistakes to be told about by line, on check and on apply."""
    before = await api.counts()
    lines = api.company_yaml.count("\n")  # what is appended starts on the next line
    name = api.company_yaml.replace("  name: Testi Oy", "  name: !!python/name:os.system")
    tag = api.company_yaml + "x: !!python/object/apply:os.system ['touch /tmp/vaihde-pwned']\n"
    cases = [
        (name, "company.yaml:2: company.name: YAML tag !!python/name:os.system is not allowed "
               "here"),
        (tag, f"company.yaml:{lines + 1}: x: YAML tag !!python/object/apply:os.system is not "
              "allowed here"),
        (api.company_yaml + BOMB, f"company.yaml:{lines + 5}: e[0]: aliases repeat more than "
                                  "10,000 values in all: write the values out instead"),
    ]
    for text, problem in cases:
        check = await api.call("POST", "/config/check", data=text, headers=YAML, as_="root")
        assert check.status == 200 and check.json["ok"] is False
        assert [p["text"] for p in check.json["problems"]] == [problem]
        for action in ("diff", "apply"):
            reply = await api.call("POST", f"/config/{action}", data=text, headers=YAML,
                                   as_="root")
            assert reply.status == 400, reply.text
            assert reply.error["code"] == "invalid_config"
            assert [p["text"] for p in reply.json["error"]["problems"]] == [problem]
    assert await api.counts() == before


def with_calendar(api, source: str) -> str:
    return api.company_yaml.replace(
        "    title: Myyntipäällikkö\n", f"    title: Myyntipäällikkö\n    calendar: '{source}'\n"
    )


async def test_calendar_sources_outside_the_allowed_are_refused(api):
    """The service reads employees' calendars every few minutes: an applied company file must
    not be able to point it at the server's own files or at plain-http services."""
    before = await api.counts()
    line = with_calendar(api, "x").splitlines().index("    calendar: 'x'") + 1
    for source, message in [
        ("/etc/passwd", "must be a file in calendar.files_dir"),
        ("../../../../etc/passwd", "must be a file in calendar.files_dir"),
        ("http://127.0.0.1:8080/api/v1/config", "must be an https:// address"),
        ("http://169.254.169.254/latest/meta-data/", "must be an https:// address"),
        ("file:///etc/passwd", "file:// addresses are not used"),
    ]:
        reply = await api.call("POST", "/config/apply", data=with_calendar(api, source),
                               headers=YAML, as_="root")
        assert reply.status == 400, (source, reply.text)
        (problem,) = reply.json["error"]["problems"]
        assert (problem["line"], problem["field"]) == (line, "employees.anna.calendar")
        assert problem["message"].startswith(message), problem
    assert await api.counts() == before
    for source in ("https://calendar.example.fi/anna.ics", "anna.ics"):
        reply = await api.call("POST", "/config/check", data=with_calendar(api, source),
                               headers=YAML, as_="root")
        assert reply.json["ok"] is True, (source, reply.json)


async def test_the_companies_are_listed_for_admins(api):
    """GET /config/companies: each company with its version applied last (the admin page's
    picker); only for those who configure."""
    main = await api.call("POST", "/config/apply", data=api.company_yaml, headers=YAML,
                          as_="root")
    assert main.status == 200
    got = await api.call("GET", "/config/companies", as_="root")
    assert got.status == 200
    assert got.json == {"companies": [{"id": "main", "name": "Testi Oy",
                                       "version": main.json["version"]}]}
    assert (await api.call("GET", "/config/companies", as_="olli")).status == 403
