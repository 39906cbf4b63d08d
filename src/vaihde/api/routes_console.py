"""The operator console over HTTP: the board (GET /console/board), its live stream of changes
(GET /console/stream, Server-Sent Events) and the operator's actions on calls. Operators and
admins only; the logic is in vaihde.console, these handlers only read requests and reply.
"""

from __future__ import annotations

from aiohttp import web

from vaihde.api.errors import ApiError, Query
from vaihde.api.routes_common import Route, ctx, require
from vaihde.auth.model import Action
from vaihde.console import stream
from vaihde.console.stream import Console


def console_of(request: web.Request) -> Console:
    console = ctx(request).console
    if console is None:
        raise ApiError(503, "unavailable", "the console is not running in this service")
    return console


async def board(request: web.Request) -> web.Response:
    require(request, Action.CONSOLE)
    Query(request, ())
    return web.json_response(console_of(request).board_json())


async def events(request: web.Request) -> web.StreamResponse:
    require(request, Action.CONSOLE)
    Query(request, ())
    return await stream.serve(console_of(request), request)


ROUTES: list[Route] = [
    ("GET", "/console/board", board),
    ("GET", "/console/stream", events),
]
