"""The YAML limits every company and settings file is read within (vaihde.config.safe_yaml):
hostile documents are refused by their line, a real company of 10,000 people still loads, and
the CLI that shares the loader applies the same limits."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from vaihde.cli import main as cli
from vaihde.company import ConfigError, load_company, parse_company
from vaihde.company.synthetic import synthetic_company_yaml
from vaihde.config.safe_yaml import DEFAULT_LIMITS, YamlLimits, compose
from vaihde.config.source import load_yaml

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
    devices:
      - desk: PJSIP/anna
"""


def laughs(levels: int) -> str:
    """The "billion laughs": each level is nine of the one before."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def problems(text: str, **limits: int) -> list[str]:
    with pytest.raises(ConfigError) as err:
        compose(text, "c.yaml", YamlLimits(**limits) if limits else DEFAULT_LIMITS)
    return err.value.problems


def test_billion_laughs_is_refused_at_the_alias_that_passes_the_limit():
    assert len(laughs(9).encode()) < 350  # a billion values when expanded
    assert problems(laughs(9)) == [
        "c.yaml:5: e[0]: aliases repeat more than 10,000 values in all: write the values "
        "out instead"
    ]
    # Through the company loader too, before anything else is looked at.
    with pytest.raises(ConfigError) as err:
        parse_company(MINIMAL + laughs(9), "c.yaml")
    assert err.value.problems == [
        "c.yaml:24: e[0]: aliases repeat more than 10,000 values in all: write the values "
        "out instead"
    ]


def test_an_alias_inside_what_it_names_is_refused():
    assert problems("a: &a [1, *a]\n") == [
        "c.yaml:1: a[1]: alias *a is inside the value it stands for"
    ]
    assert problems("a: *nowhere\n") == ["c.yaml:1: a: alias *nowhere names no anchor "
                                         "&nowhere above it"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
         "c.yaml:1: a: YAML tag !!python/object/apply:os.system is not allowed here"),
        ("a: !!python/name:os.system\n",
         "c.yaml:1: a: YAML tag !!python/name:os.system is not allowed here"),
        ("x:\n  y: !!binary aGVsbG8=\n", "c.yaml:2: x.y: YAML tag !!binary is not allowed here"),
        ("x: !!set {a, b}\n", "c.yaml:1: x: YAML tag !!set is not allowed here"),
        ("x: !custom 1\n", "c.yaml:1: x: YAML tag !custom is not allowed here"),
        ("x: [1, !!int nope]\n", "c.yaml:1: x[1]: 'nope' is not a valid !!int"),
    ],
)
def test_tags_beyond_plain_values_are_refused(text, problem):
    assert problems(text) == [problem]


def test_plain_tags_and_values_are_what_safe_load_makes():
    root = compose("a: !!str 0401234567\nb: 0x1F\nc: yes\nd: ~\ne: 1.5\nf: 2025-12-24\n", "c")
    values = {k: v.value for k, v in root.value.items()}
    assert values["a"] == "0401234567" and values["b"] == 31 and values["c"] is True
    assert values["d"] is None and values["e"] == 1.5 and str(values["f"]) == "2025-12-24"
    assert root.value["b"].text == "0x1F"  # readers use the text as written where it matters


def test_nesting_is_limited_without_exhausting_the_stack():
    (problem,) = problems("[" * 100 + "]" * 100 + "\n")
    assert problem.startswith("c.yaml:1: [0][0]") and problem.endswith(
        ": nested deeper than 32 levels"
    )
    # Far deeper, libyaml itself stops first; either way a message, not a crash.
    (problem,) = problems("[" * 50_000 + "]" * 50_000 + "\n")
    assert problem.startswith("c.yaml:1: ") and "nest" in problem
    nested = "a:\n" + "".join("  " * i + f"  k{i}:\n" for i in range(40)) + "  " * 41 + "x\n"
    (problem,) = problems(nested)
    assert problem.startswith("c.yaml:33: a.k0.k1.") and "nested deeper than 32" in problem


def test_size_and_value_count_limits_name_the_file():
    assert problems("a: " + "x" * 2000 + "\n", max_bytes=1000) == [
        "c.yaml:1: (top level): the file is 0.0 MiB, over the limit of 0.0 MiB"
    ]
    text = "a: [" + ", ".join(["1"] * 50) + "]\n"
    assert problems(text, max_nodes=20) == [
        "c.yaml:1: a[17]: the file holds more than 20 values: that is more than a company of "
        "20,000 people needs"
    ]


def test_a_file_over_the_size_limit_is_not_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" + "# padding\n" * 200)
    with pytest.raises(ConfigError) as err:
        load_yaml(path, YamlLimits(max_bytes=1000))
    assert err.value.problems == [
        f"{path}:1: (top level): the file is 0.0 MiB, over the limit of 0.0 MiB"
    ]


def test_one_document_only():
    assert problems("a: 1\n---\nb: 2\n") == ["c.yaml:2: not valid YAML: but found another "
                                            "document"]


def test_a_modest_alias_is_still_fine_and_located_where_it_is_used():
    text = MINIMAL.replace("  mon-fri: 08:00-16:30\n", "  mon-fri: &day 08:00-16:30\n"
                           "  sat: *day\n").replace(
        "    devices:\n      - desk: PJSIP/anna\n",
        "    devices: &phones\n      - desk: PJSIP/anna\n"
        "  bob:\n    name: Bob\n    devices: *phones\n    extenson: 12\n",
    )
    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml")
    assert err.value.problems == ["c.yaml:24: employees.bob.extenson: unknown setting (misspelt?)"]
    company = parse_company(text.replace("    extenson: 12\n", ""), "c.yaml")
    assert company.hours.weekly[5] == company.hours.weekly[0]
    assert company.employees["bob"].devices == company.employees["anna"].devices


def test_a_company_of_ten_thousand_people_loads_within_the_limits(tmp_path):
    text = synthetic_company_yaml(10_000)
    assert len(text.encode()) < DEFAULT_LIMITS.max_bytes * 0.6
    path = tmp_path / "company.yaml"
    path.write_text(text)
    company = load_company(path)
    assert len(company.employees) == 10_000
    assert company.employees["e09999"].calendar.startswith("https://")


def test_the_cli_check_refuses_hostile_files_by_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(MINIMAL + laughs(9))
    assert_cli_refuses(bomb, capsys, f"{bomb}:24: e[0]: aliases repeat more than 10,000")
    tag = tmp_path / "tag.yaml"
    tag.write_text(MINIMAL + "x: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert_cli_refuses(tag, capsys, f"{tag}:20: x: YAML tag !!python/object/apply:os.system")


def assert_cli_refuses(path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> None:
    with pytest.raises(SystemExit) as done:
        cli(["config", "check", str(path)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"vaihde: {path} has 1 problem(s); nothing was applied:" in err
    assert problem in err


def test_the_limits_are_the_documented_ones():
    """config/README.md, "Size limits"."""
    assert DEFAULT_LIMITS == YamlLimits(
        max_bytes=8 * 1024 * 1024, max_nodes=1_000_000, max_alias_nodes=10_000, max_depth=32
    )
    readme = (Path(__file__).resolve().parents[2] / "config" / "README.md").read_text()
    for row in ("| size | 8 MiB |", "| 1,000,000 |", "| nesting | 32 levels |",
                "| 10,000 in all |", "| holidays and exceptions | 1,000 together |"):
        assert row in readme


def test_at_most_a_thousand_holidays_and_exceptions():
    start = date(2030, 1, 1)
    days = "".join(f"    {start + timedelta(days=i)}: Day {i}\n" for i in range(1001))
    text = MINIMAL.replace("  closed_action: {operator: true}\n",
                           "  closed_action: {operator: true}\n  holidays:\n" + days)
    with pytest.raises(ConfigError) as err:
        parse_company(text, "c.yaml")
    assert err.value.problems == ["c.yaml:5: hours: at most 1,000 holidays and exceptions "
                                  "together"]
    fine = MINIMAL.replace("  closed_action: {operator: true}\n",
                           "  closed_action: {operator: true}\n  holidays:\n"
                           + "".join(days.splitlines(True)[:1000]))
    assert len(parse_company(fine, "c.yaml").hours.holidays) == 1000
