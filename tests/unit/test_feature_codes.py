"""Feature code parsing: what an employee's dialled code means, at a given moment."""

from datetime import UTC, datetime

import pytest

from vaihde.flows.feature_codes import FeatureCodeError, parse

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 12:00 in Helsinki


def test_back():
    assert parse("*70", NOW).state == "available"
    assert parse("*70", NOW).until is None


def test_meeting_default_and_minutes():
    assert parse("*71", NOW).until == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    assert parse("*7145", NOW).until == datetime(2026, 11, 23, 10, 45, tzinfo=UTC)


def test_vacation_until_end_of_day_local():
    req = parse("*732811", NOW)
    assert req.state == "vacation"
    # End of 28.11. in Helsinki = 29.11. 00:00 EET = 28.11. 22:00 UTC.
    assert req.until == datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def test_vacation_date_already_past_means_next_year():
    assert parse("*730501", NOW).until.year == 2027


def test_off_work_until_next_morning():
    assert parse("*74", NOW).until == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "code", ["*7", "*79", "*71&1", "*70 ", "*7100000", "*733002", "*7399", "*700"]
)
def test_bad_codes(code):
    with pytest.raises(FeatureCodeError):
        parse(code, NOW)


def test_naive_now_rejected():
    with pytest.raises(ValueError):
        parse("*70", datetime(2026, 1, 1))
