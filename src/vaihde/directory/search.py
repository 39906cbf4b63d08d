"""Finding employees and teams by what a caller or operator types: accent- and case-insensitive
prefix search over names, titles, admin-maintained topics ("fishing permits", "kalastuslupa")
and team names, digit search over extensions and numbers. Pure, in memory.

Ranking: every query word must match some word of the record (words by prefix, numbers by prefix
or, from three digits on, anywhere). Exact beats prefix beats inside a number; at the same, a
name (or extension or number) beats a title, which beats a topic, which beats the name of a team
the person is in or a device. A record ranks by its worst-matching word, then by all of them;
ties go in name order, so results are stable. Teams are a separate list (`kind="team"`), ranked
the same way by their own name, title and topics.
"""

from __future__ import annotations

import copy
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

# How well a word matched: exactly, as a prefix, or inside a number.
EXACT, PREFIX, SUBSTRING = 3, 2, 1
MIN_SUBSTRING = 3  # shorter digit strings match only at the start of a number
# A company's view with at most this many records may read their own words instead of the
# index's postings of every company (DirectoryIndex._scan_cheaper).
SCAN_MAX = 256

NAME, TEAM, EXTENSION, NUMBER, DEVICE = "name", "team", "extension", "number", "device"
TITLE, TOPIC = "title", "topic"
# Which field a word matched in, best first; a word's score is quality * 4 + tier, so at equal
# quality a name beats a title beats a topic beats a team name or device. A record's rank is
# (worst word, sum of words, name order).
TIERS = {NAME: 3, EXTENSION: 3, NUMBER: 3, TITLE: 2, TOPIC: 1, TEAM: 0, DEVICE: 0}
_TIERS_BEST_FIRST = (3, 2, 1, 0)
EMPLOYEE_RECORD, TEAM_RECORD = "employee", "team"


def score(quality: int, field: str) -> int:
    return quality * 4 + TIERS[field]


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Lower case without accents: "Åsa Mäkinen" → "asa makinen", "Øst" → "ost"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


@dataclass(frozen=True, slots=True)
class Record:
    """What the index knows about one employee (or, kind "team", one team: then employee_id is
    the team's id and only name, title and topics are set)."""

    employee_id: str
    name: str
    extension: str | None = None
    numbers: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()  # team names
    devices: tuple[str, ...] = ()  # dial strings; digit runs in them are searchable
    title: str = ""  # "Myyntipäällikkö"
    topics: tuple[str, ...] = ()  # "fishing permits", "kalastuslupa"
    kind: str = EMPLOYEE_RECORD
    company: str = ""  # the company's id (several companies; searches may keep to one)


@dataclass(frozen=True, slots=True)
class Hit:
    employee_id: str  # the team's id for team hits
    name: str
    score: int  # higher is better; comparable within one query
    # Which fields matched: name, title, topic, team, extension, number, device.
    matched: tuple[str, ...]
    kind: str = EMPLOYEE_RECORD


def record_tokens(record: Record) -> list[tuple[str, str]]:
    """The searchable words of a record, folded, with the field each came from."""
    out = [(w, NAME) for w in words(record.name)]
    out.extend((w, TITLE) for w in words(record.title))
    for topic in record.topics:
        out.extend((w, TOPIC) for w in words(topic))
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


class _Tier:
    """One tier's words: sorted token lists (text, digits) with aligned posting lists, and the
    digit tokens without their first digit in one string for inside-a-number matches."""

    def __init__(self, postings: dict[str, set[int]]) -> None:
        self.text = sorted(t for t in postings if not t.isdigit())
        self.digits = sorted(t for t in postings if t.isdigit())
        self.text_postings = [frozenset(postings[t]) for t in self.text]
        self.digit_postings = [frozenset(postings[t]) for t in self.digits]
        self.blob = "\n".join(t[1:] for t in self.digits)
        self.starts: list[int] = []
        pos = 0
        for t in self.digits:
            self.starts.append(pos)
            pos += len(t)  # len(t) - 1 characters plus the separator

    def match(self, word: str) -> tuple[list[frozenset[int]], list[frozenset[int]],
                                       list[frozenset[int]]]:
        """Records whose token equals `word`, starts with it, has it inside (digits)."""
        is_text = not word.isdigit()
        tokens = self.text if is_text else self.digits
        postings = self.text_postings if is_text else self.digit_postings
        lo = bisect_left(tokens, word)
        hi = bisect_left(tokens, word + "\U0010ffff", lo)
        exact: list[frozenset[int]] = []
        if lo < hi and tokens[lo] == word:
            exact = [postings[lo]]
            lo += 1
        inside: list[frozenset[int]] = []
        if not is_text and len(word) >= MIN_SUBSTRING:
            blob, starts = self.blob, self.starts
            pos = blob.find(word)
            while pos >= 0:
                i = bisect_right(starts, pos) - 1
                inside.append(postings[i])
                # Each token counts once.
                pos = blob.find(word, starts[i + 1] if i + 1 < len(starts) else len(blob))
        return exact, postings[lo:hi], inside


class DirectoryIndex:
    """Build once per directory change (`build`), search many times (`search`).

    Per tier (name, title, topic, team/device) sorted token lists + bisect find prefixes;
    per-token record sets are combined with set operations, so the Python-level work is per
    matching token, not per employee. Teams are indexed apart (`teams`), searched with
    `search(..., kind="team")`.

    Several companies share one index: `only(company)` is a view of it that finds that
    company's records alone (its record numbers as one set, intersected with the first query
    word's matches), so the service keeps one index whatever the number of companies.
    """

    def __init__(self, records: list[Record], tokens: list[tuple[tuple[str, str], ...]]) -> None:
        self.records = records
        self._tokens = tokens  # per record: (token, field)
        by_tier: dict[int, dict[str, set[int]]] = {tier: {} for tier in _TIERS_BEST_FIRST}
        members: dict[str, set[int]] = {}
        for i, pairs in enumerate(tokens):
            for token, field in pairs:
                by_tier[TIERS[field]].setdefault(token, set()).add(i)
            members.setdefault(records[i].company, set()).add(i)
        self._tiers = [(tier, _Tier(by_tier[tier])) for tier in _TIERS_BEST_FIRST
                       if by_tier[tier]]
        self.teams: DirectoryIndex | None = None
        # Record numbers per company, and the one this view keeps to (None: every company's).
        self._members = {cid: frozenset(rs) for cid, rs in members.items()}
        self._allowed: frozenset[int] | None = None
        self._views: dict[str, DirectoryIndex] = {}
        self.base = self  # the index a view filters (views share its records and tokens)

    @property
    def companies(self) -> frozenset[str]:
        """The companies with records here (people or teams)."""
        teams = self.teams.companies if self.teams is not None else frozenset()
        return frozenset(self._members) | teams

    def only(self, company: str) -> DirectoryIndex | None:
        """The view that finds `company`'s employees and teams only (None: no such company
        here). Made once per company and index: a few references and no copies."""
        base = self.base
        view = base._views.get(company)
        if view is None:
            companies = base.companies
            if company not in companies:
                return None
            if companies == {company}:
                return base  # one company's index is everyone's: nothing to filter
            view = copy.copy(base)
            view._allowed = base._members.get(company, frozenset())
            view._views = {}
            if base.teams is not None:
                view.teams = base.teams.only(company)
            base._views[company] = view
        return view

    @classmethod
    def build(cls, records: Iterable[Record]) -> DirectoryIndex:
        # Record order = result order among equals: by folded name, then id.
        ordered = sorted(records, key=lambda r: (fold(r.name), r.employee_id))
        people = [r for r in ordered if r.kind != TEAM_RECORD]
        index = cls(people, [tuple(record_tokens(r)) for r in people])
        teams = [r for r in ordered if r.kind == TEAM_RECORD]
        if teams:
            index.teams = cls(teams, [tuple(record_tokens(r)) for r in teams])
        return index

    def __len__(self) -> int:
        return len(self.records) if self._allowed is None else len(self._allowed)

    def _match_word(
        self, word: str, allowed: frozenset[int] | None = None
    ) -> dict[int, set[int]]:
        """score -> records whose best match for `word` has that score (disjoint sets);
        `allowed`: only these records (one company's view)."""
        found = [(tier, part.match(word)) for tier, part in self._tiers]
        levels: dict[int, set[int]] = {}
        seen: set[int] = set()
        # Best first: exact, prefix, inside a number; within each, name > title > topic > team.
        for quality, which in ((EXACT, 0), (PREFIX, 1), (SUBSTRING, 2)):
            for tier, matched in found:
                sets = matched[which]
                if not sets:
                    continue
                if allowed is not None:
                    # Each posting set cut to the company first (C-level, at most the
                    # company's size each): cheaper than the union of every company's.
                    level = set().union(*map(allowed.intersection, sets))
                else:
                    level = set().union(*sets)
                if seen:
                    level -= seen
                if level:
                    levels[quality * 4 + tier] = level
                    seen |= level
        return levels

    def _scan_cheaper(self, word: str, allowed: frozenset[int]) -> bool:
        """Is reading the few allowed records' own words cheaper than the index's postings
        (which hold every company's)? A number's inside is searched across every number."""
        if len(allowed) > SCAN_MAX:
            return False
        if word.isdigit() and len(word) >= MIN_SUBSTRING:
            return True
        postings = 0
        for _, part in self._tiers:
            tokens = part.digits if word.isdigit() else part.text
            lo = bisect_left(tokens, word)
            postings += bisect_left(tokens, word + "\U0010ffff", lo) - lo
        return postings > 2 * len(allowed)

    def _scan_word(self, word: str, allowed: frozenset[int]) -> dict[int, set[int]]:
        """What `_match_word` finds among `allowed`, read from their own words: the best
        score each record's words give (exact, prefix, inside a number; by field)."""
        digit_word = word.isdigit()
        inside = digit_word and len(word) >= MIN_SUBSTRING
        levels: dict[int, set[int]] = {}
        tokens = self._tokens
        for rec in allowed:
            best = 0
            for token, field in tokens[rec]:
                if token.isdigit() != digit_word:
                    continue  # the index keeps words and numbers apart
                if token == word:
                    quality = EXACT
                elif token.startswith(word):
                    quality = PREFIX
                elif inside and word in token[1:]:
                    quality = SUBSTRING
                else:
                    continue
                best = max(best, quality * 4 + TIERS[field])
            if best:
                levels.setdefault(best, set()).add(rec)
        return levels

    def _query_words(self, query: str) -> list[str]:
        if _NUMBER_QUERY.match(query) and any(c.isdigit() for c in query):
            # "+358 40 123" is one number, not three words.
            return ["".join(c for c in query if c.isdigit())]
        return list(dict.fromkeys(words(query)))

    def search(self, query: str, limit: int = 20, kind: str = EMPLOYEE_RECORD) -> list[Hit]:
        """The best `limit` employees (kind="team": teams) for `query`, best first."""
        return [hit for _, hit in self.ranked(query, limit, kind)]

    def ranked(
        self, query: str, limit: int = 20, kind: str = EMPLOYEE_RECORD
    ) -> list[tuple[tuple[int, int, str, str], Hit]]:
        """As `search`, each hit with its sort key (smaller first): (-worst word score, -sum
        of word scores, folded name, id). Keys of different indexes compare, so the best of
        several indexes (`merge`) are what one index of all their records would answer."""
        if kind == TEAM_RECORD:
            return self.teams.ranked(query, limit) if self.teams is not None else []
        if limit <= 0:
            return []
        qwords = self._query_words(query)
        if not qwords:
            return []
        # Group records by (worst word score, sum of word scores) with set intersections only:
        # a handful of groups, however many employees match.
        groups: dict[tuple[int, int], set[int]] = {}
        for n, word in enumerate(sorted(qwords, key=len, reverse=True)):
            # One company's view: its records only, and for the later words only those the
            # earlier ones left (the posting sets of every company are cut to these first).
            allowed = self._allowed
            if allowed is not None and n:
                allowed = frozenset().union(*groups.values())
            if allowed is not None and self._scan_cheaper(word, allowed):
                levels = self._scan_word(word, allowed)
            else:
                levels = self._match_word(word, allowed)
            if not levels:
                return []
            if n == 0:
                groups = {(score, score): level for score, level in levels.items()}
                continue
            narrowed: dict[tuple[int, int], set[int]] = {}
            for (worst, total), recs in groups.items():
                for score, level in levels.items():
                    both = recs & level
                    if both:
                        key = (min(worst, score), total + score)
                        narrowed[key] = narrowed[key] | both if key in narrowed else both
            if not narrowed:
                return []
            groups = narrowed
        hits: list[tuple[tuple[int, int, str, str], Hit]] = []
        tests = [(w, w.isdigit() and len(w) >= MIN_SUBSTRING) for w in qwords]
        records = self.records
        for key in sorted(groups, reverse=True):
            need = limit - len(hits)
            if need <= 0:
                break
            recs = groups[key]
            # In name order (= record index) inside a group.
            chosen = sorted(recs)[:need] if len(recs) <= 4 * need else nsmallest(need, recs)
            for rec in chosen:
                record = records[rec]
                hits.append(((-key[0], -key[1], fold(record.name), record.employee_id),
                             self._hit(rec, key[0], tests)))
        return hits

    def _hit(self, rec: int, score: int, tests: list[tuple[str, bool]]) -> Hit:
        record = self.records[rec]
        # Only for the few hits shown: which fields the query touched, for highlighting.
        fields: list[str] = []
        for token, kind in self._tokens[rec]:
            if kind in fields:
                continue
            for word, inside in tests:
                if (word in token) if inside else token.startswith(word):
                    fields.append(kind)
                    break
        return Hit(record.employee_id, record.name, score, tuple(fields), record.kind)


def merge(
    indexes: Iterable[DirectoryIndex], query: str, limit: int = 20, kind: str = EMPLOYEE_RECORD
) -> list[tuple[DirectoryIndex, Hit]]:
    """The best `limit` hits of several indexes (say each company's), each with the index it
    came from, in the order one index of all their records would give them."""
    every = [(key, n, index, hit) for n, index in enumerate(indexes)
             for key, hit in index.ranked(query, limit, kind)]
    every.sort(key=lambda found: (found[0], found[1]))
    return [(index, hit) for _, _, index, hit in every[:limit]]


def _touches(word: str, token: str) -> bool:
    if word.isdigit() and len(word) >= MIN_SUBSTRING:
        return word in token
    return token.startswith(word)


def records_from_description(description: DirectoryDescription) -> list[Record]:
    """Index records straight from a directory description (no database needed): the
    employees, then the teams (kind "team")."""
    team_names: dict[str, list[str]] = {}
    for team in description.teams:
        for member in team.members:
            team_names.setdefault(member, []).append(team.name)
    people = [
        Record(
            employee_id=e.id,
            name=e.name,
            extension=e.extension,
            numbers=e.numbers,
            teams=tuple(team_names.get(e.id, ())),
            devices=tuple(d.dial for d in e.devices),
            title=e.title,
            topics=e.topics,
        )
        for e in description.employees
    ]
    return people + [
        Record(employee_id=t.id, name=t.name, title=t.title, topics=t.topics, kind=TEAM_RECORD)
        for t in description.teams
    ]


class LinearScan:
    """The naive way: every query looks at every employee's (pre-folded) words. The benchmark's
    baseline and the tests' oracle for which employees (or teams) match; it does not rank."""

    def __init__(self, records: Iterable[Record], kind: str = EMPLOYEE_RECORD) -> None:
        records = [r for r in records if r.kind == kind]
        ordered = sorted(records, key=lambda r: (fold(r.name), r.employee_id))
        self._rows = [(r.employee_id, [t for t, _ in record_tokens(r)]) for r in ordered]

    def search(self, query: str, limit: int = 20) -> list[str]:
        qwords = words(query)
        if _NUMBER_QUERY.match(query) and any(c.isdigit() for c in query):
            qwords = ["".join(c for c in query if c.isdigit())]
        # All of them, as ranking needs every match (this one just keeps name order).
        found = [
            eid
            for eid, tokens in self._rows
            if qwords and all(any(_touches(w, t) for t in tokens) for w in qwords)
        ]
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
TITLES = (
    "Myyntipäällikkö", "Myyntineuvottelija", "Asiakaspalvelija", "Kirjanpitäjä",
    "Palkanlaskija", "Ohjelmistokehittäjä", "Tuotepäällikkö", "Ostaja", "Varastonhoitaja",
    "Viestintäasiantuntija", "Lakimies", "Tukiasiantuntija", "Vaihteenhoitaja", "Controller",
    "HR-asiantuntija", "Säljchef", "Kundtjänstmedarbetare", "Ekonomiassistent",
)  # fmt: skip
TOPICS = (
    "kalastuslupa", "fishing permits", "metsästyslupa", "laskut", "invoices", "fakturor",
    "palkat", "lomat", "vuosiloma", "perintä", "reklamaatiot", "complaints", "takuu",
    "toimitukset", "deliveries", "leveranser", "sopimukset", "contracts", "avtal",
    "tietosuoja", "GDPR", "salasanat", "VPN", "tulostimet", "matkalaskut", "kulukorvaukset",
    "rekrytointi", "työterveys", "avaimet", "pysäköinti", "lehdistö", "press",
    "hankinnat", "tarjouspyynnöt", "varaosat", "huolto", "asiakasportaali", "verkkokauppa",
    "ajanvaraus", "kokoustilat", "kuljetusvauriot", "arvonlisävero", "reskontra",
    "luottotiedot", "alennuskoodit", "lahjakortit", "rakennusluvat", "vuokrasopimukset",
)  # fmt: skip


def make_synthetic_directory(n: int, seed: int = 1) -> DirectoryDescription:
    """`n` employees with Finnish and Swedish names (accents, repeats), titles, topics for a
    quarter of them, unique extensions, direct numbers and mobile devices, in 12 teams with
    titles and topics of their own: for benchmarks and tests."""
    rng = random.Random(seed)
    topics_rng = random.Random(seed + 1000)  # a separate stream: the names stay as they were
    employees = []
    team_members: list[list[str]] = [[] for _ in TEAM_NAMES]
    for i in range(n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        eid = f"e{i:05d}"
        topics: tuple[str, ...] = ()
        if topics_rng.random() < 0.25:
            topics = tuple(topics_rng.sample(TOPICS, topics_rng.randint(1, 3)))
        employees.append(
            EmployeeDescription(
                id=eid,
                name=f"{first} {last}",
                extension=str(20000 + i),
                email=f"{eid}@example.fi",
                numbers=(f"09 {5000000 + i * 7:07d}",),
                devices=(
                    DeviceDescription(dial=f"PJSIP/{eid}", kind="desk"),
                    DeviceDescription(dial=f"Local/040{1000000 + i * 13:07d}@pstn",
                                      kind="mobile"),
                ),
                languages=("fi", "sv") if rng.random() < 0.2 else ("fi",),
                title=topics_rng.choice(TITLES),
                topics=topics,
            )
        )
        team_members[rng.randrange(len(TEAM_NAMES))].append(eid)
    teams = tuple(
        TeamDescription(id=f"t{j:02d}", name=name, kind=kind, members=tuple(members),
                        title=f"{name} ({kind})",
                        topics=tuple(topics_rng.sample(TOPICS, 3)))
        for j, ((name, kind), members) in enumerate(zip(TEAM_NAMES, team_members, strict=True))
    )
    return DirectoryDescription(employees=tuple(employees), teams=teams)


def synthetic_queries(description: DirectoryDescription, n: int, seed: int = 2) -> list[str]:
    """What people type into a directory search, drawn from `description`: surname prefixes,
    full names, first name + initial, names without accents, extensions, parts of numbers,
    team names, titles and topics (whole or begun, accents dropped), and a few that find
    nobody."""
    rng = random.Random(seed)
    employees = description.employees
    teams = [t.name for t in description.teams]
    out: list[str] = []
    for _ in range(n):
        e = rng.choice(employees)
        first, _, last = e.name.partition(" ")
        kind = rng.randrange(12)
        if kind == 10:
            out.append(rng.choice((e.title, " ".join(words(e.title))[:6])) or first)
            continue
        if kind == 11:
            topic = rng.choice(TOPICS)
            out.append(rng.choice((topic, " ".join(words(topic))[: rng.randint(4, 8)])))
            continue
        if kind == 0:
            out.append(last[: rng.randint(3, 5)])
        elif kind == 1:
            out.append(e.name)
        elif kind == 2:
            out.append(f"{first} {last[0]}")
        elif kind == 3:
            out.append(" ".join(words(e.name)))  # typed without accents
        elif kind == 4:
            out.append(e.extension or first)
        elif kind == 5 and e.numbers:
            d = digits(e.numbers[0])
            start = rng.randrange(0, max(1, len(d) - 5))
            out.append(d[start : start + 5])
        elif kind == 6:
            out.append(rng.choice(teams))
        elif kind == 7:
            out.append(first[:2])
        elif kind == 8:
            out.append(rng.choice(("xq", "zzz", "987654321", "qwerty")))
        else:
            out.append(f"{last} {first}".lower())
    return out
