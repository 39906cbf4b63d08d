"""What a caller's keypad presses mean outside the numbered options: an extension keyed during the
greeting, or the first letters of a name spelled on the keypad (dial by name). Pure functions.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from enum import StrEnum

from vaihde.company.schema import CompanyConfig, Employee

# ITU E.161 letters; å, ä, ö, ü… are spelled as their base letter (how people key them).
_LETTERS = {
    "2": "abc", "3": "def", "4": "ghi", "5": "jkl",
    "6": "mno", "7": "pqrs", "8": "tuv", "9": "wxyz",
}  # fmt: skip
_KEY_OF = {letter: key for key, letters in _LETTERS.items() for letter in letters}
_EXTRA = {"ß": "ss", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "þ": "th"}

MIN_LETTERS = 2  # one key matches a ninth of the company: not worth reading out
MAX_LETTERS = 8
MAX_CHOICES = 8  # read out as "…, press 1" … "press 8"; 9 is left for "spell again"


def fold(text: str) -> str:
    """Lower case without accents: "Åsa Öberg" → "asa oberg"."""
    out = []
    for ch in unicodedata.normalize("NFKD", text.lower()):
        if unicodedata.combining(ch):
            continue
        out.append(_EXTRA.get(ch, ch))
    return "".join(out)


def keys_of(word: str) -> str:
    """The keypad digits that spell a word; letters outside a–z are skipped."""
    return "".join(_KEY_OF.get(ch, "") for ch in fold(word))


def name_keys(name: str) -> tuple[str, ...]:
    """Every word of a name as keypad digits, so "Anna-Liisa Virtanen" is found from
    A, L or V: ("26624", "54727", "84782636")."""
    words = fold(name).replace("-", " ").split()
    return tuple(k for k in (keys_of(w) for w in words) if k)


def names_matching(employees: Iterable[Employee], digits: str) -> list[Employee]:
    """Employees whose first, last (or any) name starts with the spelled digits, by name."""
    if not digits.isdigit():
        return []
    found = [e for e in employees if any(k.startswith(digits) for k in name_keys(e.name))]
    return sorted(found, key=lambda e: (fold(e.name), e.id))


class Step(StrEnum):
    MORE = "more"  # a longer extension starts with what was typed: wait for the next key
    MATCH = "match"  # an extension, and no longer one starts with it
    NONE = "none"  # no extension starts with it


def extension_step(company: CompanyConfig, typed: str) -> Step:
    """Whether the keys typed so far are, or may become, an employee's extension."""
    if not typed.isdigit():
        return Step.NONE
    longer = company.extension_prefixes.get(typed, 0)
    if longer:
        return Step.MORE
    return Step.MATCH if company.employee_by_extension(typed) is not None else Step.NONE
