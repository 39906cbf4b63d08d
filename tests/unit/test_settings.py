"""Settings validation: every mistake named with file, line and field; nothing accepted half."""

import pytest

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
