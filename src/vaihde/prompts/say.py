"""Sentence parts read naturally per language: clock times, dates, greetings by first name, and
the text rewrites that make espeak-ng say "14.30" as a time, not "fourteen point three zero".
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time

from vaihde.phrases import phrase

MAX_NAME = 40

_CLOCK_WORD = {"fi": "kello", "sv": "klockan"}
# Finnish would need case endings ("kahdeksasta kuuteentoista"): a spoken pause instead.
_RANGE_WORD = {"fi": " – ", "sv": " till ", "en": " to "}

# A time is H.MM or H:MM (Finnish and Swedish write 14.30; English texts 4.30 pm or 16:30). A lone
# number is left alone, espeak reads "kello 8" right already; in a range "8-16.30" or after a clock
# word ("kello 8-15") a lone hour is a time too.
_TIME = r"(?:[01]?\d|2[0-4])[.:][0-5]\d"
_HOUR = r"(?:[01]?\d|2[0-4])"
_NOT_BEFORE = r"(?<![\d.:,])"
_NOT_AFTER = r"(?![.:,]?\d)"  # 6.12.2026 and 1.30,5 are no times


def _ampm(group: str) -> str:
    return rf"(?:\s*(?P<{group}>[ap]\.?\s?m\.?)(?![a-z]))?"


_PATTERNS: dict[bool, tuple[re.Pattern[str], re.Pattern[str]]] = {}
for _english in (False, True):
    _ap, _bp, _p = (_ampm("ap"), _ampm("bp"), _ampm("p")) if _english else ("", "", "")
    _PATTERNS[_english] = (
        re.compile(
            rf"{_NOT_BEFORE}(?P<a>{_TIME}|{_HOUR}){_ap}\s*[-–]\s*(?P<b>{_TIME}|{_HOUR}){_bp}"
            rf"{_NOT_AFTER}",
            re.IGNORECASE,
        ),
        re.compile(rf"{_NOT_BEFORE}(?P<t>{_TIME}){_p}{_NOT_AFTER}", re.IGNORECASE),
    )
_CLOCK_BEFORE = re.compile(r"\b(?:kello|klo|klockan|kl)\.?\s*$", re.IGNORECASE)
_ABBREVIATIONS = {
    "fi": [(re.compile(r"\bklo\b\.?(?=\s*\d)", re.IGNORECASE), "kello")],
    "sv": [(re.compile(r"\bkl\.?(?=\s*\d)", re.IGNORECASE), "klockan")],
}
_SPACES = re.compile(r"\s+")

# Dates as written in Finland, "6.12." or "6.12.2026": espeak reads "kuusi piste kaksitoista".
_DATE = re.compile(r"(?<![\d.:,])(?P<d>[0-3]?\d)\.(?P<m>[01]?\d)\.(?P<y>\d{4})?(?!\d)")
_FI_ORDINALS = (
    "", "ensimmäinen", "toinen", "kolmas", "neljäs", "viides", "kuudes", "seitsemäs", "kahdeksas",
    "yhdeksäs", "kymmenes", "yhdestoista", "kahdestoista", "kolmastoista", "neljästoista",
    "viidestoista", "kuudestoista", "seitsemästoista", "kahdeksastoista", "yhdeksästoista",
)  # fmt: skip
_MONTHS = {
    "fi": ("tammikuuta", "helmikuuta", "maaliskuuta", "huhtikuuta", "toukokuuta", "kesäkuuta",
           "heinäkuuta", "elokuuta", "syyskuuta", "lokakuuta", "marraskuuta", "joulukuuta"),
    "sv": ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti",
           "september", "oktober", "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip


def _parse(text: str) -> tuple[int, int]:
    parts = re.split(r"[.:]", text)
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def _valid(hour: int, minute: int) -> bool:
    return 0 <= hour <= 24 and 0 <= minute <= 59 and not (hour == 24 and minute)


def _spoken(hour: int, minute: int, language: str, ampm: str = "") -> str:
    """Digits espeak-ng reads as a time: fi/sv "14 30" (neljätoista kolmekymmentä, fjorton
    trettio; "14 05" is "nolla viisi", as people read it), en "2:30 pm" ("two thirty pm")."""
    if language != "en":
        return f"{hour}" if minute == 0 else f"{hour} {minute:02d}"
    if ampm:
        suffix, hour12 = ("am" if ampm.lower().startswith("a") else "pm"), hour
    elif hour in (0, 24) and minute == 0:
        return "midnight"
    elif hour == 12 and minute == 0:
        return "12 noon"
    else:
        suffix, hour12 = ("am" if hour < 12 or hour == 24 else "pm"), hour % 12 or 12
    return f"{hour12} {suffix}" if minute == 0 else f"{hour12}:{minute:02d} {suffix}"


def clock(at: time, language: str) -> str:
    """A time of day to put in a sentence: "kello 14 30", "klockan 14", "2:30 pm".

    e.g. f"Anna Virtanen on palaverissa {clock(t, 'fi')} asti." espeak-ng reads the digits.
    """
    spoken = _spoken(at.hour, at.minute, language)
    word = _CLOCK_WORD.get(language)
    return f"{word} {spoken}" if word else spoken


def _fi_ordinal(n: int) -> str:
    if n < 20:
        return _FI_ORDINALS[n]
    tens = "kahdeskymmenes" if n < 30 else "kolmaskymmenes"
    return tens + (_FI_ORDINALS[n % 10] if n % 10 else "")


def _ordinal(n: int, language: str) -> str:
    if language == "fi":
        return _fi_ordinal(n)
    if language == "sv":  # espeak-ng reads "6:e" as sjätte, "21:a" as tjugoförsta
        return f"{n}:a" if n % 10 in (1, 2) and n % 100 not in (11, 12) else f"{n}:e"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th") if n % 100 not in (11, 12, 13) else "th"
    return f"{n}{suffix}"


def day_words(day: int, month: int, language: str, year: int | None = None) -> str:
    """A date read aloud: "kuudes joulukuuta", "6:e december" (sjätte), "6th December"."""
    out = f"{_ordinal(day, language)} {_MONTHS.get(language, _MONTHS['en'])[month - 1]}"
    return f"{out} {year}" if year else out


def on_date(at: date, language: str, with_year: bool = False) -> str:
    """A date to put in a sentence, e.g. f"Anna on lomalla {on_date(d, 'fi')} asti."."""
    return day_words(at.day, at.month, language, at.year if with_year else None)


def speakable(text: str, language: str) -> str:
    """Rewrite the clock times and dates in `text` so espeak-ng reads them in `language`.

    Anything that is not clearly a time or date (a lone number, a decimal 1,5) stays. "10.11."
    without a clock word before it is taken as a date (10 November), as Finns write dates.
    """
    for pattern, word in _ABBREVIATIONS.get(language, []):
        text = pattern.sub(word, text)

    def one_date(m: re.Match[str]) -> str:
        d, mo = int(m["d"]), int(m["m"])
        if not (1 <= d <= 31 and 1 <= mo <= 12) or _CLOCK_BEFORE.search(m.string, 0, m.start()):
            return m[0]
        words = day_words(d, mo, language, int(m["y"]) if m["y"] else None)
        # A day's closing dot is no full stop, unless the text ends there ("Suljettu 6.12.").
        ends = not m["y"] and not m.string[m.end() :].strip()
        return words + ("." if ends else "")

    text = _DATE.sub(one_date, text)
    english = language == "en"
    range_re, single_re = _PATTERNS[english]

    def one_range(m: re.Match[str]) -> str:
        ap = m.groupdict().get("ap") or ""
        bp = m.groupdict().get("bp") or ""
        timelike = any(c in m["a"] + m["b"] for c in ".:") or ap or bp
        if not timelike and not _CLOCK_BEFORE.search(m.string, 0, m.start()):
            return m[0]  # "8-16" alone may be anything: a score, pages, ages
        a, b = _parse(m["a"]), _parse(m["b"])
        if not (_valid(*a) and _valid(*b)):
            return m[0]
        if english and bp and not ap:
            ap = _start_ampm(a[0], b[0], bp)
        sep = _RANGE_WORD.get(language, " – ")
        return _spoken(*a, language, ap) + sep + _spoken(*b, language, bp)

    def one_time(m: re.Match[str]) -> str:
        hour, minute = _parse(m["t"])
        if not _valid(hour, minute):
            return m[0]
        return _spoken(hour, minute, language, m.groupdict().get("p") or "")

    return single_re.sub(one_time, range_re.sub(one_range, text))


def _start_ampm(start: int, end: int, end_ampm: str) -> str:
    """'9-5 pm' starts at 9 am; '1-3 pm' at 1 pm: the start shares the end's half unless later."""
    return "am" if end_ampm.lower().startswith("p") and start > end else end_ampm


def sanitize_name(name: str) -> str:
    """Letters, spaces and hyphens only, at most MAX_NAME characters: caller registry data is not
    trusted and goes into speech."""
    kept = []
    for ch in unicodedata.normalize("NFC", name):
        if ch.isalpha() or ch == "-":
            kept.append(ch)
        elif ch.isspace():
            kept.append(" ")
    cleaned = _SPACES.sub(" ", "".join(kept)).strip(" -")
    if len(cleaned) > MAX_NAME:
        head = cleaned[: MAX_NAME + 1]
        # Cut at a word boundary when there is one: half a name is worse than a shorter one.
        cleaned = head.rsplit(" ", 1)[0] if " " in head else cleaned[:MAX_NAME]
        cleaned = cleaned.strip(" -")
    return cleaned


def greeting_for(first_name: str, language: str) -> str:
    """Greet by first name: "Hei Anna", "Hej Anna", "Hello Anna"; no name left, no name said."""
    name = sanitize_name(first_name)
    if not name:
        return phrase(language, "greeting.nameless")
    return phrase(language, "greeting.by_name", name=name)
