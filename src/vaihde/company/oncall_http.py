"""Who is on call now, over HTTP: GET /oncall lists the company's on-call rotas, each with the
people on call at this moment (in the order a call rings them) and their availability, for the
console's on-call panel and for anyone who may read the directory.
"""

from __future__ import annotations

from aiohttp import web

from vaihde.api.context import company_of, ctx
from vaihde.api.route import Routes
from vaihde.auth.model import Action
from vaihde.company.oncall import on_call_now
from vaihde.company.schemas import OncallList, OncallPerson, OncallRota

routes = Routes("oncall")


@routes.get("/oncall", "On-call rotas and who is on call on each now",
            allow=Action.READ_DIRECTORY, ok=(200, "The rotas in the company file's order",
                                             OncallList))
async def list_oncall(request: web.Request) -> OncallList:
    api = ctx(request)
    at = api.clock()
    company = company_of(request)
    rotas: list[OncallRota] = []
    if company is None:
        return OncallList(at=at, rotas=rotas)
    for rota in company.oncall.values():
        now = on_call_now(company, rota.id, at)
        people = [
            OncallPerson(id=p, name=company.employees[p].name,
                         availability=api.cache.lookup(p))
            for p in now.people
        ]
        rotas.append(OncallRota(id=rota.id, name=rota.name, team=rota.team or None,
                                people=people, source=now.source, until=now.until,
                                note=now.note))
    return OncallList(at=at, rotas=rotas)
