"""The answering service over HTTP: messages taken for employees and teams (by callers after the
tone, or by operators here), their delivery by e-mail and SMS, recordings, and callback requests.
Operators and admins see everything; an employee sees what was taken for them and their teams.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from vaihde.api.errors import ApiError, Body, Query, invalid, json_body, not_found, parse_time
from vaihde.api.routes_common import Route, company_of, ctx, int_param, iso, require, who
from vaihde.auth.model import Action, Principal, allowed
from vaihde.config.patterns import ID
from vaihde.directory import store as directory
from vaihde.messages import store
from vaihde.messages.model import (
    CALL_ID_MAX,
    CALLBACK_STATUSES,
    MESSAGE_STATUSES,
    NAME_MAX,
    NOTE_MAX,
    RECIPIENT_KINDS,
    CallbackDraft,
    CallbackRecord,
    DeliveryRecord,
    MessageDraft,
    MessageError,
    MessageRecord,
    Recipient,
    clean_text,
    recipient_name,
)

log = logging.getLogger("vaihde.api")

MESSAGE_FIELDS = ("for", "caller_number", "caller_name", "text", "call_id")
CALLBACK_FIELDS = MESSAGE_FIELDS
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# What Asterisk records messages as (Record() with the file's extension), and what is served.
AUDIO_TYPES = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".ogg": "audio/ogg"}

_NUMBER = re.compile(r"^\+?[0-9]{3,32}$")
_CALL_ID = re.compile(rf"^[A-Za-z0-9._:\-]{{1,{CALL_ID_MAX}}}$")
_CURSOR = re.compile(r"^([0-9]{1,19})\.([0-9]{1,10})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# MessageError problems are "field: …" in the model's words; the API's words for them.
_FIELDS = {"note": "text", "recipient": "for", "for_kind": "for", "for_id": "for"}


# --- who may see what ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a principal may read: everything (None) or messages for these recipients."""

    recipients: tuple[Recipient, ...] | None

    def covers(self, kind: str | None, ident: str | None) -> bool:
        if self.recipients is None:
            return True
        return kind is not None and Recipient(kind, ident or "") in self.recipients


async def _scope(request: web.Request) -> Scope:
    """Staff read everything; an employee what was taken for them and for their teams."""
    principal = who(request)
    if allowed(principal, Action.READ_MESSAGES):
        return Scope(None)
    own = principal.employee_id
    if own is None or not allowed(principal, Action.READ_MESSAGES, own):
        raise ApiError(403, "forbidden", "messages are for the employee they were taken for, "
                       "operators and admins")
    async with ctx(request).sessions() as session:
        record = await directory.get_employee(session, own)
    teams = record.teams if record is not None else ()
    return Scope((Recipient("employee", own), *(Recipient("team", t) for t in teams)))


def _narrow(scope: Scope, wanted: Recipient | None) -> list[Recipient] | None:
    """The recipients a list covers: the filter (if the scope allows it) or the whole scope."""
    if wanted is None:
        return None if scope.recipients is None else list(scope.recipients)
    if not scope.covers(wanted.kind, wanted.id):
        raise ApiError(403, "forbidden", f"you may read only what was taken for you and your "
                       f"teams, not for {wanted.kind} {wanted.id!r}")
    return [wanted]


# --- reading input -------------------------------------------------------------------------


def _recipient_filter(query: Query) -> Recipient | None:
    employee = query.text("employee", max_length=40)
    team = query.text("team", max_length=40)
    if employee is not None and team is not None:
        raise invalid("team", "give employee or team, not both")
    for kind, value in (("employee", employee), ("team", team)):
        if value is not None:
            if not ID.match(value):
                raise invalid(kind, f"{value!r} is not an {kind} id")
            return Recipient(kind, value)
    return None


def _limit(query: Query) -> int:
    return query.integer("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)


def _cursor(query: Query) -> tuple[datetime, int] | None:
    raw = query.text("cursor", max_length=40)
    if raw is None:
        return None
    found = _CURSOR.match(raw)
    if found is None:
        raise invalid("cursor", "not a cursor from next_cursor of an earlier page")
    return _EPOCH + timedelta(microseconds=int(found[1])), int(found[2])


def _next_cursor(at: datetime, ident: int) -> str:
    # Whole microseconds since the epoch: exact, unlike a float timestamp.
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}.{ident}"


def _for(body: Body, *, required: bool) -> Recipient | None:
    value = body.data.get("for")
    if value is None:
        if required:
            raise invalid("for", 'is required: {"employee": id} or {"team": id}',
                          "missing_field")
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise invalid("for", 'must be {"employee": id} or {"team": id}', "wrong_type")
    ((kind, ident),) = value.items()
    if kind not in RECIPIENT_KINDS:
        raise invalid(f"for.{kind}", f"unknown field {kind!r}; use employee or team",
                      "unknown_field")
    if not isinstance(ident, str):
        raise invalid(f"for.{kind}", f"must be an {kind} id (a string)", "wrong_type")
    if not ID.match(ident):
        raise invalid(f"for.{kind}", f"{ident!r} is not an {kind} id")
    return Recipient(kind, ident)


def _caller_number(body: Body, *, required: bool) -> str | None:
    raw = body.text("caller_number", required=required, max_length=64)
    if raw is None or (not required and raw.strip() == ""):
        return None  # not given: withheld, or the caller did not say
    compact = raw.replace(" ", "").replace("-", "")
    if not _NUMBER.match(compact):
        raise invalid("caller_number", f"{raw!r} is not a phone number: 3-32 digits with an "
                      "optional leading +")
    return compact


def _call_id(body: Body) -> str:
    value = body.text("call_id", max_length=CALL_ID_MAX)
    if value is None or value == "":
        return ""
    if not _CALL_ID.match(value):
        raise invalid("call_id", f"{value!r} is not a call id (letters, digits and . _ : -)")
    return value


def _text(body: Body, *, required: bool) -> str:
    value = body.text("text", required=required, max_length=NOTE_MAX) or ""
    if required and not clean_text(value):
        raise invalid("text", "is empty: write what the caller wanted", "missing_field")
    return value


def _unknown(recipient: Recipient) -> ApiError:
    return ApiError(422, "unknown_recipient",
                    f"there is no {recipient.kind} {recipient.id!r} in the directory",
                    f"for.{recipient.kind}")


def _message_error(exc: MessageError, recipient: Recipient | None) -> ApiError:
    """The store refused (a check here missed something, or the directory just changed)."""
    problem = exc.problems[0] if exc.problems else str(exc)
    head, _, rest = problem.partition(": ")
    field = _FIELDS.get(head, head)
    if field == "for" and recipient is not None and rest.startswith("no "):
        return _unknown(recipient)
    return ApiError(400, "invalid", "; ".join(exc.problems), field, problems=list(exc.problems))


# --- JSON shapes ---------------------------------------------------------------------------


def _recipient_json(request: web.Request, kind: str | None, ident: str | None) -> Any:
    if kind is None or ident is None:
        return None
    company = company_of(request)
    name = recipient_name(Recipient(kind, ident), company) if company is not None else ident
    return {"kind": kind, "id": ident, "name": name}


def delivery_json(d: DeliveryRecord, request: web.Request) -> dict[str, Any]:
    tz = ctx(request).tz
    return {
        "id": d.id,
        "channel": d.channel,
        "address": d.address,
        "status": d.status,
        "attempts": d.attempts,
        # While sending, next_attempt_at is the sender's lease: no retry is scheduled then.
        "next_retry_at": iso(d.next_attempt_at, tz) if d.status in ("pending", "retrying")
        else None,
        "last_error": d.last_error,
        "sent_at": iso(d.sent_at, tz),
    }


def message_json(msg: MessageRecord, request: web.Request) -> dict[str, Any]:
    return {
        "id": msg.id,
        "created_at": iso(msg.created_at, ctx(request).tz),
        "for": _recipient_json(request, msg.recipient.kind, msg.recipient.id),
        "caller_number": msg.caller_number,
        "caller_name": msg.caller_name,
        "taken_by": msg.taken_by,
        "path": msg.path,
        "text": msg.note,
        "call_id": msg.call_id or None,
        "language": msg.language,
        "status": msg.status,
        "has_recording": msg.recording_path is not None,
        "deliveries": [delivery_json(d, request) for d in msg.deliveries],
    }


def callback_json(cb: CallbackRecord, request: web.Request) -> dict[str, Any]:
    tz = ctx(request).tz
    return {
        "id": cb.id,
        "created_at": iso(cb.created_at, tz),
        "for": _recipient_json(request, cb.for_kind, cb.for_id),
        "caller_number": cb.caller_number,
        "caller_name": cb.caller_name,
        "text": cb.note,
        "call_id": cb.call_id or None,
        "taken_by": cb.taken_by,
        "status": cb.status,
        "handled_by": cb.handled_by,
        "handled_at": iso(cb.handled_at, tz),
    }


# --- messages ------------------------------------------------------------------------------


async def take_message(request: web.Request) -> web.Response:
    """An operator takes a message: stored like the callers' own, delivered by the same sender."""
    principal = require(request, Action.TAKE_MESSAGES)
    Query(request, ())
    body = await json_body(request, MESSAGE_FIELDS)
    recipient = _for(body, required=True)
    assert recipient is not None
    number = _caller_number(body, required=False)
    name = body.text("caller_name", max_length=NAME_MAX) or ""
    text = _text(body, required=True)
    call_id = _call_id(body)
    api = ctx(request)
    company = company_of(request)
    if company is None:
        raise ApiError(503, "unavailable", "the service has no company configuration loaded "
                       "yet; messages cannot be planned")
    table = company.employees if recipient.kind == "employee" else company.teams
    if recipient.id not in table:
        raise _unknown(recipient)
    draft = MessageDraft(
        recipient, caller_number=number, caller_name=name, taken_by=principal.username,
        note=text, call_id=call_id,
    )
    try:
        message = await store.take_message(
            api.sessions, draft, company, channels=api.message_channels, now=api.clock()
        )
    except MessageError as exc:
        raise _message_error(exc, recipient) from None
    log.info("message taken", extra={"message_id": message.id, "taken_by": principal.username,
                                     "recipient": str(recipient)})
    if api.message_taken is not None:
        api.message_taken()
    return web.json_response(message_json(message, request), status=201)


async def list_messages(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    query = Query(request, ("employee", "team", "status", "since", "limit", "cursor"))
    wanted = _recipient_filter(query)
    status = query.text("status", max_length=20)
    if status is not None and status not in MESSAGE_STATUSES:
        raise invalid("status", f"must be one of {', '.join(MESSAGE_STATUSES)}, not {status!r}")
    since_raw = query.text("since", max_length=40)
    since = parse_time("since", since_raw) if since_raw is not None else None
    limit = _limit(query)
    before = _cursor(query)
    recipients = _narrow(await _scope(request), wanted)
    async with ctx(request).sessions() as session:
        found = await store.list_messages(
            session, recipients=recipients, status=status, since=since, before=before,
            limit=limit + 1,
        )
    page = found[:limit]
    more = len(found) > limit
    return web.json_response({
        "messages": [message_json(m, request) for m in page],
        "next_cursor": _next_cursor(page[-1].created_at, page[-1].id) if more else None,
    })


async def _readable_message(request: web.Request) -> MessageRecord:
    """The message named in the path, if this principal may read it (404, 403 otherwise)."""
    message_id = int_param(request, "message_id", "message")
    scope = await _scope(request)
    async with ctx(request).sessions() as session:
        message = await store.get_message(session, message_id)
    if message is None:
        raise not_found(f"no message {message_id}", "message_id")
    if not scope.covers(message.recipient.kind, message.recipient.id):
        raise ApiError(403, "forbidden", "this message was taken for someone else")
    return message


async def get_message(request: web.Request) -> web.Response:
    require(request, Action.READ_DIRECTORY)
    Query(request, ())
    return web.json_response(message_json(await _readable_message(request), request))


def _recording_file(request: web.Request, message: MessageRecord) -> Path | None:
    """The recording on disk, only if it is a file inside the recordings directory: the path
    comes from the database, never from the request, and is still not trusted beyond that."""
    root = ctx(request).recordings_dir
    if message.recording_path is None or root is None:
        return None
    try:
        real = Path(message.recording_path).resolve()
        inside = real.is_relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError):
        return None
    if not inside:
        log.warning("message recording outside the recordings directory not served",
                    extra={"message_id": message.id})
        return None
    if real.suffix.lower() not in AUDIO_TYPES or not real.is_file():
        return None
    return real


async def get_recording(request: web.Request) -> web.StreamResponse:
    require(request, Action.READ_DIRECTORY)
    Query(request, ())
    message = await _readable_message(request)
    path = _recording_file(request, message)
    if path is None:
        raise not_found(f"message {message.id} has no recording", "message_id")
    suffix = path.suffix.lower()
    return web.FileResponse(path, headers={
        "Content-Type": AUDIO_TYPES[suffix],
        "Content-Disposition": f'attachment; filename="message-{message.id}{suffix}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    })


async def _change_message(
    request: web.Request, change: Callable[..., Awaitable[Any]], what: str
) -> web.Response:
    """Apply a store change to one message as the operator, and answer with the message."""
    principal = require(request, Action.TAKE_MESSAGES)
    Query(request, ())
    message_id = int_param(request, "message_id", "message")
    api = ctx(request)
    async with api.sessions.begin() as session:
        if await store.get_message(session, message_id) is None:
            raise not_found(f"no message {message_id}", "message_id")
        try:
            message = await change(session, message_id, principal, api.clock())
        except MessageError as exc:
            raise ApiError(409, "conflict", "; ".join(exc.problems)) from None
    log.info(f"message deliveries {what}", extra={"message_id": message_id,
                                                  "by": principal.username})
    if what == "retried" and api.message_taken is not None:
        api.message_taken()
    return web.json_response(message_json(message, request))


async def retry_message(request: web.Request) -> web.Response:
    """Send the failed (and cancelled) deliveries again now, e.g. after a mail server fix."""
    return await _change_message(
        request, lambda s, mid, who, now: store.retry_message(s, mid, now=now), "retried"
    )


async def cancel_message(request: web.Request) -> web.Response:
    """Stop delivering: deliveries not yet sent become cancelled (retry sends them again)."""
    return await _change_message(
        request,
        lambda s, mid, who, now: store.cancel_message(s, mid, by=who.username, now=now),
        "cancelled",
    )


# --- callback requests ---------------------------------------------------------------------


async def list_callbacks(request: web.Request) -> web.Response:
    """Callback requests, oldest first (the order to call back in); open ones by default."""
    require(request, Action.READ_DIRECTORY)
    query = Query(request, ("employee", "team", "status", "limit", "cursor"))
    wanted = _recipient_filter(query)
    status = query.text("status", max_length=20) or "open"
    if status not in (*CALLBACK_STATUSES, "all"):
        raise invalid("status", f"must be one of {', '.join(CALLBACK_STATUSES)} or all, "
                      f"not {status!r}")
    limit = _limit(query)
    after = _cursor(query)
    recipients = _narrow(await _scope(request), wanted)
    async with ctx(request).sessions() as session:
        found = await store.list_callbacks(
            session, status=None if status == "all" else status, recipients=recipients,
            after=after, limit=limit + 1,
        )
    page = found[:limit]
    more = len(found) > limit
    return web.json_response({
        "callbacks": [callback_json(c, request) for c in page],
        "next_cursor": _next_cursor(page[-1].created_at, page[-1].id) if more else None,
    })


async def take_callback(request: web.Request) -> web.Response:
    """An operator takes a callback request (for an employee, a team, or whoever is free)."""
    principal = require(request, Action.TAKE_MESSAGES)
    Query(request, ())
    body = await json_body(request, CALLBACK_FIELDS)
    recipient = _for(body, required=False)
    number = _caller_number(body, required=True)
    name = body.text("caller_name", max_length=NAME_MAX) or ""
    text = _text(body, required=False)
    call_id = _call_id(body)
    api = ctx(request)
    draft = CallbackDraft(
        number or "", caller_name=name,
        for_kind=recipient.kind if recipient else None, for_id=recipient.id if recipient else None,
        note=text, call_id=call_id, taken_by=principal.username,
    )
    try:
        async with api.sessions.begin() as session:
            callback = await store.create_callback(session, draft, now=api.clock())
    except MessageError as exc:
        raise _message_error(exc, recipient) from None
    log.info("callback request taken", extra={"callback_id": callback.id,
                                              "taken_by": principal.username})
    return web.json_response(callback_json(callback, request), status=201)


def _may_close(principal: Principal, scope: Scope, callback: CallbackRecord) -> bool:
    # Staff close any; an employee the ones for them or their teams (they called back).
    return allowed(principal, Action.TAKE_MESSAGES) or (
        callback.for_kind is not None and scope.covers(callback.for_kind, callback.for_id)
    )


async def callback_done(request: web.Request) -> web.Response:
    """Called back: the request is closed, with who and when."""
    require(request, Action.READ_DIRECTORY)
    principal = who(request)
    Query(request, ())
    if request.can_read_body:
        await json_body(request, ())  # nothing to say yet; an object with fields is a typo
    callback_id = int_param(request, "callback_id", "callback")
    scope = await _scope(request)
    api = ctx(request)
    async with api.sessions.begin() as session:
        found = await store.get_callback(session, callback_id)
        if found is None:
            raise not_found(f"no callback request {callback_id}", "callback_id")
        if not _may_close(principal, scope, found):
            raise ApiError(403, "forbidden", "this callback request is for someone else")
        try:
            closed = await store.close_callback(
                session, callback_id, by=principal.username, now=api.clock()
            )
        except MessageError as exc:
            raise ApiError(409, "conflict", "; ".join(exc.problems)) from None
    return web.json_response(callback_json(closed, request))


ROUTES: list[Route] = [
    ("GET", "/messages", list_messages),
    ("POST", "/messages", take_message),
    ("GET", "/messages/{message_id}", get_message),
    ("GET", "/messages/{message_id}/recording", get_recording),
    ("POST", "/messages/{message_id}/retry", retry_message),
    ("POST", "/messages/{message_id}/cancel", cancel_message),
    ("GET", "/callbacks", list_callbacks),
    ("POST", "/callbacks", take_callback),
    ("POST", "/callbacks/{callback_id}/done", callback_done),
]
