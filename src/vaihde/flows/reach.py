"""Presence-aware reach: before ringing an employee, read their availability; when they are away,
tell the caller in words and offer something useful instead of ringing into nothing.

Pure: the sentences (their words are in `vaihde.phrases`) and the choices. The conversation is
in `inbound.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vaihde.company.schema import CompanyConfig, Employee
from vaihde.phrases import KEYS, phrase, spoken
from vaihde.presence.model import Availability


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
    """The language the caller is spoken to in: theirs, else the company's, else English."""
    return spoken(wanted, company.company.language)


def _when(until: datetime, now: datetime, language: str, tz: str) -> str:
    zone = ZoneInfo(tz)
    local_until, local_now = until.astimezone(zone), now.astimezone(zone)
    if local_until.date() == local_now.date():
        return phrase(language, "away.until_time", time=local_until.strftime("%H.%M"))
    # An absence ending at midnight ends, for the caller, on the day before.
    last = local_until.date()
    if (local_until.hour, local_until.minute) == (0, 0):
        last -= timedelta(days=1)
    return phrase(language, "away.until_day", date=f"{last.day}.{last.month}.")


def away_sentence(
    employee: Employee, availability: Availability, *, language: str, tz: str,
    now: datetime | None = None,
) -> str:
    """"Anna Virtanen is in a meeting until 14.00." plus the note the employee left for callers."""
    key = f"away.{availability.state}"
    parts = [f"{employee.name} {phrase(language, key if key in KEYS else 'away.away')}"]
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
    language = language_of(company, language)
    said = []
    if delegate is not None:
        said.append(phrase(language, "offer.delegate", name=company.employees[delegate].name))
    if not human_only:
        said += [phrase(language, "offer.message"), phrase(language, "offer.callback")]
    said.append(phrase(language, "offer.operator"))
    return " ".join(said)


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
