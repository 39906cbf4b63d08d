"""The account profile on a console call card (vaihde.console.board.profile_json): the company's
name, the answer phrase in the call's language (a switch in the menu wins over the number's),
the instructions, what to ask, and urgent rules naming whom to contact."""

from __future__ import annotations

from datetime import UTC, datetime

from vaihde.company import parse_company
from vaihde.console.board import profile_json
from vaihde.story import CallStory

COMPANY = parse_company("""\
company: {name: Testi Oy, language: fi, languages: [fi, sv, en]}
numbers:
  "0201234567": {menu: main}
  "0201234568": {menu: main, language: sv}
hours:
  mon-sun: 00:00-24:00
  closed_action: {operator: true}
menus:
  main:
    prompt: {fi: Valitse, sv: Välj, en: Choose}
teams:
  ops: {name: Vaihde, kind: operators, members: [olga]}
  support: {name: Tuki, members: [mikko]}
employees:
  olga: {name: Olga, devices: [desk: PJSIP/olga]}
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko]}
profile:
  answer: {fi: "Testi Oy, {operator}", sv: "Testi Ab, {operator}"}
  instructions: Be brief.
  ask: [Name]
  urgent:
    - {when: Fire, contact: duty}
    - {when: Flood, contact: mikko}
    - {when: Invoices, contact: support}
    - {when: Anything else}
oncall:
  duty: {name: Päivystys, weekly: []}
""", "c.yaml")


def story(dialled: str, *languages: str) -> CallStory:
    s = CallStory("1.1", "0401234567", "", dialled, datetime.now(UTC))
    s.add("entered", number=dialled, menu="main", language=languages[0])
    for language in languages[1:]:
        s.add("language", language=language)
    return s


def test_the_card_has_the_profile_in_the_calls_language():
    card = profile_json(story("0201234568", "sv"), COMPANY)
    assert card == {
        "company": "Testi Oy", "language": "sv", "answer": "Testi Ab, {operator}",
        "instructions": "Be brief.", "ask": ["Name"],
        "urgent": [{"when": "Fire", "contact": "duty", "name": "Päivystys"},
                   {"when": "Flood", "contact": "mikko", "name": "Mikko Mäki"},
                   {"when": "Invoices", "contact": "support", "name": "Tuki"},
                   {"when": "Anything else", "contact": "", "name": ""}],
    }


def test_a_language_switched_in_the_menu_wins_and_a_missing_phrase_falls_back():
    swedish = profile_json(story("0201234567", "fi", "sv"), COMPANY)
    assert swedish["answer"] == "Testi Ab, {operator}"
    english = profile_json(story("0201234567", "fi", "en"), COMPANY)
    assert (english["language"], english["answer"]) == ("en", "Testi Oy, {operator}")


def test_without_a_story_the_numbers_language_or_the_companys():
    assert profile_json(None, COMPANY)["language"] == "fi"
    bare = CallStory("1.2", "", "", "0201234568", datetime.now(UTC))
    assert profile_json(bare, COMPANY)["language"] == "sv"
    assert profile_json(None, None) is None
