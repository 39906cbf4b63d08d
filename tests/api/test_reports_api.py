"""The usage report over HTTP: admins only, JSON and CSV with the same figures, the month in the
company's zone, bad months and unknown companies refused by name; an operator marks a wrap-up
done with POST /console/done."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vaihde.auth import store as auth_store
from vaihde.directory.store import add_contact
from vaihde.reports import store

EDGE = datetime(2027, 2, 28, 22, 30, tzinfo=UTC)  # 00:30 on 1 March in Helsinki


async def test_usage_report_for_admins_as_json_and_csv(api):
    async with api.db.sessions.begin() as s:
        for at in (EDGE, EDGE - timedelta(hours=1)):  # the second is February in Helsinki
            await add_contact(s, caller_number="0401234567", direction="in", path="menu", at=at)
        assert await store.open_talk(s, ("c1", "PJSIP/asa", "b1"), "main", EDGE)
        assert await store.close_talk(s, ("c1", "PJSIP/asa", "b1"), EDGE + timedelta(seconds=95))
    for user, status in ((None, 401), ("anna", 403), ("olli", 403)):
        reply = await api.call("GET", "/reports/usage?month=2027-03", as_=user)
        assert reply.status == status, user
    reply = await api.call("GET", "/reports/usage?month=2027-03", as_="root")
    assert reply.status == 200, reply.text
    assert reply.json["wrap_up_max_s"] == 120
    [main] = reply.json["companies"]
    assert main["company"] == "main" and main["timezone"] == "Europe/Helsinki"
    # Nothing after the talk: its wrap-up is the cap.
    assert (main["calls"], main["operator_calls"], main["talk_s"], main["wrap_up_s"],
            main["handling_s"]) == (1, 1, 95, 120, 215)
    feb = await api.call("GET", "/reports/usage?month=2027-02&company=main", as_="root")
    assert (feb.json["companies"][0]["calls"], feb.json["companies"][0]["talk_s"]) == (1, 0)

    as_csv = await api.call("GET", "/reports/usage.csv?month=2027-03", as_="root")
    assert as_csv.status == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    assert 'filename="vaihde-usage-2027-03.csv"' in as_csv.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["company"], r["calls"], r["talk_s"], r["wrap_up_s"], r["handling_s"])
            for r in rows] == [("main", "1", "95", "120", "215")]
    assert (await api.call("GET", "/reports/usage.csv?month=2027-03", as_="olli")).status == 403

    bad = await api.call("GET", "/reports/usage?month=2027-3", as_="root")
    assert bad.status == 400 and bad.error["field"] == "month"
    nobody = await api.call("GET", "/reports/usage?month=2027-03&company=acme", as_="root")
    assert nobody.status == 404 and "no company 'acme'" in nobody.error["message"]


async def test_an_operator_marks_their_last_talk_done(api):
    async with api.db.sessions.begin() as s:
        await auth_store.add_user(s, "oona", role="operator", sip_endpoint="PJSIP/oona")
        token, _ = await auth_store.create_token(s, "oona", label="tests")
        now = datetime.now(UTC)
        await store.open_talk(s, ("c9", "PJSIP/oona", "b9"), "main", now - timedelta(minutes=2))
        await store.close_talk(s, ("c9", "PJSIP/oona", "b9"), now - timedelta(seconds=40))
    api.tokens["oona"] = token
    # Olli has no phone of his own: no talks of his to mark.
    refused = await api.call("POST", "/console/done", as_="olli")
    assert refused.status == 409 and refused.error["code"] == "no_phone"
    first = await api.call("POST", "/console/done", as_="oona")
    assert first.status == 200 and first.json == {"ok": True, "call_id": "c9"}
    again = await api.call("POST", "/console/done", as_="oona")
    assert again.json == {"ok": True, "call_id": None}
    month = f"{(now - timedelta(minutes=2)).astimezone(ZoneInfo('Europe/Helsinki')):%Y-%m}"
    report = await api.call("GET", f"/reports/usage?month={month}", as_="root")
    [main] = report.json["companies"]
    assert main["talk_s"] == 80 and 38 <= main["wrap_up_s"] <= 45
