"""The dispatch job, run by every instance: escalates urgent messages whose time ran out, sends
their SMS with the reply codes, and sends each company's daily message summary by e-mail. What
one instance takes, the others do not (vaihde.dispatch.store); while this instance's Peer is down
it takes nothing (its claims may be taken over then), like the message sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.company.schema import CompanyConfig
from vaihde.db.clock import utcnow
from vaihde.db.once import Holder
from vaihde.dispatch import store
from vaihde.dispatch.model import (
    SummaryLine,
    names,
    render_summary,
    summary_day,
    summary_window,
    urgent_sms,
    urgent_state_text,
)
from vaihde.jobs import cancel_all, until_set
from vaihde.messages.email import EmailTransport
from vaihde.messages.model import SendError, caller_label, clean_line
from vaihde.messages.settings import SmsSettings, SmtpSettings
from vaihde.messages.sms import SmsTransport

log = logging.getLogger("vaihde.dispatch")

POLL_S = 1.0  # escalations are due to the second; a summary check is one cheap query
_RETRY_4XX = (408, 425, 429)


def summary_mail(
    company: CompanyConfig, subject: str, text: str, settings: SmtpSettings, key: str,
    day: str, at: datetime,
) -> EmailMessage:
    mail = EmailMessage()
    from_name = clean_line(settings.from_name or company.company.name, 100)
    mail["From"] = Address(display_name=from_name, addr_spec=settings.from_address)
    mail["To"] = ", ".join(company.profile.summary_to)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(at)
    # The same for every attempt (make_msgid would add a random part): a copy sent again after
    # a takeover is recognisably the same mail (see vaihde.messages.email).
    mail["Message-ID"] = f"<vaihde-summary-{key}-{day}@{settings.from_address.rpartition('@')[2]}>"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(text)
    return mail


class Dispatcher:
    """Runs until stopped: `start()`, `wake()` after an urgent message is taken, `stop()`.

    `companies()` gives the companies this service serves by key (today one: "main")."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        companies: Callable[[], Mapping[str, CompanyConfig]],
        *,
        sms: SmsSettings | None,
        smtp: SmtpSettings | None,
        holder: Holder | None = None,
        clock: Callable[[], datetime] = utcnow,
        poll_s: float = POLL_S,
        lease: timedelta = store.LEASE,
    ) -> None:
        self.sessions = sessions
        self.companies = companies
        self.sms = SmsTransport(sms) if sms is not None else None
        self.mailer = EmailTransport(smtp) if smtp is not None else None
        self.holder = holder
        self.clock = clock
        self.poll_s = poll_s
        self.lease = lease
        self.last_error = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._settled: set[tuple[str, object]] = set()  # summaries known done

    def _company(self, key: str) -> CompanyConfig | None:
        return self.companies().get(key)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="vaihde-dispatch")
        return self._task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_all([task])
        if self.sms is not None:
            await self.sms.close()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                self.last_error = ""
            except Exception as exc:  # the database may be away for a while: keep trying
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("dispatch: a round failed")
            await until_set(self._wake, self.poll_s)

    def _alive(self) -> bool:
        return self.holder is None or self.holder.up

    @property
    def _holder_id(self) -> int | None:
        return self.holder.holder if self.holder is not None else None

    async def run_once(self) -> dict[str, int]:
        """One round: escalations, SMS, summaries. Returns how many of each it handled."""
        if not self._alive():
            return {"escalated": 0, "texted": 0, "summaries": 0}
        async with self.sessions.begin() as session:
            escalated = await store.escalate_due(session, self._company, now=self.clock())
        texted = await self.send_steps()
        summaries = await self.send_summaries()
        return {"escalated": len(escalated), "texted": texted, "summaries": summaries}

    # --- urgent SMS ---------------------------------------------------------------------

    async def send_steps(self) -> int:
        if self.sms is None or not self._alive():
            return 0
        async with self.sessions.begin() as session:
            claims = await store.claim_steps(session, now=self.clock(), holder=self._holder_id,
                                             lease=self.lease)
        for claim in claims:
            await self._text(claim)
        return len(claims)

    async def _text(self, claim: store.StepClaim) -> None:
        assert self.sms is not None
        company = self._company(claim.company)
        error: str | None = None
        permanent = False
        if not self._alive():
            return  # left for whoever claims it next
        if company is None:
            error = f"no company {claim.company!r} in this service"
        else:
            message = claim.message
            text = urgent_sms(
                company=company.company.name,
                caller=caller_label(message, company.company.language), note=message.note,
                created_at=message.created_at, code=claim.code,
                language=company.company.language, timezone=company.company.timezone,
            )
            try:
                key = f"vaihde-urgent-{claim.step_id}-{int(message.created_at.timestamp())}"
                await asyncio.wait_for(self.sms.send_text(claim.address, text, key),
                                       self.lease.total_seconds() / 2)
            except SendError as exc:
                error, permanent = exc.reason, exc.permanent
            except TimeoutError:
                error = "no answer from the SMS gateway"
        async with self.sessions.begin() as session:
            ours = await store.record_step(session, claim, error=error, permanent=permanent,
                                           now=self.clock())
        extra = {"dispatch_id": claim.dispatch_id, "employee": claim.employee,
                 "attempt": claim.attempts}
        if not ours:
            log.warning("urgent SMS taken over meanwhile", extra=extra)
        elif error is None:
            log.info("urgent SMS sent", extra=extra)
        else:
            log.warning("urgent SMS failed", extra={**extra, "error": error})

    # --- daily summaries ----------------------------------------------------------------

    async def send_summaries(self) -> int:
        if self.mailer is None or not self._alive():
            return 0
        sent = 0
        now = self.clock()
        for key, company in self.companies().items():
            profile = company.profile
            if not profile.summary_to:
                continue
            zone = company.zone
            day = summary_day(now, zone, profile.summary_at)
            if (key, day) in self._settled:
                continue
            async with self.sessions.begin() as session:
                if await store.summary_done(session, key, day):
                    self._settled.add((key, day))
                    continue
                claim = await store.claim_summary(session, key, day, now=now,
                                                  holder=self._holder_id, lease=self.lease)
            if claim is not None:
                await self._summary(claim, company, zone)
                sent += 1
        return sent

    async def _summary(
        self, claim: store.SummaryClaim, company: CompanyConfig, zone: ZoneInfo
    ) -> None:
        assert self.mailer is not None
        profile = company.profile
        start, end = summary_window(claim.day, zone, profile.summary_at)
        language, tz = company.company.language, company.company.timezone
        async with self.sessions() as session:
            rows = await store.messages_between(session, start, end, company=claim.company)
        who = names(company)
        lines = [
            SummaryLine(
                id=r.message.id, created_at=r.message.created_at,
                recipient=who.get(r.message.recipient.id, r.message.recipient.id),
                caller=caller_label(r.message, language), note=r.message.note,
                urgent="" if r.urgent is None else urgent_state_text(
                    r.urgent.status, language,
                    who=who.get(r.urgent.confirmed_by or "", r.urgent.confirmed_by or ""),
                    at=r.urgent.confirmed_at, timezone=tz),
            )
            for r in rows
        ]
        subject, text = render_summary(company=company.company.name, language=language,
                                       timezone=tz, day=claim.day, start=start, end=end,
                                       lines=lines)
        mail = summary_mail(company, subject, text, self.mailer.settings, claim.company,
                            claim.day.isoformat(), self.clock())
        error: str | None = None
        permanent = False
        if self._alive():
            try:
                await self.mailer.send_mail(mail, list(profile.summary_to))
            except SendError as exc:
                error, permanent = exc.reason, exc.permanent
        else:
            return  # left to whoever claims it next
        async with self.sessions.begin() as session:
            ours = await store.record_summary(session, claim, error=error, messages=len(lines),
                                              created=end, permanent=permanent,
                                              now=self.clock())
        extra = {"company": claim.company, "day": claim.day.isoformat(),
                 "messages": len(lines), "attempt": claim.attempts}
        if ours and error is None:
            self._settled.add((claim.company, claim.day))
            log.info("daily message summary sent", extra=extra)
        elif not ours:
            log.warning("daily message summary taken over meanwhile", extra=extra)
        else:
            log.warning("daily message summary failed", extra={**extra, "error": error})

    def status(self) -> dict[str, object]:
        return {"running": self._task is not None and not self._task.done(),
                "sms": self.sms is not None, "email": self.mailer is not None,
                "last_error": self.last_error}
