"""Time per client, decided purely: months in each company's own zone, wrap-up ending at
"done", at the operator's next talk or at the cap, and which phones are talking with which
callers in a tracker's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaihde.ami.tracker import Bridge, Channel
from vaihde.reports.talk import talking
from vaihde.reports.usage import BadMonth, Talk, csv_rows, month_bounds, usage, wrap_ups

HELSINKI = ZoneInfo("Europe/Helsinki")
NEW_YORK = ZoneInfo("America/New_York")
T = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


def talk(company: str, start: datetime, seconds: float | None, op: str = "PJSIP/op1",
         done: float | None = None, call: str = "") -> Talk:
    end = start + timedelta(seconds=seconds) if seconds is not None else None
    return Talk(company, call or f"c{start.timestamp()}", op, start, end,
                end + timedelta(seconds=done) if end and done is not None else None)


def test_a_month_is_the_companys_own():
    assert month_bounds("2027-03", HELSINKI) == (datetime(2027, 2, 28, 22, tzinfo=UTC),
                                                 datetime(2027, 3, 31, 21, tzinfo=UTC))
    assert month_bounds("2027-12", NEW_YORK) == (datetime(2027, 12, 1, 5, tzinfo=UTC),
                                                 datetime(2028, 1, 1, 5, tzinfo=UTC))
    for bad in ("2027-13", "2027-3", "27-03", "2027-03-01"):
        with pytest.raises(BadMonth, match="YYYY-MM"):
            month_bounds(bad, UTC)


def test_wrap_up_ends_when_marked_done_at_the_next_talk_or_at_the_cap():
    talks = [
        talk("a", T, 60, done=20),  # marked done 20 s after
        talk("a", T + timedelta(minutes=5), 60),  # next talk 40 s after it ended
        talk("b", T + timedelta(minutes=6, seconds=40), 30),  # nothing after: the cap
        talk("b", T, 100, op="PJSIP/op2", done=500),  # marked done too late: the cap
        talk("a", T + timedelta(minutes=9), None, op="PJSIP/op3"),  # never ended: none
    ]
    assert wrap_ups(talks, 120) == {0: 20.0, 1: 40.0, 2: 120.0, 3: 120.0}


def test_each_company_counts_its_own_month_talk_wrap_up_and_unfinished_talks():
    edge = datetime(2027, 2, 28, 23, 0, tzinfo=UTC)  # 1 March in Helsinki, 28 Feb in New York
    talks = [
        talk("hel", edge, 300, call="x1"),
        talk("ny", edge + timedelta(minutes=6), 60, call="x2"),  # New York's February
        talk("ny", T, 120, op="PJSIP/op2", done=30, call="x3"),
        talk("hel", T, None, op="PJSIP/op3", call="x4"),
    ]
    rows = usage("2027-03", {"hel": HELSINKI, "ny": NEW_YORK, "idle": UTC},
                 counts={"hel": {"calls": 3, "messages": 1, "callbacks": 2}},
                 talks=talks, wrap_cap_s=120)
    by = {u.company_id: u for u in rows}
    assert [u.company_id for u in rows] == ["hel", "idle", "ny"]
    assert (by["hel"].calls, by["hel"].messages, by["hel"].callbacks) == (3, 1, 2)
    # The Helsinki talk's wrap-up ended when the operator's next (New York) talk began.
    assert (by["hel"].talk_s, by["hel"].wrap_s, by["hel"].handling_s) == (300, 60, 360)
    assert by["hel"].operator_calls == 2 and by["hel"].unfinished == 1
    assert (by["ny"].talk_s, by["ny"].wrap_s, by["ny"].operator_calls) == (120, 30, 1)
    assert by["idle"].handling_s == 0 and by["idle"].calls == 0


def test_csv_rows_have_a_header_and_whole_seconds():
    rows = usage("2027-03", {"a": UTC}, talks=[talk("a", T, 90.4, done=10)])
    table = csv_rows(rows, {"a": 'Acme "Oy", Helsinki'})
    assert table[0][:4] == ["month", "company", "company_name", "calls"]
    assert table[1][:3] == ["2027-03", "a", 'Acme "Oy", Helsinki']
    assert table[1][5:9] == ["90", "10", "100", "0.03"]


def _ch(uid: str, name: str, dialed_by: str | None = None, bridge: str = "") -> Channel:
    return Channel(uid, name=name, dialed_by=dialed_by, bridge_id=bridge or None)


class View:
    def __init__(self, channels: list[Channel], bridges: list[Bridge]) -> None:
        self.channels = {c.uniqueid: c for c in channels}
        self.bridges = {b.bridge_id: b for b in bridges}


def test_talking_pairs_operator_phones_with_callers_not_with_employees_or_holding():
    view = View(
        [_ch("1", "PJSIP/trunk-00000001", bridge="b1"),
         _ch("2", "PJSIP/op1-00000002", dialed_by="1", bridge="b1"),
         # An employee's call with a colleague: no operator phone.
         _ch("3", "PJSIP/anna-00000003", bridge="b2"),
         _ch("4", "PJSIP/matti-00000004", dialed_by="3", bridge="b2"),
         # The operator consulting a colleague (attended transfer): nobody undialled but them.
         _ch("5", "Local/op2@phones-0000000a;1", bridge="b3"),
         _ch("6", "PJSIP/anna-00000006", dialed_by="5", bridge="b3"),
         # A caller on hold in a holding bridge with an operator's channel: not talking.
         _ch("7", "PJSIP/trunk-00000007", bridge="b4"),
         _ch("8", "PJSIP/op1-00000008", bridge="b4")],
        [Bridge("b1", members=["1", "2"]), Bridge("b2", members=["3", "4"]),
         Bridge("b3", members=["5", "6"]),
         Bridge("b4", bridge_type="holding", members=["7", "8"])])
    operators = frozenset({"PJSIP/op1", "Local/op2@phones"})
    assert talking(view, operators) == {("1", "PJSIP/op1", "b1")}  # type: ignore[arg-type]
    assert talking(view, frozenset()) == set()  # type: ignore[arg-type]
