"""Directory search: accents, partial words, numbers, ranking, and speed at 10,000 employees."""

from __future__ import annotations

import pytest

from vaihde.directory import (
    DeviceDescription,
    DirectoryDescription,
    EmployeeDescription,
    TeamDescription,
)
from vaihde.directory.search import (
    DirectoryIndex,
    LinearScan,
    Record,
    fold,
    make_synthetic_directory,
    records_from_description,
    synthetic_queries,
)

RECORDS = [
    Record("anna", "Anna Virtanen", "101", ("09 123 4501",), ("Myynti",), ("PJSIP/anna",)),
    Record("annika", "Annika Mäkinen", "102", (), ("Asiakaspalvelu",)),
    Record("matti", "Matti Mäkinen", "103", ("+358 9 123 4503",), ("Myynti",)),
    Record("jarvi", "Jörgen Järvinen", "104", (), (), ("Local/0401234567@pstn",)),
    Record("asa", "Åsa Öberg", "105"),
    Record("asko", "Asko Virta", "1050"),
    Record("bjorn", "Bjørn Ærø", "106"),
    Record("liisa", "Anna-Liisa Hämäläinen", "107", ("0201234599",)),
]


@pytest.fixture(scope="module")
def index() -> DirectoryIndex:
    return DirectoryIndex.build(RECORDS)


def ids(index: DirectoryIndex, query: str, limit: int = 20) -> list[str]:
    return [h.employee_id for h in index.search(query, limit)]


def test_fold_removes_accents_and_case():
    assert fold("Åsa MÄKINEN") == "asa makinen"
    assert fold("Bjørn Ærø") == "bjorn aero"
    assert fold("Straße") == "strasse"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("makinen", {"annika", "matti"}),
        ("Mäkinen", {"annika", "matti"}),
        ("MÄKINEN", {"annika", "matti"}),
        ("jarvinen", {"jarvi"}),
        ("järvinen", {"jarvi"}),
        ("åsa", {"asa"}),
        ("oberg", {"asa"}),
        ("bjorn", {"bjorn"}),
        ("aero", {"bjorn"}),
        ("hamalainen", {"liisa"}),
        ("anna-liisa", {"liisa"}),
        ("liisa", {"liisa"}),
    ],
)
def test_accent_and_case_insensitive(index, query, expected):
    assert set(ids(index, query)) == expected


def test_asa_with_and_without_ring_finds_the_same(index):
    assert ids(index, "åsa") == ids(index, "asa")[: len(ids(index, "åsa"))]
    assert "asa" in ids(index, "asa") and "asa" in ids(index, "ÅSA")


def test_prefix_of_any_word(index):
    assert ids(index, "virt") == ["anna", "asko"]  # both by prefix: name order
    assert ids(index, "virta") == ["asko", "anna"]  # Virta exactly first, then Virtanen
    assert set(ids(index, "mak")) == {"annika", "matti"}
    assert ids(index, "anna v") == ["anna"]
    assert ids(index, "v anna") == ["anna"]  # word order does not matter
    assert ids(index, "anna x") == []  # every word must match


def test_team_names_are_searchable_but_rank_below_names(index):
    assert set(ids(index, "myynti")) == {"anna", "matti"}
    hit = index.search("myynti")[0]
    assert hit.matched == ("team",)


def test_numbers_by_digits_ignoring_separators(index):
    assert ids(index, "101") == ["anna"]
    assert ids(index, "09 123 4501") == ["anna"]
    assert ids(index, "091234501") == ["anna"]
    assert ids(index, "+358 9 123 4503") == ["matti"]
    assert ids(index, "1234503") == ["matti"]  # substring of the number
    assert ids(index, "040-123 4567") == ["jarvi"]  # mobile from a dial string
    assert index.search("0401234567")[0].matched == ("device",)


def test_short_digit_queries_match_only_at_the_start(index):
    # "10" begins every extension 101..107 and 1050; it is inside no other number here.
    everyone = {r.employee_id for r in RECORDS}
    assert set(ids(index, "10")) == everyone
    assert ids(index, "99") == []  # 0201234599 ends with 99: too short for a substring match


def test_ranking_exact_then_prefix_then_substring(index):
    # "105" is Åsa's extension exactly, Asko's 1050 by prefix.
    assert ids(index, "105") == ["asa", "asko"]
    inside = index.search("4503")
    assert [h.employee_id for h in inside] == ["matti"]
    assert inside[0].score < index.search("103")[0].score


def test_ranking_is_stable_in_name_order(index):
    # All exact first-name matches: in name order, whatever the insertion order.
    reversed_index = DirectoryIndex.build(list(reversed(RECORDS)))
    assert ids(index, "anna") == ids(reversed_index, "anna")
    assert ids(index, "anna") == ["anna", "liisa"]
    assert ids(index, "ann") == ["anna", "liisa", "annika"]
    assert ids(index, "a") == ids(reversed_index, "a")


def test_limit_and_empty_queries(index):
    assert len(index.search("a", limit=2)) == 2
    assert index.search("", 20) == [] and index.search("  ", 20) == []
    assert index.search("a", limit=0) == []
    assert index.search("zzz") == []


def test_records_from_description_carry_team_names():
    d = DirectoryDescription(
        employees=(
            EmployeeDescription(
                "anna",
                "Anna Virtanen",
                extension="101",
                devices=(DeviceDescription("Local/0405556666@pstn", "mobile"),),
            ),
        ),
        teams=(TeamDescription("sales", "Myynti", "sales", ("anna",)),),
    )
    index = DirectoryIndex.build(records_from_description(d))
    assert ids(index, "myy") == ["anna"] and ids(index, "0405556") == ["anna"]


@pytest.fixture(scope="module")
def big() -> tuple[DirectoryIndex, list[Record]]:
    records = records_from_description(make_synthetic_directory(10_000))
    return DirectoryIndex.build(records), records


def test_ten_thousand_employees_agree_with_a_linear_scan(big):
    index, records = big
    scan = LinearScan(records)
    queries = ["makinen", "åsa", "asa mak", "jor", "virtanen anna", "sjo", "hämäläinen-ek"]
    queries += ["20042", "0401", "095", "5000", "09 500 00", "myynti", "it-tuki", "zz"]
    for query in queries:
        got = {h.employee_id for h in index.search(query, limit=100_000)}
        assert got == set(scan.search(query, limit=0)), query
        assert got or query == "zz", query


# --- titles, topics and teams -----------------------------------------------------------------

TOPICAL = [
    Record("kalle", "Kalle Kalastaja", "201"),  # a name that begins like the topic
    Record("outi", "Outi Ojala", "202", title="Kalastusvalvoja"),
    Record("pekka", "Pekka Lupa", "203", topics=("kalastuslupa", "fishing permits")),
    Record("lasse", "Lasse Laskunen", "204", title="Laskutuspäällikkö",
           topics=("invoices", "laskut")),
    Record("tiina", "Tiina Tili", "205", teams=("Laskut",)),
    Record("billing", "Laskutus", title="Laskutus ja reskontra",
           topics=("laskut", "invoices", "fakturor"), kind="team"),
    Record("fish", "Kalatalous", title="Kalastusluvat ja valvonta",
           topics=("fishing permits",), kind="team"),
]


@pytest.fixture(scope="module")
def topical() -> DirectoryIndex:
    return DirectoryIndex.build(TOPICAL)


def test_topics_find_the_person_responsible(topical):
    assert ids(topical, "fishing permits") == ["pekka"]
    assert ids(topical, "Fishing") == ["pekka"]
    assert ids(topical, "kalastuslupa") == ["pekka"]
    assert ids(topical, "invoices") == ["lasse"]
    assert topical.search("invoices")[0].matched == ("topic",)


def test_titles_are_searchable_accents_ignored(topical):
    assert ids(topical, "laskutuspaallikko") == ["lasse"]
    assert topical.search("laskutuspäällikkö")[0].matched == ("title",)


def test_name_ranks_above_title_above_topic(topical):
    # "kalast" begins Kalle's name, Outi's title and Pekka's topic: in that order.
    assert ids(topical, "kalast") == ["kalle", "outi", "pekka"]
    scores = [h.score for h in topical.search("kalast")]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3


def test_topic_ranks_above_team_membership(topical):
    # "laskut" is exactly one of Lasse's topics and the name of Tiina's team.
    assert ids(topical, "laskut") == ["lasse", "tiina"]
    assert [h.matched for h in topical.search("laskut")] == [("title", "topic"), ("team",)]


def test_exact_beats_prefix_whatever_the_field(topical):
    # Lasse's topic "invoices" exactly beats a name that only begins with the word.
    index = DirectoryIndex.build([*TOPICAL, Record("ivo", "Invoicesson Ivo", "206")])
    assert ids(index, "invoices") == ["lasse", "ivo"]
    assert ids(index, "invoice") == ["ivo", "lasse"]  # both prefixes: the name first


def test_words_may_come_from_different_fields(topical):
    assert ids(topical, "pekka fishing") == ["pekka"]
    assert ids(topical, "lasse laskut") == ["lasse"]
    assert ids(topical, "pekka invoices") == []


def test_teams_are_a_list_of_their_own(topical):
    assert {h.employee_id for h in topical.search("laskut")} == {"lasse", "tiina"}
    teams = topical.search("laskut", kind="team")
    assert [(h.employee_id, h.kind) for h in teams] == [("billing", "team")]
    assert teams[0].matched == ("name", "title", "topic")  # Laskutus begins with it too
    assert [h.employee_id for h in topical.search("fishing", kind="team")] == ["fish"]
    assert [h.employee_id for h in topical.search("kalast", kind="team")] == ["fish"]
    assert len(topical) == 5 and len(topical.teams) == 2


def test_synthetic_directory_topics_agree_with_a_linear_scan(big):
    index, records = big
    scan = LinearScan(records)
    for query in ["kalastuslupa", "fishing permits", "fish", "laskut", "invo", "kirjanpitaja",
                  "myyntipäällikkö", "gdpr", "anna kalastuslupa"]:
        got = {h.employee_id for h in index.search(query, limit=100_000)}
        assert got == set(scan.search(query, limit=0)), query
        assert got, query
    teams = LinearScan(records, kind="team")
    for query in ["myynti", "laskut", "fish"]:
        got = {h.employee_id for h in index.search(query, limit=100, kind="team")}
        assert got == set(teams.search(query, limit=0)), query


# --- several companies: one index, searched per company -------------------------------------


def _companies(n_companies: int, n: int = 2000) -> list[Record]:
    """The synthetic directory spread over `n_companies` companies (employees and teams)."""
    from dataclasses import replace

    records = records_from_description(make_synthetic_directory(n))
    return [replace(r, company=f"c{int(r.employee_id[1:]) % n_companies}") for r in records]


def test_one_company_s_view_finds_that_company_s_people_and_teams_only():
    records = [replace_company(r, "alfa" if r.employee_id in ("anna", "asa") else "beta")
               for r in RECORDS]
    records.append(Record("t-sales", "Myynti", kind="team", company="beta"))
    index = DirectoryIndex.build(records)
    assert ids(index, "anna") == ["anna", "liisa"]  # every company's
    alfa, beta = index.only("alfa"), index.only("beta")
    assert alfa is not None and beta is not None
    assert ids(alfa, "anna") == ["anna"] and ids(beta, "anna") == ["liisa"]
    assert ids(alfa, "myynti") == ["anna"]  # the team name of anna's, her record's word
    assert alfa.search("myynti", kind="team") == []
    assert [h.employee_id for h in beta.search("myyn", kind="team")] == ["t-sales"]
    assert len(alfa) == 2 and len(beta) == 6 and len(index) == 8
    assert index.only("gamma") is None
    assert index.only("alfa") is alfa  # made once per index
    assert alfa.only("beta") is beta  # a view's view is the index's
    # One company alone: its view is the index itself.
    single = DirectoryIndex.build([replace_company(r, "main") for r in RECORDS])
    assert single.only("main") is single


def replace_company(record: Record, company: str) -> Record:
    from dataclasses import replace

    return replace(record, company=company)


@pytest.mark.parametrize("n_companies", [7, 40])  # ~290 records each (index) and ~50 (read)
def test_a_company_s_view_answers_as_an_index_of_its_own_would(n_companies):
    """What a company's own index finds, in the same order with the same scores, for every
    kind of query people type (the service kept one index per company before), whether the
    view reads the index's postings or, for a small company, its records' own words."""
    records = _companies(n_companies)
    index = DirectoryIndex.build(records)
    queries = synthetic_queries(make_synthetic_directory(2000), 400)
    for company in ("c0", "c3", "c6"):
        own = DirectoryIndex.build([r for r in records if r.company == company])
        view = index.only(company)
        assert view is not None
        for query in queries:
            for kind in ("employee", "team"):
                want = [(h.employee_id, h.score, h.matched) for h in own.search(query, 10, kind)]
                got = [(h.employee_id, h.score, h.matched) for h in view.search(query, 10, kind)]
                assert got == want, (company, query, kind)


def test_each_company_s_index_merged_answers_as_one_index_of_everyone():
    """The service keeps one index per company; a search of every company merges their best
    hits, in the order, with the scores, one index of all the records gives."""
    from vaihde.directory.search import merge

    records = _companies(40)
    whole = DirectoryIndex.build(records)
    parts = [DirectoryIndex.build([r for r in records if r.company == f"c{n}"])
             for n in range(40)]
    for query in synthetic_queries(make_synthetic_directory(2000), 300):
        for kind in ("employee", "team"):
            want = [(h.employee_id, h.score, h.matched) for h in whole.search(query, 20, kind)]
            got = [(h.employee_id, h.score, h.matched)
                   for _, h in merge(parts, query, 20, kind)]
            assert got == want, (query, kind)
