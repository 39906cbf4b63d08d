"""Who is on call now, over HTTP: GET /oncall lists each company's on-call rotas, each with the
people on call at this moment (in the order a call rings them) and their availability, for the
console's on-call panel and for anyone who may read the directory.
"""

from __future__ import annotations

from aiohttp import web

from vaihde.api import scope
from vaihde.api.context import all_company_ids, company_of, ctx
from vaihde.api.errors import not_found
from vaihde.api.route import Routes
from vaihde.auth.model import Action
from vaihde.company.oncall import on_call_now
from vaihde.company.schemas import OncallList, OncallPerson, OncallQuery, OncallRota

routes = Routes("oncall")


@routes.get("/oncall", "On-call rotas and who is on call on each now",
            allow=Action.READ_DIRECTORY, query=OncallQuery,
            company=scope.query("company", every=True),
            ok=(200, "The rotas: company by company, each in its company file's order",
                OncallList), errors=(404,))
async def list_oncall(request: web.Request, query: OncallQuery) -> OncallList:
    api = ctx(request)
    at = api.clock()
    wanted = query.company if query.company and query.company != "*" else None
    ids = [wanted] if wanted is not None else scope.companies_of(request, all_company_ids(request))
    rotas: list[OncallRota] = []
    for cid in ids:
        company = company_of(request, cid)
        if company is None:
            if wanted is not None:
                raise not_found(f"no company {wanted!r}", "company")
            continue
        for rota in company.oncall.values():
            now = on_call_now(company, rota.id, at)
            people = [
                OncallPerson(id=p, name=company.employees[p].name,
                             availability=api.cache.lookup(p))
                for p in now.people
            ]
            rotas.append(OncallRota(id=rota.id, name=rota.name, company=company.id,
                                    team=rota.team or None, people=people, source=now.source,
                                    until=now.until, note=now.note))
    return OncallList(at=at, rotas=rotas)
