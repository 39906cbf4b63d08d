"""Availability over HTTP: reading it, setting it now, scheduling, cancelling, history; sources
and who set it; bad input refused with the field named and nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from vaihde.db import models as m

FUTURE = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).replace(microsecond=0).isoformat()


async def test_employee_sets_their_own_status_and_routing_sees_it_at_once(api):
    until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    reply = await api.call(
        "PUT",
        "/employees/anna/availability",
        json={
            "state": "meeting",
            "until": until.isoformat(),
            "note_for_callers": "Palaverissa",
            "internal_note": "asiakas X",
        },
        as_="anna",
    )
    assert reply.status == 200
    entry = reply.json["entry"]
    assert entry["source"] == "manual" and entry["set_by"] == "anna"
    assert entry["state"] == "meeting"
    # Times come back in the company's zone, with its offset.
    returned = datetime.fromisoformat(entry["until"])
    assert returned == until and returned.utcoffset() in (timedelta(hours=2), timedelta(hours=3))
    assert reply.json["availability"]["state"] == "meeting"
    assert reply.json["availability"]["internal_note"] == "asiakas X"
    # The cache (what routing reads) already knows.
    assert api.cache.lookup("anna").state == "meeting"
    assert api.cache.lookup("anna").note_for_callers == "Palaverissa"

    read = await api.call("GET", "/employees/anna/availability", as_="matti")
    assert read.status == 200
    assert read.json["state"] == "meeting"
    assert read.json["note_for_callers"] == "Palaverissa"
    assert "internal_note" not in read.json  # operators' and anna's only
    assert "meeting (manual by anna" in read.json["explanation"]
    own = await api.call("GET", "/employees/anna/availability", as_="anna")
    assert own.json["internal_note"] == "asiakas X"


async def test_operator_sets_someone_elses_status_as_operator(api):
    reply = await api.call("PUT", "/employees/matti/availability",
                           json={"state": "sick", "note_for_callers": "Sairaana"}, as_="olli")
    assert reply.status == 200
    assert reply.json["entry"]["source"] == "operator"
    assert reply.json["entry"]["set_by"] == "olli"
    # The operator's own status is theirs: manual.
    own = await api.call("PUT", "/employees/asa/availability", json={"state": "busy"},
                         as_="olli")
    assert own.json["entry"]["source"] == "manual"
    # A new status replaces the previous open-ended one.
    again = await api.call("PUT", "/employees/matti/availability", json={"state": "available"},
                           as_="root")
    assert again.json["availability"]["state"] == "available"
    async with api.db.sessions() as session:
        rows = (
            await session.scalars(
                select(m.AvailabilityEntry).where(m.AvailabilityEntry.employee_id == "matti")
                .order_by(m.AvailabilityEntry.id)
            )
        ).all()
    assert [(r.state, r.source, r.set_by, r.cancelled_by) for r in rows] == [
        ("sick", "operator", "olli", "root"),
        ("available", "operator", "root", None),
    ]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"state": "lunch"}, "state", "invalid"),
        ({"state": 5}, "state", "wrong_type"),
        ({}, "state", "missing_field"),
        ({"state": "away", "until": "2020-01-01T10:00:00+02:00"}, "until", "invalid"),
        ({"state": "away", "until": "2099-01-01T10:00:00"}, "until", "invalid"),
        ({"state": "away", "until": "tomorrow"}, "until", "invalid"),
        ({"state": "away", "until": "2099-13-01T10:00:00Z"}, "until", "invalid"),
        ({"state": "away", "until": 1700000000}, "until", "wrong_type"),
        ({"state": "away", "until": "2999-01-01T10:00:00Z"}, "until", "invalid"),
        ({"state": "away", "note_for_callers": "x" * 201}, "note_for_callers", "invalid"),
        ({"state": "away", "note_for_callers": "bell\x07"}, "note_for_callers", "invalid"),
        ({"state": "away", "internal_note": ["x"]}, "internal_note", "wrong_type"),
        ({"state": "away", "untill": "2099-01-01T10:00:00Z"}, "untill", "unknown_field"),
        ({"state": "away", "source": "operator"}, "source", "unknown_field"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(api, body, field, code):
    before = await api.counts()
    reply = await api.call("PUT", "/employees/anna/availability", json=body, as_="anna")
    assert reply.status == 400, reply.text
    assert reply.error["field"] == field
    assert reply.error["code"] == code
    assert reply.error["message"]
    assert await api.counts() == before


async def test_error_messages_are_plain_words(api):
    reply = await api.call("PUT", "/employees/anna/availability",
                           json={"state": "away", "until": "2020-01-01T10:00:00+02:00"},
                           as_="anna")
    assert reply.error == {"code": "invalid", "message": "is already in the past",
                           "field": "until"}
    reply = await api.call("PUT", "/employees/anna/availability",
                           json={"state": "away", "until": "2099-01-01T10:00"}, as_="anna")
    assert "UTC offset" in reply.error["message"]
    reply = await api.call("PUT", "/employees/anna/availability", json={"state": "lunch"},
                           as_="anna")
    assert reply.error["message"].startswith("unknown state 'lunch'; use one of: available")


async def test_unknown_or_removed_employee_is_404(api):
    for path in ("/employees/nobody/availability", "/employees/nobody",
                 "/employees/nobody/availability/entries",
                 "/employees/nobody/availability/history", "/employees/NOT%20AN%20ID"):
        reply = await api.call("GET", path, as_="olli")
        assert reply.status == 404, path
        assert reply.error["code"] == "not_found"
    before = await api.counts()
    reply = await api.call("PUT", "/employees/nobody/availability", json={"state": "away"},
                           as_="olli")
    assert reply.status == 404
    reply = await api.call("POST", "/employees/nobody/availability/entries",
                           json={"state": "away", "starts_at": FUTURE.isoformat()}, as_="root")
    assert reply.status == 404
    assert await api.counts() == before


async def test_scheduling_listing_and_cancelling_entries(api):
    body = {
        "state": "vacation",
        "starts_at": FUTURE.isoformat(),
        "until": (FUTURE + timedelta(days=7)).isoformat(),
        "note_for_callers": "Lomalla",
        "internal_note": "Mökillä",
    }
    reply = await api.call("POST", "/employees/anna/availability/entries", json=body,
                           as_="anna")
    assert reply.status == 201
    vacation = reply.json["entry"]
    assert vacation["source"] == "manual"
    assert datetime.fromisoformat(vacation["starts_at"]) == FUTURE
    assert reply.json["availability"]["next_change"] is not None
    # Anna is available now: the vacation is scheduled.
    assert api.cache.lookup("anna").state == "available"

    # The same days again from the same source clash; the error names the existing entry.
    before = await api.counts()
    clash = await api.call("POST", "/employees/anna/availability/entries", json=body,
                           as_="anna")
    assert clash.status == 400 and clash.error["field"] == "starts_at"
    assert f"#{vacation['id']}" in clash.error["message"]
    assert await api.counts() == before

    now_status = await api.call("PUT", "/employees/anna/availability",
                                json={"state": "busy", "internal_note": "raportti"},
                                as_="anna")
    listed = await api.call("GET", "/employees/anna/availability/entries", as_="olli")
    assert listed.status == 200
    assert [e["state"] for e in listed.json["entries"]] == ["busy", "vacation"]
    assert listed.json["entries"][1]["internal_note"] == "Mökillä"
    # Others see the entries but not the internal notes.
    seen = await api.call("GET", "/employees/anna/availability/entries", as_="matti")
    assert all("internal_note" not in e for e in seen.json["entries"])

    cancelled = await api.call("DELETE", f"/availability/entries/{vacation['id']}", as_="anna")
    assert cancelled.status == 200
    assert cancelled.json["entry"]["cancelled_by"] == "anna"
    assert cancelled.json["entry"]["cancelled_at"] is not None
    assert cancelled.json["availability"]["state"] == "busy"
    listed = await api.call("GET", "/employees/anna/availability/entries", as_="anna")
    assert [e["id"] for e in listed.json["entries"]] == [now_status.json["entry"]["id"]]

    # Kept in history, with the audit trail.
    history = await api.call("GET", "/employees/anna/availability/history", as_="anna")
    assert history.status == 200
    states = [(e["state"], e["cancelled_by"]) for e in history.json["entries"]]
    assert ("vacation", "anna") in states
    actions = [(a["entry_id"], a["action"]) for a in history.json["audit"]]
    assert (vacation["id"], "created") in actions and (vacation["id"], "cancelled") in actions

    again = await api.call("DELETE", f"/availability/entries/{vacation['id']}", as_="anna")
    assert again.status == 400 and again.error["field"] == "entry"
    assert "already cancelled" in again.error["message"]


async def test_schedule_input_errors(api):
    for body, field in (
        ({"state": "vacation"}, "starts_at"),
        ({"state": "vacation", "starts_at": "next week"}, "starts_at"),
        ({"state": "vacation", "starts_at": FUTURE.isoformat(),
          "until": FUTURE.isoformat()}, "until"),
        ({"state": "vacation", "starts_at": "2999-01-01T00:00:00Z"}, "starts_at"),
    ):
        reply = await api.call("POST", "/employees/anna/availability/entries", json=body,
                               as_="anna")
        assert reply.status == 400, body
        assert reply.error["field"] == field, reply.error


async def test_cancel_unknown_entries(api):
    for entry in ("999999", "0", "99999999999999999999"):
        reply = await api.call("DELETE", f"/availability/entries/{entry}", as_="olli")
        assert reply.status == 404, entry
    reply = await api.call("DELETE", "/availability/entries/abc", as_="olli")
    assert reply.status == 404


async def test_everyones_availability_from_the_cache(api):
    await api.call("PUT", "/employees/matti/availability",
                   json={"state": "away", "until": at(timedelta(hours=1)),
                         "internal_note": "lounas"}, as_="matti")
    reply = await api.call("GET", "/availability", as_="anna")
    assert reply.status == 200
    by_id = {a["employee_id"]: a for a in reply.json["availability"]}
    assert set(by_id) == {"anna", "matti", "asa"}
    assert by_id["matti"]["state"] == "away"
    assert "internal_note" not in by_id["matti"]
    assert "internal_note" in by_id["anna"]  # her own
    operator = await api.call("GET", "/availability", as_="olli")
    assert all("internal_note" in a for a in operator.json["availability"])


async def test_history_limit_is_checked(api):
    for query, field in (("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"),
                         ("limit=-1", "limit"), ("limt=5", "limt"), ("limit=5&limit=6", "limit")):
        reply = await api.call("GET", f"/employees/anna/availability/history?{query}",
                               as_="anna")
        assert reply.status == 400, query
        assert reply.error["field"] == field
    assert (await api.call("GET", "/employees/anna/availability/history?limit=500",
                           as_="anna")).status == 200
