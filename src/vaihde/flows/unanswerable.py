"""What the caller hears when the person or team they want cannot answer for a reason other than
an absence: none of the person's phones can ring now, their phone already forwarded the call
here, or nobody in a team can take it. The offers are an absent employee's (`reach.py`): the
delegate (1), a message (2), a callback (3), the switchboard (0).

Pure: the sentences and the choices. The conversation is in `inbound.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from vaihde.company.schema import CompanyConfig, Employee, Team
from vaihde.flows.reach import Away, language_of, offers_text
from vaihde.phrases import phrase
from vaihde.presence.model import Availability

# For the call's story and the operator's card (English, as the console is).
_VIA = {"mobile": "their mobile", "direct": "their direct number", "extension": "their desk phone"}
_REASON_WORDS = {
    "no_answer": "no answer",
    "busy": "busy",
    "unavailable": "unreachable",
    "unconditional": "always forwarded",
    "away": "away",
    "dnd": "do not disturb",
    "time_of_day": "outside their hours",
    "deflection": "deflected",
    "follow_me": "follow-me",
    "send_to_vm": "sent to voicemail",
    "unknown": "reason not given",
}


def _delegate(employee: Employee, lookup: Callable[[str], Availability] | None) -> str | None:
    for candidate in employee.delegates:
        if lookup is None or lookup(candidate).reachable:
            return candidate
    return None


def cannot_answer(
    company: CompanyConfig,
    employee: Employee,
    *,
    language: str,
    lookup: Callable[[str], Availability] | None = None,
    human_only: bool = False,
) -> Away:
    """"Anna Virtanen cannot answer right now." and an absent employee's offers: for someone
    available whose phones cannot ring now, or whose own phone forwarded the call here."""
    language = language_of(company, language)
    delegate = _delegate(employee, lookup)
    sentence = phrase(language, "cannot_answer", name=employee.name)
    offers = offers_text(company, language, delegate, human_only=human_only)
    return Away(employee.id, sentence, offers, delegate, message=not human_only,
                callback=not human_only)


def team_away(
    company: CompanyConfig, team: Team, why: str, *, language: str, human_only: bool = False
) -> Away:
    """Nobody in `team` can answer (`why` from TeamPlan: busy, absent, unreachable…): say so and
    offer a message to the team, a callback, or the switchboard (human_only: the switchboard)."""
    language = language_of(company, language)
    sentence = phrase(language, "team.busy" if why == "busy" else "team.nobody", team=team.name)
    offers = offers_text(company, language, None, human_only=human_only)
    return Away("", sentence, offers, None,
                message=not human_only, callback=not human_only)


def forwarded_text(employee: Employee | None, via: str, reason: str, number: str) -> str:
    """The story's words for a forwarded call: "for Anna Virtanen, forwarded from their mobile,
    no answer" (or "forwarded from 0401234567, busy" from a number that is nobody's)."""
    why = _REASON_WORDS.get(reason, _REASON_WORDS["unknown"])
    if employee is None:
        return f"forwarded from {number}, {why}"
    return f"for {employee.name}, forwarded from {_VIA.get(via, 'their phone')}, {why}"
