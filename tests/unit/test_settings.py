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
