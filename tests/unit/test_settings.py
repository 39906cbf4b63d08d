"""Settings validation: every mistake named with file, line and field; nothing accepted half."""

from pathlib import Path

import pytest

from vaihde.cli import main as cli
from vaihde.config.settings import load, loads
from vaihde.config.source import ConfigError

GOOD = """\
service:
  ami: {secret: s3cret}
  mobile_dial: PJSIP/{number}@trunk
database:
  url: sqlite+aiosqlite:///var/test.db
company_file: company.yaml
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    monkeypatch.delenv("VAIHDE_DB_URL", raising=False)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        loads(text, "conf/settings.yaml")
    return err.value.problems


def test_good_file_loads_with_defaults():
    s = loads(GOOD, "conf/settings.yaml")
    assert s.fastagi.port == 4573 and s.http.port == 8080 and s.ami.secret == "s3cret"
    assert s.database_url == "sqlite+aiosqlite:///var/test.db"
    assert s.company_file == "conf/company.yaml"  # relative to the settings file
    assert s.mobile_dial == "PJSIP/{number}@trunk"


def test_secret_and_database_from_environment(monkeypatch):
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "from-env")
    monkeypatch.setenv("VAIHDE_DB_URL", "postgresql+asyncpg://db/vaihde")
    s = loads("service: {}\n")
    assert s.ami.secret == "from-env" and s.database_url == "postgresql+asyncpg://db/vaihde"
    # The environment wins over the file, and the file's keys are still known settings.
    s = loads(GOOD, "conf/settings.yaml")
    assert s.ami.secret == "from-env" and s.database_url == "postgresql+asyncpg://db/vaihde"


def test_demo_settings_are_valid(monkeypatch):
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "x")
    s = load("config/demo.yaml")
    assert s.company_file == "config/demo-company.yaml"


def test_typo_is_reported_with_line_and_field():
    text = GOOD.replace("  url:", "  ulr:")
    assert problems_of(text) == ["conf/settings.yaml:5: database.ulr: unknown setting (misspelt?)"]


@pytest.mark.parametrize(
    "template", ["PJSIP/{number}@trunk&PJSIP/x", "PJSIP/{number},60", "${EVIL}", "Console/dsp"]
)
def test_unsafe_mobile_dial_rejected(template):
    (problem,) = problems_of(GOOD.replace("PJSIP/{number}@trunk", f"'{template}'"))
    assert "service.mobile_dial: must be a device template" in problem


def test_all_problems_listed_at_once():
    text = GOOD.replace("secret: s3cret", "port: 99999").replace("company_file", "compnay_file")
    got = problems_of(text)
    assert any("service.ami.port: must be from 1 to 65535" in p for p in got)
    assert any("service.ami.secret: is required" in p for p in got)
    assert any("compnay_file: unknown setting" in p for p in got)


def test_broken_yaml_names_the_line():
    (problem,) = problems_of("service:\n  ami: [unclosed\n")
    assert problem.startswith("conf/settings.yaml:3: not valid YAML")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_http_limits_have_safe_defaults_and_are_checked():
    s = loads(GOOD, "conf/settings.yaml")
    assert (s.http.keepalive_s, s.http.header_timeout_s, s.http.body_timeout_s) == (15, 10, 30)
    assert s.http.max_connections == 256 and s.http.trusted_proxies == ()
    assert s.console_streams_per_user == 5
    text = GOOD.replace("service:\n", "service:\n  http:\n    keepalive_s: 0\n"
                        "    max_connections: 5\n    trusted_proxies: [10.0.0.5, 10.1.0.0/16, "
                        "proxy.example]\n    proxy_header: via\n", 1)
    assert problems_of(text) == [
        "conf/settings.yaml:3: service.http.keepalive_s: must be from 1 to 3600, not 0",
        "conf/settings.yaml:4: service.http.max_connections: must be from 8 to 100000, not 5",
        "conf/settings.yaml:5: service.http.trusted_proxies[2]: not an IP address or network "
        "(like 10.0.0.5 or 10.0.0.0/24): 'proxy.example'",
        "conf/settings.yaml:6: service.http.proxy_header: must be x-forwarded-for or "
        "forwarded, not 'via'",
    ]


def test_trusted_proxies_and_console_streams():
    text = GOOD + "console: {streams_per_user: 2}\n"
    text = text.replace("service:\n", "service:\n  http: {trusted_proxies: [10.0.0.5, "
                        "'fd00::/8'], proxy_header: Forwarded}\n", 1)
    s = loads(text, "conf/settings.yaml")
    assert [str(n) for n in s.http.trusted_proxies] == ["10.0.0.5/32", "fd00::/8"]
    assert s.http.proxy_header == "forwarded" and s.console_streams_per_user == 2
    assert problems_of(GOOD + "console: {streams_per_user: 0}\n") == [
        "conf/settings.yaml:7: console.streams_per_user: must be from 1 to 100, not 0"]


# --- the AMI secret: the example shipped in manager-vaihde.conf is not a working default ------

SHIPPED_MANAGER = (
    Path(__file__).resolve().parents[2] / "config" / "asterisk" / "manager-vaihde.conf"
)


def shipped_secret() -> str:
    (line,) = [x for x in SHIPPED_MANAGER.read_text().splitlines() if x.startswith("secret")]
    return line.partition("=")[2].strip()


def test_the_shipped_example_secret_is_refused_naming_the_field():
    example = shipped_secret()
    assert problems_of(GOOD.replace("s3cret", example)) == [
        "conf/settings.yaml:2: service.ami.secret: is the example secret of "
        "config/asterisk/manager-vaihde.conf, which anyone can read: choose your own (e.g. "
        "`openssl rand -base64 24`) and set it in manager-vaihde.conf and here or in "
        "VAIHDE_AMI_SECRET"
    ]
    for spelling in ("CHANGE-ME", "changeme", " change_me "):
        assert problems_of(GOOD.replace("s3cret", f"'{spelling}'"))


def test_the_example_secret_from_the_environment_is_refused_too(monkeypatch):
    monkeypatch.setenv("VAIHDE_AMI_SECRET", shipped_secret())
    (problem,) = problems_of(GOOD)
    assert "service.ami.secret: is the example secret" in problem
    assert "(given in VAIHDE_AMI_SECRET)" in problem


def test_settings_check_and_serve_say_so(tmp_path, capsys):
    settings = tmp_path / "settings.yaml"
    settings.write_text(GOOD.replace("s3cret", shipped_secret()))
    for argv in (["settings", "check", str(settings)], ["serve", "--config", str(settings)]):
        with pytest.raises(SystemExit) as done:
            cli(argv)
        assert done.value.code == 2
        err = capsys.readouterr().err
        assert f"{settings}:2: service.ami.secret: is the example secret" in err
    settings.write_text(GOOD)
    assert cli(["settings", "check", str(settings)]) == 0


# --- calendar: which calendar sources the service may read ------------------------------------


def test_calendar_files_default_to_calendars_beside_the_company_file(tmp_path):
    s = loads(GOOD, str(tmp_path / "conf" / "settings.yaml"))
    assert s.calendar.files_dir == str(tmp_path / "conf" / "calendars")
    assert s.calendar.plain_http_hosts == frozenset()
    elsewhere = GOOD.replace("company_file: company.yaml", "company_file: /srv/co/company.yaml")
    assert loads(elsewhere, str(tmp_path / "s.yaml")).calendar.files_dir == "/srv/co/calendars"
    no_company = GOOD.replace("company_file: company.yaml\n", "")
    assert loads(no_company, str(tmp_path / "s.yaml")).calendar.files_dir == str(
        tmp_path / "calendars"
    )


def test_calendar_settings(tmp_path):
    text = GOOD + (
        "calendar:\n  files_dir: ../shared/ics\n  plain_http_hosts: [127.0.0.1, Cal.Lan]\n"
    )
    s = loads(text, str(tmp_path / "conf" / "settings.yaml"))
    assert s.calendar.files_dir == str(tmp_path / "shared" / "ics")
    assert s.calendar.plain_http_hosts == frozenset({"127.0.0.1", "cal.lan"})
    bad = GOOD + "calendar:\n  plain_http_hosts: ['http://x', {a: 1}]\n  fils_dir: x\n"
    assert problems_of(bad) == [
        "conf/settings.yaml:8: calendar.plain_http_hosts[0]: must be a host name or address "
        "like 127.0.0.1",
        "conf/settings.yaml:8: calendar.plain_http_hosts[1]: must be a host name or address "
        "like 127.0.0.1",
        "conf/settings.yaml:9: calendar.fils_dir: unknown setting (misspelt?)",
    ]


# --- several Asterisks: service.asterisks --------------------------------------------------------

CLUSTER = """\
service:
  asterisks:
    - name: ast1
      host: 10.0.0.1
      secret: one
      reach: PJSIP/{resource}@to-ast1
    - name: ast2
      host: 10.0.0.2
      port: 5039
      username: vaihde2
      secret_env: VAIHDE_TEST_AST2
      reach: {ast1: "PJSIP/{resource}@ast2-trunk"}
"""


def test_several_asterisks_each_with_its_connection_and_reach(monkeypatch):
    monkeypatch.setenv("VAIHDE_TEST_AST2", "two")
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "not-for-several")
    s = loads(CLUSTER, "conf/settings.yaml")
    one, two = s.asterisks
    assert (one.name, one.host, one.port, one.username, one.secret) == (
        "ast1", "10.0.0.1", 5038, "vaihde", "one")
    assert (two.name, two.host, two.port, two.username, two.secret) == (
        "ast2", "10.0.0.2", 5039, "vaihde2", "two")
    # A phone on ast1 is reached from any other through its template; ast2's per Asterisk.
    assert one.reach_from("ast2") == "PJSIP/{resource}@to-ast1"
    assert two.reach_from("ast1") == "PJSIP/{resource}@ast2-trunk"
    assert two.reach_from("ast3") == ""
    # The first is `ami`, as before.
    assert (s.ami.host, s.ami.secret) == ("10.0.0.1", "one")
    assert s.all_asterisks() == s.asterisks


def test_the_single_service_ami_is_a_list_of_one():
    s = loads(GOOD, "conf/settings.yaml")
    (only,) = s.all_asterisks()
    assert (only.name, only.host, only.port, only.secret) == ("", "127.0.0.1", 5038, "s3cret")


def test_one_asterisk_in_the_list_may_take_its_secret_from_vaihde_ami_secret(monkeypatch):
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "from-env")
    s = loads("service:\n  asterisks:\n    - {name: ast1}\n")
    assert s.asterisks[0].secret == "from-env"


def test_mistakes_in_service_asterisks_name_file_line_and_field(monkeypatch):
    monkeypatch.delenv("VAIHDE_TEST_AST2", raising=False)
    text = """\
service:
  ami: {secret: x}
  asterisks:
    - name: ast1
      secret: changeme
      reach: PJSIP/op1@to-ast1
    - name: ast1
      secret_env: VAIHDE_TEST_AST2
      reach: {ast9: "PJSIP/{resource}@x", "*": "PJSIP/{resource}&PJSIP/all@x"}
    - {name: "ast.3", secret: y, reach: "PJSIP/{number}@x", colour: red}
    - {secret: z}
"""
    got = problems_of(text)
    assert got == [
        "conf/settings.yaml:1: service.ami: give service.ami or service.asterisks, not both",
        "conf/settings.yaml:7: service.asterisks[1].name: 'ast1' is already the name of "
        "service.asterisks[0]: each Asterisk needs a systemname of its own",
        "conf/settings.yaml:10: service.asterisks[2].name: must be the Asterisk's systemname: "
        "1-32 letters, digits, - or _ (asterisk.conf [options] systemname)",
        "conf/settings.yaml:11: service.asterisks[3].name: is required",
        "conf/settings.yaml:4: service.asterisks[0].secret: is the example secret of "
        "config/asterisk/manager-vaihde.conf, which anyone can read: choose your own (e.g. "
        "`openssl rand -base64 24`) and set it in manager-vaihde.conf and here or in the "
        "environment",
        "conf/settings.yaml:6: service.asterisks[0].reach: must place the phone with {device} "
        "or {resource} (e.g. PJSIP/{resource}@to-ast1)",
        "conf/settings.yaml:8: service.asterisks[1].secret_env: the environment variable "
        "VAIHDE_TEST_AST2 is not set",
        "conf/settings.yaml:9: service.asterisks[1].reach.ast9: 'ast9' is not the name of "
        "another of service.asterisks",
        "conf/settings.yaml:9: service.asterisks[1].reach.*: must be a device template like "
        "PJSIP/{resource}@to-ast1 (no & , $ or spaces)",
        "conf/settings.yaml:10: service.asterisks[2].reach: a template may only use {device} "
        "and {resource} (e.g. PJSIP/{resource}@to-ast1)",
        "conf/settings.yaml:10: service.asterisks[2].colour: unknown setting (misspelt?)",
    ]


def test_several_asterisks_need_a_secret_each_not_vaihde_ami_secret(monkeypatch):
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "shared")
    got = problems_of("service:\n  asterisks:\n    - {name: a, secret: x}\n    - {name: b}\n")
    assert got == ["conf/settings.yaml:4: service.asterisks[1].secret: is required (or set "
                   "secret_env: NAME of an environment variable that holds it)"]


def test_an_empty_list_of_asterisks_is_refused():
    assert problems_of("service:\n  asterisks: []\n") == [
        "conf/settings.yaml:2: service.asterisks: must list at least one Asterisk"]


def test_the_guard_of_each_asterisk_from_the_settings_file(tmp_path, monkeypatch):
    from vaihde.guard.__main__ import from_settings_file

    monkeypatch.setenv("VAIHDE_TEST_AST2", "two")
    path = tmp_path / "settings.yaml"
    path.write_text(CLUSTER)
    assert (from_settings_file(str(path)).host, from_settings_file(str(path)).secret) == (
        "10.0.0.1", "one")
    second = from_settings_file(str(path), "ast2")
    assert (second.host, second.port, second.username, second.secret) == (
        "10.0.0.2", 5039, "vaihde2", "two")
    with pytest.raises(SystemExit, match=r"names no Asterisk 'ast3' .*it has: ast1, ast2"):
        from_settings_file(str(path), "ast3")
