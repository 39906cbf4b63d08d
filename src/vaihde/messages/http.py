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
from sqlalchemy.ext.asyncio import AsyncSession

from vaihde.api import scope
from vaihde.api.context import company_of, ctx, who
from vaihde.api.errors import ApiError, invalid, not_found
from vaihde.api.route import Media, Routes
from vaihde.auth.model import Action, Principal, allowed
from vaihde.directory import store as directory
from vaihde.dispatch.urgent import take_urgent
from vaihde.messages import store
from vaihde.messages.model import (
    CallbackDraft,
    CallbackRecord,
    MessageDraft,
    MessageError,
    MessageRecord,
    Recipient,
)
from vaihde.messages.schemas import (
    CallbackDone,
    CallbackList,
    CallbackPath,
    CallbacksQuery,
    MessageList,
    MessagePath,
    MessagesQuery,
    TakeCallback,
    TakeMessage,
)

log = logging.getLogger("vaihde.api")
MAIN = "main"

messages = Routes("messages")
callbacks = Routes("callbacks")

MESSAGE = scope.message("message_id")  # the message's company must be the caller's
CALLBACK = scope.callback("callback_id")


def _named(body: TakeMessage | TakeCallback | None) -> tuple[str, str] | None:
    recipient = body.for_.recipient if body is not None and body.for_ is not None else None
    return (recipient.kind, recipient.id) if recipient is not None else None


# The company of the employee or team a message or callback request is for.
RECIPIENT = scope.body(_named)

# What Asterisk records messages as (Record() with the file's extension), and what is served.
AUDIO_TYPES = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".ogg": "audio/ogg"}

_CURSOR = re.compile(r"^([0-9]{1,19})\.([0-9]{1,10})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# MessageError problems are "field: …" in the model's words; the API's words for them.
_FIELDS = {"note": "text", "recipient": "for", "for_kind": "for", "for_id": "for"}
READERS = ("Operators and admins see all; an employee those for them and their teams (403 "
           "for others').")


# --- who may see what ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a principal may read: everything (None) or messages for these recipients."""

    recipients: tuple[Recipient, ...] | None

    def covers(self, kind: str | None, ident: str | None) -> bool:
        if self.recipients is None:
            return True
        return kind is not None and Recipient(kind=kind, id=ident or "") in self.recipients


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
    return Scope((Recipient(kind="employee", id=own),
                  *(Recipient(kind="team", id=t) for t in teams)))


def _narrow(scope: Scope, wanted: Recipient | None) -> list[Recipient] | None:
    """The recipients a list covers: the filter (if the scope allows it) or the whole scope."""
    if wanted is None:
        return None if scope.recipients is None else list(scope.recipients)
    if not scope.covers(wanted.kind, wanted.id):
        raise ApiError(403, "forbidden", f"you may read only what was taken for you and your "
                       f"teams, not for {wanted.kind} {wanted.id!r}")
    return [wanted]


# --- paging and errors ---------------------------------------------------------------------


def _cursor(raw: str | None) -> tuple[datetime, int] | None:
    if raw is None:
        return None
    found = _CURSOR.match(raw)
    if found is None:
        raise invalid("cursor", "not a cursor from next_cursor of an earlier page")
    return _EPOCH + timedelta(microseconds=int(found[1])), int(found[2])


def _next_cursor(page: list[Any], more: bool) -> str | None:
    if not more:
        return None
    # Whole microseconds since the epoch: exact, unlike a float timestamp.
    last = page[-1]
    return f"{(last.created_at - _EPOCH) // timedelta(microseconds=1)}.{last.id}"


def _unknown(recipient: Recipient) -> ApiError:
    return ApiError(422, "unknown_recipient",
                    f"there is no {recipient.kind} {recipient.id!r} in the directory",
                    f"for.{recipient.kind}")


def _message_error(exc: MessageError, recipient: Recipient | None) -> ApiError:
    """The store refused (a check here missed something, or the directory just changed)."""
    head, _, rest = exc.problems[0].partition(": ")
    field = _FIELDS.get(head, head)
    if field == "for" and recipient is not None and rest.startswith("no "):
        return _unknown(recipient)
    return ApiError(400, "invalid", exc.line(), field, problems=list(exc.problems))


async def _company_of_recipient(request: web.Request, recipient: Recipient) -> str | None:
    """The company of the employee or team (None: no such one in the directory)."""
    from sqlalchemy import select

    from vaihde.db import models as m

    table = m.Employee if recipient.kind == "employee" else m.Team
    async with ctx(request).sessions() as session:
        found: str | None = await session.scalar(
            select(table.company_id).where(table.id == recipient.id))
    return found


# --- messages ------------------------------------------------------------------------------


@messages.post("/messages", "Take a message for an employee or a team",
               allow=Action.TAKE_MESSAGES, body=TakeMessage, company=RECIPIENT,
               ok=(201, "Stored; delivery by e-mail and SMS has started", MessageRecord),
               errors=(422, 503),
               description="Stored like the messages callers record and delivered by the same "
               "sender (retried until sent or failed). An unknown employee or team is a 422 "
               "naming for.employee or for.team; nothing is stored on any error. An urgent "
               "one is texted with a reply code instead of the plain SMS (400 without SMS "
               "settings or for an unknown rota).")
async def take_message(request: web.Request, body: TakeMessage) -> MessageRecord:
    """An operator takes a message: stored like the callers' own, delivered by the same sender."""
    principal = who(request)
    recipient = body.for_.recipient
    api = ctx(request)
    company = company_of(request, await _company_of_recipient(request, recipient))
    if company is None:
        raise ApiError(503, "unavailable", "the service has no company configuration loaded "
                       "yet; messages cannot be planned")
    table = company.employees if recipient.kind == "employee" else company.teams
    if recipient.id not in table:
        raise _unknown(recipient)
    draft = MessageDraft(
        recipient, caller_number=body.caller_number, caller_name=body.caller_name,
        taken_by=principal.username, note=body.text, call_id=body.call_id,
    )
    try:
        if body.urgent:
            message = await take_urgent(api, draft, company, body.rota)
        else:
            message = await store.take_message(
                api.sessions, draft, company, channels=api.message_channels, now=api.clock()
            )
    except MessageError as exc:
        raise _message_error(exc, recipient) from None
    log.info("message taken", extra={"message_id": message.id, "taken_by": principal.username,
                                     "recipient": str(recipient)})
    if api.message_taken is not None:
        api.message_taken()
    return message


@messages.get("/messages", "Messages, newest first", allow=Action.READ_DIRECTORY,
              query=MessagesQuery, ok=(200, "A page of messages", MessageList), errors=(403,),
              description=READERS, company=scope.FILTERED)
async def list_messages(request: web.Request, query: MessagesQuery) -> MessageList:
    before = _cursor(query.cursor)
    recipients = _narrow(await _scope(request), query.recipient)
    async with ctx(request).sessions() as session:
        found = await store.list_messages(
            session, recipients=recipients, status=query.status, since=query.since,
            before=before, limit=query.limit + 1, companies=scope.scope(request),
        )
    page = found[:query.limit]
    return MessageList(messages=page, next_cursor=_next_cursor(page, len(found) > query.limit))


async def _readable_message(request: web.Request, message_id: int) -> MessageRecord:
    """The message named in the path, if this principal may read it (404, 403 otherwise)."""
    scope = await _scope(request)
    async with ctx(request).sessions() as session:
        message = await store.get_message(session, message_id)
    if message is None:
        raise not_found(f"no message {message_id}", "message_id")
    if not scope.covers(message.recipient.kind, message.recipient.id):
        raise ApiError(403, "forbidden", "this message was taken for someone else")
    return message


@messages.get("/messages/{message_id}",
              "A message with each delivery's status, attempts, last error and next retry",
              allow=Action.READ_DIRECTORY, params=MessagePath, company=MESSAGE,
              ok=(200, "The message", MessageRecord), errors=(403, 404), description=READERS)
async def get_message(request: web.Request, path: MessagePath) -> MessageRecord:
    return await _readable_message(request, path.message_id)


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


@messages.get("/messages/{message_id}/recording",
              "The message's recording (what the caller said after the tone)",
              allow=Action.READ_DIRECTORY, params=MessagePath, company=MESSAGE,
              ok=(200, "The audio file", Media(tuple(AUDIO_TYPES.values()))), errors=(403, 404),
              description="404 when the message has no recording (taken by an operator, or "
              "the file is gone). " + READERS)
async def get_recording(request: web.Request, path: MessagePath) -> web.StreamResponse:
    message = await _readable_message(request, path.message_id)
    found = _recording_file(request, message)
    if found is None:
        raise not_found(f"message {message.id} has no recording", "message_id")
    suffix = found.suffix.lower()
    return web.FileResponse(found, headers={
        "Content-Type": AUDIO_TYPES[suffix],
        "Content-Disposition": f'attachment; filename="message-{message.id}{suffix}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    })


Change = Callable[[AsyncSession, int, Principal, datetime], Awaitable[MessageRecord]]


async def _change_message(
    request: web.Request, message_id: int, change: Change, what: str
) -> MessageRecord:
    """Apply a store change to one message as the operator, and answer with the message."""
    principal = who(request)
    api = ctx(request)
    async with api.sessions.begin() as session:
        if await store.get_message(session, message_id) is None:
            raise not_found(f"no message {message_id}", "message_id")
        try:
            message = await change(session, message_id, principal, api.clock())
        except MessageError as exc:
            raise ApiError(409, "conflict", exc.line()) from None
    log.info(f"message deliveries {what}", extra={"message_id": message_id,
                                                  "by": principal.username})
    if what == "retried" and api.message_taken is not None:
        api.message_taken()
    return message


@messages.post("/messages/{message_id}/retry",
               "Send the failed and cancelled deliveries again, now",
               allow=Action.TAKE_MESSAGES, params=MessagePath, company=MESSAGE,
               ok=(200, "The message, its deliveries pending again", MessageRecord),
               errors=(404, 409), description="409 when nothing of it failed or was cancelled.")
async def retry_message(request: web.Request, path: MessagePath) -> MessageRecord:
    """Send the failed (and cancelled) deliveries again now, e.g. after a mail server fix."""
    return await _change_message(
        request, path.message_id,
        lambda s, mid, who, now: store.retry_message(s, mid, now=now), "retried",
    )


@messages.post("/messages/{message_id}/cancel",
               "Stop delivering a message (deliveries not yet sent are cancelled)",
               allow=Action.TAKE_MESSAGES, params=MessagePath, company=MESSAGE,
               ok=(200, "The message", MessageRecord), errors=(404,))
async def cancel_message(request: web.Request, path: MessagePath) -> MessageRecord:
    """Stop delivering: deliveries not yet sent become cancelled (retry sends them again)."""
    return await _change_message(
        request, path.message_id,
        lambda s, mid, who, now: store.cancel_message(s, mid, by=who.username, now=now),
        "cancelled",
    )


# --- callback requests ---------------------------------------------------------------------


@callbacks.get("/callbacks", "Callback requests, oldest first (the order to call back in)",
               allow=Action.READ_DIRECTORY, query=CallbacksQuery,
               ok=(200, "A page of callback requests", CallbackList), errors=(403,),
               description=READERS + " Requests for nobody in particular are for staff.",
               company=scope.FILTERED)
async def list_callbacks(request: web.Request, query: CallbacksQuery) -> CallbackList:
    """Callback requests, oldest first (the order to call back in); open ones by default."""
    after = _cursor(query.cursor)
    recipients = _narrow(await _scope(request), query.recipient)
    async with ctx(request).sessions() as session:
        found = await store.list_callbacks(
            session, status=None if query.status == "all" else query.status,
            recipients=recipients, after=after, limit=query.limit + 1,
            companies=scope.scope(request),
        )
    page = found[:query.limit]
    return CallbackList(callbacks=page, next_cursor=_next_cursor(page, len(found) > query.limit))


@callbacks.post("/callbacks", "Take a callback request", allow=Action.TAKE_MESSAGES,
                body=TakeCallback, company=RECIPIENT,
                ok=(201, "Stored, open", CallbackRecord), errors=(422,),
                description="An unknown employee or team is a 422 naming for.employee or "
                "for.team; nothing is stored on any error.")
async def take_callback(request: web.Request, body: TakeCallback) -> CallbackRecord:
    """An operator takes a callback request (for an employee, a team, or whoever is free)."""
    principal = who(request)
    recipient = body.for_.recipient if body.for_ is not None else None
    api = ctx(request)
    draft = CallbackDraft(
        body.caller_number or "", caller_name=body.caller_name,
        for_kind=recipient.kind if recipient else None, for_id=recipient.id if recipient else None,
        note=body.text, call_id=body.call_id, taken_by=principal.username,
    )
    # The recipient's company; for nobody in particular, the company of the call it was taken
    # on (when the console knows it and it is one of the operator's), else the operator's own
    # (the first of theirs), else the first company.
    company = await _company_of_recipient(request, recipient) if recipient else None
    mine = scope.scope(request)
    story = (api.console.deps.stories.get(body.call_id)
             if company is None and body.call_id and api.console is not None else None)
    if story is not None and story.company and (mine is None or story.company in mine):
        company = story.company
    if company is None:
        first = company_of(request)
        company = sorted(mine)[0] if mine else first.id if first is not None else MAIN
    try:
        async with api.sessions.begin() as session:
            callback = await store.create_callback(session, draft, now=api.clock(),
                                                   company_id=company)
    except MessageError as exc:
        raise _message_error(exc, recipient) from None
    log.info("callback request taken", extra={"callback_id": callback.id,
                                              "taken_by": principal.username})
    return callback


def _may_close(principal: Principal, scope: Scope, callback: CallbackRecord) -> bool:
    # Staff close any; an employee the ones for them or their teams (they called back).
    return allowed(principal, Action.TAKE_MESSAGES) or (
        callback.for_kind is not None and scope.covers(callback.for_kind, callback.for_id)
    )


@callbacks.post("/callbacks/{callback_id}/done",
                "Mark a callback request done (called back), with who and when",
                allow=Action.READ_DIRECTORY, params=CallbackPath, company=CALLBACK,
                body=CallbackDone,
                body_optional=True, ok=(200, "The request, done", CallbackRecord),
                errors=(403, 404, 409),
                description="Operators and admins close any; an employee those for them and "
                "their teams. 409 when it is not open any more. No body, or an empty JSON "
                "object.")
async def callback_done(
    request: web.Request, path: CallbackPath, body: CallbackDone | None = None
) -> CallbackRecord:
    """Called back: the request is closed, with who and when."""
    principal = who(request)
    scope = await _scope(request)
    api = ctx(request)
    async with api.sessions.begin() as session:
        found = await store.get_callback(session, path.callback_id)
        if found is None:
            raise not_found(f"no callback request {path.callback_id}", "callback_id")
        if not _may_close(principal, scope, found):
            raise ApiError(403, "forbidden", "this callback request is for someone else")
        try:
            closed = await store.close_callback(
                session, path.callback_id, by=principal.username, now=api.clock()
            )
        except MessageError as exc:
            raise ApiError(409, "conflict", exc.line()) from None
    return closed
