"""What the REST API accepts and answers for the company configuration: the YAML body and its
name, a check's problems (each `file:line: field: message` also in parts), the changes of a
diff or an apply, and the applied version."""

from __future__ import annotations

import json
import re
from pathlib import PurePath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from vaihde.api.route import Query, TextBody
from vaihde.config.safe_yaml import DEFAULT_LIMITS
from vaihde.presence.model import AvailabilitySummary
from vaihde.records import LEAVE_OUT_NONE, Record, Time, fail

YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml")
# The YAML limit (vaihde.config.safe_yaml): a company of 10,000 employees is about 4.5 MiB.
YAML_BODY = TextBody(
    YAML_TYPES,
    DEFAULT_LIMITS.max_bytes,
    "the company file (YAML within the limits of config/README.md: at most 8 MiB, 1,000,000 "
    "values, 32 levels, no tags beyond plain values); employees_file: includes are not read "
    "over HTTP",
    "the company file as YAML",
)
DEFAULT_NAME = "company.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.*)$",
                      re.DOTALL)


def _file_name(name: str) -> str:
    if not _NAME.match(name) or PurePath(name).name != name:
        raise fail("invalid", "must be a plain file name like company.yaml")
    return name


class FileName(Query):
    name: Annotated[str, AfterValidator(_file_name)] = Field(
        DEFAULT_NAME, max_length=100,
        description="file name used in problem messages (default company.yaml)",
    )
    company: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$",
        description="the company the file is for (several companies: required; the file's "
                    "company.id, when it has one, must be the same; none: the file's "
                    "company.id, else `main`)",
    )


class CompanyQuery(Query):
    company: str = Field(
        "main", pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$",
        description="which company's configuration (default `main`)",
    )


class ConfigProblem(Record):
    file: str | None
    line: int | None
    field: str | None
    message: str
    text: str = Field(description="file:line: field: message")

    @classmethod
    def of(cls, problem: str) -> ConfigProblem:
        """"file:line: field: message" as parts (and the line as written, for display)."""
        found = _PROBLEM.match(problem)
        if found is None:
            return cls(file=None, line=None, field=None, message=problem, text=problem)
        field = found["field"]
        return cls(
            file=found["file"],
            line=int(found["line"]),
            # "not valid YAML", "(top level)": a description, not a field path.
            field=None if " " in field else field,
            message=found["message"],
            text=problem,
        )


def problems_of(problems: Any) -> list[ConfigProblem]:
    return [ConfigProblem.of(p) for p in problems]


class Counts(Record):
    employees: int
    teams: int
    menus: int
    numbers: int


class ConfigCheck(Record):
    sometimes = ("company", "counts")

    ok: bool
    problems: list[ConfigProblem]
    warnings: list[ConfigProblem]
    company: str | None = None
    counts: Counts | None = None

    _absent = LEAVE_OUT_NONE  # company and counts only when ok


class ConfigChange(Record):
    """One difference a diff or an apply found (vaihde.company.diff.Change)."""

    model_config = ConfigDict(title="Change")  # its name in the API

    kind: Literal["added", "removed", "changed"]
    path: str
    old: Any
    new: Any
    summary: str


class ConfigDiff(Record):
    changes: list[ConfigChange]
    text: str


class ConfigApply(Record):
    applied: bool = Field(description="false: nothing changed")
    version: int | None
    changes: list[ConfigChange]
    text: str


class ConfigVersion(Record):
    """The applied configuration (a stored ConfigVersionRecord) as the API shows it."""

    version: int = Field(validation_alias="id")
    company: str = Field(validation_alias="company_id", description="the company's id")
    applied_at: Time
    applied_by: str
    source_name: str
    sha256: str
    document: Annotated[dict[str, Any], BeforeValidator(json.loads)] = Field(
        description="the canonical company document"
    )


class CompanySummary(Record):
    id: str = Field(description="the company's id (`?company=` of the /config routes)")
    name: str
    version: int | None = Field(description="its configuration version applied last; null: "
                                            "none yet")


class CompanyList(Record):
    """The companies the service answers for, the first (where unknown numbers go) first."""

    companies: list[CompanySummary]


# --- on-call rotas (GET /oncall) ----------------------------------------------------------------


class OncallPerson(Record):
    id: str
    name: str
    availability: AvailabilitySummary


class OncallRota(Record):
    """One rota and who is on call on it now."""

    id: str
    name: str
    company: str = Field("main", description="the company whose rota it is")
    team: str | None = Field(description="the team it is for; null: the whole company")
    people: list[OncallPerson] = Field(description="on call now, in the order they are rung")
    source: Literal["weekly", "exception", "none"] = Field(
        description="what says so: a weekly shift, a dated exception, or nothing (nobody)")
    until: Time | None = Field(description="when the list changes next (null: never)")
    note: str = Field(description="the exception's note for operators")


class OncallQuery(Query):
    company: str | None = Field(
        None, pattern=r"^(\*|[a-z0-9][a-z0-9_\-]{0,39})$",
        description="one company's rotas (its id); `*` or none: every company's the caller "
                    "acts for")


class OncallList(Record):
    at: Time
    rotas: list[OncallRota]
