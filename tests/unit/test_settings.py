"""Settings validation: every mistake named with file, line and field; nothing accepted half."""

import pytest

from vaihde.config.settings import load, loads
from vaihde.config.source import ConfigError

GOOD = """\
service:
  ami: {secret: s3cret}
company:
  name: Demo Oy
  operator: {devices: [PJSIP/operator]}
  employees:
    anna: {name: Anna Virtanen, devices: [PJSIP/anna, Local/anna@phones]}
  menu:
    prompt: press-1
    options:
      "1": {employee: anna}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        loads(text, "demo.yaml")
    return err.value.problems


def test_good_file_loads_with_defaults(monkeypatch):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    s = loads(GOOD, "demo.yaml")
    assert s.fastagi.port == 4573 and s.ami.secret == "s3cret"
    assert s.company.employees["anna"].dial_string == "PJSIP/anna&Local/anna@phones"
    # 0 reaches the operator even when the admin did not write it.
    assert s.company.menu.options["0"].kind == "operator"


def test_demo_config_is_valid(monkeypatch):
    monkeypatch.setenv("VAIHDE_AMI_SECRET", "x")
    assert load("config/demo.yaml").company.menu.options["1"].target == "anna"


def test_typo_is_reported_with_line_and_field(monkeypatch):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    text = GOOD.replace("prompt: press-1", "prompt: press-1\n    promt: x")
    assert problems_of(text) == ["demo.yaml:10: company.menu.promt: unknown setting (misspelt?)"]


def test_missing_employee_reference(monkeypatch):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    text = GOOD.replace('{employee: anna}', '{employee: bob}')
    (problem,) = problems_of(text)
    assert problem.startswith("demo.yaml:11: company.menu.options.1.employee: no employee 'bob'")


@pytest.mark.parametrize(
    "device",
    ["PJSIP/anna&PJSIP/evil", "PJSIP/anna,60,tT", "PJSIP/${EVIL}", "Console/dsp", "PJSIP/a b"],
)
def test_unsafe_dial_strings_rejected(monkeypatch, device):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    (problem,) = problems_of(GOOD.replace("PJSIP/anna,", f"'{device}',"))
    assert "company.employees.anna.devices[0]: must be a device like" in problem


def test_all_problems_listed_at_once(monkeypatch):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    text = GOOD.replace("secret: s3cret", "port: 99999").replace('"1"', '"12"')
    got = problems_of(text)
    assert any("service.ami.port: must be from 1 to 65535" in p for p in got)
    assert any("service.ami.secret: is required" in p for p in got)
    assert any("company.menu.options.12: menu keys are single digits" in p for p in got)


def test_zero_cannot_be_taken_from_the_operator(monkeypatch):
    monkeypatch.delenv("VAIHDE_AMI_SECRET", raising=False)
    text = GOOD.replace('"1": {employee: anna}', '"0": {employee: anna}')
    assert any("0 is always the operator" in p for p in problems_of(text))


def test_broken_yaml_names_the_line():
    (problem,) = problems_of("service:\n  ami: [unclosed\n")
    assert problem.startswith("demo.yaml:3: not valid YAML")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
