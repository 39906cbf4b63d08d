"""Directory sync, callers and contacts, configuration versions, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from dbdata import DIRECTORY, T0, row_counts  # tests/db is on sys.path (no package)
from sqlalchemy.exc import IntegrityError

from vaihde.db import models as m
from vaihde.directory import (
    DeviceDescription,
    DirectoryDescription,
    DirectoryError,
    EmployeeDescription,
    TeamDescription,
    store,
)
from vaihde.directory.search import DirectoryIndex, make_synthetic_directory
from vaihde.presence import store as presence

H = timedelta(hours=1)


def replace_employee(d: DirectoryDescription, eid: str, **changes) -> DirectoryDescription:
    return dataclasses.replace(
        d,
        employees=tuple(
            dataclasses.replace(e, **changes) if e.id == eid else e for e in d.employees
        ),
    )


async def sync(db, description, now=T0):
    async with db.sessions.begin() as s:
        return await store.sync_directory(s, description, now=now)


async def stored(db) -> DirectoryDescription:
    async with db.sessions() as s:
        return await store.load_directory(s)


async def test_sync_stores_everything_and_is_idempotent(db):
    report = await sync(db, DIRECTORY)
    assert set(report.added) == {"anna", "matti", "asa"}
    assert set(report.teams_added) == {"sales", "operators"}
    again = await sync(db, DIRECTORY, now=T0 + H)
    assert not again.changed and again.unchanged == 3
    d = await stored(db)
    anna = next(e for e in d.employees if e.id == "anna")
    assert anna.numbers == ("091234501",)  # digits, as callers dial them
    assert anna.devices == DIRECTORY.employees[0].devices
    assert anna.delegates == ("matti",) and anna.languages == ("fi", "en")
    assert next(e for e in d.employees if e.id == "asa").numbers == ("35891234503",)
    assert {t.id: t.members for t in d.teams} == {
        "sales": ("anna", "matti"),
        "operators": ("asa",),
    }
    async with db.sessions() as s:
        record = await store.get_employee(s, "anna")
        assert record is not None and record.teams == ("sales",) and record.active
        assert record.updated_at == T0  # the no-op sync did not touch it
        assert await store.employee_for_number(s, "+358 9 123 4503") == "asa"
        assert await store.employee_for_number(s, "000") is None
        assert (await m.current_revisions(s))["directory"] == 2


async def test_changes_swaps_and_reorders_in_one_sync(db):
    await sync(db, DIRECTORY)
    # Anna and Matti swap extensions, Anna's number moves to Åsa, devices reorder, Åsa joins
    # sales ahead of the others.
    anna = DIRECTORY.employees[0]
    changed = replace_employee(
        DIRECTORY, "anna", extension="102", numbers=(), devices=tuple(reversed(anna.devices))
    )
    changed = replace_employee(changed, "matti", extension="101", name="Matti Mäkelä")
    changed = replace_employee(changed, "asa", numbers=("09 123 4501", "+358 9 123 4503"))
    changed = dataclasses.replace(
        changed,
        teams=(
            TeamDescription("sales", "Myynti", "sales", ("asa", "anna", "matti")),
            TeamDescription("operators", "Vaihde", "operators", ("asa",)),
        ),
    )
    report = await sync(db, changed, now=T0 + H)
    assert set(report.updated) == {"anna", "matti", "asa"} and report.teams_updated == ("sales",)
    d = await stored(db)
    by_id = {e.id: e for e in d.employees}
    assert by_id["anna"].extension == "102" and by_id["matti"].extension == "101"
    assert by_id["anna"].devices[0].kind == "mobile"
    assert by_id["asa"].numbers == ("091234501", "35891234503")
    assert by_id["matti"].name == "Matti Mäkelä"
    assert {t.id: t.members for t in d.teams}["sales"] == ("asa", "anna", "matti")
    async with db.sessions() as s:
        matti = await store.get_employee(s, "matti")
        assert matti is not None and matti.updated_at == T0 + H


async def test_removed_employees_are_deactivated_not_deleted(db):
    await sync(db, DIRECTORY)
    async with db.sessions.begin() as s:
        await presence.set_availability(s, "matti", "sick", source="operator", set_by="op", now=T0)
    without_matti = DirectoryDescription(
        employees=tuple(
            dataclasses.replace(e, delegates=()) for e in DIRECTORY.employees if e.id != "matti"
        ),
        teams=(
            TeamDescription("sales", "Myynti", "sales", ("anna",)),
            TeamDescription("operators", "Vaihde", "operators", ("asa",)),
        ),
    )
    report = await sync(db, without_matti, now=T0 + H)
    assert report.deactivated == ("matti",)
    async with db.sessions() as s:
        matti = await store.get_employee(s, "matti")
        assert matti is not None and not matti.active and matti.extension is None
        assert matti.teams == () and matti.updated_at == T0 + H
        assert [e.id for e in await store.list_employees(s)] == ["anna", "asa"]
        assert len(await store.list_employees(s, include_inactive=True)) == 3
        # History survives.
        assert [e.state for e in await presence.history(s, "matti")] == ["sick"]
    # Someone else may now have Matti's extension; Matti coming back is a reactivation.
    report = await sync(db, replace_employee(without_matti, "anna", extension="102"))
    assert report.updated == ("anna",)
    report = await sync(db, DIRECTORY, now=T0 + 2 * H)
    assert report.reactivated == ("matti",)
    async with db.sessions() as s:
        matti = await store.get_employee(s, "matti")
        assert matti is not None and matti.active and matti.extension == "102"


async def test_removed_team_is_deactivated(db):
    await sync(db, DIRECTORY)
    report = await sync(db, dataclasses.replace(DIRECTORY, teams=DIRECTORY.teams[:1]))
    assert report.teams_deactivated == ("operators",)
    assert [t.id for t in (await stored(db)).teams] == ["sales"]
    async with db.sessions() as s:
        asa = await store.get_employee(s, "asa")
        assert asa is not None and asa.teams == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: replace_employee(d, "anna", extension="102"), "102 is already anna's"),
        (lambda d: replace_employee(d, "matti", delegates=("nobody",)), "no employee 'nobody'"),
        (lambda d: replace_employee(d, "matti", numbers=("091234501",)), "is already anna's"),
        (lambda d: replace_employee(d, "anna", id="Anna"), "id must be"),
        (
            lambda d: replace_employee(d, "anna", devices=(DeviceDescription("X/1", "fax"),)),
            "kind: must be one of",
        ),
        (lambda d: replace_employee(d, "anna", email="not-an-address"), "not an e-mail"),
        (
            lambda d: dataclasses.replace(
                d, teams=(TeamDescription("x", "X", "team", ("anna", "ghost")),)
            ),
            "teams.x.members: no employee 'ghost'",
        ),
        (
            lambda d: dataclasses.replace(d, employees=(*d.employees, d.employees[0])),
            "employees.anna: given 2 times",
        ),
    ],
)
async def test_inconsistent_description_is_refused_whole(db, change, message):
    await sync(db, DIRECTORY)
    before = await row_counts(db)
    with pytest.raises(DirectoryError) as err:
        await sync(db, change(DIRECTORY))
    assert any(message in p for p in err.value.problems), err.value.problems
    assert await row_counts(db) == before


async def test_failure_mid_sync_leaves_the_previous_directory_intact(db, monkeypatch):
    await sync(db, DIRECTORY)
    before_rows = await row_counts(db)
    before = await stored(db)
    # Slip a dangling team member past validation: the database's foreign key refuses it in
    # the last step, after employees were already updated and deactivated in the transaction.
    broken = DirectoryDescription(
        employees=(dataclasses.replace(DIRECTORY.employees[0], name="Anna Uusi", delegates=()),),
        teams=(TeamDescription("sales", "Myynti", "sales", ("anna", "ghost")),),
    )
    monkeypatch.setattr(DirectoryDescription, "problems", lambda self: [])
    with pytest.raises(IntegrityError):
        await sync(db, broken, now=T0 + H)
    monkeypatch.undo()
    assert await stored(db) == before
    assert await row_counts(db) == before_rows


async def test_sync_and_config_version_commit_together(db):
    async with db.sessions.begin() as s:
        await store.sync_directory(s, DIRECTORY, now=T0)
        v1 = await store.record_config(
            s, document="company: {}\n", source_name="company.yaml", applied_by="admin", now=T0
        )
    assert len(v1.sha256) == 64 and v1.applied_at == T0
    with pytest.raises(RuntimeError):
        async with db.sessions.begin() as s:
            await store.sync_directory(s, DirectoryDescription(), now=T0 + H)
            await store.record_config(
                s, document="v2", source_name="company.yaml", applied_by="admin", now=T0 + H
            )
            raise RuntimeError("apply failed after writing")
    async with db.sessions() as s:
        latest = await store.latest_config(s)
        assert latest is not None and latest.id == v1.id and latest.document == "company: {}\n"
        assert len(await store.list_employees(s)) == 3
        assert (await m.current_revisions(s))["config"] == 1


async def test_callers_and_contacts(people):
    db = people
    async with db.sessions.begin() as s:
        assert await store.get_caller(s, "+358 40 999 8877") is None
        c = await store.upsert_caller(
            s,
            "+358 40 999 8877",
            name="Maija Meikäläinen",
            organisation="Asiakas Oy",
            greet_by_name=True,
            preferred_channel="email",
            email="maija@example.fi",
            now=T0,
        )
        assert c.number == "358409998877" and c.greet_by_name
        c2 = await store.upsert_caller(s, "358409998877", notes="Soittaa laskuista", now=T0 + H)
        assert c2.name == "Maija Meikäläinen" and c2.notes == "Soittaa laskuista"
        c3 = await store.upsert_caller(s, "358409998877", email=None, now=T0 + H)
        assert c3.email is None and c3.preferred_channel == "email"
        await store.add_contact(
            s,
            caller_number="+358409998877",
            direction="in",
            path="menu",
            employee_id="anna",
            outcome="answered",
            call_id="c-1",
            details={"menu": "1"},
            at=T0,
        )
        await store.add_contact(
            s,
            caller_number="358409998877",
            direction="in",
            path="direct_number",
            employee_id="anna",
            outcome="no_answer",
            call_id="c-2",
            at=T0 + H,
        )
        await store.add_contact(s, caller_number=None, direction="in", path="operator", at=T0)
    async with db.sessions() as s:
        contacts = await store.contacts_for(s, "358409998877")
        assert [c.call_id for c in contacts] == ["c-2", "c-1"]  # newest first
        assert contacts[1].details == {"menu": "1"} and contacts[1].at == T0
        assert [c.call_id for c in await store.contacts_for(s, "358409998877", since=T0 + H)] == [
            "c-2"
        ]
        caller = await store.get_caller(s, "358409998877")
        assert caller is not None and caller.updated_at == T0 + H
        assert (await m.current_revisions(s))["callers"] == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: store.upsert_caller(s, "abc"), "number: not a phone number"),
        (lambda s: store.upsert_caller(s, "12"), "3-32 digits"),
        (lambda s: store.upsert_caller(s, "0401", preferred_channel="fax"), "preferred_channel"),
        (lambda s: store.upsert_caller(s, "0401", name="x" * 201), "name: must be text"),
        (
            lambda s: store.add_contact(s, caller_number="0401", direction="sideways", path="menu"),
            "direction",
        ),
        (
            lambda s: store.add_contact(s, caller_number="0401", direction="in", path="a b"),
            "path",
        ),
        (
            lambda s: store.add_contact(
                s, caller_number="0401", direction="in", path="menu", employee_id="ghost"
            ),
            "no employee 'ghost'",
        ),
    ],
)
async def test_bad_caller_input_writes_nothing(people, call, message):
    before = await row_counts(people)
    with pytest.raises(DirectoryError) as err:
        async with people.sessions.begin() as s:
            await call(s)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert await row_counts(people) == before


async def test_search_records_from_the_database_build_an_index(people):
    async with people.sessions() as s:
        records = await store.search_records(s)
    index = DirectoryIndex.build(records)
    assert [h.employee_id for h in index.search("myynti")] == ["anna", "matti"]
    assert [h.employee_id for h in index.search("asa")] == ["asa"]
    assert [h.employee_id for h in index.search("0401111111")] == ["anna"]


async def test_titles_and_topics_are_stored_changed_and_searched(db):
    described = replace_employee(DIRECTORY, "matti", title="Kirjanpitäjä",
                                 topics=("invoices", "kalastuslupa"))
    described = dataclasses.replace(described, teams=tuple(
        dataclasses.replace(t, title="Myynti ja tarjoukset", topics=("offers",))
        if t.id == "sales" else t for t in described.teams))
    await sync(db, described)
    d = await stored(db)
    matti = next(e for e in d.employees if e.id == "matti")
    assert (matti.title, matti.topics) == ("Kirjanpitäjä", ("invoices", "kalastuslupa"))
    sales = next(t for t in d.teams if t.id == "sales")
    assert (sales.title, sales.topics) == ("Myynti ja tarjoukset", ("offers",))
    async with db.sessions() as s:
        index = DirectoryIndex.build(await store.search_records(s))
    assert [h.employee_id for h in index.search("kalastus")] == ["matti"]
    assert [h.employee_id for h in index.search("kirjanpitaja")] == ["matti"]
    assert [h.employee_id for h in index.search("offers", kind="team")] == ["sales"]
    # A new topic is a change; the same again is not.
    changed = replace_employee(described, "matti", topics=("invoices",))
    report = await sync(db, changed, now=T0 + H)
    assert report.updated == ("matti",)
    assert not (await sync(db, changed, now=T0 + 2 * H)).changed
    teams_changed = dataclasses.replace(changed, teams=tuple(
        dataclasses.replace(t, topics=()) if t.id == "sales" else t for t in changed.teams))
    assert (await sync(db, teams_changed, now=T0 + 3 * H)).teams_updated == ("sales",)
    async with db.sessions() as s:
        index = DirectoryIndex.build(await store.search_records(s))
    assert index.search("kalastus") == [] and index.search("offers", kind="team") == []


async def test_a_thousand_employees_sync_quickly(db):
    import time

    synthetic = make_synthetic_directory(1000)
    start = time.perf_counter()
    report = await sync(db, synthetic)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = await sync(db, synthetic)
    second = time.perf_counter() - start
    assert len(report.added) == 1000 and not again.changed
    assert first < 15 and second < 10, (first, second)


def test_description_problems_are_plain_lines():
    d = DirectoryDescription(
        employees=(EmployeeDescription("anna", "", extension="1x", numbers=("12",)),)
    )
    assert d.problems() == [
        "employees.anna.name: must be 1-200 characters",
        "employees.anna.extension: must be digits, not '1x'",
        "employees.anna.numbers: '12' must have 3-32 digits",
    ]
