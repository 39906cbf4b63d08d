"""The operator console over HTTP: the board (GET /console/board), its live stream of changes
(GET /console/stream, Server-Sent Events) and the operator's actions on calls. Operators and
admins only; the logic is in vaihde.console, these handlers only read requests and reply.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vaihde.api.errors import ApiError, Query, invalid, json_body
from vaihde.api.routes_common import Route, ctx, require
from vaihde.auth.middleware import CREDENTIAL
from vaihde.auth.model import Action
from vaihde.console import stream
from vaihde.console.actions import Operator, Refusal, Request, Target
from vaihde.console.stream import Console, TooManyStreams

TARGET_KINDS = ("employee", "team", "number")


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
    try:
        return await stream.serve(console_of(request), request, request.get(CREDENTIAL))
    except TooManyStreams as exc:
        raise ApiError(429, "too_many_streams", str(exc),
                       headers={"Retry-After": "5"}) from None


async def _act(request: web.Request, action: str, **more: Any) -> web.Response:
    principal = require(request, Action.CONSOLE)
    console = console_of(request)
    call_id = request.match_info.get("call_id")
    try:
        reply = await console.perform(
            Request(action, call_id, **more),
            Operator(principal.username, principal.sip_endpoint),
        )
    except Refusal as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
    return web.json_response(reply, status=202)


def _simple(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        Query(request, ())
        return await _act(request, action)

    handler.__name__ = action.replace("-", "_")
    return handler


async def transfer(request: web.Request) -> web.Response:
    require(request, Action.CONSOLE)
    Query(request, ())
    body = await json_body(request, ("to", "mode"))
    mode = body.text("mode", max_length=10) or "blind"
    if mode not in ("blind", "attended"):
        raise invalid("mode", "must be blind or attended")
    to = body.data.get("to")
    if not isinstance(to, dict) or len(to) != 1 or next(iter(to)) not in TARGET_KINDS:
        raise invalid("to", 'must be one of {"employee": id}, {"team": id}, {"number": digits}',
                      "missing_field" if to is None else "invalid")
    kind, ref = next(iter(to.items()))
    if not isinstance(ref, str) or not 1 <= len(ref) <= 40:
        raise invalid("to", f"{kind} must be a string of 1-40 characters", "wrong_type")
    return await _act(request, "transfer", to=Target(kind, ref), mode=mode)


ROUTES: list[Route] = [
    ("GET", "/console/board", board),
    ("GET", "/console/stream", events),
    ("POST", "/console/answer-next", _simple("answer-next")),
    ("POST", "/console/calls/{call_id}/answer", _simple("answer")),
    ("POST", "/console/calls/{call_id}/transfer", transfer),
    ("POST", "/console/calls/{call_id}/transfer/complete", _simple("complete")),
    ("POST", "/console/calls/{call_id}/transfer/cancel", _simple("cancel")),
    ("POST", "/console/calls/{call_id}/park", _simple("park")),
    ("POST", "/console/calls/{call_id}/retrieve", _simple("retrieve")),
    ("POST", "/console/calls/{call_id}/hangup", _simple("hangup")),
]
