"""What the REST API accepts and answers for messages and callback requests: the bodies that
take them, the list filters, and the pages. A message (MessageRecord) and a callback request
(CallbackRecord) are sent as vaihde.messages.model has them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from vaihde.api.route import MAX_INT32, Body, PathParams, Query
from vaihde.config.patterns import CALL_ID, CALL_ID_MAX, ID, NUMBER
from vaihde.messages.model import (
    NAME_MAX,
    NOTE_MAX,
    RECIPIENT_KINDS,
    CallbackRecord,
    MessageRecord,
    MessageStatus,
    Recipient,
    clean_text,
)
from vaihde.records import TIME_FORMAT, Record, Time, fail

# --- whom it is for ---------------------------------------------------------------------------


class ForEmployee(Body):
    employee: str = Field(description="employee id")

    @property
    def recipient(self) -> Recipient:
        return Recipient(kind="employee", id=self.employee)


class ForTeam(Body):
    team: str = Field(description="team id")

    @property
    def recipient(self) -> Recipient:
        return Recipient(kind="team", id=self.team)


def _one_recipient(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """{"employee": id} or {"team": id}, each mistake named by its own field (for.employee)."""
    shape = 'must be {"employee": id} or {"team": id}'
    if not isinstance(value, dict) or len(value) != 1:
        raise fail("wrong_type", shape, "for")
    ((kind, ident),) = value.items()
    if kind not in RECIPIENT_KINDS:
        raise fail("unknown_field", f"unknown field {kind!r}; use employee or team", f"for.{kind}")
    if not isinstance(ident, str):
        raise fail("wrong_type", f"must be an {kind} id (a string)", f"for.{kind}")
    if not ID.match(ident):
        raise fail("invalid", f"{ident!r} is not an {kind} id", f"for.{kind}")
    return handler(value)


RecipientRef = Annotated[ForEmployee | ForTeam, WrapValidator(_one_recipient)]
FOR = "whom it is for: an employee or a team of the directory"


# --- what operators type ----------------------------------------------------------------------


def _caller_number(raw: str) -> str | None:
    if raw.strip() == "":
        return None  # not given: withheld, or the caller did not say
    compact = raw.replace(" ", "").replace("-", "")
    if not NUMBER.match(compact):
        raise fail("invalid", f"{raw!r} is not a phone number: 3-32 digits with an optional "
                   "leading +")
    return compact


CallerNumber = Annotated[str, Field(
    max_length=64, description="3-32 digits with an optional leading + (spaces and - are "
    "ignored); stored as digits"), AfterValidator(_caller_number)]


def _call_id(value: str) -> str:
    if value and not CALL_ID.match(value):
        raise fail("invalid", f"{value!r} is not a call id (letters, digits and . _ : -)")
    return value


CallId = Annotated[str, Field(
    max_length=CALL_ID_MAX,
    description="the Asterisk call (linkedid) it came from; letters, digits . _ : -"),
    AfterValidator(_call_id)]


def _id(value: str | None) -> str | None:
    if value is not None and not ID.match(value):
        raise fail("invalid", f"{value!r} is not an id")
    return value


def _required_text(value: str) -> str:
    if not clean_text(value):
        raise fail("missing_field", "is empty: write what the caller wanted")
    return value


class TakeMessage(Body):
    """A message an operator takes for an employee or a team."""

    for_: RecipientRef = Field(alias="for", description=FOR)
    caller_number: CallerNumber | None = None
    caller_name: str = Field("", max_length=NAME_MAX)
    text: Annotated[str, AfterValidator(_required_text)] = Field(min_length=1,
                                                                 max_length=NOTE_MAX)
    call_id: CallId = ""
    urgent: bool = Field(False, description="must be confirmed: the person it is for is "
                         "texted a reply code, then whoever is on call (GET /urgent)")
    rota: Annotated[str | None, AfterValidator(_id)] = Field(
        None, max_length=40, description="urgent: the on-call rota to escalate along (an "
        "urgent rule's contact); default: the rota of the recipient's team")


class TakeCallback(Body):
    """A callback request an operator takes."""

    for_: RecipientRef | None = Field(
        None, alias="for", description="whom to call back for; null: whoever takes it")
    caller_number: CallerNumber
    caller_name: str = Field("", max_length=NAME_MAX)
    text: str = Field("", max_length=NOTE_MAX)
    call_id: CallId = ""

    @model_validator(mode="after")
    def _has_number(self) -> TakeCallback:
        if self.caller_number is None:
            raise fail("invalid", "a callback needs the caller's number", "caller_number")
        return self


class CallbackDone(Body):
    """Nothing to say yet (an object with fields is a typo)."""


# --- reading ----------------------------------------------------------------------------------

MessageId = Annotated[int, Field(ge=0, le=MAX_INT32, description="message number")]


class MessagePath(PathParams):
    message_id: MessageId


class CallbackPath(PathParams):
    callback_id: Annotated[int, Field(ge=0, le=MAX_INT32,
                                      description="callback request number")]


_Filter = Annotated[str | None, AfterValidator(_id)]


class _Listing(Query):
    employee: _Filter = Field(None, max_length=40, description="only those for this employee")
    team: _Filter = Field(None, max_length=40, description="only those for this team")
    limit: int = Field(50, ge=1, le=200, description="1-200, default 50")
    cursor: str | None = Field(None, max_length=40,
                               description="next_cursor of the previous page")

    @model_validator(mode="after")
    def _one_filter(self) -> Any:
        if self.employee is not None and self.team is not None:
            raise fail("invalid", "give employee or team, not both", "team")
        return self

    @property
    def recipient(self) -> Recipient | None:
        if self.employee is not None:
            return Recipient(kind="employee", id=self.employee)
        if self.team is not None:
            return Recipient(kind="team", id=self.team)
        return None


class MessagesQuery(_Listing):
    status: MessageStatus | None = Field(
        None, description="only messages whose delivery summary is this")
    since: Time | None = Field(None,
                               description=f"only those taken at or after this ({TIME_FORMAT})")


class CallbacksQuery(_Listing):
    status: Literal["open", "done", "cancelled", "all"] = Field(
        "open", description="open (default), done, cancelled or all")


NEXT_CURSOR = "pass as cursor for the next page; null: no more"


class MessageList(Record):
    messages: list[MessageRecord]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class CallbackList(Record):
    callbacks: list[CallbackRecord]
    next_cursor: str | None = Field(description=NEXT_CURSOR)
