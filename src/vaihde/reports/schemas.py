"""What the reports API accepts and answers: the month and company of the usage report, a
company's usage in a month, and the console's "wrap-up done" reply."""

from __future__ import annotations

from pydantic import Field

from vaihde.api.route import Query
from vaihde.records import Record


class UsageQuery(Query):
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                       description="the month, YYYY-MM, in each company's own time zone")
    company: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$",
                                description="one company's id (default: every company)")


class CompanyUsage(Record):
    company: str
    name: str
    timezone: str = Field(description="the zone the month is counted in")
    calls: int = Field(description="calls that ended, started in the month")
    operator_calls: int = Field(description="calls an operator talked in")
    talk_s: int = Field(description="operators' phones bridged with callers, seconds")
    wrap_up_s: int = Field(description="after each talk until marked done or the operator's "
                                       "next talk, at most the site's maximum, seconds")
    handling_s: int = Field(description="talk plus wrap-up, seconds")
    messages: int
    callbacks: int
    unfinished_talks: int = Field(description="talks whose end was never seen (no time)")


class UsageReport(Record):
    month: str
    wrap_up_max_s: int
    companies: list[CompanyUsage]


class WrapUpDone(Record):
    sometimes = ("call_id",)

    ok: bool
    call_id: str | None = Field(None, description="the call whose wrap-up ended")
