"""The company file's JSON Schema (config/company.schema.json) is generated from the shapes and
kept up to date; the files vaihde accepts validate against it, and it refuses what vaihde does."""

from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from vaihde.cli import main
from vaihde.company import load_company
from vaihde.company.jsonschema import company_json_schema, schema_text
from vaihde.company.synthetic import synthetic_company_yaml

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "config" / "company.schema.json"


def as_an_editor_reads(text: str) -> Any:
    """YAML as data, with dates as the text they were (an editor's YAML 1.2 has no dates)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(plain(k)): plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, date):
            return value.isoformat()
        return value

    return plain(yaml.safe_load(text))


def validator() -> jsonschema.Draft202012Validator:
    schema = company_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_up_to_date():
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(company_json_schema()), (
        "regenerate it: vaihde config schema > config/company.schema.json"
    )


def test_vaihde_config_schema_prints_it(capsys):
    assert main(["config", "schema"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text(encoding="utf-8")


@pytest.mark.parametrize("file", ["config/demo-company.yaml", "bench/company.yaml",
                                  "bench/calls-company.yaml", "bench/faults-company.yaml"])
def test_company_files_vaihde_accepts_validate(file):
    load_company(ROOT / file)  # vaihde accepts it
    text = (ROOT / file).read_text(encoding="utf-8")
    errors = [e.message for e in validator().iter_errors(as_an_editor_reads(text))]
    assert errors == []


def test_a_company_with_every_field_validates():
    data = as_an_editor_reads(synthetic_company_yaml(20))
    assert [e.message for e in validator().iter_errors(data)] == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["employees"]["anna"].update(extention="101"), ["employees", "anna"]),
        (lambda d: d["employees"]["anna"].update(extension="0101"),
         ["employees", "anna", "extension"]),
        (lambda d: d["menus"]["main"].update(timeout=31), ["menus", "main", "timeout"]),
        (lambda d: d["menus"]["main"]["options"]["1"].update(employee="anna"),
         ["menus", "main", "options", "1"]),
        (lambda d: d["employees"]["anna"]["devices"][0].update(mobile="+358401"),
         ["employees", "anna", "devices", 0]),
        (lambda d: d["teams"]["sales"].update(strategy="random"),
         ["teams", "sales", "strategy"]),
        (lambda d: d.pop("hours"), []),
    ],
)
def test_the_schema_refuses_what_vaihde_refuses(change, path):
    data = as_an_editor_reads((ROOT / "config/demo-company.yaml").read_text(encoding="utf-8"))
    assert not list(validator().iter_errors(data))
    change(data)
    errors = list(validator().iter_errors(data))
    assert errors and list(errors[0].absolute_path)[: len(path)] == path
