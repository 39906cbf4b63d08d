"""Extensions keyed during the greeting, dial by name and the language switch: the pure parts
(keypad spelling, extension prefixes) and the conversation over a simulated channel."""

import pytest

from vaihde import contract
from vaihde.agi.peer import SimulatedChannel, play_session
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.company import parse_company
from vaihde.flows.by_name import choices_text
from vaihde.flows.inbound import (
    AskAgain,
    ByName,
    Ring,
    SwitchLanguage,
    ToOperator,
    choose,
    choose_keys,
    inbound,
)
from vaihde.flows.keypad import (
    Step,
    extension_step,
    fold,
    keys_of,
    name_keys,
    names_matching,
)
from vaihde.story import CallStory

COMPANY = """\
company: {name: Testi Oy, language: fi, languages: [fi, en]}
numbers:
  "+358201234567": {label: Main, menu: main}
  "+358201234568": {label: Main in English, menu: main, language: en}
hours:
  mon-sun: 00:00-24:00
  closed_action: {operator: true}
menus:
  main:
    greeting: {fi: Tervetuloa, en: Welcome}
    prompt: {fi: Valitse, en: Choose}
    attempts: 2
    options:
      1: {employee: anna}
      6: {dial_by_name: true}
      9: {language: en}
  sub:
    prompt: {fi: Alavalikko, en: Sub menu}
    options:
      1: {employee: bob}
teams:
  ops: {name: Operators, kind: operators, members: [olga]}
employees:
  anna: {name: Anna-Liisa Virtanen, extension: "101", devices: [{desk: PJSIP/anna}]}
  bob: {name: Åke Öberg, extension: "1010", devices: [{desk: PJSIP/bob}]}
  cecilia: {name: Cecilia Virta, extension: "205", devices: [{desk: PJSIP/cecilia}]}
  olga: {name: Olga Operaattori, devices: [{desk: PJSIP/operator}]}
"""


@pytest.fixture
def company():
    return parse_company(COMPANY, "company.yaml")


def test_fold_and_keypad_spelling():
    assert fold("Åke Öberg") == "ake oberg"
    assert keys_of("Öberg") == "62374"
    assert name_keys("Anna-Liisa Virtanen") == ("2662", "54472", "84782636")


def test_names_match_any_word_prefix_accent_insensitively(company):
    people = company.employees.values()
    assert [e.id for e in names_matching(people, "847")] == ["anna", "cecilia"]  # Vir…
    assert [e.id for e in names_matching(people, "62")] == ["bob"]  # Öb… as Ob…
    assert [e.id for e in names_matching(people, "544")] == ["anna"]  # Liisa
    assert names_matching(people, "999") == []
    assert names_matching(people, "8*7") == []


def test_choices_are_read_with_their_keys(company):
    people = names_matching(company.employees.values(), "847")
    assert choices_text(people, "en") == (
        "For Anna-Liisa Virtanen, press 1. For Cecilia Virta, press 2. To search again, press 9."
    )


def test_extension_steps(company):
    assert extension_step(company, "1") is Step.MORE
    assert extension_step(company, "10") is Step.MORE
    assert extension_step(company, "101") is Step.MORE  # 1010 exists too
    assert extension_step(company, "1010") is Step.MATCH
    assert extension_step(company, "205") is Step.MATCH
    assert extension_step(company, "3") is Step.NONE
    assert extension_step(company, "1#") is Step.NONE
    assert company.extension_keys == "12"  # keys that may begin one


def test_keys_are_an_extension_an_option_or_wrong(company):
    main = company.menus["main"]
    assert choose_keys(company, main, "205", 1) == Ring("PJSIP/cecilia", 20, "extension-205",
                                                         "cecilia")
    assert choose_keys(company, main, "101", 1).employee == "anna"
    assert choose_keys(company, main, "1", 1).reason == "menu-main-1"  # the option, not 1xx
    assert choose_keys(company, main, "999", 1) == AskAgain("invalid-choice")
    assert choose_keys(company, main, "999", 2) == ToOperator("menu-main-unknown-extension")
    assert choose_keys(company, main, "1" * 50, 2) == ToOperator("menu-main-unknown-extension")


def test_dial_by_name_and_language_are_decisions(company):
    main = company.menus["main"]
    assert choose(company, main, "6", 1) == ByName("menu-main-6")
    assert choose(company, main, "9", 1) == SwitchLanguage("en", "menu-main-9")


async def _speak(text, language):
    return f"spoken/{language}-{abs(hash(text)) % 10_000}"


async def run_flow(company, chan, script="inbound", speak=_speak):
    router = Router()
    stories = []

    @router.route("inbound")
    async def handler(channel):
        story = CallStory(channel.uniqueid, "", "", "", None)
        stories.append(story)
        await inbound(channel, company, speak=speak, story=story)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        chan = await play_session("127.0.0.1", server.port, script, chan)
    finally:
        await server.stop()
    return chan, stories[0]


async def test_extension_keyed_during_the_menu_rings_that_person(company):
    # "2" from the prompt's GET DATA, then "0" and "5" from WAIT FOR DIGIT.
    chan, story = await run_flow(company, SimulatedChannel(digits=["2", "0", "5"]))
    assert chan.variables[contract.DIAL] == "PJSIP/cecilia"
    assert story.path == "extension" and story.sought_id == "cecilia"


async def test_option_digit_that_begins_an_extension_waits_then_is_the_option(company):
    chan, story = await run_flow(company, SimulatedChannel(digits=["1", ""]))
    assert chan.variables[contract.DIAL] == "PJSIP/anna"
    assert story.path == "menu_option"
    assert any(c.startswith("WAIT FOR DIGIT 1500") for c in chan.commands)


async def test_unknown_extension_is_refused_then_a_person(company):
    chan, story = await run_flow(company, SimulatedChannel(digits=["2", "9", "2", "9"]))
    assert chan.variables[contract.ROUTE] == "operator"
    assert chan.variables[contract.REASON] == "menu-main-unknown-extension"
    assert [s.detail["key"] for s in story.steps if s.kind == "menu"] == ["29", "29"]


async def test_dial_by_name_rings_the_chosen_person(company):
    chan, story = await run_flow(company, SimulatedChannel(digits=["6", "847", "2"]))
    assert chan.variables[contract.DIAL] == "PJSIP/cecilia"
    assert (story.sought_id, story.path) == ("cecilia", "dial_by_name")
    assert any(s.kind == "dial_by_name" and s.detail["letters"] == "847" for s in story.steps)


async def test_dial_by_name_without_a_match_ends_with_a_person(company):
    chan, _ = await run_flow(company, SimulatedChannel(digits=["6", "999", "999", "999"]))
    assert chan.variables[contract.ROUTE] == "operator"
    assert chan.variables[contract.REASON] == "menu-main-6-no-match"


async def test_dial_by_name_zero_is_the_operator(company):
    chan, _ = await run_flow(company, SimulatedChannel(digits=["6", "0"]))
    assert chan.variables[contract.REASON] == "menu-main-6-operator"


async def test_dial_by_name_without_speech_goes_to_a_person(company):
    async def mute(text, language):
        return None

    chan, _ = await run_flow(company, SimulatedChannel(digits=["6"]), speak=mute)
    assert chan.variables[contract.REASON] == "menu-main-6-no-speech"


async def test_language_switch_says_the_menu_again_in_that_language(company):
    spoken = []

    async def speak(text, language):
        spoken.append(language)
        return "x"

    prompts_heard = []

    def prompts(say, language):
        prompts_heard.append(language)
        return f"p-{language}"

    router = Router()

    @router.route("inbound")
    async def handler(channel):
        await inbound(channel, company, speak=speak, prompts=prompts)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        chan = await play_session("127.0.0.1", server.port, "inbound",
                                  SimulatedChannel(digits=["9", "6", "205", "1"]))
    finally:
        await server.stop()
    assert prompts_heard[:2] == ["fi", "fi"] and prompts_heard[2] == "en"
    assert spoken and set(spoken) == {"en"}  # dial by name spoke English after the switch
    assert chan.variables[contract.ROUTE] == "operator"  # 205 spelled no one ("205" has a 0)


async def test_number_with_a_language_starts_in_it(company):
    heard = []

    def prompts(say, language):
        heard.append(language)
        return None

    router = Router()

    @router.route("inbound")
    async def handler(channel):
        await inbound(channel, company, prompts=prompts)

    server = FastAgiServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        await play_session("127.0.0.1", server.port, "inbound?did=358201234568",
                           SimulatedChannel(digits=["0"]))
    finally:
        await server.stop()
    assert heard and set(heard) == {"en"}
