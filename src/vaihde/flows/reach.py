"""Presence-aware reach: before ringing an employee, read their availability; when they are away,
tell the caller in words and offer something useful instead of ringing into nothing.

Pure: the sentences and the choices. The conversation is in `inbound.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vaihde.company import CompanyConfig, Employee
from vaihde.presence.model import Availability, State

# What the caller hears for each state, per language: "<name> <phrase> [until <time>]".
_PHRASES: dict[str, dict[State, str]] = {
    "fi": {
        State.BUSY: "on varattu",
        State.MEETING: "on kokouksessa",
        State.VIDEO_CONFERENCE: "on videoneuvottelussa",
        State.AWAY: "on poissa",
        State.VACATION: "on lomalla",
        State.SICK: "on poissa",
        State.OFF_WORK: "ei ole töissä",
    },
    "sv": {
        State.BUSY: "är upptagen",
        State.MEETING: "är på möte",
        State.VIDEO_CONFERENCE: "är i ett videomöte",
        State.AWAY: "är borta",
        State.VACATION: "är på semester",
        State.SICK: "är borta",
        State.OFF_WORK: "är inte på jobbet",
    },
    "en": {
        State.BUSY: "is busy",
        State.MEETING: "is in a meeting",
        State.VIDEO_CONFERENCE: "is in a video conference",
        State.AWAY: "is away",
        State.VACATION: "is on vacation",
        State.SICK: "is away",  # callers are not told someone is ill
        State.OFF_WORK: "is not at work",
    },
}
_UNTIL = {"fi": "{time} asti", "sv": "till klockan {time}", "en": "until {time}"}
_UNTIL_DAY = {"fi": "{date} asti", "sv": "till och med {date}", "en": "until {date}"}
_OFFERS = {
    "fi": {
        "delegate": "Jos haluat puhua henkilön {name} kanssa, paina 1.",
        "message": "Jättääksesi viestin, paina 2.",
        "callback": "Soittopyyntö, paina 3.",
        "operator": "Vaihteeseen pääset painamalla nollaa.",
    },
    "sv": {
        "delegate": "Om du vill tala med {name}, tryck 1.",
        "message": "För att lämna ett meddelande, tryck 2.",
        "callback": "För att bli uppringd, tryck 3.",
        "operator": "Till växeln kommer du med noll.",
    },
    "en": {
        "delegate": "To speak with {name}, press 1.",
        "message": "To leave a message, press 2.",
        "callback": "To be called back, press 3.",
        "operator": "For the switchboard, press 0.",
    },
}


@dataclass(frozen=True, slots=True)
class Away:
    """The employee cannot take the call now; what to say and what to offer."""

    employee_id: str
    sentence: str
    offers: str  # the spoken choices
    delegate: str | None  # employee id behind key 1, if any
    message: bool = True  # key 2 records a message (never for a human_only choice)
    callback: bool = True  # key 3 takes a callback request (never for a human_only choice)


def language_of(company: CompanyConfig, wanted: str) -> str:
    for language in (wanted, company.company.language):
        if language in _PHRASES:
            return language
    return "en"


def _when(until: datetime, now: datetime, language: str, tz: str) -> str:
    zone = ZoneInfo(tz)
    local_until, local_now = until.astimezone(zone), now.astimezone(zone)
    if local_until.date() == local_now.date():
        return _UNTIL[language].format(time=local_until.strftime("%H.%M"))
    # An absence ending at midnight ends, for the caller, on the day before.
    last = local_until.date()
    if (local_until.hour, local_until.minute) == (0, 0):
        last -= timedelta(days=1)
    return _UNTIL_DAY[language].format(date=f"{last.day}.{last.month}.")


def away_sentence(
    employee: Employee, availability: Availability, *, language: str, tz: str,
    now: datetime | None = None,
) -> str:
    """"Anna Virtanen is in a meeting until 14.00." plus the note the employee left for callers."""
    phrases = _PHRASES.get(language, _PHRASES["en"])
    phrase = phrases.get(availability.state, phrases[State.AWAY])
    parts = [f"{employee.name} {phrase}"]
    if availability.until is not None:
        parts.append(_when(availability.until, now or datetime.now(UTC), language, tz))
    sentence = " ".join(parts)
    if not sentence.endswith("."):  # "until 20.6." already ends the sentence
        sentence += "."
    if availability.note_for_callers:
        sentence += " " + availability.note_for_callers.rstrip(".") + "."
    return sentence


def offers_text(
    company: CompanyConfig, language: str, delegate: str | None, *, human_only: bool = False
) -> str:
    """The spoken choices: the delegate (1), a message (2), a callback (3), the switchboard (0).
    A human_only choice (complaints, cancellations) is offered people only: 1 and 0."""
    offers = _OFFERS[language_of(company, language)]
    spoken = []
    if delegate is not None:
        spoken.append(offers["delegate"].format(name=company.employees[delegate].name))
    if not human_only:
        spoken += [offers["message"], offers["callback"]]
    spoken.append(offers["operator"])
    return " ".join(spoken)


def reach(
    company: CompanyConfig,
    employee: Employee,
    availability: Availability,
    *,
    language: str,
    lookup: Callable[[str], Availability] | None = None,
    now: datetime | None = None,
    human_only: bool = False,
) -> Away | None:
    """None: ring the employee. Away: tell the caller and offer the delegate, a message, a
    callback or the switchboard (human_only: the delegate or the switchboard). A delegate is
    offered only if they are reachable themselves."""
    if availability.reachable:
        return None
    language = language_of(company, language)
    delegate = None
    for candidate in employee.delegates:
        other = lookup(candidate) if lookup is not None else None
        if other is None or other.reachable:
            delegate = candidate
            break
    sentence = away_sentence(
        employee, availability, language=language, tz=company.company.timezone, now=now
    )
    offers = offers_text(company, language, delegate, human_only=human_only)
    return Away(employee.id, sentence, offers, delegate, message=not human_only,
                callback=not human_only)
