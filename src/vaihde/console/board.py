"""The operator's board as data: live call state (tracker), each call's story, what is known
about the caller and the sought employee's availability, turned into the Board/Call JSON of
docs/console-api.md. Pure: everything, the clock included, is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from vaihde import contract
from vaihde.ami.devicestate import device_of_channel
from vaihde.ami.tracker import Bridge, Channel, ParkedCall, QueueCaller
from vaihde.company.schema import CompanyConfig
from vaihde.presence.model import Availability
from vaihde.story import CallStory, Step, clean

# Channel name → device: "PJSIP/op1-0000001a" → "PJSIP/op1",
# "Local/anna@vaihde-test-phones-0000002a;1" → "Local/anna@vaihde-test-phones".

WAITING, RINGING, ACTIVE, PARKED, TRANSFERRING = (
    "waiting", "ringing", "active", "parked", "transferring",
)
# Which list of the board each state is shown in.
LIST_OF = {
    WAITING: "waiting", RINGING: "waiting", ACTIVE: "active", TRANSFERRING: "active",
    PARKED: "parked",
}
# Bridges that hold a channel without connecting it to anyone.
_HOLDING = ("holding", "parking")

STATE_WORDS = {
    "meeting": "in a meeting",
    "video_conference": "in a video conference",
    "away": "away",
    "vacation": "on vacation",
    "sick": "off sick",
    "off_work": "off work",
    "on_call": "on another call",
}
DIAL_WORDS = {
    "noanswer": "no answer",
    "busy": "busy",
    "chanunavail": "phone unreachable",
    "congestion": "phone unreachable",
    "cancel": "caller gave up",
}


class TrackerView(Protocol):
    """What the board reads of vaihde.ami.tracker.CallTracker."""

    @property
    def channels(self) -> Mapping[str, Channel]: ...
    @property
    def bridges(self) -> Mapping[str, Bridge]: ...
    @property
    def queues(self) -> Mapping[str, list[QueueCaller]]: ...
    @property
    def parked(self) -> Mapping[str, ParkedCall]: ...


@dataclass(frozen=True, slots=True)
class Contact:
    """One earlier call from the number, as the contact history keeps it."""

    at: datetime
    sought: str  # "employee:anna", "team:sales", "operator:", "" (never said)
    path: str
    outcome: str  # answered, noanswer, busy, message, callback, hangup…


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """From the caller register and contact history (loaded by the stream, off this path)."""

    name: str = ""
    organisation: str = ""
    known: bool = False
    today: int = 0
    last_30_days: int = 0
    recent: tuple[Contact, ...] = ()  # the last RECENT contacts, newest first


RECENT = 5  # earlier contacts shown on a call card
OUTCOME_WORDS = {
    "answered": "answered",
    "noanswer": "no answer",
    "busy": "busy",
    "chanunavail": "phone unreachable",
    "congestion": "phone unreachable",
    "cancel": "caller gave up",
    "hangup": "caller hung up",
    "message": "left a message",
    "callback": "asked to be called back",
}


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer the console started; `bounced` says why it came back ("" = it has not)."""

    target: str  # employee:anna | team:sales | number:0401234567
    name: str  # for people: "Anna Virtanen"
    by: str  # the transferring operator's username
    mode: str  # blind | attended
    started_wall: float = 0.0
    operator_channel: str = ""  # attended: uniqueid of the operator's channel that consults
    bounced: str = ""  # noanswer, busy, chanunavail…


@dataclass(frozen=True)
class Inputs:
    tracker: TrackerView
    now: float  # epoch seconds
    stories: Callable[[str], CallStory | None] = lambda _id: None
    company: CompanyConfig | None = None
    # Several companies: a call's company by the id its story carries.
    company_by_id: Callable[[str], CompanyConfig | None] | None = None
    availability: Callable[[str], Availability] | None = None
    # By facts_key(company id, caller number): what one company knows is that company's.
    callers: Mapping[str, CallerFacts] = field(default_factory=dict)
    transfers: Mapping[str, Transfer] = field(default_factory=dict)  # by call id
    phones: Mapping[str, str] = field(default_factory=dict)  # operators' devices → names
    previous: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # last calls by id
    tz: tzinfo = UTC
    # Several Asterisks: the name of the one that holds a call (its card says so).
    asterisk_of: Callable[[str], str] | None = None


@dataclass
class Board:
    calls: dict[str, dict[str, Any]]  # by id, in board order

    def lists(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {"waiting": [], "active": [], "parked": []}
        for call in self.calls.values():
            out[LIST_OF[call["state"]]].append(call)
        return out

    def to_json(self, seq: int, ami_connected: bool) -> dict[str, Any]:
        return {"seq": seq, "ami": {"connected": ami_connected}, **self.lists()}


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _peers(view: TrackerView, ch: Channel) -> list[Channel]:
    br = view.bridges.get(ch.bridge_id) if ch.bridge_id else None
    if br is None or br.technology in _HOLDING or br.bridge_type in _HOLDING:
        return []
    return [view.channels[u] for u in br.members if u != ch.uniqueid and u in view.channels]


def _queue_entry(view: TrackerView, uid: str) -> tuple[str, QueueCaller] | None:
    for queue, entries in view.queues.items():
        for qc in entries:
            if qc.uniqueid == uid:
                return queue, qc
    return None


def call_state(view: TrackerView, ch: Channel) -> str | None:
    """The console's state of a caller's channel; None when it is no business of the operator
    (in the menu, or ringing an employee the caller chose)."""
    if ch.uniqueid in view.parked:
        return PARKED
    if ch.dialed_by is not None:
        return None  # a dialled leg (a phone), never a caller
    context = ch.context
    if _peers(view, ch):
        # In the hold context too: an attended transfer was completed (or cancelled).
        return ACTIVE
    if context in (contract.CONSOLE_HOLD_CONTEXT, contract.CONSOLE_TRANSFER_CONTEXT):
        return TRANSFERRING
    if context in (contract.CONSOLE_ANSWER_CONTEXT, contract.CONSOLE_BOUNCE_CONTEXT):
        return RINGING
    if context == contract.OPERATOR_CONTEXT or _queue_entry(view, ch.uniqueid) is not None:
        return WAITING
    return None


def is_caller(view: TrackerView, ch: Channel, story: CallStory | None) -> bool:
    if ch.dialed_by is not None:
        return False
    if story is not None or ch.uniqueid in view.parked:
        return True
    # The dialplan marks a caller's own leg with its call id (VAIHDE_CALL_ID = its Uniqueid;
    # the legs it dials inherit another's). So a call that another instance served, whose story
    # lives there, is on this instance's board too (several instances, one Asterisk's calls).
    if ch.variables.get(contract.CALL_ID) == ch.uniqueid:
        return True
    return ch.context == contract.OPERATOR_CONTEXT or ch.context.startswith("vaihde-console-")


def build(inputs: Inputs) -> Board:
    """Every call the operator should see, waiting ones first by how long they have waited."""
    view = inputs.tracker
    calls: list[dict[str, Any]] = []
    for ch in view.channels.values():
        story = inputs.stories(ch.uniqueid)
        if not is_caller(view, ch, story) and _queue_entry(view, ch.uniqueid) is None:
            continue
        transfer = inputs.transfers.get(ch.uniqueid)
        state = call_state(view, ch)
        if state is None:
            continue
        calls.append(call_json(inputs, ch, state, story, transfer))
    order = {"waiting": 0, "active": 1, "parked": 2}
    calls.sort(key=lambda c: (order[LIST_OF[c["state"]]], c["_sort"], c["id"]))
    position = 0
    for call in calls:
        del call["_sort"]
        if LIST_OF[call["state"]] == "waiting" and call["position"] is None:
            position += 1
            call["position"] = position
        elif LIST_OF[call["state"]] == "waiting":
            position = max(position, call["position"])
    return Board({c["id"]: c for c in calls})


def _since(inputs: Inputs, call_id: str, state: str, first: float) -> float:
    """When the call entered its current state: carried over from the last board."""
    prev = inputs.previous.get(call_id)
    if prev is not None and prev.get("state") == state and "_since" in prev:
        return float(prev["_since"])
    return first if prev is None else inputs.now


def call_json(
    inputs: Inputs,
    ch: Channel,
    state: str,
    story: CallStory | None,
    transfer: Transfer | None,
) -> dict[str, Any]:
    view = inputs.tracker
    company = _company_of(inputs, story)
    queued = _queue_entry(view, ch.uniqueid)
    parked = view.parked.get(ch.uniqueid)
    first = ch.created_wall
    if queued is not None:
        first = queued[1].joined_wall
    elif parked is not None:
        first = parked.parked_wall
    since = _since(inputs, ch.uniqueid, state, first)
    prev = inputs.previous.get(ch.uniqueid)
    answered = prev.get("_answered") if prev is not None else None
    peers = _peers(view, ch)
    if answered is None and peers:
        br = view.bridges.get(ch.bridge_id or "")
        answered = br.created_wall if br is not None and prev is None else inputs.now
    number = clean(ch.caller_num or (story.caller_number if story else ""), 40)
    facts = inputs.callers.get(facts_key(company, number)) if number else None
    sought = _sought(story, company)
    availability = None
    if sought is not None and sought["kind"] == "employee" and inputs.availability is not None:
        av = inputs.availability(sought["id"])
        availability = {
            "state": av.state.value,
            "until": av.until.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if av.until else None,
            "note": av.note_for_callers,
            "internal_note": av.internal_note,
            "on_call": av.on_call,
        }
    bounced = None
    if transfer is not None and transfer.bounced:
        bounced = {"target": transfer.name or transfer.target, "why": transfer.bounced,
                   "by": transfer.by}
    elif ch.context == contract.CONSOLE_BOUNCE_CONTEXT:
        # Came back, but the service does not know from where (it restarted meanwhile).
        last = ch.dials[-1].status.lower() if ch.dials else ""
        bounced = {"target": "", "why": last, "by": ""}
    out: dict[str, Any] = {
        "id": ch.uniqueid,
        "state": state,
        "queue": queued[0] if queued else None,
        "position": queued[1].position if queued else None,
        "since": iso(since),
        "answered_at": iso(answered),
        "caller": {
            "number": number,
            "name": clean(ch.caller_name or (story.caller_name if story else "")),
            "known": {"name": facts.name, "organisation": facts.organisation}
            if facts is not None and facts.known else None,
        },
        # Whose call it is: the operator answers in that company's name.
        "company": {"id": company.id, "name": company.company.name}
        if company is not None else None,
        "sought": sought,
        # Times as the client's callers and people live them: in the call's company's zone.
        "what_happened": what_happened(story, ch, company,
                                       company.zone if company is not None else inputs.tz,
                                       transfer),
        "availability": availability,
        "bounced": bounced,
        "transfer": _transfer_json(view, transfer, state),
        "parking": {"space": parked.space, "lot": parked.lot, "timeout": parked.timeout}
        if parked is not None else None,
        "parties": [_party(p, company, inputs.phones) for p in peers],
        "dialled": dialled_json(story, company),
        "profile": profile_json(story, company),
        "earlier": {"today": facts.today if facts else 0,
                    "last_30_days": facts.last_30_days if facts else 0,
                    "recent": [contact_json(c, company) for c in facts.recent]
                    if facts else []},
        "story": [_step(s) for s in story.steps] if story is not None else [],
        "channel": ch.name,
        **({"asterisk": inputs.asterisk_of(ch.uniqueid)} if inputs.asterisk_of else {}),
        "_sort": since,
        "_since": since,
        "_answered": answered,
    }
    return out


def facts_key(company: CompanyConfig | None, number: str) -> str:
    """Caller facts are kept per company and number (a caller's details told to one company
    are never shown on another company's call)."""
    return f"{company.id if company is not None else 'main'}/{number}"


def _company_of(inputs: Inputs, story: CallStory | None) -> CompanyConfig | None:
    if story is not None and story.company and inputs.company_by_id is not None:
        found = inputs.company_by_id(story.company)
        if found is not None:
            return found
    return inputs.company


def dialled_json(story: CallStory | None, company: CompanyConfig | None) -> dict[str, str] | None:
    """The number the caller dialled and what it is: a company number's label ("Vaihde",
    "Asiakastuki") or whose direct number it is."""
    if story is None or not (story.dialled.isascii() and story.dialled.isdigit()):
        return None  # unknown, or not a number (the dialplan FILTER()s it to digits)
    label = ""
    if company is not None:
        number = company.company_number(story.dialled)
        if number is not None:
            label = number.label
        else:
            employee = company.employee_by_number(story.dialled)
            if employee is not None:
                label = f"{employee.name} (direct)"
    return {"number": story.dialled, "label": label}


def call_language(story: CallStory | None, company: CompanyConfig) -> str:
    """The language the caller was spoken to in last: a switch in the menu, else their
    number's, else the company's."""
    if story is not None:
        for step in reversed(story.steps):
            if step.kind in ("language", "entered") and step.detail.get("language"):
                return str(step.detail["language"])
        if story.dialled:
            return company.number_language(story.dialled)
    return company.company.language


def profile_json(story: CallStory | None, company: CompanyConfig | None) -> dict[str, Any] | None:
    """The account profile on the card: the company's name, the answer phrase in the call's
    language ({operator} is filled in by each operator's page), the instructions, what to ask
    and the urgent rules with whom to contact by name."""
    if company is None:
        return None
    profile = company.profile
    language = call_language(story, company)
    return {
        "company": company.company.name,
        "language": language,
        "answer": profile.answer_in(language, company.company.language),
        "instructions": profile.instructions,
        "ask": list(profile.ask),
        "urgent": [{"when": u.when, "contact": u.contact,
                    "name": _contact_name(u.contact, company) if u.contact else ""}
                   for u in profile.urgent],
    }


def _contact_name(ident: str, company: CompanyConfig) -> str:
    for kind in ("employee", "team", "oncall"):
        name = _sought_name(kind, ident, company)
        if name != ident:
            return name
    return ident


def _sought_name(kind: str, ident: str, company: CompanyConfig | None) -> str:
    if kind == "operator":
        return "the switchboard"
    if company is not None and kind == "oncall" and ident in company.oncall:
        return company.oncall[ident].name
    if company is not None and kind == "employee" and ident in company.employees:
        return company.employees[ident].name
    if company is not None and kind == "team" and ident in company.teams:
        return company.teams[ident].name
    return ident


def contact_json(contact: Contact, company: CompanyConfig | None) -> dict[str, Any]:
    """An earlier call for the card: when, whom the caller sought, how it ended."""
    kind, _, ident = contact.sought.partition(":")
    sought = None
    if kind:
        sought = {"kind": kind, "id": ident, "name": _sought_name(kind, ident, company)}
    return {
        "at": contact.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "sought": sought,
        "path": contact.path,
        "outcome": contact.outcome,
        "ended": OUTCOME_WORDS.get(contact.outcome, contact.outcome.replace("_", " ")),
    }


def public(call: Mapping[str, Any]) -> dict[str, Any]:
    """A call as sent to browsers (without the board's own bookkeeping)."""
    return {k: v for k, v in call.items() if not k.startswith("_")}


def _transfer_json(
    view: TrackerView, transfer: Transfer | None, state: str
) -> dict[str, Any] | None:
    if transfer is None or state not in (TRANSFERRING, ACTIVE) or transfer.bounced:
        return None
    answered = False
    if transfer.mode == "attended" and transfer.operator_channel:
        op = view.channels.get(transfer.operator_channel)
        answered = op is not None and bool(_peers(view, op))
    return {"target": transfer.target, "name": transfer.name, "mode": transfer.mode,
            "by": transfer.by, "answered": answered}


def _party(ch: Channel, company: CompanyConfig | None, phones: Mapping[str, str]) -> dict[str, str]:
    device = device_of_channel(ch.name)
    employee = company.employee_by_device(device) if company is not None else None
    if employee is not None:
        return {"channel": ch.name, "name": employee.name, "number": employee.extension,
                "employee": employee.id}
    if device in phones:
        return {"channel": ch.name, "name": phones[device], "number": ""}
    return {"channel": ch.name, "name": clean(ch.connected_name or ch.caller_name),
            "number": clean(ch.caller_num, 40)}


def _step(step: Step) -> dict[str, Any]:
    return {"at": step.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "kind": step.kind, "detail": dict(step.detail)}


def _last(story: CallStory, kind: str) -> Step | None:
    return next((s for s in reversed(story.steps) if s.kind == kind), None)


def _sought(story: CallStory | None, company: CompanyConfig | None) -> dict[str, Any] | None:
    if story is None or not story.sought_kind:
        return None
    kind, ident = story.sought_kind, story.sought_id
    name = ident
    if kind == "employee" and company is not None and ident in company.employees:
        name = company.employees[ident].name
    elif kind == "team" and company is not None and ident in company.teams:
        name = company.teams[ident].name
    elif kind == "oncall" and company is not None and ident in company.oncall:
        name = company.oncall[ident].name
    elif kind == "operator":
        name = "Operator"
    step = _last(story, "sought")
    detail = ""
    if step is not None:
        d = step.detail
        if "menu" in d:
            detail = f"menu {d['menu']}, key {d.get('key', '')}"
            if d.get("label"):
                detail += f" ({d['label']})"
        elif "number" in d:
            detail = f"number {d['number']}"
        elif "extension" in d:
            detail = f"extension {d['extension']}"
        elif "query" in d:
            detail = f"searched for {d['query']!r}"
    return {"kind": kind, "id": ident, "name": name, "path": story.path, "detail": detail}


def clock_text(at: datetime, tz: tzinfo, now: datetime) -> str:
    """14.00 today, else 5.6. 14.00 (Finnish style, as the operators read it)."""
    local, today = at.astimezone(tz), now.astimezone(tz)
    hm = f"{local.hour}.{local.minute:02d}"
    if local.date() == today.date():
        return hm
    if local.hour == 0 and local.minute == 0:
        return f"{local.day}.{local.month}."
    return f"{local.day}.{local.month}. {hm}"


def _ring_seconds(ch: Channel, device: str) -> int | None:
    for dial in reversed(ch.dials):
        if device_of_channel(dial.dest_channel) == device and dial.end_wall is not None:
            return round(dial.end_wall - dial.begin_wall)
    return None


def _reason_text(reason: str) -> str:
    if reason.startswith("closed-") and reason.endswith("-0"):
        return "outside opening hours, chose the operator"
    if reason.endswith("-0") or reason == "operator":
        return "chose the operator"
    if reason.endswith("no-choice"):
        return "chose nothing in the menu"
    if reason.endswith("invalid-choice"):
        return "no valid choice in the menu"
    if reason.endswith("-no-devices"):
        return "has no phone to ring"
    if reason.endswith("-not-stored"):
        return "message could not be stored"
    if reason.startswith("closed-"):
        return "outside opening hours"
    return ""


def what_happened(
    story: CallStory | None,
    ch: Channel,
    company: CompanyConfig | None,
    tz: tzinfo,
    transfer: Transfer | None = None,
) -> str:
    """In plain words why the call is with the operator: "no answer after 20 s", "busy",
    "in a meeting until 14.00"."""
    parts: list[str] = []
    if transfer is not None and transfer.bounced:
        word = DIAL_WORDS.get(transfer.bounced, transfer.bounced)
        if transfer.bounced == "noanswer":
            seconds = None
            for dial in reversed(ch.dials):
                if dial.status.lower() == "noanswer" and dial.end_wall is not None:
                    seconds = round(dial.end_wall - dial.begin_wall)
                    break
            if seconds is not None:
                word += f" after {seconds} s"
        parts.append(f"transfer to {transfer.name or transfer.target}: {word}")
    if story is None:
        # No story (the service was down or restarted): the dialplan's own reason, if the
        # manager's channelvars carry it.
        reason = ch.variables.get(contract.REASON, "")
        if reason.startswith("dial-"):
            parts.append(DIAL_WORDS.get(reason[5:].lower(), reason[5:].lower()))
        elif reason.startswith("agi-"):
            parts.append("the service did not answer (no menu)")
        elif _reason_text(reason):
            parts.append(_reason_text(reason))
        elif not parts and ch.context == contract.OPERATOR_CONTEXT:
            parts.append("came straight to the operators (no menu)")
        return ", ".join(parts)
    now = story.steps[-1].at if story.steps else story.started_at
    ringing = False  # the dial that follows the flow's decision to ring someone
    for step in story.steps:
        d = step.detail
        if step.kind == "availability":
            state_word = STATE_WORDS.get(d.get("state", ""))
            if state_word:
                text = state_word
                if d.get("until"):
                    try:
                        text += " until " + clock_text(datetime.fromisoformat(d["until"]), tz, now)
                    except ValueError:
                        pass
                parts.append(text)
        elif step.kind == "dial":
            # Later dials are the operators' phones ringing, or the console's own.
            if not ringing:
                continue
            ringing = False
            status = d.get("status", "")
            if status in ("answer", "answered", ""):
                continue
            word = DIAL_WORDS.get(status, status)
            if status == "noanswer":
                seconds = _ring_seconds(ch, device_of_channel(d.get("device", "")))
                if seconds is None:
                    seconds = _story_ring_seconds(story, step)
                if seconds is not None:
                    word += f" after {seconds} s"
            parts.append(word)
        elif step.kind == "routed":
            ringing = d.get("route") == "ring"
            if d.get("route") != "tooperator":
                continue
            text = _reason_text(d.get("reason", ""))
            if text and not (text == "chose the operator" and story.sought_kind != "operator"):
                parts.append(text)
    if ch.context == contract.OPERATOR_CONTEXT and not parts and story.outcome == "":
        parts.append("waiting for the operator")
    seen: list[str] = []
    for p in parts:
        if p not in seen:
            seen.append(p)
    return ", ".join(seen)


def _story_ring_seconds(story: CallStory, dial: Step) -> int | None:
    """Without the tracker's record: from the routing decision to the end of the ringing."""
    routed = None
    for step in story.steps:
        if step is dial:
            break
        if step.kind == "routed":
            routed = step
    if routed is None:
        return None
    return round((dial.at - routed.at).total_seconds())
