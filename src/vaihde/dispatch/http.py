"""Urgent messages over HTTP: the SMS gateway's inbound webhook, where a reply code confirms an
urgent message (authenticated by a shared secret, not a user), and the operators' view of every
urgent message's state (who was texted when, escalated, confirmed by whom).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from vaihde.api import scope
from vaihde.api.context import company_of, ctx
from vaihde.api.errors import ApiError, not_found
from vaihde.api.route import Routes
from vaihde.auth.model import Access, Action
from vaihde.db import dispatch_models as dm
from vaihde.dispatch import store
from vaihde.dispatch.model import parse_reply
from vaihde.dispatch.schemas import (
    INBOUND_BODY_MAX,
    TOKEN_HEADER,
    InboundResult,
    InboundSms,
    UrgentList,
    UrgentPath,
    UrgentQuery,
)
from vaihde.dispatch.store import DispatchRecord

log = logging.getLogger("vaihde.api")

routes = Routes("urgent")


def _check_token(request: web.Request) -> None:
    expected = ctx(request).sms_inbound_token
    if not expected:
        raise ApiError(404, "not_found", "the SMS gateway webhook is not enabled "
                       "(messages.sms.inbound_token in the settings)")
    given = request.headers.get(TOKEN_HEADER, "")
    # Constant time: how much of a guess was right must not show in the answer's timing.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthenticated", f"missing or wrong {TOKEN_HEADER} header")


@routes.post("/sms/inbound", "The SMS gateway's inbound webhook: a reply code confirms an "
             "urgent message", allow=Access.PUBLIC, body=InboundSms,
             body_limit=INBOUND_BODY_MAX, company=scope.NONE,
             ok=(200, "Confirmed", InboundResult), errors=(400, 401, 404, 409, 413, 422),
             description=f"For the gateway, not for users: it sends the shared secret "
             f"(`messages.sms.inbound_token`) in the {TOKEN_HEADER} header (401 otherwise; 404 "
             "when no secret is configured). A text without exactly one reply code is a 422, a "
             "code no one was given a 404, a message already confirmed a 409; none of them "
             "changes anything.")
async def inbound_sms(request: web.Request, body: InboundSms) -> InboundResult:
    _check_token(request)
    code = parse_reply(body.text)
    if code is None:
        raise ApiError(422, "no_code", "the text holds no reply code (or more than one)", "text")
    api = ctx(request)
    try:
        async with api.sessions.begin() as session:
            done = await store.confirm(session, code, now=api.clock())
    except store.DispatchError as exc:
        log.info("urgent reply refused", extra={"status": exc.status, "reason": exc.reason})
        raise ApiError(exc.status, "not_found" if exc.status == 404 else "conflict",
                       exc.reason, "text") from None
    log.info("urgent message confirmed", extra={"urgent_id": done.dispatch_id,
                                                "message_id": done.message_id,
                                                "by": done.employee})
    return InboundResult(confirmed=True, message_id=done.message_id,
                         urgent_id=done.dispatch_id, by=done.employee, at=done.at)


@routes.get("/urgent", "Urgent messages, newest first, with whom each was texted and whether "
            "someone confirmed", allow=Action.TAKE_MESSAGES, query=UrgentQuery,
            company=scope.FILTERED,
            ok=(200, "Urgent messages", UrgentList),
            description="For operators and admins. exhausted: everyone on the list was texted "
            "and nobody confirmed in time: the operators take over.")
async def list_urgent(request: web.Request, query: UrgentQuery) -> UrgentList:
    async with ctx(request).sessions() as session:
        found = await store.list_dispatches(
            session, company_of(request), companies=scope.scope(request),
            company_by_id=lambda cid: company_of(request, cid),
            status=None if query.status == "all" else query.status, limit=query.limit)
    return UrgentList(urgent=found)


@routes.get("/urgent/{urgent_id}", "An urgent message and where its confirmation stands",
            allow=Action.TAKE_MESSAGES, params=UrgentPath, company=scope.urgent("urgent_id"),
            ok=(200, "The urgent message", DispatchRecord), errors=(404,))
async def get_urgent(request: web.Request, path: UrgentPath) -> DispatchRecord:
    async with ctx(request).sessions() as session:
        row = await session.get(dm.UrgentDispatch, path.urgent_id)
        found = await store.get_dispatch(session, path.urgent_id, company_of(
            request, row.company if row is not None else None))
    if found is None:
        raise not_found(f"no urgent message {path.urgent_id}", "urgent_id")
    return found
