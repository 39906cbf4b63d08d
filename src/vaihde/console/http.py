"""The operator console over HTTP: the board (GET /console/board), its live stream of changes
(GET /console/stream, Server-Sent Events) and the operator's actions on calls. Operators and
admins only; the logic is in vaihde.console, these handlers only read requests and reply.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vaihde.api import scope
from vaihde.api.context import ctx, who
from vaihde.api.errors import ApiError
from vaihde.api.route import Media, Routes
from vaihde.auth.middleware import CREDENTIAL
from vaihde.auth.model import Action
from vaihde.console import stream
from vaihde.console.actions import Operator, Request, Target
from vaihde.console.schemas import CallPath, ConsoleActionReply, ConsoleBoard, ConsoleTransfer
from vaihde.console.stream import Console, TooManyStreams

routes = Routes("console")

STREAM_TEXT = """Server-Sent Events. Every event has `id: <seq>` and JSON data:
`board` (a ConsoleBoard: sent first, and again after Asterisk reconnects),
`call` (one ConsoleCall, new or changed), `positions` (`{call id: position}` for calls whose
queue position alone changed), `gone` (`{"id": call id}`),
`ami` (`{"connected": bool}`), `availability` (`{"employee": id, …Availability}`).
A `: ping` comment comes every 15 s. A console that reads too slowly gets a `reconnect` event
(`{"why": …}`, no id) and the stream ends; EventSource reconnects by itself (`retry: 2000`).
The stream also ends (with `reconnect`) within a second of its session ending or its token
being revoked (logout, the user disabled) or its user losing the console role; a user may
have only a few streams open at once (429 `too_many_streams` beyond)."""
CALL = scope.call("call_id")
ACCEPTED = (202, "Asterisk accepted the action; the board changes on the stream",
            ConsoleActionReply)


def console_of(request: web.Request) -> Console:
    console = ctx(request).console
    if console is None:
        raise ApiError(503, "unavailable", "the console is not running in this service")
    return console


@routes.get("/console/board", "The board: waiting, active and parked calls",
            allow=Action.CONSOLE, ok=(200, "The board", ConsoleBoard), errors=(503,),
            company=scope.FILTERED)
async def board(request: web.Request) -> web.StreamResponse:
    return web.json_response(console_of(request).board_json(scope.scope(request)))


@routes.get("/console/stream", "Live changes of the board", allow=Action.CONSOLE,
            ok=(200, "An endless text/event-stream", Media(("text/event-stream",))),
            errors=(429, 503), description=STREAM_TEXT, company=scope.FILTERED)
async def events(request: web.Request) -> web.StreamResponse:
    try:
        return await stream.serve(console_of(request), request, request.get(CREDENTIAL),
                                  scope.scope(request))
    except TooManyStreams as exc:
        raise ApiError(429, "too_many_streams", str(exc),
                       headers={"Retry-After": "5"}) from None


async def _act(request: web.Request, action: str, **more: Any) -> web.StreamResponse:
    """Carry it out; a Refusal (409, 404, 503, …) answers as it says."""
    principal = who(request)
    call_id = request.match_info.get("call_id")
    reply = await console_of(request).perform(
        Request(action, call_id, **more),
        Operator(principal.username, principal.sip_endpoint, principal.companies),
    )
    return web.json_response(reply, status=202)


def _described(action: str) -> str:
    return (f"Action `{action}`. 409 when the call's state does not allow it, 503 when "
            "Asterisk is not connected.")


def _action(path: str, summary: str, action: str) -> None:
    """A console action without a body, on a call (or, answer-next, on the next one)."""
    call = "{call_id}" in path

    async def handler(request: web.Request, path: CallPath | None = None) -> web.StreamResponse:
        return await _act(request, action)

    handler.__name__ = action.replace("-", "_")
    # A call's company must be one the operator serves; answer-next takes the first in line
    # of theirs.
    routes.post(path, summary, allow=Action.CONSOLE, params=CallPath if call else None,
                company=CALL if call else scope.FILTERED,
                ok=ACCEPTED, errors=(409, 503) + ((404,) if call else ()),
                description=_described(action))(handler)


_action("/console/answer-next", "The longest-waiting call to your own phone", "answer-next")
_action("/console/calls/{call_id}/answer",
        "This call to your own phone (waiting, parked, or a bounced transfer)", "answer")


@routes.post("/console/calls/{call_id}/transfer",
             "Transfer: blind (rings the target; unanswered or busy it comes back to you, "
             "marked bounced) or attended (your phone talks to the target first)",
             allow=Action.CONSOLE, params=CallPath, company=CALL, body=ConsoleTransfer,
             ok=ACCEPTED,
             errors=(404, 409, 503), description=_described("transfer"))
async def transfer(
    request: web.Request, path: CallPath, body: ConsoleTransfer
) -> web.StreamResponse:
    to: Target = body.to.target
    return await _act(request, "transfer", to=to, mode=body.mode)


_action("/console/calls/{call_id}/transfer/complete",
        "Complete an attended transfer (the target has answered)", "complete")
_action("/console/calls/{call_id}/transfer/cancel",
        "Cancel a transfer: back to the caller on your phone", "cancel")
_action("/console/calls/{call_id}/park", "Park the call; the reply names the parking space",
        "park")
_action("/console/calls/{call_id}/retrieve", "A parked call to your own phone", "retrieve")
_action("/console/calls/{call_id}/hangup", "Hang up the call", "hangup")
