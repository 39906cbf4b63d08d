"""What the REST API accepts and answers for urgent messages: the SMS gateway's inbound reply
(the webhook's body), what a confirmation answers, and the operators' list. An urgent message is
sent as vaihde.dispatch.store.DispatchRecord.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vaihde.api.route import MAX_INT32, Body, PathParams, Query
from vaihde.dispatch.model import REPLY_MAX
from vaihde.dispatch.store import DispatchRecord
from vaihde.records import Record, Time

# The header the gateway sends the shared secret in (messages.sms.inbound_token).
TOKEN_HEADER = "X-Vaihde-Token"
INBOUND_BODY_MAX = 8192  # an SMS reply with its envelope; anything larger is not one


class InboundSms(Body):
    """An SMS the gateway received for us: who sent it and what it says. A reply code in the
    text confirms the urgent message it was given for."""

    from_: str = Field(alias="from", min_length=3, max_length=40,
                       description="the sender's number, as the gateway gives it")
    text: str = Field(max_length=REPLY_MAX, description="the SMS text, e.g. \"K7QX4M\" or "
                      "\"ok k7qx4m\"")


class InboundResult(Record):
    """What a reply did."""

    confirmed: bool
    message_id: int
    urgent_id: int
    by: str = Field(description="the employee who confirmed")
    at: Time


class UrgentPath(PathParams):
    urgent_id: Annotated[int, Field(ge=0, le=MAX_INT32, description="urgent message number")]


class UrgentQuery(Query):
    status: Literal["open", "confirmed", "exhausted", "all"] = Field(
        "all", description="only those in this state (default all)")
    limit: int = Field(50, ge=1, le=200, description="1-200, newest first")


class UrgentList(Record):
    urgent: list[DispatchRecord]
