"""Records (vaihde.records): one way from a database row to a record, times read only with an
offset and written in the reader's zone, fields left out only where the record says so, and the
one error base (vaihde.errors) as the API and the commands see it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from vaihde.directory import DeviceDescription, DirectoryError, EmployeeRecord
from vaihde.errors import VaihdeError
from vaihde.messages.model import MessageError, MessageRecord, Recipient
from vaihde.presence.model import Availability, PresenceError, State
from vaihde.records import dump_json, of_row

T0 = datetime(2025, 6, 2, 11, 0, tzinfo=UTC)
HELSINKI_SUMMER = timezone(timedelta(hours=3))


def _employee_row(**more: object) -> SimpleNamespace:
    values = {
        "id": "anna", "name": "Anna Virtanen", "extension": "101", "email": None,
        "sms_number": None, "languages": None, "active": True, "updated_at": T0,
        "title": None, "topics": None,
        "numbers": [SimpleNamespace(number="0401"), SimpleNamespace(number="0502")],
        "devices": [SimpleNamespace(dial="PJSIP/anna", kind="desk", position=0)],
        "delegates": [SimpleNamespace(delegate_id="matti")],
        "memberships": [SimpleNamespace(team_id="sales"), SimpleNamespace(team_id="b2b")],
    }
    values.update(more)
    return SimpleNamespace(**values)


def test_a_row_becomes_a_record_with_its_related_rows_and_empty_columns_read():
    record = of_row(EmployeeRecord, _employee_row())
    assert record.numbers == ("0401", "0502")
    assert record.devices == (DeviceDescription(dial="PJSIP/anna", kind="desk"),)
    assert record.delegates == ("matti",)
    assert record.teams == ("b2b", "sales")  # memberships, sorted
    assert record.languages == () and record.topics == () and record.title == ""


def test_values_the_row_does_not_hold_are_given_beside_it():
    row = SimpleNamespace(
        id=7, created_at=T0, caller_number=None, caller_name="", taken_by="caller", path="",
        note="soita", recording_path=None, call_id="", language="fi", status="pending",
        recipient_kind="team", recipient_id="sales",
    )
    message = of_row(MessageRecord, row, recipient=Recipient(kind="team", id="sales"))
    assert message.recipient == Recipient("team", "sales")
    sent = json.loads(dump_json(message))
    assert sent["for"] == {"kind": "team", "id": "sales", "name": "sales"}
    assert sent["text"] == "soita" and sent["call_id"] is None and sent["has_recording"] is False
    assert "recording_path" not in sent and "note" not in sent


def test_a_bad_row_is_an_error_not_a_half_record():
    with pytest.raises(ValidationError):
        of_row(EmployeeRecord, _employee_row(active="maybe"))


def test_times_are_written_in_the_readers_zone():
    av = Availability("anna", State.MEETING, T0, "", "", None, None, None, None, False, "", None)
    assert json.loads(dump_json(av))["until"] == "2025-06-02T11:00:00+00:00"
    local = json.loads(dump_json(av, tz=HELSINKI_SUMMER))
    assert local["until"] == "2025-06-02T14:00:00+03:00"


@pytest.mark.parametrize(
    ("given", "code"),
    [("2025-06-02T14:00:00", "invalid"), ("tomorrow", "invalid"), (1700000000, "wrong_type")],
)
def test_times_are_read_only_with_an_offset(given, code):
    with pytest.raises(ValidationError) as caught:
        Availability("anna", State.AWAY, given, "", "", None, None, None, None, False, "", None)
    assert caught.value.errors()[0]["type"] == code


def test_internal_notes_only_for_those_who_may_read_them():
    av = Availability("anna", State.AWAY, None, "", "secret", None, None, None, None, False, "",
                      None)
    assert json.loads(dump_json(av))["internal_note"] == "secret"
    assert "internal_note" not in json.loads(dump_json(av, private=lambda eid: eid != "anna"))
    assert json.loads(dump_json(av, private=lambda eid: eid == "anna"))["internal_note"]


def test_every_domain_error_is_one_error_with_a_status_a_code_and_a_line():
    unknown = PresenceError("employee", "no employee 'x'")
    assert (unknown.status, unknown.code) == (404, "not_found")
    assert unknown.body() == {"code": "not_found", "message": "no employee 'x'",
                              "field": "employee"}
    bad = PresenceError("until", "is already in the past")
    assert (bad.status, bad.line()) == (400, "until: is already in the past")
    several = DirectoryError(["employees.anna.email: not an e-mail address", "teams.x: no"])
    assert several.body()["field"] == "employees.anna.email"
    assert several.body()["problems"] == several.problems
    assert several.line() == "employees.anna.email: not an e-mail address; teams.x: no"
    for error in (unknown, several, MessageError(["note: at most 2000 characters"])):
        assert isinstance(error, VaihdeError) and isinstance(error, ValueError)
