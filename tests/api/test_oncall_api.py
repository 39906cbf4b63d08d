"""GET /api/v1/oncall: each on-call rota of the running company with who is on call on it now
(in the order a call rings them), from what, until when, and each person's availability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vaihde.company.load import parse_company

HKI = ZoneInfo("Europe/Helsinki")


def _rotas(now: datetime) -> str:
    local = now.astimezone(HKI)
    start = (local - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    end = (local + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    return f"""\
oncall:
  support:
    name: Tukipäivystys
    team: sales
    weekly:
      - {{days: mon-sun, hours: 00:00-24:00, people: [asa]}}
    exceptions:
      - {{from: "{start}", until: "{end}", people: [matti, anna], note: Asa at the dentist}}
  night:
    name: Yöpäivystys
    weekly: []
"""


async def test_rotas_list_who_is_on_call_now_in_ring_order(api):
    now = datetime.now(UTC)
    api.running["company"] = parse_company(api.company_yaml + _rotas(now), "company.yaml")
    reply = await api.call("GET", "/oncall", as_="olli")
    assert reply.status == 200
    support, night = reply.json["rotas"]
    assert (support["id"], support["name"], support["team"]) == ("support", "Tukipäivystys",
                                                                 "sales")
    assert [(p["id"], p["name"]) for p in support["people"]] == [
        ("matti", "Matti Mäkinen"), ("anna", "Anna Virtanen")]
    assert support["source"] == "exception" and support["note"] == "Asa at the dentist"
    until = datetime.fromisoformat(support["until"])
    assert timedelta(minutes=58) < until - now <= timedelta(hours=1)
    assert all(p["availability"]["state"] == "available" for p in support["people"])
    assert night == {"id": "night", "name": "Yöpäivystys", "company": "main", "team": None,
                     "people": [],
                     "source": "none", "until": None, "note": ""}


async def test_employees_may_read_it_and_without_a_company_there_are_no_rotas(api):
    api.running["company"] = None
    reply = await api.call("GET", "/oncall", as_="anna")
    assert reply.status == 200 and reply.json["rotas"] == []
    assert (await api.call("GET", "/oncall")).status == 401
