"""The phrase catalogs: every sentence vaihde speaks exists in Finnish, Swedish and English with
the same placeholders, the flows say them from the catalog, and an admin can list them."""

import pytest

from vaihde.cli import main
from vaihde.company import parse_company
from vaihde.flows.by_name import choices_text
from vaihde.flows.reach import offers_text
from vaihde.phrases import CATALOG, KEYS, LANGUAGES, RECORDINGS, phrase, placeholders
from vaihde.presence.model import State
from vaihde.prompts.say import greeting_for


def test_every_language_has_every_key_and_no_other():
    for language in LANGUAGES:
        assert list(CATALOG[language]) == list(KEYS), language


@pytest.mark.parametrize("key", KEYS)
def test_placeholders_match_in_every_language(key):
    wanted = placeholders(CATALOG["fi"][key])
    for language in LANGUAGES:
        text = CATALOG[language][key]
        assert placeholders(text) == wanted, (language, key)
        assert text.strip() == text and "  " not in text


def test_every_state_a_person_can_be_away_in_has_a_phrase():
    for state in State:
        if state not in (State.AVAILABLE, State.ON_CALL):
            assert f"away.{state}" in KEYS, state


def test_a_language_without_phrases_is_spoken_to_in_english():
    assert phrase("de", "offer.operator") == CATALOG["en"]["offer.operator"]
    assert phrase("sv", "cannot_answer", name="Åsa") == "Åsa kan inte svara just nu."


COMPANY = parse_company("""\
company: {name: Oy, languages: [fi, sv, en]}
numbers: {"0201234567": {menu: main}}
hours: {mon-fri: 08:00-16:00, closed_action: {operator: true}}
menus: {main: {prompt: {fi: Valitse, sv: Välj, en: Choose}}}
teams: {ops: {name: Vaihde, kind: operators, members: [anna]}}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], delegates: [bob]}
  bob: {name: Bob Berg, devices: [desk: PJSIP/bob]}
""", "c.yaml")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_flows_say_the_catalogs_words(language):
    said = offers_text(COMPANY, language, "bob")
    assert said == " ".join([
        phrase(language, "offer.delegate", name="Bob Berg"), phrase(language, "offer.message"),
        phrase(language, "offer.callback"), phrase(language, "offer.operator"),
    ])
    people = [COMPANY.employees["anna"]]
    assert choices_text(people, language).startswith(
        phrase(language, "by_name.choice", name="Anna Virtanen", key=1))
    assert greeting_for("Anna", language) == phrase(language, "greeting.by_name", name="Anna")
    assert greeting_for("", language) == phrase(language, "greeting.nameless")


def test_vaihde_phrases_lists_them(capsys):
    assert main(["phrases", "--language", "sv"]) == 0
    out = capsys.readouterr().out
    assert "offer.message\n  sv: För att lämna ett meddelande, tryck 2.\n" in out
    assert "  fi:" not in out and "  en:" not in out
    assert all(f"\n{key}\n" in f"\n{out}" for key in KEYS)
    assert all(f"  {sound}: " in out for sound in RECORDINGS)
    assert main(["phrases"]) == 0
    every = capsys.readouterr().out
    assert all(f"  {lang}: {CATALOG[lang]['team.busy']}" in every for lang in LANGUAGES)
