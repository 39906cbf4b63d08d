"""The sender: claims due deliveries from the database, sends them through the e-mail and SMS
transports and records each attempt, retrying with backoff. Several service processes may each
run one (claims never overlap); a process that dies leaves its claims to the others: on
PostgreSQL within TAKEOVER_S of its death (its liveness lock is gone, vaihde.db.once), on SQLite
when their lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.db.clock import utcnow
from vaihde.db.once import Holder
from vaihde.jobs import cancel_all, until_set
from vaihde.messages.email import EmailTransport
from vaihde.messages.model import (
    BACKOFF,
    RETRY_FOR,
    DeliveryRecord,
    Outgoing,
    SendError,
    recipient_name,
)
from vaihde.messages.settings import MessagingSettings
from vaihde.messages.sms import SmsTransport
from vaihde.messages.store import DEFAULT_LEASE, Claim, claim_due, record_attempt

if TYPE_CHECKING:
    from vaihde.company import CompanyConfig

log = logging.getLogger("vaihde.messages")

# With a holder (PostgreSQL), how often the sender looks for deliveries that a dead instance
# was sending: the takeover time.
TAKEOVER_S = 1.0


class Transport(Protocol):
    channel: str

    async def send(self, item: Outgoing) -> None:
        """Send one delivery; raise SendError when it did not go."""

    async def close(self) -> None: ...


class Sender:
    """Delivers messages until stopped: `start()`, `wake()` after taking a message, `stop()`.

    `company_by_id` finds the message's company (`messages.company_id`; `company`, the first
    one, when it is gone): the texts use its language, time zone and names as they are when the
    delivery is sent. `clock` is injectable for tests.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        transports: Mapping[str, Transport],
        company: Callable[[], CompanyConfig],
        *,
        clock: Callable[[], datetime] = utcnow,
        poll_interval: float = 30.0,
        batch: int = 10,
        concurrency: int = 4,
        lease: timedelta = DEFAULT_LEASE,
        backoff: tuple[timedelta, ...] = BACKOFF,
        retry_for: timedelta = RETRY_FOR,
        send_timeout: float = 120.0,
        holder: Holder | None = None,
        takeover_s: float = TAKEOVER_S,
        company_by_id: Callable[[str], CompanyConfig | None] = lambda _: None,
    ) -> None:
        self.sessions = sessions
        self.transports = dict(transports)
        self.company = company
        self.company_by_id = company_by_id
        self.clock = clock
        self.poll_interval = poll_interval
        self.batch = batch
        self.lease = lease
        self.backoff = backoff
        self.retry_for = retry_for
        # Below the lease: an attempt that outlives its lease could be sent twice.
        self.send_timeout = min(send_timeout, lease.total_seconds() / 2)
        # This instance as other instances see it (a Peer): claims carry its id, and nothing
        # is sent while it is not connected (its claims may be taken over then).
        self.holder = holder
        self.takeover_s = takeover_s
        self.skipped = 0  # claims left untouched because the holder was down
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_error: str = ""  # the loop's own last problem (database down…), for health

    def status(self) -> dict[str, object]:
        """For the health page: is the loop running, what can it send, its last problem."""
        return {"running": self._task is not None and not self._task.done(),
                "channels": sorted(self.transports), "last_error": self.last_error}

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="vaihde-messages")
        return self._task

    def wake(self) -> None:
        """Look for due deliveries now (a message was just taken) instead of at the next poll."""
        self._wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Let the attempts under way finish (up to `grace` seconds), then stop. An attempt cut
        short stays claimed until its lease ends and is then sent by whoever runs next."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), grace)
            await cancel_all([task])
        for transport in self.transports.values():
            with contextlib.suppress(Exception):
                await transport.close()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception as exc:  # the database may be away for a while: keep trying
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("message sender: cannot read due deliveries")
                handled = 0
            if self._stopping:
                break
            if handled >= self.batch:
                continue  # more may be due right now
            wait = self.poll_interval
            if self.holder is not None:
                wait = min(wait, self.takeover_s)
            await until_set(self._wake, wait)

    async def run_once(self) -> int:
        """Claim what is due now and send it; returns how many attempts were made."""
        now = self.clock()
        self.last_error = ""
        holder = self.holder
        if holder is not None and not holder.up:
            return 0  # not alive to the others: claiming now could send twice
        async with self.sessions() as session, session.begin():
            claims = await claim_due(session, now=now, limit=self.batch, lease=self.lease,
                                     holder=holder.holder if holder is not None else None)
        if not claims:
            return 0
        results = await asyncio.gather(*(self._attempt(c) for c in claims), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                # Sent or not, the outcome is unknown: the claim's lease ends and it is tried
                # again (possibly sent twice; never lost).
                self.last_error = f"{type(result).__name__}: {result}"
                log.error("message sender: cannot record an attempt", exc_info=result)
        return len(claims)

    # --- one attempt ------------------------------------------------------------------------

    def _outgoing(self, claim: Claim) -> Outgoing:
        # The message's own company (its recipient's): a client's employee gets its texts in
        # the client's language, time zone and name, whoever else the service answers for.
        company = self.company_by_id(claim.message.company_id) or self.company()
        about = company.company
        return Outgoing(claim.message, claim.delivery, about.language, about.timezone, about.name,
                        recipient_name(claim.message.recipient, company))

    async def _attempt(self, claim: Claim) -> DeliveryRecord | None:
        delivery = claim.delivery
        error: str | None = None
        permanent = False
        async with self._limit:
            if self.holder is not None and not self.holder.up:
                # Lost the database meanwhile: another instance may be taking this over. Left
                # as it is; whoever claims it next sends it.
                self.skipped += 1
                log.warning("message delivery left to another instance: database connection "
                            "lost", extra={"delivery_id": delivery.id})
                return None
            transport = self.transports.get(delivery.channel)
            try:
                if transport is None:
                    # Settings changed since the message was planned: retried, so that fixing
                    # the settings within the retry time still delivers it.
                    raise SendError(f"no {delivery.channel} settings in this service")
                await asyncio.wait_for(transport.send(self._outgoing(claim)), self.send_timeout)
            except SendError as exc:
                error, permanent = exc.reason, exc.permanent
            except TimeoutError:
                error = f"no answer within {self.send_timeout:.0f} s"
            except Exception as exc:  # a bug in a transport must not stop the others
                log.exception("message sender: transport failed",
                              extra={"delivery_id": delivery.id})
                error = f"{type(exc).__name__}: {exc}"
        # Shielded: the outcome of a mail that went must be written even while stopping.
        return await asyncio.shield(self._record(claim, error, permanent))

    async def _record(
            self, claim: Claim, error: str | None, permanent: bool) -> DeliveryRecord | None:
        async with self.sessions() as session, session.begin():
            result = await record_attempt(
                session, claim, error=error, permanent=permanent, now=self.clock(),
                backoff=self.backoff, retry_for=self.retry_for,
            )
        d = claim.delivery
        extra = {"message_id": claim.message.id, "delivery_id": d.id, "channel": d.channel,
                 "attempt": d.attempts}
        if result is None:
            log.warning("message delivery was taken over or cancelled meanwhile", extra=extra)
        elif result.status == "sent":
            log.info("message delivered", extra=extra)
        else:
            log.warning("message delivery failed", extra={
                **extra, "status": result.status, "error": error,
                "next_attempt_at": result.next_attempt_at})
        return result


def transports_from_settings(settings: MessagingSettings) -> dict[str, Transport]:
    """The transports for these settings: e-mail if there is an SMTP server, SMS if there is a
    gateway."""
    out: dict[str, Transport] = {}
    if settings.smtp is not None:
        out["email"] = EmailTransport(settings.smtp)
    if settings.sms is not None:
        out["sms"] = SmsTransport(settings.sms)
    return out
