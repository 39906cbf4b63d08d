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
