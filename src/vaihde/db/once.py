"""Work that must be done once across every instance sharing one PostgreSQL, never twice, and be
taken over within seconds when the instance doing it dies.

Two shapes, both built on the instance's Peer connection (vaihde.db.peer) and its advisory locks,
which PostgreSQL releases the moment that connection ends (a kill -9 closes the socket at once):

- **A job that one instance runs at a time** (`Leader`): calendar sync, later a campaign or
  callback dialler's scheduler. Each instance tries the job's lock every `retry_s`; the holder runs
  the job until its connection ends, then stops it (the lock is gone), and another instance takes
  it within `retry_s` (1 s).
- **Rows that must be handled once** (`claimable`): message deliveries, later callbacks to dial.
  An instance claims rows in one statement with `FOR UPDATE SKIP LOCKED` (concurrent claimers
  take different rows), writing its holder id (`Peer.holder`, whose lock it holds while alive)
  into the row. A row still claimed by a holder whose lock is free belongs to a dead instance and
  may be claimed again; a live holder's rows are never taken from it. A claimer must not start
  work while its Peer is down (its claims may be taken over then): `Holder.up`.

What remains: work on the wire when the connection to PostgreSQL breaks (a mail being sent when
the instance loses the database, not the process) may be done again by the instance that takes
it over; recording the outcome is fenced (the attempt number), so nothing is lost.

On SQLite (one machine) there is no Peer: a Leader always runs its job, and claims are taken over
only when their lease ends, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from sqlalchemy import BigInteger, ColumnElement, cast, column, func, select, table
from sqlalchemy.orm import InstrumentedAttribute

from vaihde.db.peer import INSTANCES, JOBS, Peer

log = logging.getLogger("vaihde.db.once")

RETRY_S = 1.0  # how often a standby instance tries to take a job: the takeover time

_pg_locks = table("pg_locks", column("locktype"), column("classid"), column("objid"),
                  column("objsubid"), column("granted"), column("database"))
_pg_database = table("pg_database", column("oid"), column("datname"))


class Holder(Protocol):
    """What a claimer needs of its instance (a Peer): its id and whether it is alive now."""

    @property
    def holder(self) -> int: ...
    @property
    def up(self) -> bool: ...


def job_key(name: str) -> int:
    """The advisory lock key of a job name (positive int4)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def live_holders() -> Any:
    """SELECT of the holder ids whose instance is alive now (holds its lock in this database)."""
    here = select(_pg_database.c.oid).where(
        _pg_database.c.datname == func.current_database()).scalar_subquery()
    return select(cast(_pg_locks.c.objid, BigInteger)).where(
        _pg_locks.c.locktype == "advisory", _pg_locks.c.classid == INSTANCES,
        _pg_locks.c.objsubid == 2, _pg_locks.c.granted.is_(True),
        _pg_locks.c.database == here,
    )


def orphaned(claimed_by: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """A claimed row whose holder is gone (PostgreSQL only): `claimed_by` names no live
    instance."""
    return claimed_by.is_not(None) & claimed_by.not_in(live_holders())


class Leader:
    """Runs `job()` on one instance at a time (`run()` until cancelled). `leading` says whether
    this instance runs it now. Without a Peer (SQLite) it always does."""

    def __init__(
        self,
        name: str,
        job: Callable[[], Coroutine[Any, Any, None]],
        peer: Peer | None,
        *,
        retry_s: float = RETRY_S,
    ) -> None:
        self.name = name
        self.key = job_key(name)
        self.job = job
        self.peer = peer
        self.retry_s = retry_s
        self.leading = False
        self.terms = 0  # how many times this instance took the job

    def status(self) -> dict[str, Any]:
        return {"leading": self.leading, "terms": self.terms}

    async def run(self) -> None:
        peer = self.peer
        if peer is None:
            self.leading, self.terms = True, 1
            try:
                await self.job()
            finally:
                self.leading = False
            return
        while True:
            ended = peer.ended()
            if peer.up and await peer.try_lock(JOBS, self.key):
                if peer.ended() is ended and not ended.is_set():
                    await self._lead(peer, ended)
                else:  # reconnected meanwhile: whichever connection took it lets it go
                    await peer.unlock(JOBS, self.key)
            await asyncio.sleep(self.retry_s)

    async def _lead(self, peer: Peer, ended: asyncio.Event) -> None:
        self.leading = True
        self.terms += 1
        log.info("leading a job", extra={"job": self.name, "holder": peer.holder})
        task = asyncio.get_running_loop().create_task(self.job(), name=f"vaihde-{self.name}")
        lost = asyncio.get_running_loop().create_task(ended.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost.done():
                log.warning("job lost with the database connection; another instance takes "
                            "it", extra={"job": self.name})
            elif not task.cancelled() and task.exception() is not None:
                log.error("job ended with an error", extra={"job": self.name},
                          exc_info=task.exception())
        finally:
            self.leading = False
            for t in (task, lost):
                t.cancel()
            for t in (task, lost):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if not ended.is_set():
                await peer.unlock(JOBS, self.key)


__all__ = ["RETRY_S", "Holder", "Leader", "job_key", "live_holders", "orphaned"]
