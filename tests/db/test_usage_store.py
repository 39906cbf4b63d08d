"""Time per client on SQLite and PostgreSQL: two companies in different time zones, calls,
messages, callbacks and operators' talks stored around a month boundary; the report counts each
in the month of its own company's zone, talks are stored once however often they are seen, and
`vaihde report usage` prints the same figures (CSV too)."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from vaihde.company.apply import apply_company
from vaihde.company.load import parse_company
from vaihde.db import message_models as mm
from vaihde.db import models as m
from vaihde.directory.store import add_contact
from vaihde.messages import store as messages
from vaihde.messages.model import CallbackDraft, MessageDraft, Recipient
from vaihde.reports import store
from vaihde.reports.usage import usage

# 23:00 UTC on 28 February: already 1 March in Helsinki (+2), still February in New York (-5).
EDGE = datetime(2027, 2, 28, 23, 0, tzinfo=UTC)
# 23:30 UTC on 31 March: April in Helsinki (+3 after the change to summer time), March in NY.
END = datetime(2027, 3, 31, 23, 30, tzinfo=UTC)
MID = datetime(2027, 3, 15, 10, 0, tzinfo=UTC)
ZONES = {"hel": ZoneInfo("Europe/Helsinki"), "nyc": ZoneInfo("America/New_York")}


def company(cid: str, tz: str, person: str, number: str, extension: str) -> str:
    return f"""\
company: {{id: {cid}, name: "{cid.upper()}, Inc", timezone: {tz}}}
numbers: {{"{number}": {{menu: main}}}}
hours: {{mon-sun: 00:00-24:00, closed_action: {{operator: true}}}}
menus:
  main: {{prompt: Valitse, options: {{1: {{employee: {person}}}}}}}
teams:
  {cid}-ops: {{name: Vaihde, kind: operators, members: [{person}]}}
employees:
  {person}: {{name: {person.title()}, extension: "{extension}", devices: [desk: PJSIP/{person}]}}
"""


async def fill(db) -> None:  # type: ignore[no-untyped-def]
    for cid, tz, person, number, ext in (("hel", "Europe/Helsinki", "aino", "0201110000", "201"),
                                         ("nyc", "America/New_York", "bob", "0201119999", "301")):
        await apply_company(db.sessions, parse_company(company(cid, tz, person, number, ext)),
                            applied_by="test", source_name=f"{cid}.yaml")
    async with db.sessions.begin() as s:
        for cid in ("hel", "nyc"):
            for at in (EDGE, MID, END, EDGE - timedelta(days=2)):
                await add_contact(s, caller_number="0401234567", direction="in", path="menu",
                                  call_id=f"{cid}-{at.timestamp()}", at=at, company_id=cid)
        # An outgoing contact is not a call taken.
        await add_contact(s, caller_number="0401234567", direction="out", path="menu", at=MID,
                          company_id="hel")
        await messages.create_callback(s, CallbackDraft("0405550101"), now=END, company_id="nyc")
        await messages.create_callback(s, CallbackDraft("0405550102"), now=MID, company_id="hel")
    hel = parse_company(company("hel", "Europe/Helsinki", "aino", "0201110000", "201"))
    for at in (EDGE, END):
        message = await messages.take_message(
            db.sessions, MessageDraft(Recipient("employee", "aino"), "0401234567"), hel,
            channels=(), now=at)
        if at != EDGE:
            async with db.sessions.begin() as s:  # Nyc's, as a message taken for Bob would be
                row = await s.get(mm.Message, message.id)
                assert row is not None
                row.company_id = "nyc"
    # Talks: Helsinki's call at the edge (300 s) and the same operator's next call, Nyc's in
    # February, 60 s after: Helsinki's wrap-up is 60 s. Nyc's March call is marked done 30 s
    # after; the second operator's Helsinki call never ended.
    talks = [
        (("c1", "PJSIP/op1", "b1"), "hel", EDGE, 300),
        (("c2", "PJSIP/op1", "b2"), "nyc", EDGE + timedelta(seconds=360), 60),
        (("c3", "PJSIP/op1", "b3"), "nyc", MID, 120),
        (("c4", "PJSIP/op2", "b4"), "hel", MID, None),
    ]
    for key, cid, start, seconds in talks:
        async with db.sessions.begin() as s:
            assert await store.open_talk(s, key, cid, start)
        async with db.sessions.begin() as s:
            # Seen again (a restart, a second instance): stored once, the first start stands.
            assert not await store.open_talk(s, key, cid, start + timedelta(seconds=5))
        if seconds is not None:
            async with db.sessions.begin() as s:
                assert await store.close_talk(s, key, start + timedelta(seconds=seconds))
                assert not await store.close_talk(s, key, start + timedelta(seconds=999))
    async with db.sessions.begin() as s:
        assert await store.mark_done(s, "PJSIP/op1", MID + timedelta(seconds=150),
                                     timedelta(days=1)) == "c3"
        # Marked once; and an operator with nothing ended has nothing to mark.
        assert await store.mark_done(s, "PJSIP/op1", MID + timedelta(seconds=160),
                                     timedelta(days=1)) is None
        assert await store.mark_done(s, "PJSIP/op2", MID + timedelta(seconds=160),
                                     timedelta(days=1)) is None


EXPECTED = {
    # calls: EDGE and MID in Helsinki's March (END is April there); EDGE+MID+END minus EDGE
    # in New York's (EDGE is February there).
    "hel": {"calls": 2, "messages": 1, "callbacks": 1, "operator_calls": 2, "talk_s": 300,
            "wrap_s": 60, "unfinished": 1},
    "nyc": {"calls": 2, "messages": 1, "callbacks": 1, "operator_calls": 1, "talk_s": 120,
            "wrap_s": 30, "unfinished": 0},
}


async def test_each_company_is_counted_in_its_own_month(db):
    await fill(db)
    async with db.sessions() as s:
        counts = await store.month_counts(s, "2027-03", ZONES, UTC)
        talks = await store.month_talks(s, "2027-03", 120)
        rows = await s.execute(select(m.OperatorTalk.call_id, m.OperatorTalk.started_at)
                               .order_by(m.OperatorTalk.call_id))
        assert tuple(rows.all()[0]) == ("c1", EDGE)  # the first start stands
    got = {u.company_id: u for u in usage("2027-03", ZONES, counts=counts, talks=talks,
                                          wrap_cap_s=120)}
    assert set(got) == {"hel", "nyc"}
    for cid, want in EXPECTED.items():
        u = got[cid]
        assert {k: getattr(u, k) for k in want} == want, cid
    # February: only New York's edge call and its talk (wrap-up capped: nothing after it
    # but a talk in March, days later).
    async with db.sessions() as s:
        feb = usage("2027-02", ZONES, counts=await store.month_counts(s, "2027-02", ZONES, UTC),
                    talks=await store.month_talks(s, "2027-02", 120), wrap_cap_s=120)
    nyc = next(u for u in feb if u.company_id == "nyc")
    assert (nyc.calls, nyc.talk_s, nyc.wrap_s) == (2, 60, 120)


async def test_report_usage_command_prints_the_same_figures(db):
    await fill(db)
    url = db.url.render_as_string(hide_password=False)

    def vaihde(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vaihde", "report", "usage", *args,
                               "--db", url, "--wrap-up-max", "120"],
                              capture_output=True, text=True, timeout=120, check=False)

    done = await asyncio.to_thread(vaihde, "--month", "2027-03", "--csv")
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["company"] for r in table] == ["hel", "nyc"]
    assert table[0]["company_name"] == "HEL, Inc"  # quoted in the file: it has a comma
    assert '"HEL, Inc"' in done.stdout
    for row in table:
        want = EXPECTED[row["company"]]
        assert (int(row["calls"]), int(row["talk_s"]), int(row["wrap_up_s"]),
                int(row["handling_s"]), int(row["messages"]), int(row["callbacks"])) == (
            want["calls"], want["talk_s"], want["wrap_s"], want["talk_s"] + want["wrap_s"],
            want["messages"], want["callbacks"])
    text = await asyncio.to_thread(vaihde, "--month", "2027-03", "--company", "nyc")
    assert text.returncode == 0, text.stderr
    assert "nyc" in text.stdout and "hel " not in text.stdout
    assert "talk 0:02:00  wrap-up 0:00:30  handling 0:02:30" in text.stdout
    bad = await asyncio.to_thread(vaihde, "--month", "2027-03", "--company", "nope")
    assert bad.returncode == 2 and "no company 'nope' (have: hel, nyc)" in bad.stderr
    month = await asyncio.to_thread(vaihde, "--month", "2027-3")
    assert month.returncode == 2 and "YYYY-MM" in month.stderr
