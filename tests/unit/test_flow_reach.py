"""What a caller is told when the person they chose cannot answer (flows/reach.py): the sentence
in Finnish, Swedish and English, and the offers (delegate, message, callback, switchboard)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vaihde.company import parse_company
from vaihde.flows.reach import away_sentence, offers_text, reach
from vaihde.presence.model import Availability, State

COMPANY = """\
company: {name: Testi Oy, language: fi, languages: [fi, sv, en], timezone: Europe/Helsinki}
numbers:
  "0201234567": {menu: main}
hours:
  closed_action: {operator: true}
menus:
  main:
    prompt: {fi: Valitse}
    options:
      1: {employee: anna}
teams:
  ops: {name: Vaihde, kind: operators, members: [olga]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], delegates: [mikko, olga]}
  mikko: {name: Mikko Mäkinen, devices: [desk: PJSIP/mikko]}
  olga: {name: Olga Operaattori, devices: [desk: PJSIP/olga]}
"""
# 10.06.2026 09:30 in Helsinki (UTC+3).
NOW = datetime(2026, 6, 10, 6, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def company():
    return parse_company(COMPANY, "c.yaml")


def availability(state: str, until: datetime | None = None, note: str = "") -> Availability:
    return Availability("anna", State(state), until, note, "", None, None, None, None,
                        state == "on_call", "", None)


@pytest.mark.parametrize(
    ("language", "state", "until", "expected"),
    [
        # Today: the clock time, as Finns write it.
        ("fi", "meeting", datetime(2026, 6, 10, 11, 0, tzinfo=UTC),
         "Anna Virtanen on kokouksessa 14.00 asti."),
        ("sv", "meeting", datetime(2026, 6, 10, 11, 0, tzinfo=UTC),
         "Anna Virtanen är på möte till klockan 14.00."),
        ("en", "meeting", datetime(2026, 6, 10, 11, 0, tzinfo=UTC),
         "Anna Virtanen is in a meeting until 14.00."),
        # Another day: the date; an absence ending at midnight ends, for callers, the day before.
        ("fi", "vacation", datetime(2026, 6, 20, 21, 0, tzinfo=UTC),
         "Anna Virtanen on lomalla 20.6. asti."),
        ("sv", "vacation", datetime(2026, 6, 20, 21, 0, tzinfo=UTC),
         "Anna Virtanen är på semester till och med 20.6."),
        ("en", "vacation", datetime(2026, 6, 20, 21, 0, tzinfo=UTC),
         "Anna Virtanen is on vacation until 20.6."),
        ("en", "off_work", None, "Anna Virtanen is not at work."),
        ("fi", "busy", None, "Anna Virtanen on varattu."),
        # Callers are never told that someone is ill.
        ("en", "sick", None, "Anna Virtanen is away."),
        ("sv", "sick", None, "Anna Virtanen är borta."),
    ],
)
def test_the_sentence_in_each_language(company, language, state, until, expected):
    got = away_sentence(company.employees["anna"], availability(state, until),
                        language=language, tz="Europe/Helsinki", now=NOW)
    assert got == expected


def test_the_note_for_callers_follows_the_sentence(company):
    av = availability("away", None, "Back after lunch.")
    got = away_sentence(company.employees["anna"], av, language="en", tz="Europe/Helsinki",
                        now=NOW)
    assert got == "Anna Virtanen is away. Back after lunch."


def test_reachable_people_are_rung(company):
    for state in ("available", "on_call"):
        assert reach(company, company.employees["anna"], availability(state),
                     language="en", now=NOW) is None


def test_away_offers_the_first_reachable_delegate_a_message_a_callback_and_the_switchboard(
    company,
):
    people = {"mikko": availability("vacation"), "olga": availability("available")}
    away = reach(company, company.employees["anna"], availability("meeting"), language="fi",
                 lookup=people.__getitem__, now=NOW)
    assert away is not None and away.delegate == "olga"  # Mikko is away himself
    assert away.sentence == "Anna Virtanen on kokouksessa."
    assert away.offers == (
        "Jos haluat puhua henkilön Olga Operaattori kanssa, paina 1. "
        "Jättääksesi viestin, paina 2. Soittopyyntö, paina 3. "
        "Vaihteeseen pääset painamalla nollaa."
    )
    assert away.message and away.callback


def test_an_unknown_language_is_told_in_the_companys(company):
    away = reach(company, company.employees["mikko"], availability("away"), language="de",
                 now=NOW)
    assert away is not None
    assert away.sentence == "Mikko Mäkinen on poissa."
    assert away.offers.endswith("Vaihteeseen pääset painamalla nollaa.")


def test_human_only_offers_people_only(company):
    away = reach(company, company.employees["anna"], availability("meeting"), language="en",
                 lookup=lambda _id: availability("available"), now=NOW, human_only=True)
    assert away is not None and not away.message and not away.callback
    assert away.offers == "To speak with Mikko Mäkinen, press 1. For the switchboard, press 0."
    assert offers_text(company, "sv", None, human_only=True) == "Till växeln kommer du med noll."
