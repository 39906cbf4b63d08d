"""Dial by name: the caller spells the first letters of a name on the keypad, hears the matching
people read out and picks one. `choices_text` is pure; `dial_by_name` is the conversation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vaihde.agi.channel import Channel
from vaihde.company.schema import CompanyConfig, Employee
from vaihde.flows.keypad import MAX_CHOICES, MAX_LETTERS, MIN_LETTERS, names_matching
from vaihde.phrases import phrase

Speak = Callable[[str, str], Awaitable[str | None]]

ATTEMPTS = 3
SPELL_TIMEOUT_MS = 6000  # also the gap allowed between letters
CHOOSE_TIMEOUT_MS = 6000

def text(language: str, key: str) -> str:
    return phrase(language, f"by_name.{key}")


def choices_text(people: list[Employee], language: str) -> str:
    """"For Anna Virtanen, press 1. … To search again, press 9." (at most MAX_CHOICES people)."""
    lines = [phrase(language, "by_name.choice", name=p.name, key=i)
             for i, p in enumerate(people[:MAX_CHOICES], start=1)]
    return " ".join([*lines, text(language, "again")])


@dataclass(frozen=True, slots=True)
class ByName:
    """How a dial-by-name conversation ended: a person chosen, or why not."""

    employee: str = ""  # "" = no one chosen
    letters: str = ""  # the keys spelled, for the call's story
    reason: str = ""  # operator | no-match | no-choice | no-speech


async def dial_by_name(
    channel: Channel, company: CompanyConfig, speak: Speak | None, language: str
) -> ByName:
    """Ask for letters until one person is chosen; after ATTEMPTS tries, or on 0, a person helps."""
    if speak is None:
        return ByName(reason="no-speech")
    letters, why = "", "no-match"
    for _ in range(ATTEMPTS):
        sound = await speak(text(language, "spell"), language)
        if sound is None:
            return ByName(reason="no-speech")
        got = await channel.get_data(sound, SPELL_TIMEOUT_MS, MAX_LETTERS)
        letters = got.digits
        if letters == "0":
            return ByName(letters=letters, reason="operator")
        if len(letters) < MIN_LETTERS or not letters.isdigit():
            why = "no-letters"
            continue
        people = names_matching(company.employees.values(), letters)
        if not people:
            why = "no-match"
            if await _say(channel, speak, text(language, "none"), language) == "0":
                return ByName(letters=letters, reason="operator")
            continue
        if len(people) > MAX_CHOICES:
            why = "too-many"
            if await _say(channel, speak, text(language, "many"), language) == "0":
                return ByName(letters=letters, reason="operator")
            continue
        sound = await speak(choices_text(people, language), language)
        if sound is None:
            return ByName(letters=letters, reason="no-speech")
        pick = (await channel.get_data(sound, CHOOSE_TIMEOUT_MS, 1)).digits
        if pick == "0":
            return ByName(letters=letters, reason="operator")
        if pick.isdigit() and 1 <= int(pick) <= len(people):
            return ByName(people[int(pick) - 1].id, letters)
        why = "no-choice"
    return ByName(letters=letters, reason=why)


async def _say(channel: Channel, speak: Speak, words: str, language: str) -> str | None:
    """Say it, listening for 0 (the switchboard): returns the key pressed, if any."""
    sound = await speak(words, language)
    if sound:
        return await channel.stream_file(sound, "0")
    return None
