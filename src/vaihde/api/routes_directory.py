"""GET /directory/search: the in-memory DirectoryIndex (accent-insensitive names, titles,
topics, teams, extensions, numbers), each person with their availability from the presence
cache, and the teams that match (their names, titles and topics) in `teams`.
"""

from __future__ import annotations

import weakref
from typing import Any

from aiohttp import web

from vaihde.api.errors import Query, invalid
from vaihde.api.routes_common import Route, ctx, require, summary_json
from vaihde.auth.model import Action
from vaihde.directory.search import DirectoryIndex, Record

MAX_QUERY = 100
MAX_LIMIT = 100
MAX_TEAMS = 10

# Hits carry only ids; the records behind them, by id, once per index (rebuilt indexes are new
# objects, so the old mapping goes with the old index).
_by_id: weakref.WeakKeyDictionary[DirectoryIndex, dict[str, Record]] = (
    weakref.WeakKeyDictionary()
)


def _records(index: DirectoryIndex) -> dict[str, Record]:
    found = _by_id.get(index)
    if found is None:
        found = {r.employee_id: r for r in index.records}
        if index.teams is not None:
            found.update({f"team:{r.employee_id}": r for r in index.teams.records})
        _by_id[index] = found
    return found


async def search(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    query = Query(request, ("q", "limit"))
    q = query.text("q", required=True, max_length=MAX_QUERY) or ""
    if not q.strip():
        raise invalid("q", "must not be empty: type a name, team, extension or number")
    limit = query.integer("limit", default=20, low=1, high=MAX_LIMIT)
    api = ctx(request)
    index = api.directory()
    records = _records(index)
    hits: list[dict[str, Any]] = []
    for hit in index.search(q, limit):
        record = records.get(hit.employee_id)
        hits.append(
            {
                "employee_id": hit.employee_id,
                "name": hit.name,
                "score": hit.score,
                "matched": list(hit.matched),
                "extension": record.extension if record is not None else None,
                "teams": list(record.teams) if record is not None else [],
                "title": record.title if record is not None else "",
                "topics": list(record.topics) if record is not None else [],
                "availability": summary_json(api.cache.lookup(hit.employee_id), api.tz),
            }
        )
    teams = []
    for hit in index.search(q, MAX_TEAMS, kind="team"):
        record = records.get(f"team:{hit.employee_id}")
        teams.append({
            "team_id": hit.employee_id, "name": hit.name, "score": hit.score,
            "matched": list(hit.matched),
            "title": record.title if record is not None else "",
            "topics": list(record.topics) if record is not None else [],
        })
    return web.json_response({"query": q, "hits": hits, "teams": teams})


ROUTES: list[Route] = [("GET", "/directory/search", search)]
