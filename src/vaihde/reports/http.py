"""Reports over HTTP: GET /reports/usage (JSON) and /reports/usage.csv (the same rows as CSV for
a spreadsheet or billing system), admins only; and POST /console/done, with which an operator
ends the wrap-up of the call they just talked in (vaihde.reports.usage says what it counts)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta, tzinfo

from aiohttp import web

from vaihde.api import scope
from vaihde.api.context import all_company_ids, company_of, ctx, who
from vaihde.api.errors import ApiError
from vaihde.api.route import Media, Routes
from vaihde.auth.model import Action
from vaihde.reports import store
from vaihde.reports.schemas import CompanyUsage, UsageQuery, UsageReport, WrapUpDone
from vaihde.reports.usage import Usage, csv_rows, usage

routes = Routes("reports")

MARK_WITHIN = timedelta(days=1)  # "done" marks the operator's last talk if it ended this recently


def zones(request: web.Request) -> dict[str, tzinfo]:
    """Each running company's time zone (company.timezone in its file)."""
    running = {cid: company_of(request, cid) for cid in all_company_ids(request)}
    return {cid: c.zone for cid, c in running.items() if c is not None}


async def report(request: web.Request, query: UsageQuery) -> UsageReport:
    api = ctx(request)
    zone_of = zones(request)
    async with api.sessions() as session:
        names = await store.companies(session)
        if query.company is not None and query.company not in names:
            raise ApiError(404, "not_found", f"no company {query.company!r}", "company")
        # A company admin's report holds only their companies (scope.query refused others).
        only = [c for c in ([query.company] if query.company is not None else list(names))
                if scope.sees(request, c)]
        counts = await store.month_counts(session, query.month, zone_of, api.tz, only)
        talks = [t for t in await store.month_talks(session, query.month, api.wrap_up_max_s)
                 if t.company_id in only]
    rows = usage(query.month, {c: zone_of.get(c, api.tz) for c in only}, counts=counts,
                 talks=talks, wrap_cap_s=api.wrap_up_max_s, default_zone=api.tz)
    return UsageReport(month=query.month, wrap_up_max_s=api.wrap_up_max_s, companies=[
        CompanyUsage(company=u.company_id, name=names.get(u.company_id, u.company_id),
                     timezone=str(zone_of.get(u.company_id, api.tz)), calls=u.calls,
                     operator_calls=u.operator_calls, talk_s=round(u.talk_s),
                     wrap_up_s=round(u.wrap_s), handling_s=round(u.handling_s),
                     messages=u.messages, callbacks=u.callbacks, unfinished_talks=u.unfinished)
        for u in rows])


@routes.get("/reports/usage", "Per company: calls, operators' handling time (talk plus "
            "wrap-up) and messages taken in a month", allow=Action.READ_REPORTS,
            query=UsageQuery, company=scope.query("company", every=True),
            ok=(200, "Each company's usage", UsageReport), errors=(404,),
            description="The month is counted in each company's own time zone; a talk belongs "
            "to the month it started in. See docs/reports.md for the definitions.")
async def get_usage(request: web.Request, query: UsageQuery) -> UsageReport:
    return await report(request, query)


@routes.get("/reports/usage.csv", "The usage report as CSV (one row per company)",
            allow=Action.READ_REPORTS, query=UsageQuery,
            company=scope.query("company", every=True),
            ok=(200, "CSV with a header row, comma-separated, RFC 4180 quoting",
                Media(("text/csv",))), errors=(404,))
async def get_usage_csv(request: web.Request, query: UsageQuery) -> web.StreamResponse:
    body = await report(request, query)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for line in usage_csv(body):
        writer.writerow(line)
    name = f"vaihde-usage-{query.month}{'-' + query.company if query.company else ''}.csv"
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def usage_csv(report: UsageReport) -> list[list[str]]:
    """The report's rows for CSV (header first), through the same columns as the CLI's."""
    rows = [Usage(c.company, report.month, calls=c.calls, operator_calls=c.operator_calls,
                  talk_s=c.talk_s, wrap_s=c.wrap_up_s, messages=c.messages,
                  callbacks=c.callbacks, unfinished=c.unfinished_talks)
            for c in report.companies]
    return csv_rows(rows, {c.company: c.name for c in report.companies})


@routes.post("/console/done", "Your wrap-up of the call you last talked in is done",
             allow=Action.CONSOLE, company=scope.NONE,
             ok=(200, "Which call's wrap-up ended (none: nothing to "
                                       "mark)", WrapUpDone), errors=(409,),
             description="Wrap-up time (after a talk) counts until this, or until your next "
             "talk, at most the site's console.wrap_up_max_s.")
async def done(request: web.Request) -> WrapUpDone:
    principal = who(request)
    if not principal.sip_endpoint:
        raise ApiError(409, "no_phone", "your user has no phone (sip_endpoint): there are no "
                       "talks of yours to mark")
    api = ctx(request)
    async with api.sessions() as session, session.begin():
        call_id = await store.mark_done(session, principal.sip_endpoint, api.clock(),
                                        MARK_WITHIN)
    return WrapUpDone(ok=True, call_id=call_id)
