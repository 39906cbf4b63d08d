"""Time per client through real Asterisk: an operator answers a waiting caller of the second
company from the console, talks a few seconds and hangs up; the talk is stored as that company's
(not the first company's) with the time the phones were bridged, and the usage report shows it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from company import PHONES
from sqlalchemy import select
from test_callers_hear import call
from test_companies_live import BETA_NUMBER, centre  # noqa: F401 (the two-company service)
from test_console_live import Desk, bridged, dial_from

from vaihde.auth.store import add_user, create_token
from vaihde.db import models as m

pytestmark = pytest.mark.asterisk

OPERATOR_PHONE = f"Local/operator2@{PHONES}"
QUEUE_PHONE = f"Local/operator@{PHONES}"


async def token(service, name: str, role: str, phone: str | None = None) -> str:  # type: ignore[no-untyped-def]
    async with service.db.sessions() as session, session.begin():
        await add_user(session, name, role=role, sip_endpoint=phone)
        secret, _ = await create_token(session, name, label="test")
    return secret


async def test_an_operators_talk_counts_for_the_callers_company(asterisk, ami, centre):  # noqa: F811
    # Callers wait for the console: the queue's phone paused, the operator group never answers.
    old = await ami.action("Getvar", Variable="VAIHDE_OPERATORS")
    await ami.action("Setvar", Variable="VAIHDE_OPERATORS", Value=f"Local/noanswer@{PHONES}")
    await ami.action("QueuePause", Queue="vaihde-switchboard", Interface=QUEUE_PHONE,
                     Paused="true")
    try:
        operator = await token(centre, "olli", "operator", OPERATOR_PHONE)
        admin = await token(centre, "root", "admin")
        async with aiohttp.ClientSession() as http:
            desk = Desk(centre, http, operator)
            await call(ami, BETA_NUMBER, callerid="0405550123", hold=120)
            waiting = await desk.call_where(
                lambda c: c["state"] == "waiting" and c["caller"]["number"] == "0405550123",
                timeout=30)
            assert waiting["company"]["id"] == "beta"
            mark = ami.mark()
            status, _ = await desk.post("/answer-next")
            assert status == 202
            begin = await ami.wait_for(
                dial_from(waiting["id"], OPERATOR_PHONE, "vaihde-console-answer"), 10, since=mark)
            await bridged(ami, waiting["id"], begin["DestChannel"])
            bridged_at = datetime.now(UTC)
            await asyncio.sleep(3)
            status, _ = await desk.post(f"/calls/{waiting['id']}/hangup")
            assert status == 202
            hung_up_at = datetime.now(UTC)
            row = None
            for _ in range(100):
                async with centre.db.sessions() as session:
                    row = await session.scalar(select(m.OperatorTalk).where(
                        m.OperatorTalk.call_id == waiting["id"]))
                if row is not None and row.ended_at is not None:
                    break
                await asyncio.sleep(0.1)
            assert row is not None and row.ended_at is not None, "talk not stored"
            assert row.company_id == "beta" and row.operator == OPERATOR_PHONE
            talk = (row.ended_at - row.started_at).total_seconds()
            assert 2.5 <= talk <= (hung_up_at - bridged_at).total_seconds() + 1.5, talk
            # The wrap-up ends when the operator says so.
            status, done = await desk.post("/done")
            assert status == 200 and done["call_id"] == waiting["id"]

            month = f"{row.started_at.astimezone(ZoneInfo('Europe/Helsinki')):%Y-%m}"
            base = f"http://127.0.0.1:{centre.http_port}/api/v1"
            async with http.get(f"{base}/reports/usage?month={month}",
                                headers={"Authorization": f"Bearer {admin}"}) as reply:
                assert reply.status == 200
                report = {c["company"]: c for c in (await reply.json())["companies"]}
            assert report["beta"]["operator_calls"] == 1
            assert report["beta"]["talk_s"] == round(talk)
            assert report["beta"]["wrap_up_s"] <= 5
            assert report["alfa"]["talk_s"] == 0 and report["alfa"]["operator_calls"] == 0
    finally:
        await ami.action("QueuePause", Queue="vaihde-switchboard", Interface=QUEUE_PHONE,
                         Paused="false")
        await ami.action("Setvar", Variable="VAIHDE_OPERATORS", Value=old.get("Value", ""))
