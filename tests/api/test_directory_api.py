"""Employees, teams and directory search over HTTP, each with availability from the cache."""

from __future__ import annotations

import pytest


async def test_employee_list_has_active_people_with_availability(api):
    await api.call("PUT", "/employees/matti/availability",
                   json={"state": "vacation", "note_for_callers": "Lomalla"}, as_="matti")
    reply = await api.call("GET", "/employees", as_="anna")
    assert reply.status == 200
    employees = reply.json["employees"]
    # In name order, accents folded: Anna, Åsa (asa), Matti.
    assert [e["id"] for e in employees] == ["anna", "asa", "matti"]
    matti = employees[2]
    assert matti == {
        "id": "matti",
        "name": "Matti Mäkinen",
        "title": "",
        "extension": "102",
        "teams": ["sales"],
        "availability": {
            "state": "vacation",
            "until": None,
            "on_call": False,
            "reachable": False,
            "note_for_callers": "Lomalla",
        },
    }


async def test_employee_details(api):
    api.cache.set_on_call("matti", True)
    reply = await api.call("GET", "/employees/anna", as_="matti")
    assert reply.status == 200
    anna = reply.json
    assert anna["name"] == "Anna Virtanen"
    assert anna["active"] is True
    assert anna["numbers"] == ["091234501"]
    assert anna["devices"] == [
        # No Asterisk behind this API: whether a phone can ring is not known.
        {"dial": "PJSIP/anna", "kind": "desk", "reach": "unknown"},
        {"dial": "Local/0401111111@pstn", "kind": "mobile", "reach": "unknown"},
    ]
    assert anna["teams"] == [{"id": "sales", "name": "Myynti"}]
    assert anna["delegates"][0]["id"] == "matti"
    assert anna["delegates"][0]["name"] == "Matti Mäkinen"
    assert anna["delegates"][0]["availability"]["state"] == "on_call"
    assert anna["availability"]["explanation"] == "no entries"
    assert "internal_note" not in anna["availability"]
    own = await api.call("GET", "/employees/anna", as_="anna")
    assert "internal_note" in own.json["availability"]


async def test_titles_and_ring_settings_come_from_the_running_company(api):
    from vaihde.company.load import parse_company

    company = parse_company(api.company_yaml, "company.yaml")
    api.running["company"] = company
    reply = await api.call("GET", "/employees/anna", as_="anna")
    assert reply.json["title"] == "Myyntipäällikkö"
    team = await api.call("GET", "/teams/sales", as_="anna")
    assert team.json["strategy"] == company.teams["sales"].strategy
    assert team.json["ring_seconds"] == company.teams["sales"].ring_seconds
    assert team.json["queue"] is None
    # A service without a company only loses the extras.
    api.running["company"] = None
    assert (await api.call("GET", "/employees/anna", as_="anna")).json["title"] == ""


async def test_teams(api):
    reply = await api.call("GET", "/teams", as_="anna")
    assert reply.status == 200
    assert reply.json["teams"] == [
        {"id": "operators", "name": "Vaihde", "kind": "operators", "members": ["asa"]},
        {"id": "sales", "name": "Myynti", "kind": "sales", "members": ["anna", "matti"]},
    ]
    team = await api.call("GET", "/teams/sales", as_="anna")
    assert team.status == 200
    assert [m["id"] for m in team.json["members"]] == ["anna", "matti"]
    assert team.json["members"][0]["availability"]["state"] == "available"
    assert team.json["strategy"] is None  # no running company in this context
    for missing in ("nobody", "Bad%20Id"):
        reply = await api.call("GET", f"/teams/{missing}", as_="anna")
        assert reply.status == 404


@pytest.mark.parametrize(
    ("q", "first"),
    [("anna", "anna"), ("asa jarvinen", "asa"), ("Åsa", "asa"), ("102", "matti"),
     ("1234501", "anna"), ("myynti", "anna")],
)
async def test_search_finds_people_with_their_availability(api, q, first):
    reply = await api.call("GET", "/directory/search", params={"q": q}, as_="anna")
    assert reply.status == 200
    assert reply.json["query"] == q
    hits = reply.json["hits"]
    assert hits and hits[0]["employee_id"] == first
    assert hits[0]["availability"]["state"] == "available"
    assert isinstance(hits[0]["matched"], list) and hits[0]["matched"]


async def test_search_result_details_and_limit(api):
    reply = await api.call("GET", "/directory/search?q=myynti&limit=1", as_="olli")
    assert len(reply.json["hits"]) == 1
    hit = reply.json["hits"][0]
    assert hit["extension"] == "101" and hit["teams"] == ["Myynti"]
    assert hit["matched"] == ["team"]
    nothing = await api.call("GET", "/directory/search?q=zzzz", as_="olli")
    assert nothing.status == 200 and nothing.json["hits"] == []


async def test_search_finds_titles_and_topics_of_people_and_teams(api):
    import dataclasses
    import sys

    # tests/db's shared data (tests/api/conftest.py puts it on sys.path); `conftest` itself is
    # ambiguous when the whole suite runs.
    DIRECTORY = sys.modules["dbdata"].DIRECTORY

    from vaihde.directory.search import DirectoryIndex
    from vaihde.directory.store import search_records, sync_directory

    people = tuple(
        dataclasses.replace(e, title="Kalastusvalvoja", topics=("kalastuslupa",
                                                                "fishing permits"))
        if e.id == "matti" else e for e in DIRECTORY.employees)
    teams = tuple(
        dataclasses.replace(t, title="Myynti ja tarjoukset", topics=("offers", "kalastuslupa"))
        if t.id == "sales" else t for t in DIRECTORY.teams)
    async with api.db.sessions.begin() as session:
        await sync_directory(session, dataclasses.replace(DIRECTORY, employees=people,
                                                          teams=teams))
    async with api.db.sessions() as session:
        api.directory["index"] = DirectoryIndex.build(await search_records(session))

    reply = await api.call("GET", "/directory/search", params={"q": "Kalastuslupa"}, as_="olli")
    assert reply.status == 200
    (hit,) = reply.json["hits"]
    assert hit["employee_id"] == "matti" and hit["matched"] == ["topic"]
    assert hit["title"] == "Kalastusvalvoja"
    assert hit["topics"] == ["kalastuslupa", "fishing permits"]
    assert hit["availability"]["state"] == "available"
    (team,) = reply.json["teams"]
    assert team == {"team_id": "sales", "name": "Myynti", "score": team["score"],
                    "matched": ["topic"], "title": "Myynti ja tarjoukset",
                    "topics": ["offers", "kalastuslupa"]}
    assert team["score"] == hit["score"]  # one scale: both matched a topic exactly
    # A name beats a title: "myynti" is the team's name, and Matti is only in the team.
    reply = await api.call("GET", "/directory/search", params={"q": "myynti"}, as_="olli")
    assert [t["team_id"] for t in reply.json["teams"]] == ["sales"]
    assert reply.json["teams"][0]["score"] > reply.json["hits"][0]["score"]
    reply = await api.call("GET", "/directory/search", params={"q": "fishing"}, as_="olli")
    assert [h["employee_id"] for h in reply.json["hits"]] == ["matti"]
    assert reply.json["teams"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("", "q"), ("q=", "q"), ("q=%20%20", "q"), ("q=" + "a" * 101, "q"), ("q=a&limit=0", "limit"),
     ("q=a&limit=101", "limit"), ("q=a&limit=ten", "limit"), ("q=a&page=2", "page")],
)
async def test_search_parameters_are_checked(api, query, field):
    reply = await api.call("GET", f"/directory/search?{query}", as_="anna")
    assert reply.status == 400, query
    assert reply.error["field"] == field


async def test_unknown_query_parameters_are_refused_everywhere(api):
    for path in ("/employees?active=false", "/teams?x=1", "/availability?all=1",
                 "/employees/anna?expand=1"):
        reply = await api.call("GET", path, as_="anna")
        assert reply.status == 400, path
        assert reply.error["code"] == "unknown_field"


async def test_live_directory_rebuilds_when_the_directory_changes(api):
    from vaihde.api import LiveDirectory
    from vaihde.directory import DirectoryDescription, EmployeeDescription
    from vaihde.directory.store import sync_directory

    live = LiveDirectory(api.db.sessions)
    assert len(live()) == 0
    assert await live.refresh() is True
    assert {r.employee_id for r in live().records} == {"anna", "matti", "asa"}
    assert await live.refresh() is False  # nothing changed: no rebuild
    async with api.db.sessions.begin() as session:
        await sync_directory(session, DirectoryDescription(
            employees=(EmployeeDescription(id="pekka", name="Pekka Pouta"),)))
    assert await live.refresh() is True
    assert [h.employee_id for h in live().search("pouta")] == ["pekka"]
    assert live().search("anna") == []


async def test_live_directory_is_one_index_per_company_searched_together(api):
    """Several companies: an index of each, and one of everyone."""
    from vaihde.api import LiveDirectory
    from vaihde.directory import DirectoryDescription, EmployeeDescription, TeamDescription
    from vaihde.directory.store import sync_directory

    async with api.db.sessions.begin() as session:
        await sync_directory(session, DirectoryDescription(
            employees=(EmployeeDescription(id="anni", name="Anni Beeta"),),
            teams=(TeamDescription(id="beta-desk", name="Annin tiimi", kind="team",
                                   members=("anni",)),)),
            company_id="beta", company_name="Beeta Ab")
    live = LiveDirectory(api.db.sessions)
    await live.refresh()
    assert {r.employee_id for r in live().records} == {"anna", "matti", "asa", "anni"}
    everyone = [h.employee_id for h in live().search("ann")]
    assert set(everyone) == {"anna", "anni"}
    beta, main = live.of("beta"), live.of("main")
    assert beta is not None and main is not None
    assert [h.employee_id for h in beta.search("ann")] == ["anni"]
    assert [h.employee_id for h in beta.search("ann", kind="team")] == ["beta-desk"]
    assert [h.employee_id for h in main.search("ann")] == ["anna"]
    assert main.search("ann", kind="team") == []
    assert {r.company for r in beta.records} == {"beta"}  # indexes of their own
    assert live.of("gamma") is None
    assert set(live.by_company) == {"main", "beta"}


async def test_applying_one_company_reindexes_that_company_alone(api):
    """A change of one company's directory replaces that company's index; every other
    company's stays the very object it was, and the result is what indexing everything
    afresh gives (searches of one company and of all of them)."""
    from vaihde.api import LiveDirectory
    from vaihde.directory import DirectoryDescription, EmployeeDescription, TeamDescription
    from vaihde.directory.search import merge
    from vaihde.directory.store import sync_directory

    def staff(cid: str, names: list[str]) -> DirectoryDescription:
        return DirectoryDescription(
            employees=tuple(EmployeeDescription(id=f"{cid}-{n}", name=f"{name} {cid.title()}",
                                                extension=f"4{ord(cid[0])}{n}")
                            for n, name in enumerate(names)),
            teams=(TeamDescription(id=f"{cid}-desk", name=f"Anna {cid}", kind="team",
                                   members=(f"{cid}-0",)),))

    companies = {"beta": ["Anni", "Pekka"], "gamma": ["Annika", "Ville"],
                 "delta": ["Anna", "Aino"]}
    for cid, names in companies.items():
        async with api.db.sessions.begin() as session:
            await sync_directory(session, staff(cid, names), company_id=cid)
    live = LiveDirectory(api.db.sessions)
    await live.refresh()
    before = dict(live.by_company)
    async with api.db.sessions.begin() as session:  # gamma: Ville goes, Veera comes
        await sync_directory(session, staff("gamma", ["Annika", "Veera"]), company_id="gamma")
    assert await live.refresh() is True
    after = live.by_company
    assert after["gamma"] is not before["gamma"]
    assert all(after[cid] is before[cid] for cid in ("main", "beta", "delta"))
    assert [h.employee_id for h in after["gamma"].search("veera")] == ["gamma-1"]
    assert after["gamma"].search("ville") == []

    fresh = LiveDirectory(api.db.sessions)
    await fresh.refresh()
    assert set(fresh.by_company) == set(after)
    for query in ("ann", "a", "veera", "anna gamma", "41", "4103", "delta", "ville"):
        for kind in ("employee", "team"):
            for cid in after:
                want = [(h.employee_id, h.score, h.matched)
                        for h in fresh.by_company[cid].search(query, 20, kind)]
                assert [(h.employee_id, h.score, h.matched)
                        for h in after[cid].search(query, 20, kind)] == want, (query, cid)
            everyone = [(h.employee_id, h.score) for h in fresh().search(query, 20, kind)]
            assert [(h.employee_id, h.score)
                    for _, h in merge(live.parts(), query, 20, kind)] == everyone, query
