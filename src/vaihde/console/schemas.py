"""What the REST API accepts and answers for the operator console: a transfer's body, the
replies to actions, and the board and its calls as vaihde.console.board builds them (plain data
on the hot path of the live stream; these models describe it for the OpenAPI document, and the
API tests check every board against them). docs/console-api.md explains each field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidatorFunctionWrapHandler, WrapValidator

from vaihde.api.route import Body, PathParams
from vaihde.config.patterns import NUMBER
from vaihde.console.actions import Target
from vaihde.presence.model import State
from vaihde.records import Record, Time, fail


class CallPath(PathParams):
    call_id: str = Field(description="the call's id (the caller channel's Uniqueid)")


# --- a transfer ---------------------------------------------------------------------------------


class ToEmployee(Body):
    employee: str

    @property
    def target(self) -> Target:
        return Target("employee", self.employee)


class ToTeam(Body):
    team: str

    @property
    def target(self) -> Target:
        return Target("team", self.team)


class ToNumber(Body):
    number: str = Field(pattern=NUMBER.pattern)

    @property
    def target(self) -> Target:
        return Target("number", self.number)


def _one_target(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    shape = 'must be one of {"employee": id}, {"team": id}, {"number": digits}'
    if not isinstance(value, dict) or len(value) != 1:
        raise fail("invalid", shape, "to")
    ((kind, ref),) = value.items()
    if kind not in ("employee", "team", "number"):
        raise fail("invalid", shape, "to")
    if not isinstance(ref, str) or not 1 <= len(ref) <= 40:
        raise fail("wrong_type", f"{kind} must be a string of 1-40 characters", "to")
    if kind == "number" and not NUMBER.match(ref):
        raise fail("invalid", "a number is 3-32 digits, optionally after +", "to")
    return handler(value)


class ConsoleTransfer(Body):
    """Whom to transfer the call to, and how."""

    to: Annotated[ToEmployee | ToTeam | ToNumber, WrapValidator(_one_target)]
    mode: Literal["blind", "attended"] = "blind"


class ConsoleActionReply(Record):
    sometimes = ("call_id", "space")

    ok: bool
    action: str
    call_id: str | None = None
    space: str | None = Field(None, description="park: the parking space")


# --- the board ---------------------------------------------------------------------------------


class KnownCaller(Record):
    name: str
    organisation: str


class ConsoleCaller(Record):
    number: str
    name: str = Field(description="untrusted: render as text")
    known: KnownCaller | None


class Sought(Record):
    kind: Literal["employee", "team", "operator", "oncall"]
    id: str
    name: str
    path: str = Field(description="direct_number, menu_option, extension, name_search, "
                      "operator, …")
    detail: str


class SoughtAvailability(Record):
    sometimes = ("internal_note", "on_call")

    state: State
    until: Time | None
    note: str
    internal_note: str = ""
    on_call: bool = False


class Bounced(Record):
    target: str
    why: str
    by: str


class TransferState(Record):
    target: str
    name: str
    mode: Literal["blind", "attended"]
    by: str
    answered: bool


class Parking(Record):
    space: str
    lot: str
    timeout: int | None


class Party(Record):
    sometimes = ("employee",)

    channel: str
    name: str
    number: str
    employee: str = ""


class Dialled(Record):
    number: str = Field(description="digits")
    label: str = Field(description="the number's label in the company file")


class UrgentRule(Record):
    when: str = Field(description="when a message is urgent, in the company's words")
    contact: str = Field(description="whom to contact: an employee, team or on-call rota id "
                         "(\"\" = as usual)")
    name: str = Field(description="the contact's name")


class Profile(Record):
    """The account profile of the company the call belongs to (the company file's profile:)."""

    company: str = Field(description="the company's name")
    language: str = Field(description="the call's language (fi, sv, en)")
    answer: str = Field(description="what the operator says on answering, in the call's "
                        "language; {operator} stands for the operator's own name")
    instructions: str = Field(description="free text for operators (several lines)")
    ask: list[str] = Field(description="what to ask the caller, in order")
    urgent: list[UrgentRule]


class SoughtRef(Record):
    kind: str
    id: str
    name: str


class EarlierCall(Record):
    at: Time
    sought: SoughtRef | None
    path: str
    outcome: str
    ended: str = Field(description="the outcome in words")


class Earlier(Record):
    today: int
    last_30_days: int
    recent: list[EarlierCall]


class StoryStep(Record):
    at: Time
    kind: str
    detail: dict[str, Any]


class CallCompany(Record):
    id: str = Field(description="the company's id (company.id of its file; `main` by default)")
    name: str = Field(description="its name, in which the operator answers")


class ConsoleCall(Record):
    sometimes = ("transfer", "parking", "dialled", "channel", "profile", "company")

    id: str = Field(description="the caller channel's Uniqueid")
    state: Literal["waiting", "ringing", "active", "parked", "transferring"]
    queue: str | None
    position: int | None
    since: Time = Field(description="when the call entered its current state (UTC)")
    answered_at: Time | None
    caller: ConsoleCaller
    sought: Sought | None
    what_happened: str
    availability: SoughtAvailability | None
    bounced: Bounced | None
    transfer: TransferState | None = None
    parking: Parking | None = None
    parties: list[Party]
    dialled: Dialled | None = None
    profile: Profile | None = None
    company: CallCompany | None = None
    earlier: Earlier
    story: list[StoryStep]
    channel: str = ""


class AmiState(Record):
    connected: bool


class ConsoleBoard(Record):
    seq: int = Field(description="the id of the last stream event it includes")
    ami: AmiState
    waiting: list[ConsoleCall]
    active: list[ConsoleCall]
    parked: list[ConsoleCall]
