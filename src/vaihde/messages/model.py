"""Messages and callback requests as plain data: validation and sanitising of what callers and
operators give us, the delivery plan (which channel to which address), retry timing. No I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, SerializationInfo, computed_field, field_serializer

from vaihde.config import patterns
from vaihde.config.patterns import CALL_ID, EMAIL_MAX, ID, PHONE, USERNAME
from vaihde.directory import digits
from vaihde.errors import ProblemsError
from vaihde.records import Record, Time

RecipientKind = Literal["employee", "team"]
RECIPIENT_KINDS: tuple[str, ...] = get_args(RecipientKind)
Channel = Literal["email", "sms"]
CHANNELS: tuple[str, ...] = get_args(Channel)
EMAIL, SMS = CHANNELS
# sending: claimed by a sender; a claim whose lease ran out (the process died) is due again.
DeliveryStatus = Literal["pending", "sending", "sent", "retrying", "failed", "cancelled"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
OPEN_DELIVERY = ("pending", "sending", "retrying")
# The message's summary of its deliveries. no_address: nobody to send it to (still stored: the
# operators see it in the console).
MessageStatus = Literal["pending", "sent", "partly_sent", "failed", "cancelled", "no_address"]
MESSAGE_STATUSES: tuple[str, ...] = get_args(MessageStatus)
CallbackStatus = Literal["open", "done", "cancelled"]
CALLBACK_STATUSES: tuple[str, ...] = get_args(CallbackStatus)
Language = Literal["fi", "sv", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)
TAKEN_BY_CALLER = "caller"

NAME_MAX = 200
NOTE_MAX = 2000
PATH_MAX = 1000
RECORDING_PATH_MAX = 500
ADDRESS_MAX = EMAIL_MAX
ERROR_MAX = 1000

# Retry delays after the 1st, 2nd, … failed attempt; the last one repeats until the deadline.
BACKOFF = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 120, 240))
RETRY_FOR = timedelta(hours=24)

_SPACES = re.compile(r"[ \t]+")
# Bidi overrides and isolates (category Cf) can make a name display as something else.
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


class MessageError(ProblemsError, ValueError):
    """A message or callback cannot be stored; nothing was written. `problems` lists each thing
    wrong as "field: what is wrong"."""


# --- sanitising ---------------------------------------------------------------------------


def _one_line(value: str) -> str:
    chars = [" " if unicodedata.category(c) in _INVISIBLE or c.isspace() else c for c in value]
    return _SPACES.sub(" ", "".join(chars)).strip()


def clean_line(value: str, limit: int) -> str:
    """One line of text safe for mail headers, SMS and logs: control and invisible formatting
    characters (CR, LF, NUL, bidi overrides…) become spaces, runs of spaces one, cut to `limit`."""
    return _one_line(unicodedata.normalize("NFC", value))[:limit].rstrip()


def clean_text(value: str, limit: int | None = None) -> str:
    """Several lines of text: like clean_line, but line breaks stay (as \\n) and tabs become
    spaces. Not cut: callers decide whether too long is an error."""
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_one_line(line) for line in value.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text[:limit].rstrip() if limit is not None else text


def caller_digits(number: str | None) -> str | None:
    """The caller's number as digits (None or "" = withheld). Raises ValueError if it is not a
    phone number."""
    if number is None or not number.strip():
        return None
    # Asterisk reports withheld numbers in several spellings.
    if number.strip().lower() in ("anonymous", "unknown", "restricted", "private", "unavailable"):
        return None
    d = digits(number.strip())
    if not 3 <= len(d) <= 32:
        raise ValueError(f"must have 3-32 digits, not {number!r}")
    return d


# --- what is stored -----------------------------------------------------------------------


class Recipient(Record):
    """Whom a message or callback request is for: an employee or a team (by id)."""

    kind: str  # employee | team (checked where it is taken, not here)
    id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class NamedRecipient(Record):
    """A recipient as the API shows it."""

    model_config = ConfigDict(title="Recipient")  # its name in the API

    kind: RecipientKind
    id: str
    name: str = Field(description="from the running configuration")


def _named(recipient: Recipient, info: SerializationInfo) -> NamedRecipient:
    """The recipient with its name from the company in the serializer's context (the id if
    there is none, or it is no longer known)."""
    company = (info.context or {}).get("company")
    name = recipient_name(recipient, company) if company is not None else recipient.id
    return NamedRecipient.model_validate({"kind": recipient.kind, "id": recipient.id,
                                          "name": name})


def _none_if_empty(self: Record, value: str) -> str | None:
    return value or None


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """A message as the flow or an operator hands it over, before validation."""

    recipient: Recipient
    caller_number: str | None  # None or "": withheld
    caller_name: str = ""
    taken_by: str = TAKEN_BY_CALLER  # "caller" (recorded after the tone) or operator username
    path: str = ""  # what the caller tried: whom, through what (call story, as text)
    note: str = ""
    recording_path: str | None = None  # a WAV file the service can read
    call_id: str = ""  # Asterisk's linkedid/uniqueid
    language: str = ""  # the caller's language; "" = the company's


@dataclass(frozen=True, slots=True)
class CallbackDraft:
    caller_number: str  # required: a callback needs somewhere to call
    caller_name: str = ""
    for_kind: str | None = None  # employee | team | None (= whoever takes it)
    for_id: str | None = None
    note: str = ""
    call_id: str = ""
    taken_by: str = TAKEN_BY_CALLER


def _number(number: str | None, problems: list[str]) -> str | None:
    try:
        return caller_digits(number)
    except (ValueError, AttributeError):
        problems.append(f"caller_number: not a phone number: {number!r}")
        return None


def _call_id(call_id: str, problems: list[str]) -> None:
    if not isinstance(call_id, str) or (call_id and not CALL_ID.match(call_id)):
        problems.append(f"call_id: not a call id: {call_id!r}")


def _taken_by_and_note(taken_by: object, note: object, problems: list[str]) -> str:
    """Checks shared by messages and callbacks; returns the cleaned note ("" when refused)."""
    if not isinstance(taken_by, str) or not USERNAME.match(taken_by):
        problems.append(f"taken_by: must be \"caller\" or a user name, not {taken_by!r}")
    if not isinstance(note, str):
        problems.append("note: must be text")
        return ""
    cleaned = clean_text(note)
    if len(cleaned) > NOTE_MAX:
        problems.append(f"note: at most {NOTE_MAX} characters ({len(cleaned)} given)")
    return cleaned


def validate_message(draft: MessageDraft, company_language: str = "fi") -> MessageDraft:
    """The draft cleaned for storing, or MessageError listing everything wrong.

    What comes from the network (caller name, path) is cut to its length limit: a long
    CALLERID(name) must not cost the caller their message. What a person typed (the note) is
    refused when too long, so that the operator sees it rather than losing the end.
    """
    problems: list[str] = []
    recipient = draft.recipient
    if not isinstance(recipient, Recipient) or recipient.kind not in RECIPIENT_KINDS:
        problems.append(f"recipient: must be an employee or a team, not {recipient!r}")
    elif not isinstance(recipient.id, str) or not ID.match(recipient.id):
        problems.append(f"recipient: not an {recipient.kind} id: {recipient.id!r}")
    number = _number(draft.caller_number, problems)
    note = _taken_by_and_note(draft.taken_by, draft.note, problems)
    recording = draft.recording_path
    if recording is not None and (
        not isinstance(recording, str)
        or not recording.startswith("/")
        or len(recording) > RECORDING_PATH_MAX
        or clean_line(recording, RECORDING_PATH_MAX) != recording
    ):
        problems.append(f"recording_path: must be an absolute file path, not {recording!r}")
    _call_id(draft.call_id, problems)
    language = draft.language or company_language
    if language not in LANGUAGES:
        problems.append(f"language: must be one of {', '.join(LANGUAGES)}, not {language!r}")
    for name, value in (("caller_name", draft.caller_name), ("path", draft.path)):
        if not isinstance(value, str):
            problems.append(f"{name}: must be text")
    if problems:
        raise MessageError(problems)
    return replace(draft, caller_number=number, caller_name=clean_line(draft.caller_name, NAME_MAX),
                   path=clean_text(draft.path, PATH_MAX), note=note, language=language)


def validate_callback(draft: CallbackDraft) -> CallbackDraft:
    """The callback request cleaned for storing, or MessageError."""
    problems: list[str] = []
    known = len(problems)
    number = _number(draft.caller_number, problems)
    if number is None and len(problems) == known:
        problems.append("caller_number: a callback needs the caller's number")
    if (draft.for_kind is None) != (draft.for_id is None):
        problems.append("for_kind, for_id: give both or neither")
    elif draft.for_kind is not None:
        if draft.for_kind not in RECIPIENT_KINDS:
            problems.append(f"for_kind: must be employee or team, not {draft.for_kind!r}")
        elif not isinstance(draft.for_id, str) or not ID.match(draft.for_id):
            problems.append(f"for_id: not an {draft.for_kind} id: {draft.for_id!r}")
    note = _taken_by_and_note(draft.taken_by, draft.note, problems)
    if not isinstance(draft.caller_name, str):
        problems.append("caller_name: must be text")
    _call_id(draft.call_id, problems)
    if problems:
        raise MessageError(problems)
    return replace(draft, caller_number=number or "",
                   caller_name=clean_line(draft.caller_name, NAME_MAX), note=note)


class DeliveryRecord(Record):
    """One delivery of a message: to one address over one channel."""

    model_config = ConfigDict(title="Delivery")  # its name in the API

    id: int
    message_id: int = Field(exclude=True)
    channel: Channel
    address: str = Field(description="e-mail address or SMS number")
    status: DeliveryStatus
    attempts: int = Field(description="attempts made (since the last retry by hand)")
    # When it is due; None once final (sent, failed, cancelled). While sending, the sender's
    # lease: no retry is scheduled then (next_retry_at says so).
    next_attempt_at: Time | None = Field(exclude=True)
    last_error: str = Field(description='why the last attempt failed; "" if none')
    sent_at: Time | None

    @computed_field(  # type: ignore[prop-decorator]
        return_type=Time | None,
        description="when it is tried (again); null while being sent and once final",
    )
    @property
    def next_retry_at(self) -> datetime | None:
        return self.next_attempt_at if self.status in ("pending", "retrying") else None


class MessageRecord(Record):
    """A message taken for an employee or a team, with its deliveries."""

    model_config = ConfigDict(title="Message")  # its name in the API

    id: int
    created_at: Time
    recipient: Recipient = Field(serialization_alias="for")
    caller_number: str | None = Field(description="digits; null = withheld or not given")
    caller_name: str
    taken_by: str = Field(description='"caller" (recorded after the tone) or the operator\'s '
                          "username")
    path: str = Field(description="what the caller tried, and how")
    note: str = Field(serialization_alias="text")
    recording_path: str | None = Field(exclude=True)
    call_id: str
    language: Language
    status: MessageStatus = Field(description="summary of the deliveries; no_address: nobody "
                                  "to send it to (operators see it here)")
    deliveries: tuple[DeliveryRecord, ...] = ()
    # The recipient's company (issue 12): its language, time zone and name go into the texts.
    company_id: str = Field("main", exclude=True)

    _for = field_serializer("recipient")(_named)
    _call_id = field_serializer("call_id")(_none_if_empty)

    @computed_field(  # type: ignore[prop-decorator]
        description="GET /messages/{id}/recording serves it"
    )
    @property
    def has_recording(self) -> bool:
        return self.recording_path is not None


class CallbackRecord(Record):
    """A request to call a caller back, for an employee, a team or whoever takes it."""

    model_config = ConfigDict(title="Callback")  # its name in the API

    id: int
    created_at: Time
    caller_number: str = Field(description="digits")
    caller_name: str
    for_kind: str | None = Field(serialization_alias="for")  # employee | team | None
    for_id: str | None = Field(exclude=True)
    note: str = Field(serialization_alias="text")
    call_id: str
    taken_by: str
    status: CallbackStatus
    handled_by: str | None
    handled_at: Time | None

    @field_serializer("for_kind")
    def _for(self, kind: str | None, info: SerializationInfo) -> NamedRecipient | None:
        if kind is None or self.for_id is None:
            return None
        return _named(Recipient(kind=kind, id=self.for_id), info)

    _call_id = field_serializer("call_id")(_none_if_empty)


# --- the delivery plan ----------------------------------------------------------------------


class Company(Protocol):
    """What the plan needs of vaihde.company.CompanyConfig."""

    @property
    def employees(self) -> Mapping[str, Any]: ...
    @property
    def teams(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Target:
    channel: str
    address: str


def _valid_address(channel: str, address: str) -> str | None:
    address = address.strip()
    if channel == EMAIL:
        return address if len(address) <= ADDRESS_MAX and patterns.EMAIL.match(address) else None
    compact = address.replace(" ", "").replace("-", "")
    return compact if PHONE.match(compact) else None


def plan_deliveries(
    recipient: Recipient, company: Company, channels: Iterable[str] = CHANNELS
) -> list[Target]:
    """Where a message for `recipient` goes: an employee's e-mail and SMS number; a team's own
    e-mail, else every member's e-mail (teams get no SMS: a whole team's phones would buzz).

    Only `channels` (those the service has settings for) are planned. Raises MessageError if
    the company has no such recipient. Addresses that are not valid are left out.
    """
    allowed = set(channels)
    wanted: list[tuple[str, str]] = []
    if recipient.kind == "employee":
        employee = company.employees.get(recipient.id)
        if employee is None:
            raise MessageError([f"recipient: no employee {recipient.id!r}"])
        wanted = [(EMAIL, employee.email or ""), (SMS, employee.sms or "")]
    elif recipient.kind == "team":
        team = company.teams.get(recipient.id)
        if team is None:
            raise MessageError([f"recipient: no team {recipient.id!r}"])
        if team.email:
            wanted = [(EMAIL, team.email)]
        else:
            for member in team.members:
                employee = company.employees.get(member)
                if employee is not None:
                    wanted.append((EMAIL, employee.email or ""))
    else:
        raise MessageError([f"recipient: must be an employee or a team, not {recipient.kind!r}"])
    out: list[Target] = []
    for channel, raw in wanted:
        address = _valid_address(channel, raw) if raw and channel in allowed else None
        if address is not None and Target(channel, address) not in out:
            out.append(Target(channel, address))
    return out


def recipient_name(recipient: Recipient, company: Company) -> str:
    """The recipient's name for texts ("Anna Virtanen", "Myynti"); the id if no longer known."""
    table = company.employees if recipient.kind == "employee" else company.teams
    found = table.get(recipient.id)
    return found.name if found is not None else recipient.id


def summary_status(statuses: Iterable[str]) -> str:
    """The message's status from its deliveries' statuses."""
    s = list(statuses)
    if not s:
        return "no_address"
    if any(x in OPEN_DELIVERY for x in s):
        return "pending"
    live = [x for x in s if x != "cancelled"]
    if not live:
        return "cancelled"
    if all(x == "sent" for x in live):
        return "sent"
    return "partly_sent" if "sent" in live else "failed"


def next_attempt(
    attempts: int,
    created_at: datetime,
    now: datetime,
    *,
    backoff: tuple[timedelta, ...] = BACKOFF,
    retry_for: timedelta = RETRY_FOR,
) -> datetime | None:
    """When to try again after `attempts` failed attempts, or None: give up (failed).

    The last try falls on the deadline (created_at + retry_for) rather than before it, so a
    gateway that is down for a day still gets its full day.
    """
    deadline = created_at + retry_for
    if now >= deadline:
        return None
    delay = backoff[min(max(attempts, 1), len(backoff)) - 1]
    return min(now + delay, deadline)


# --- what the transports get -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery to send, with what the texts need to know about the company."""

    message: MessageRecord
    delivery: DeliveryRecord
    language: str  # the company's language: the texts are for the employee
    timezone: str
    company_name: str
    recipient_name: str


class SendError(Exception):
    """A transport could not send. permanent=True: trying again cannot help (the address or the
    content was refused), so the delivery fails at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


# --- texts shared by e-mail and SMS --------------------------------------------------------

WITHHELD = {"fi": "Tuntematon numero", "sv": "Okänt nummer", "en": "Withheld number"}
_TIME_FORMATS = {
    "fi": "{d.day}.{d.month}.{d.year} klo {d.hour}.{d.minute:02d}",
    "sv": "{d.day}.{d.month}.{d.year} kl. {d.hour}.{d.minute:02d}",
    "en": "{d.year}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}",
}


def caller_label(message: MessageRecord, language: str) -> str:
    """"Matti Meikäläinen, 0401234567", the number alone, or "Withheld number"."""
    number = message.caller_number or WITHHELD.get(language, WITHHELD["en"])
    return f"{message.caller_name}, {number}" if message.caller_name else number


def local_time(at: datetime, timezone: str, language: str) -> str:
    """`at` as wall-clock time in the company's time zone, written the local way."""
    try:
        local = at.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = at
    return _TIME_FORMATS.get(language, _TIME_FORMATS["en"]).format(d=local)
