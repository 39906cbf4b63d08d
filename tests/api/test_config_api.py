"""The company configuration over HTTP (admins): check, diff, apply and read it. A file with a
mistake is refused whole, with file:line: field for each problem, and nothing changes."""

from __future__ import annotations

from sqlalchemy import select

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
    # Beyond the service's 64 KiB default: the API reads config bodies itself.
    padding = "# " + "x" * 1000 + "\n"
    text = api.company_yaml + padding * 200
    reply = await api.call("POST", "/config/check", data=text, headers=YAML, as_="root")
    assert reply.status == 200 and reply.json["ok"] is True
    huge = padding * (5 * 1024)
    reply = await api.call("POST", "/config/check", data=huge, headers=YAML, as_="root")
    assert reply.status == 413
