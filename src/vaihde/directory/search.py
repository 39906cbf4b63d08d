"""Finding employees by what a caller or operator types: accent- and case-insensitive prefix
search over names and team names, digit search over extensions and numbers. Pure, in memory.

Ranking: every query word must match some word of the employee (names and team names by prefix,
numbers by prefix or, from three digits on, anywhere). Exact beats prefix beats substring, a name
or number beats a team or device; ties go in name order, so results are stable.
"""

from __future__ import annotations

import random
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from heapq import nsmallest

from vaihde.directory import (
    DeviceDescription,
    DirectoryDescription,
    EmployeeDescription,
    TeamDescription,
    digits,
)

# Letters that Unicode does not decompose into a base letter and an accent.
_SPECIAL = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ð": "d",
        "Ð": "d",
        "þ": "th",
        "Þ": "th",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "ß": "ss",
    }
)
_WORD = re.compile(r"[^\W_]+")
_DIGIT_RUN = re.compile(r"[0-9]{3,}")
_NUMBER_QUERY = re.compile(r"^[0-9\s+\-().]+$")

# Per-word scores; a record's rank is (worst word, sum of words, name order).
EXACT, EXACT_2ND, PREFIX, PREFIX_2ND, SUBSTRING, SUBSTRING_2ND = 6, 5, 4, 3, 2, 1
MIN_SUBSTRING = 3  # shorter digit strings match only at the start of a number

NAME, TEAM, EXTENSION, NUMBER, DEVICE = "name", "team", "extension", "number", "device"
_SECONDARY = frozenset({TEAM, DEVICE})


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Lower case without accents: "Åsa Mäkinen" → "asa makinen", "Øst" → "ost"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@dataclass(frozen=True, slots=True)
class Record:
    """What the index knows about one employee."""

    employee_id: str
    name: str
    extension: str | None = None
    numbers: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()  # team names
    devices: tuple[str, ...] = ()  # dial strings; digit runs in them are searchable


@dataclass(frozen=True, slots=True)
class Hit:
    employee_id: str
    name: str
    score: int  # higher is better; comparable within one query
    matched: tuple[str, ...]  # which fields matched: name, team, extension, number, device


def _tokens(record: Record) -> list[tuple[str, str]]:
    out = [(w, NAME) for w in words(record.name)]
    for team in record.teams:
        out.extend((w, TEAM) for w in words(team))
    if record.extension:
        out.append((record.extension, EXTENSION))
    for number in record.numbers:
        try:
            out.append((digits(number), NUMBER))
        except ValueError:
            continue
    for dial in record.devices:
        out.extend((run, DEVICE) for run in _DIGIT_RUN.findall(dial))
    return out


class DirectoryIndex:
    """Build once per directory change (`build`), search many times (`search`).

    Sorted token lists + bisect find prefixes; per-token record sets are combined with set
    operations, so the Python-level work is per matching token, not per employee.
    """

    def __init__(self, records: list[Record], tokens: list[tuple[tuple[str, str], ...]]) -> None:
        self.records = records
        self._tokens = tokens  # per record: (token, field)
        primary: dict[str, set[int]] = {}
        secondary: dict[str, set[int]] = {}
        for i, pairs in enumerate(tokens):
            for token, kind in pairs:
                (secondary if kind in _SECONDARY else primary).setdefault(token, set()).add(i)
                primary.setdefault(token, set())
                secondary.setdefault(token, set())
        # token -> (records matching through a name/number/extension, through a team/device)
        self._postings: dict[str, tuple[frozenset[int], frozenset[int]]] = {
            t: (frozenset(primary[t]), frozenset(secondary[t] - primary[t])) for t in primary
        }
        self._text = sorted(t for t in primary if not t.isdigit())
        self._digits = sorted(t for t in primary if t.isdigit())
        # All digit tokens in one string: C-speed substring search instead of a Python loop.
        self._blob = "\n".join(self._digits)
        self._starts: list[int] = []
        pos = 0
        for t in self._digits:
            self._starts.append(pos)
            pos += len(t) + 1

    @classmethod
    def build(cls, records: Iterable[Record]) -> DirectoryIndex:
        # Record order = result order among equals: by folded name, then id.
        ordered = sorted(records, key=lambda r: (fold(r.name), r.employee_id))
        return cls(ordered, [tuple(_tokens(r)) for r in ordered])

    def __len__(self) -> int:
        return len(self.records)

    def _prefix_range(self, tokens: list[str], prefix: str) -> list[str]:
        lo = bisect_left(tokens, prefix)
        hi = bisect_left(tokens, prefix + "\U0010ffff", lo)
        return tokens[lo:hi]

    def _add(self, groups: dict[int, list[frozenset[int]]], token: str, best: int) -> None:
        # best: EXACT, PREFIX or SUBSTRING for a primary field; one less through a team/device.
        primary, secondary = self._postings[token]
        if primary:
            groups.setdefault(best, []).append(primary)
        if secondary:
            groups.setdefault(best - 1, []).append(secondary)

    def _match_word(self, word: str) -> dict[int, set[int]]:
        """score -> records whose best match for `word` has that score (disjoint sets)."""
        groups: dict[int, list[frozenset[int]]] = {}
        if not word.isdigit():
            for token in self._prefix_range(self._text, word):
                self._add(groups, token, EXACT if token == word else PREFIX)
        elif len(word) < MIN_SUBSTRING:
            for token in self._prefix_range(self._digits, word):
                self._add(groups, token, EXACT if token == word else PREFIX)
        else:
            blob, starts, tokens = self._blob, self._starts, self._digits
            pos = blob.find(word)
            while pos >= 0:
                i = bisect_right(starts, pos) - 1
                token = tokens[i]
                if pos != starts[i]:
                    self._add(groups, token, SUBSTRING)
                else:
                    self._add(groups, token, EXACT if len(token) == len(word) else PREFIX)
                # Each token counts once, by its first (best) occurrence.
                pos = blob.find(word, starts[i] + len(token) + 1)
        levels: dict[int, set[int]] = {}
        seen: set[int] = set()
        for score in sorted(groups, reverse=True):
            level = set().union(*groups[score]) - seen
            if level:
                levels[score] = level
                seen |= level
        return levels

    def _query_words(self, query: str) -> list[str]:
        if _NUMBER_QUERY.match(query) and any(c.isdigit() for c in query):
            # "+358 40 123" is one number, not three words.
            return ["".join(c for c in query if c.isdigit())]
        return list(dict.fromkeys(words(query)))

    def search(self, query: str, limit: int = 20) -> list[Hit]:
        if limit <= 0:
            return []
        qwords = self._query_words(query)
        matches = [self._match_word(w) for w in qwords]
        if not matches or not all(matches):
            return []
        if len(matches) == 1:
            # Best level first; inside a level, name order (= record index).
            picked: list[tuple[int, int]] = []
            for score, level in sorted(matches[0].items(), reverse=True):
                need = limit - len(picked)
                if need <= 0:
                    break
                chosen = sorted(level)[:need] if len(level) <= 4 * need else nsmallest(need, level)
                picked.extend((rec, score) for rec in chosen)
            return [self._hit(rec, score, qwords) for rec, score in picked]
        alls = [set().union(*m.values()) for m in matches]
        alls.sort(key=len)
        candidates = alls[0].intersection(*alls[1:])
        ranked: list[tuple[int, int, int]] = []
        for rec in candidates:
            scores = [next(s for s, level in m.items() if rec in level) for m in matches]
            ranked.append((-min(scores), -sum(scores), rec))
        return [self._hit(rec, -worst, qwords) for worst, _t, rec in nsmallest(limit, ranked)]

    def _hit(self, rec: int, score: int, qwords: list[str]) -> Hit:
        record = self.records[rec]
        # Only for the few hits shown: which fields the query touched, for highlighting.
        fields: list[str] = []
        for token, kind in self._tokens[rec]:
            if kind not in fields and any(_touches(w, token) for w in qwords):
                fields.append(kind)
        return Hit(record.employee_id, record.name, score, tuple(fields))


def _touches(word: str, token: str) -> bool:
    if word.isdigit() and len(word) >= MIN_SUBSTRING:
        return word in token
    return token.startswith(word)


def records_from_description(description: DirectoryDescription) -> list[Record]:
    """Index records straight from a directory description (no database needed)."""
    team_names: dict[str, list[str]] = {}
    for team in description.teams:
        for member in team.members:
            team_names.setdefault(member, []).append(team.name)
    return [
        Record(
            employee_id=e.id,
            name=e.name,
            extension=e.extension,
            numbers=e.numbers,
            teams=tuple(team_names.get(e.id, ())),
            devices=tuple(d.dial for d in e.devices),
        )
        for e in description.employees
    ]


def linear_search(records: list[Record], query: str, limit: int = 20) -> list[str]:
    """The naive way (every record, every query): the benchmark's baseline and the tests'
    oracle for which employees match."""
    qwords = words(query)
    found = []
    for r in sorted(records, key=lambda r: (fold(r.name), r.employee_id)):
        tokens = [t for t, _ in _tokens(r)]
        if qwords and all(any(t.startswith(w) for t in tokens) for w in qwords):
            found.append(r.employee_id)
    return found[:limit] if limit else found


# --- synthetic data for benchmarks and tests ---------------------------------------------

FIRST_NAMES = (
    "Anna", "Åsa", "Mikko", "Päivi", "Jörgen", "Sirkka", "Matti", "Liisa", "Jukka", "Tuula",
    "Björn", "Märta", "Timo", "Sanna", "Pekka", "Elina", "Jyrki", "Kaisa", "Antti", "Heli",
    "Sören", "Ulla", "Väinö", "Aino", "Eero", "Ilona", "Göran", "Kirsi", "Olli", "Riikka",
    "Åke", "Birgitta", "Ville", "Noora", "Lars", "Ingrid", "Jussi", "Mervi", "Tapani", "Ritva",
    "Kalle", "Tiina", "Håkan", "Maija", "Esa", "Johanna", "Pär", "Sofia", "Henrik", "Eeva",
)  # fmt: skip
LAST_NAMES = (
    "Virtanen", "Mäkinen", "Järvinen", "Hämäläinen", "Korhonen", "Nieminen", "Mäkelä",
    "Heikkinen", "Koskinen", "Lehtonen", "Öberg", "Ström", "Lindqvist", "Åkerlund", "Sjöberg",
    "Laaksonen", "Pöllänen", "Kärkkäinen", "Räsänen", "Väisänen", "Hyvönen", "Söderström",
    "Törnqvist", "Ekström", "Ahonen", "Salminen", "Lahtinen", "Rantanen", "Tuominen", "Kinnunen",
    "Saarinen", "Lindroos", "Nyström", "Forsström", "Hämäläinen-Ek", "Kivelä", "Jääskeläinen",
    "Pääkkönen", "Björklund", "Grönroos",
)  # fmt: skip
TEAM_NAMES = (
    ("Myynti", "sales"), ("Asiakaspalvelu", "service"), ("Talous", "team"),
    ("Henkilöstö", "team"), ("Tuotekehitys", "team"), ("Hankinta", "team"),
    ("Logistiikka", "team"), ("Viestintä", "team"), ("Laki", "team"), ("IT-tuki", "team"),
    ("Vaihde", "operators"), ("Försäljning", "sales"),
)  # fmt: skip


def make_synthetic_directory(n: int, seed: int = 1) -> DirectoryDescription:
    """`n` employees with Finnish and Swedish names (accents, repeats), unique extensions,
    direct numbers and mobile devices, in 12 teams: for benchmarks and tests."""
    rng = random.Random(seed)
    employees = []
    team_members: list[list[str]] = [[] for _ in TEAM_NAMES]
    for i in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        eid = f"e{i:05d}"
        employees.append(
            EmployeeDescription(
                id=eid,
                name=f"{first} {last}",
                extension=str(20000 + i),
                email=f"{eid}@example.fi",
                numbers=(f"09 {5000000 + i * 7:07d}",),
                devices=(
                    DeviceDescription(f"PJSIP/{eid}", "desk"),
                    DeviceDescription(f"Local/040{1000000 + i * 13:07d}@pstn", "mobile"),
                ),
                languages=("fi", "sv") if rng.random() < 0.2 else ("fi",),
            )
        )
        team_members[rng.randrange(len(TEAM_NAMES))].append(eid)
    teams = tuple(
        TeamDescription(id=f"t{j:02d}", name=name, kind=kind, members=tuple(members))
        for j, ((name, kind), members) in enumerate(zip(TEAM_NAMES, team_members, strict=True))
    )
    return DirectoryDescription(employees=tuple(employees), teams=teams)
