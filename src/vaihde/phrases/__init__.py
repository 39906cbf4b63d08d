"""Every sentence vaihde speaks to callers, in one catalog per language (`fi.py`, `sv.py`,
`en.py`), and the recordings of Asterisk's core sounds it plays where no speech could be made.

The flows ask for a phrase by key (`phrase("fi", "offer.message")`); what the admin wrote
(menus, announcements) is the company file's. `vaihde phrases` and the admin page's "Phrases"
view list the catalogs.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from vaihde.phrases import en, fi, sv

LANGUAGES = ("fi", "sv", "en")
FALLBACK = "en"  # for a language vaihde has no phrases in
CATALOG: Mapping[str, Mapping[str, str]] = {"fi": fi.PHRASES, "sv": sv.PHRASES, "en": en.PHRASES}
KEYS = tuple(fi.PHRASES)

# Recordings from Asterisk's core sounds (Asterisk plays each in the caller's language, when it
# has it): used when speech could not be made in time, and to confirm feature codes.
SILENT_PROMPT = "silence/1"
INVALID_CHOICE = "pm-invalid-option"
AWAY_FALLBACK = "vm-isunavail"
RECORD_INTRO = "vm-intro"
MESSAGE_SAVED = "vm-msgsaved"
CALLBACK_TAKEN = "auth-thankyou"
CONFIRM_SET = "activated"
CONFIRM_BACK = "de-activated"
REFUSED = "pbx-invalid"
NOT_YOURS = "im-sorry"
RECORDINGS: Mapping[str, str] = {
    SILENT_PROMPT: "a menu with neither a recording nor speech waits for a key",
    INVALID_CHOICE: "after a key that is no choice in the menu",
    AWAY_FALLBACK: "instead of away.* and offer.* (the person cannot answer)",
    RECORD_INTRO: "instead of message.intro",
    MESSAGE_SAVED: "instead of message.saved",
    CALLBACK_TAKEN: "instead of callback.taken",
    CONFIRM_SET: "a feature code set the employee's availability",
    CONFIRM_BACK: "feature code *70: the employee is back",
    REFUSED: "a feature code that is no code",
    NOT_YOURS: "a feature code from a phone that is nobody's",
}


def spoken(language: str, default: str = FALLBACK) -> str:
    """The language vaihde speaks to a caller who wants `language`: it, else `default` (the
    company's), else English."""
    for candidate in (language, default):
        if candidate in CATALOG:
            return candidate
    return FALLBACK


def phrase(language: str, key: str, /, **values: object) -> str:
    """The phrase `key` in `language` (English when vaihde has none in it), filled in."""
    text = CATALOG.get(language, CATALOG[FALLBACK])[key]
    return text.format(**values) if values else text


def placeholders(text: str) -> frozenset[str]:
    """The {names} a phrase is filled with."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def listing(languages: tuple[str, ...] = LANGUAGES) -> str:
    """The catalogs as an admin reads them (`vaihde phrases`): each key with its texts."""
    lines = []
    for key in KEYS:
        lines.append(key)
        lines.extend(f"  {lang}: {CATALOG[lang][key]}" for lang in languages)
    lines.append("")
    lines.append("Recordings (Asterisk's core sounds, in the caller's language):")
    lines.extend(f"  {sound}: {when}" for sound, when in RECORDINGS.items())
    return "\n".join(lines) + "\n"
