"""What a caller hears on a company number: greeting, numbered menus (or an extension keyed
during the greeting, or a name spelled on the keypad), then a phone or a human.

`choose()`, `ring_*()` and `bulletins()` are the decisions (pure); `inbound()` is the
conversation that plays them out over AGI. Whatever the caller hears, 0 takes them to the
switchboard: the greeting, bulletins, announcements (closed-hours too), prompts, the absent
employee's sentence and the message instructions all listen for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import assert_never

from vaihde import contract
from vaihde.agi.channel import Channel
from vaihde.company.dials import (
    DeviceLookup,
    TeamPlan,
    device_dials,
    forward_reason,
    forwarded_from,
    plan_team,
)
from vaihde.company.hours import open_now
from vaihde.company.oncall import OnCall, on_call_now
from vaihde.company.schema import (
    BACK_KEY,
    OPERATOR_DIGIT,
    REPEAT_KEY,
    Announcement,
    AnnouncementTarget,
    CompanyConfig,
    DialByNameTarget,
    Employee,
    EmployeeTarget,
    ExternalTarget,
    HangupTarget,
    LanguageTarget,
    Menu,
    MenuTarget,
    MessageTarget,
    OncallTarget,
    OperatorTarget,
    Say,
    Target,
    Team,
    TeamTarget,
)
from vaihde.config.patterns import DIALPLAN_DIGITS as _DIGITS
from vaihde.flows.answering import OPERATOR_KEY, Answering, leave_message, request_callback
from vaihde.flows.by_name import dial_by_name
from vaihde.flows.keypad import Step, extension_step
from vaihde.flows.reach import Away, reach
from vaihde.flows.unanswerable import cannot_answer, forwarded_text, oncall_away, team_away
from vaihde.phrases import AWAY_FALLBACK, INVALID_CHOICE, SILENT_PROMPT
from vaihde.presence.model import Availability
from vaihde.prompts.say import greeting_for
from vaihde.story import CallStory

log = logging.getLogger("vaihde.flows")

# After a key that may begin an extension, how long to wait for the next one. A caller who meant
# the single-digit option waits this long once; one who keys an extension never notices.
EXTENSION_GAP_MS = 1500
EXTERNAL_RING_S = 30

Prompts = Callable[[Say, str], str | None]


def recorded_only(say: Say, language: str) -> str | None:
    """The default prompt source: the admin's recording, if any."""
    return say.sound or None


@dataclass(frozen=True, slots=True)
class Ring:
    """Ring these devices; on no answer the dialplan rings the `then` steps one after another
    (strategy in_order), and after the last one takes the caller to the operator."""

    dial: str
    seconds: int
    reason: str
    employee: str = ""  # set when one person is rung: their availability is checked first
    then: tuple[tuple[str, int], ...] = ()  # the next (dial string, seconds) steps
    team: str = ""  # set when a team is rung: whom it rings is decided again with presence


@dataclass(frozen=True, slots=True)
class QueueTo:
    """Queue the caller in a team's Asterisk queue; after `seconds` the operator."""

    queue: str
    seconds: int
    reason: str
    team: str = ""


@dataclass(frozen=True, slots=True)
class RingOncall:
    """Ring whoever is on call on `rota` when the call gets there, in the rota's order, passing
    over those who cannot take calls (`check_oncall`)."""

    rota: str
    reason: str


@dataclass(frozen=True, slots=True)
class ToOperator:
    reason: str


@dataclass(frozen=True, slots=True)
class Goodbye:
    """Say goodbye and end the call (only where the admin configured it, e.g. after hours)."""

    reason: str


@dataclass(frozen=True, slots=True)
class AskAgain:
    reason: str
    counts: bool = True  # a wrong key counts as an attempt; * (repeat) does not


@dataclass(frozen=True, slots=True)
class Announce:
    """Say an announcement, then go back to the menu or (if so configured) say goodbye."""

    announcement: str
    then: str  # "back" | "hangup"
    reason: str


@dataclass(frozen=True, slots=True)
class TakeMessage:
    """Record a message for an employee or a team (the answering service)."""

    kind: str  # employee | team
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class TakeCallback:
    kind: str
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class GoTo:
    menu: str  # "" = back to the previous menu
    reason: str


@dataclass(frozen=True, slots=True)
class ByName:
    """Spell a name on the keypad and choose among the matches."""

    reason: str


@dataclass(frozen=True, slots=True)
class SwitchLanguage:
    """Switch the caller's language and say the menu again in it."""

    language: str
    reason: str


Decision = (
    Ring | QueueTo | ToOperator | AskAgain | GoTo | Goodbye | Announce | TakeMessage
    | TakeCallback | ByName | SwitchLanguage | RingOncall
)
Final = Ring | QueueTo | ToOperator | Goodbye
Lookup = Callable[[str], Availability]
Speak = Callable[[str, str], Awaitable[str | None]]


MAX_STEPS = 8  # in_order steps the dialplan walks (VAIHDE_DIAL, VAIHDE_DIAL2 … VAIHDE_DIAL8)


def _steps(steps: list[tuple[str, int]], reason: str, employee: str = "", team: str = "") -> Ring:
    steps = steps[:MAX_STEPS]
    (dial, seconds), *rest = steps
    return Ring(dial, seconds, reason, employee, tuple(rest), team)


def ring_employee(
    employee: Employee, reason: str, mobile_dial: str = "",
    device_reach: DeviceLookup | None = None,
) -> Ring | ToOperator:
    """Ring the employee's phones (those that can ring now, when `device_reach` says)."""
    dials = device_dials(employee, mobile_dial, device_reach)
    if not dials:
        # No phone vaihde may dial at all, or none that can ring now.
        dialable = device_reach is not None and device_dials(employee, mobile_dial)
        return ToOperator(f"{reason}-{'unreachable' if dialable else 'no-devices'}")
    if employee.strategy == "in_order":
        return _steps(dials, reason, employee.id)
    return Ring("&".join(d for d, _ in dials), employee.ring_seconds, reason, employee.id)


def team_route(plan: TeamPlan, team: Team, reason: str) -> Ring | QueueTo | None:
    """A TeamPlan as the route to hand the dialplan (None: nobody in the team can answer)."""
    if plan.queue:
        return QueueTo(plan.queue, team.ring_seconds, reason, team.id)
    if not plan.steps:
        return None
    return _steps(list(plan.steps), reason, team=team.id)


def ring_team(
    company: CompanyConfig, team: Team, reason: str, mobile_dial: str = ""
) -> Ring | ToOperator | QueueTo:
    """From the configuration alone; `inbound` decides again with everyone's availability
    and phones (`check_team`) before anything rings."""
    route = team_route(plan_team(company, team, mobile_dial), team, reason)
    return route if route is not None else ToOperator(f"{reason}-no-devices")


def ring_external(number: str, reason: str, mobile_dial: str = "") -> Ring | ToOperator:
    """An outside number (validated by the company file) through the trunk template; without a
    trunk a person connects the caller."""
    if not mobile_dial:
        return ToOperator(f"{reason}-external-no-trunk")
    return Ring(mobile_dial.format(number=number.lstrip("+")), EXTERNAL_RING_S, reason)


def recipient_kind(company: CompanyConfig, recipient: str) -> str:
    """Whether a message target names an employee or a team (validation made it one of them)."""
    return "employee" if recipient in company.employees else "team"


def target_decision(
    company: CompanyConfig, target: Target, reason: str, *, then: str = "", mobile_dial: str = ""
) -> Decision:
    """Where a target takes the caller: a menu option's and the closed-hours action's alike."""
    match target:
        case OperatorTarget():
            return ToOperator(reason)
        case MenuTarget(id=menu):
            return GoTo(menu, reason)
        case EmployeeTarget(id=employee):
            return ring_employee(company.employees[employee], reason, mobile_dial)
        case TeamTarget(id=team):
            return ring_team(company, company.teams[team], reason, mobile_dial)
        case AnnouncementTarget(id=announcement):
            return Announce(announcement, then or "back", reason)
        case MessageTarget(id=recipient):
            return TakeMessage(recipient_kind(company, recipient), recipient, reason)
        case ExternalTarget(number=number):
            return ring_external(number, reason, mobile_dial)
        case DialByNameTarget():
            return ByName(reason)
        case LanguageTarget(language=language):
            return SwitchLanguage(language, reason)
        case HangupTarget():
            return Goodbye(reason)
        case OncallTarget(id=rota):
            return RingOncall(rota, reason)
        case _:
            assert_never(target)


def choose(
    company: CompanyConfig, menu: Menu, digits: str, attempt: int, mobile_dial: str = ""
) -> Decision:
    """Decide from the caller's key press in `menu` on attempt `attempt` (1-based)."""
    if digits == OPERATOR_DIGIT:
        return ToOperator(f"menu-{menu.id}-0")
    if digits == REPEAT_KEY:
        return AskAgain("repeat", counts=False)
    if digits == BACK_KEY:
        return GoTo("", f"menu-{menu.id}-back")
    option = menu.options.get(digits) if len(digits) == 1 else None
    if option is None:
        why = "no-choice" if not digits else "invalid-choice"
        # After the last attempt a person helps: never loop a caller in the menu.
        if attempt >= menu.attempts:
            return ToOperator(f"menu-{menu.id}-{why}")
        return AskAgain(why)
    return target_decision(company, option.target, f"menu-{menu.id}-{option.digit}",
                           then=option.then, mobile_dial=mobile_dial)


def choose_keys(
    company: CompanyConfig, menu: Menu, typed: str, attempt: int, mobile_dial: str = ""
) -> Decision:
    """Like `choose`, where `typed` may also be an extension (keyed in the entry menu)."""
    if len(typed) > 1 or (typed and extension_step(company, typed) is Step.MATCH
                          and typed not in menu.options):
        employee = company.employee_by_extension(typed)
        if employee is not None:
            return ring_employee(employee, f"extension-{typed}", mobile_dial)
        if attempt >= menu.attempts:
            return ToOperator(f"menu-{menu.id}-unknown-extension")
        return AskAgain("invalid-choice")
    return choose(company, menu, typed, attempt, mobile_dial)


def direct_decision(
    company: CompanyConfig, dialled: str, mobile_dial: str = ""
) -> Ring | ToOperator | None:
    """A call to an employee's direct number skips the menu."""
    employee = company.employee_by_number(dialled) if dialled else None
    if employee is None:
        return None
    return ring_employee(employee, f"direct-{employee.id}", mobile_dial)


def closed_decision(
    company: CompanyConfig, now: datetime, mobile_dial: str = ""
) -> tuple[str, Decision | None]:
    """Outside opening hours: the announcement to say first ("" = none) and where the call goes
    (None = the closed action's menu, given as GoTo). Open: ("", None)."""
    is_open, rule = open_now(company.hours, now)
    if is_open:
        return "", None
    action = company.hours.closed_action
    reason = f"closed-{rule.kind}"
    if isinstance(action.target, OperatorTarget):
        reason += "-operator"  # the reason the dialplan and the console have always been given
    return action.announcement, target_decision(company, action.target, reason,
                                                mobile_dial=mobile_dial)


def bulletins(company: CompanyConfig, menu: Menu, at: datetime) -> list[Announcement]:
    """The menu's `announce:` bulletins valid at `at`, in the order the admin listed them."""
    out = []
    for ref in menu.announce:
        announcement = company.announcements.get(ref)
        if announcement is not None and announcement.active(at):
            out.append(announcement)
    return out


def menu_keys(company: CompanyConfig, menu: Menu, entry: bool) -> str:
    """The keys that mean something in `menu` (its options, 0, * and #, and in the entry menu
    the first keys of extensions): any of them ends what is being said."""
    ext = company.extension_keys if entry else ""
    return "".join(sorted({*menu.options, "0", "*", "#", *ext}))


def is_human_only(menu: Menu, pressed: str) -> bool:
    """Whether the caller chose a `human_only` option (complaints, cancellations): then a
    person or the switchboard answers, never a recorded message or a callback robot."""
    option = menu.options.get(pressed) if len(pressed) == 1 else None
    return option is not None and option.human_only


def route_variables(decision: Final, sought: str = "", music: str = "") -> dict[str, str]:
    """The contract variables that hand `decision` to the dialplan (ROUTE last); `music`: the
    company's music-on-hold class, for whatever wait follows."""
    out = {contract.REASON: decision.reason}
    if sought:
        # Rides along into the queue, so even the AMI events say whom the caller wanted.
        out[contract.SOUGHT] = sought
    if music:
        out[contract.MUSIC_CLASS] = music
    match decision:
        case Ring(dial=dial, seconds=seconds, then=then):
            out[contract.DIAL] = dial
            out[contract.DIAL_TIMEOUT] = str(seconds)
            for step, (next_dial, next_seconds) in enumerate(then, start=2):
                out[f"{contract.DIAL}{step}"] = next_dial
                out[f"{contract.DIAL}{step}_TIMEOUT"] = str(next_seconds)
            # Where the dialplan stops: nothing left over from anything earlier on the channel.
            out[f"{contract.DIAL}{len(then) + 2}"] = ""
            out[contract.ROUTE] = contract.Route.DIAL
        case QueueTo(queue=queue, seconds=seconds):
            out[contract.TEAM_QUEUE] = queue
            out[contract.DIAL_TIMEOUT] = str(seconds)
            out[contract.ROUTE] = contract.Route.QUEUE
        case Goodbye():
            out[contract.ROUTE] = contract.Route.HANGUP
        case ToOperator():
            out[contract.ROUTE] = contract.Route.OPERATOR
        case _:
            assert_never(decision)
    return out


async def apply(channel: Channel, decision: Final, sought: str = "", music: str = "") -> None:
    """Hand the decision to the dialplan through the contract variables (one round trip)."""
    await channel.set_variables(route_variables(decision, sought, music))


async def offer_alternatives(
    channel: Channel,
    company: CompanyConfig,
    away: Away,
    base: str,
    kind: str,
    target: str,
    *,
    speak: Speak | None,
    language: str,
    mobile_dial: str,
    devices: DeviceLookup | None = None,
) -> Final | TakeMessage | TakeCallback:
    """Say why nobody answers and read the caller's choice: 1 the delegate (if offered), 2 a
    message and 3 a callback for `kind`/`target` (employee or team), anything else a person."""
    sound = await speak(f"{away.sentence} {away.offers}", language) if speak else None
    got = await channel.get_data(sound or AWAY_FALLBACK, 6000, 1)
    if got.digits == "1" and away.delegate is not None:
        delegate = company.employees[away.delegate]
        return ring_employee(delegate, f"{base}-delegate-{delegate.id}", mobile_dial, devices)
    if got.digits == "2" and away.message:
        return TakeMessage(kind, target, f"{base}-message")
    if got.digits == "3" and away.callback:
        return TakeCallback(kind, target, f"{base}-callback")
    return ToOperator(base)


async def check_reach(
    channel: Channel,
    company: CompanyConfig,
    decision: Ring,
    availability: Availability,
    *,
    lookup: Lookup,
    speak: Speak | None,
    language: str,
    mobile_dial: str,
    devices: DeviceLookup | None = None,
    story: CallStory | None = None,
    human_only: bool = False,
) -> Final | TakeMessage | TakeCallback:
    """Ring only a reachable employee, and only the phones that can ring now; otherwise tell
    the caller and offer the alternatives at once (for a human_only choice only people: the
    delegate or the switchboard)."""
    employee = company.employees[decision.employee]
    away = reach(company, employee, availability, language=language, lookup=lookup,
                 human_only=human_only)
    base = f"{decision.reason}-{availability.state}"
    if away is None:
        if devices is None:
            return decision
        ring = ring_employee(employee, decision.reason, mobile_dial, devices)
        if isinstance(ring, Ring) or not device_dials(employee, mobile_dial):
            return ring
        # Available, but none of their phones can ring (softphone off, desk phone unplugged).
        if story is not None:
            story.add("unreachable", employee=employee.id,
                      phones=" ".join(d.address for d in employee.devices if d.kind != "mobile"))
        away = cannot_answer(company, employee, language=language, lookup=lookup,
                             human_only=human_only)
        base = f"{decision.reason}-unreachable"
    return await offer_alternatives(
        channel, company, away, base, "employee", employee.id, speak=speak, language=language,
        mobile_dial=mobile_dial, devices=devices,
    )


def oncall_plan(
    company: CompanyConfig,
    rota_id: str,
    at: datetime,
    mobile_dial: str = "",
    lookup: Lookup | None = None,
    devices: DeviceLookup | None = None,
) -> tuple[OnCall, TeamPlan]:
    """Whom a call to the on-call rota rings at `at`: the people on call now, one after another
    in the rota's order (the same `plan_team` as teams: the absent, those in another call and
    phones that cannot ring are passed over)."""
    rota = company.oncall[rota_id]
    now = on_call_now(company, rota_id, at)
    team = Team(id=rota.id, name=rota.name, members=now.people, strategy="in_order",
                ring_seconds=rota.ring_seconds)
    return now, plan_team(company, team, mobile_dial, lookup, devices)


async def check_oncall(
    channel: Channel,
    company: CompanyConfig,
    decision: RingOncall,
    story: CallStory,
    *,
    at: datetime,
    lookup: Lookup | None,
    speak: Speak | None,
    language: str,
    mobile_dial: str,
    devices: DeviceLookup | None = None,
    human_only: bool = False,
) -> Final | TakeMessage | TakeCallback:
    """Ring the people on call who can answer now; if nobody can (or nobody is on call), say so
    and offer a message and a callback (for the rota's team, else for the first on call) or
    the switchboard."""
    rota = company.oncall[decision.rota]
    now, plan = oncall_plan(company, rota.id, at, mobile_dial, lookup, devices)
    story.add("oncall", rota=rota.id, people=" ".join(now.people), source=now.source,
              ringing=" ".join(plan.ringing), skipped=plan.skipped())
    if plan.steps:
        # Not as the team's Ring: the people are the rota's, already checked here.
        return _steps(list(plan.steps), decision.reason)
    if rota.team:
        kind, target = "team", rota.team
    elif now.people:
        kind, target = "employee", now.people[0]
    else:
        kind, target = "", ""
    why = plan.why if now.people else "none"
    away = oncall_away(company, rota, bool(now.people), language=language,
                       recipient=bool(target), human_only=human_only)
    return await offer_alternatives(
        channel, company, away, f"{decision.reason}-oncall-{why}", kind, target,
        speak=speak, language=language, mobile_dial=mobile_dial, devices=devices,
    )


async def check_team(
    channel: Channel,
    company: CompanyConfig,
    decision: Ring | QueueTo,
    story: CallStory,
    *,
    lookup: Lookup,
    speak: Speak | None,
    language: str,
    mobile_dial: str,
    devices: DeviceLookup | None = None,
    human_only: bool = False,
) -> Final | TakeMessage | TakeCallback:
    """Ring the team members who can answer now (the same `plan_team` as console transfers);
    if nobody can, say so and offer a message to the team, a callback or the switchboard."""
    team = company.teams[decision.team]
    plan = plan_team(company, team, mobile_dial, lookup, devices)
    story.add("team", team=team.id, ringing=" ".join(plan.ringing), skipped=plan.skipped(),
              queue=plan.queue)
    route = team_route(plan, team, decision.reason)
    if route is not None:
        return route
    away = team_away(company, team, plan.why, language=language, human_only=human_only)
    return await offer_alternatives(
        channel, company, away, f"{decision.reason}-team-{plan.why}", "team", team.id,
        speak=speak, language=language, mobile_dial=mobile_dial, devices=devices,
    )


async def forwarded(
    channel: Channel,
    company: CompanyConfig,
    story: CallStory,
    number: str,
    why: str,
    *,
    lookup: Lookup | None,
    speak: Speak | None,
    language: str,
    mobile_dial: str,
    devices: DeviceLookup | None = None,
    human_only: bool = False,
) -> Final | TakeMessage | TakeCallback | None:
    """A call forwarded here from an employee's own phone (their mobile or desk line did not
    answer, was busy, …): never ring them again; say at once why they cannot answer and offer
    the alternatives. None: forwarded from a number that is nobody's (the menu goes on)."""
    reason = forward_reason(why)
    found = forwarded_from(company, number)
    employee = company.employees[found.employee] if found is not None else None
    text = forwarded_text(employee, found.via if found else "", reason, number)
    story.forwarded = {"number": number, "reason": reason, "text": text,
                       "employee": employee.id if employee else "",
                       "via": found.via if found else ""}
    story.add("forwarded", number=number, reason=reason, text=text,
              employee=employee.id if employee else "", via=found.via if found else "")
    if employee is None:
        return None
    story.seek("employee", employee.id, "forwarded", reason=reason)
    availability = lookup(employee.id) if lookup is not None else None
    away = None
    if availability is not None:
        story.add("availability", employee=employee.id, state=str(availability.state),
                  until=availability.until.isoformat() if availability.until else "")
        away = reach(company, employee, availability, language=language, lookup=lookup,
                     human_only=human_only)
    if away is None:
        away = cannot_answer(company, employee, language=language, lookup=lookup,
                             human_only=human_only)
    return await offer_alternatives(
        channel, company, away, f"forwarded-{employee.id}-{reason}", "employee", employee.id,
        speak=speak, language=language, mobile_dial=mobile_dial, devices=devices,
    )


def _entry(company: CompanyConfig, dialled: str) -> Menu:
    menu = company.entry_menu(dialled) if dialled else None
    return menu or company.menus.get("main") or next(iter(company.menus.values()))


async def inbound(
    channel: Channel,
    company: CompanyConfig,
    *,
    prompts: Prompts = recorded_only,
    mobile_dial: str = "",
    lookup: Lookup | None = None,
    speak: Speak | None = None,
    now: datetime | None = None,
    story: CallStory | None = None,
    answering: Answering | None = None,
    greet_name: str = "",
    devices: DeviceLookup | None = None,
) -> Decision:
    dialled = channel.params.get("did", "")
    if not _DIGITS.match(dialled):
        dialled = ""
    # Where the call was forwarded from (REDIRECTING, FILTERed by the dialplan; checked again).
    forwarded_number = channel.params.get("fwd", "")
    if not _DIGITS.match(forwarded_number):
        forwarded_number = ""
    language = company.number_language(dialled) if dialled else company.company.language
    story = story or CallStory(channel.uniqueid, "", "", dialled, datetime.now(UTC))
    at = now or datetime.now(UTC)
    human_only = False  # the caller chose a human_only option: people only from here on

    async def finish(decision: Final | TakeMessage | TakeCallback | RingOncall) -> Final:
        if isinstance(decision, RingOncall):
            # Who is on call is decided when the caller gets there, with the clock.
            decision = await check_oncall(
                channel, company, decision, story, at=now or datetime.now(UTC), lookup=lookup,
                speak=speak, language=language, mobile_dial=mobile_dial, devices=devices,
                human_only=human_only,
            )
        # Whoever is rung is checked against their availability and phones first.
        match decision:
            case Ring(team=str(team)) | QueueTo(team=str(team)) if team and lookup is not None:
                decision = await check_team(
                    channel, company, decision, story, lookup=lookup, speak=speak,
                    language=language, mobile_dial=mobile_dial, devices=devices,
                    human_only=human_only,
                )
            case Ring(employee=str(employee)) if employee and lookup is not None:
                availability = lookup(employee)
                story.add("availability", employee=employee, state=str(availability.state),
                          until=availability.until.isoformat() if availability.until else "")
                decision = await check_reach(
                    channel, company, decision, availability, lookup=lookup, speak=speak,
                    language=language, mobile_dial=mobile_dial, devices=devices, story=story,
                    human_only=human_only,
                )
        match decision:
            case TakeMessage() | TakeCallback():
                final = await answer_for(decision)
            case _:
                final = decision
        if isinstance(final, ToOperator) and not story.sought_kind:
            story.seek("operator", "", "operator")
        story.add("routed", route=type(final).__name__.lower(), reason=final.reason)
        sought = f"{story.sought_kind}:{story.sought_id}" if story.sought_kind else ""
        await apply(channel, final, sought, company.company.music_on_hold)
        return final

    async def answer_for(decision: TakeMessage | TakeCallback) -> Final:
        """The answering service; without it (or if storing fails) a person takes over."""
        if human_only:
            # Complaints, cancellations: never a recording or a callback robot, a person.
            return ToOperator(f"{decision.reason}-human-only")
        if answering is None:
            return ToOperator(decision.reason)
        if isinstance(decision, TakeMessage):
            story.add("message", target=f"{decision.kind}:{decision.target}")
            recording = answering.recording_for(channel.uniqueid)
            taken = await leave_message(
                channel, decision.kind, decision.target, recording, answering.store_message,
                speak=speak, language=language,
            )
        else:
            story.add("callback", target=f"{decision.kind}:{decision.target}")
            taken = await request_callback(
                channel, decision.kind, decision.target, answering.store_callback,
                speak=speak, language=language,
            )
        if taken.stored:
            story.outcome = "message" if isinstance(decision, TakeMessage) else "callback"
        if taken.zero:
            return ToOperator(f"{decision.reason}-0")
        if taken.stored:
            return Goodbye(f"{decision.reason}-taken")
        return ToOperator(f"{decision.reason}-not-stored")

    if forwarded_number:
        handled = await forwarded(
            channel, company, story, forwarded_number, channel.params.get("why", ""),
            lookup=lookup, speak=speak, language=language, mobile_dial=mobile_dial,
            devices=devices,
        )
        if handled is not None:
            return await finish(handled)

    direct = direct_decision(company, dialled, mobile_dial)
    if direct is not None:
        employee = company.employee_by_number(dialled)
        if employee is not None:
            story.seek("employee", employee.id, "direct_number", number=dialled)
        return await finish(direct)

    menu = _entry(company, dialled)
    entry = menu
    story.add("entered", number=dialled, menu=menu.id, language=language)
    if greet_name and speak is not None:
        # A known caller who agreed to it is greeted by first name; everyone else is not.
        sound = await speak(greeting_for(greet_name, language), language)
        if sound and await channel.stream_file(sound, OPERATOR_KEY) == OPERATOR_KEY:
            return await finish(ToOperator(f"menu-{menu.id}-0"))
    # A key pressed while something was said, kept as the caller's choice in the menu that
    # follows (callers who know the menu need not wait for it).
    pressed_early = ""
    announcement, closed = closed_decision(company, at, mobile_dial)
    if announcement:
        sound = prompts(company.announcements[announcement].say, language)
        if sound:
            # Listen for 0 (and the keys of the closed-hours menu, if that comes next): a
            # caller never has to sit through a long closed announcement to reach a person.
            keys = OPERATOR_KEY
            if isinstance(closed, GoTo):
                keys = menu_keys(company, company.menus[closed.menu], False)
            pressed_early = await channel.stream_file(sound, keys) or ""
            if pressed_early == OPERATOR_KEY:
                reason = closed.reason if closed is not None else "closed"
                story.add("menu", menu="closed", key=OPERATOR_KEY, attempt="1")
                return await finish(ToOperator(f"{reason}-0"))
    match closed:
        case None:
            pass
        case GoTo(menu=night):
            menu = company.menus[night]
        case TakeMessage(kind=kind, target=recipient):
            story.seek(kind, recipient, "closed")
            return await finish(closed)
        case RingOncall(rota=rota):
            story.seek("oncall", rota, "closed")
            return await finish(closed)
        case Ring() | QueueTo() | ToOperator() | Goodbye():
            return await finish(closed)
        case _:  # closed_action's targets are validated to be none of the others
            return await finish(ToOperator(closed.reason))

    # Extensions may be keyed in the menu a company number leads to (not in submenus, where
    # the digits are that submenu's choices).
    stack: list[Menu] = []
    greet = not pressed_early
    attempt = 1
    while True:
        in_entry = menu is entry
        keys = menu_keys(company, menu, in_entry)
        pressed, pressed_early = pressed_early, ""
        if greet:
            # Callers who know the menu may press their choice during the greeting and the
            # bulletins said after it.
            says = [menu.greeting] if menu.greeting is not None else []
            says += [b.say for b in bulletins(company, menu, at)]
            for say in says:
                sound = prompts(say, language)
                if sound:
                    pressed = await channel.stream_file(sound, keys) or ""
                if pressed:
                    break
        greet = False
        if not pressed:
            sound = prompts(menu.prompt, language) or SILENT_PROMPT
            got = await channel.get_data(sound, menu.timeout * 1000, 1)
            pressed = got.digits
        if in_entry and pressed:
            pressed = await _more_keys(channel, company, pressed)
        decision = choose_keys(company, menu, pressed, attempt, mobile_dial)
        story.add("menu", menu=menu.id, key=pressed[:12], attempt=str(attempt))
        _seek_for(story, company, menu, pressed, decision)
        log.info(
            "menu decision",
            extra={"uniqueid": channel.uniqueid, "menu": menu.id, "attempt": attempt,
                   "pressed": pressed, "decision": decision},
        )
        human_only = is_human_only(menu, pressed)
        match decision:
            case ByName(reason=reason):
                chosen = await dial_by_name(channel, company, speak, language)
                story.add("dial_by_name", letters=chosen.letters,
                          result=chosen.employee or chosen.reason)
                if not chosen.employee:
                    return await finish(ToOperator(f"{reason}-{chosen.reason}"))
                employee = company.employees[chosen.employee]
                story.seek("employee", employee.id, "dial_by_name", letters=chosen.letters)
                return await finish(ring_employee(employee, f"{reason}-{employee.id}",
                                                  mobile_dial))
            case SwitchLanguage(language=spoken):
                language = spoken
                story.add("language", language=language)
                greet, attempt = True, 1
            case (Ring() | QueueTo() | ToOperator() | Goodbye() | TakeMessage() | TakeCallback()
                  | RingOncall()):
                return await finish(decision)
            case Announce(announcement=said, then=then, reason=reason):
                sound = prompts(company.announcements[said].say, language)
                back = then != "hangup"
                if sound:
                    # Going back to the menu, its keys choose at once; before a goodbye, 0 only.
                    heard = await channel.stream_file(sound, keys if back else OPERATOR_KEY) or ""
                    if heard == OPERATOR_KEY:
                        return await finish(ToOperator(f"{reason}-0"))
                    pressed_early = heard
                if not back:
                    return await finish(Goodbye(reason))
                attempt = 1
            case GoTo(menu=submenu):
                if submenu:
                    stack.append(menu)
                    menu = company.menus[submenu]
                elif stack:
                    menu = stack.pop()
                greet, attempt = True, 1
            case AskAgain(reason=why, counts=counts):
                if why == "invalid-choice":
                    pressed_early = await channel.stream_file(INVALID_CHOICE, keys) or ""
                if counts:
                    attempt += 1
            case _:
                assert_never(decision)


async def _more_keys(channel: Channel, company: CompanyConfig, typed: str) -> str:
    """Keep reading keys while they may still become an extension."""
    while extension_step(company, typed) is Step.MORE and len(typed) < 8:
        key = await channel.wait_for_digit(EXTENSION_GAP_MS)
        if key is None or not key.isdigit():
            break
        typed += key
    return typed


def _seek_for(
    story: CallStory, company: CompanyConfig, menu: Menu, pressed: str, decision: Decision
) -> None:
    """Record whom the caller now seeks, and through which path, in the call's story."""
    if isinstance(decision, Ring) and decision.reason.startswith("extension-"):
        story.seek("employee", decision.employee, "extension", extension=pressed)
        return
    option = menu.options.get(pressed) if len(pressed) == 1 else None
    if option is None:
        return
    match option.target:
        case EmployeeTarget(id=ref):
            kind = "employee"
        case TeamTarget(id=ref):
            kind = "team"
        case MessageTarget(id=ref):
            kind = recipient_kind(company, ref)
        case ExternalTarget(number=ref):
            kind = "external"
        case OncallTarget(id=ref):
            kind = "oncall"
        case _:
            return
    story.seek(kind, ref, "menu_option", menu=menu.id, key=pressed, label=option.label)
