"""This instance's own connection to PostgreSQL, apart from the pool: it LISTENs for the changes
other processes commit (vaihde.db.changes) and holds the instance's advisory locks — one that says
"this instance is alive" (vaihde.db.once: its claims are its own while it holds it) and one per job
it leads.

Everything that depends on the connection is lost with it at once: notifications sent while it is
down never arrive (so every (re)connect tells the listeners to resync), and the locks are released
by PostgreSQL when the session ends (so other instances take over this one's claims and jobs).
After a kill -9 the kernel closes the socket and PostgreSQL releases the locks at once; for a host
that vanishes, the server's TCP keepalives (set on this connection) end the session within about
4 s. The instance notices a broken connection itself by a ping every second.

SQLite has no such connection (`Peer.for_database` returns None): one machine, polling as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import asyncpg

from vaihde.db.engine import Database
from vaihde.jobs import cancel_all, until_set

log = logging.getLogger("vaihde.db.peer")

# NOTIFY channel of the revision counters (the trigger of migration 0005).
CHANNEL = "vaihde_revisions"
# Advisory lock key spaces (the first of pg_advisory_lock's two int4 keys): an instance's
# liveness lock (second key: its holder id) and the jobs that run on one instance at a time
# (second key: the job's key, vaihde.db.once.job_key).
INSTANCES = 0x76616968  # "vaih"
JOBS = 0x7661696A  # "vaij"
PING_S = 1.0
TIMEOUT_S = 2.0
RETRY_S = 1.0
# The server ends a session whose host stopped answering after about idle + interval * count
# seconds (and tcp_user_timeout for unacknowledged data), releasing its locks. Ignored on Unix
# sockets, where a dead peer's socket is closed by the kernel anyway.
SERVER_SETTINGS = {
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "2",
    "tcp_user_timeout": "4000",
}

StateListener = Callable[[bool], None]
NotifyListener = Callable[[str], None]


def new_holder() -> int:
    """A random holder id: positive int4, the second key of an advisory lock."""
    return secrets.randbelow(0x7FFFFFFE) + 1


class Peer:
    """The dedicated connection, kept up until `stop()`. `up` says whether it is connected now;
    `holder` is this connection's liveness id (a new one each time it connects, so that claims
    of an earlier connection are orphans to be taken over by anyone, this instance included)."""

    def __init__(
        self,
        connect_args: dict[str, Any],
        *,
        channel: str = CHANNEL,
        ping_s: float = PING_S,
        timeout_s: float = TIMEOUT_S,
        retry_s: float = RETRY_S,
        name: str = "vaihde",
    ) -> None:
        self._connect_args = connect_args
        self.channel = channel
        self.ping_s = ping_s
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.name = name
        self.holder = 0
        self.connects = 0  # successful connections so far (each one is a resync)
        self.notifications = 0
        self.last_error = ""
        self._conn: asyncpg.Connection | None = None
        self._query = asyncio.Lock()  # asyncpg runs one query at a time per connection
        self._ended = asyncio.Event()  # the current connection's end (set while down)
        self._ended.set()
        self._first = asyncio.Event()
        self._state_listeners: list[StateListener] = []
        self._notify_listeners: list[NotifyListener] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def for_database(cls, db: Database, **kwargs: Any) -> Peer | None:
        """A Peer on the same server, database and credentials as `db` (None for SQLite)."""
        if db.engine.url.get_backend_name() != "postgresql":
            return None
        _args, connect_args = db.engine.dialect.create_connect_args(db.engine.url)
        return cls(dict(connect_args), **kwargs)

    @property
    def up(self) -> bool:
        return self._conn is not None and not self._ended.is_set()

    def ended(self) -> asyncio.Event:
        """Set when the current connection ends (already set while down): what was held on it
        (locks, leadership) is gone then."""
        return self._ended

    def add_state_listener(self, cb: StateListener) -> None:
        self._state_listeners.append(cb)

    def add_notify_listener(self, cb: NotifyListener) -> None:
        self._notify_listeners.append(cb)

    def status(self) -> dict[str, Any]:
        return {"connected": self.up, "holder": self.holder if self.up else None,
                "connects": self.connects, "last_error": self.last_error}

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, wait_s: float = 5.0) -> None:
        """Connect in the background; waits up to `wait_s` for the first attempt, so that a
        service starting with a reachable database is alive before it claims anything."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="vaihde-peer")
        await until_set(self._first, wait_s)

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_all([task])

    async def _run(self) -> None:
        failing = False
        try:
            while True:
                try:
                    conn, holder = await self._connect()
                except Exception as exc:  # whatever it was, the next attempt may work
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if not failing:
                        log.warning("database peer connection failed; retrying",
                                    extra={"error": self.last_error})
                    failing = True
                    self._first.set()
                    await asyncio.sleep(self.retry_s)
                    continue
                failing = False
                self.last_error = ""
                await self._serve(conn, holder)
                await asyncio.sleep(self.retry_s)
        finally:
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            self._ended.set()

    async def _connect(self) -> tuple[asyncpg.Connection, int]:
        conn: asyncpg.Connection = await asyncpg.connect(
            **self._connect_args, timeout=self.timeout_s * 5,
            server_settings={**SERVER_SETTINGS, "application_name": self.name},
        )
        try:
            # LISTEN before the listeners resync: nothing committed after their re-read is
            # missed.
            await conn.add_listener(self.channel, self._notified)
            holder = new_holder()
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)",
                                          INSTANCES, holder):
                holder = new_holder()  # taken by another instance (1 in 2^31)
        except BaseException:
            conn.terminate()
            raise
        return conn, holder

    async def _serve(self, conn: asyncpg.Connection, holder: int) -> None:
        ended = asyncio.Event()
        conn.add_termination_listener(lambda _c: ended.set())
        self._conn, self._ended, self.holder = conn, ended, holder
        self.connects += 1
        log.info("database peer connected", extra={"holder": self.holder,
                                                   "connects": self.connects})
        self._first.set()
        self._tell(True)
        try:
            while not ended.is_set():
                await until_set(ended, self.ping_s)
                if ended.is_set():
                    break
                async with self._query:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self.timeout_s)
        except Exception as exc:  # a broken connection, whatever the driver calls it
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            ended.set()
            self._conn = None
            conn.terminate()
            if self._stopping:
                log.info("database peer closed", extra={"holder": self.holder})
            else:
                log.warning("database peer connection lost: locks released, changes will be "
                            "re-read", extra={"holder": self.holder, "error": self.last_error})
            self._tell(False)

    def _tell(self, up: bool) -> None:
        for cb in list(self._state_listeners):
            try:
                cb(up)
            except Exception:
                log.exception("database peer state listener failed")

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.notifications += 1
        for cb in list(self._notify_listeners):
            try:
                cb(payload)
            except Exception:
                log.exception("database change listener failed")

    # --- locks ------------------------------------------------------------------------------

    async def try_lock(self, space: int, key: int) -> bool:
        """Take a session-level advisory lock on this connection (False if another session
        holds it, or the connection is down)."""
        conn = self._conn
        if conn is None or not self.up:
            return False
        try:
            async with self._query:
                got = await asyncio.wait_for(
                    conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", space, key),
                    self.timeout_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        return bool(got)

    async def unlock(self, space: int, key: int) -> None:
        conn = self._conn
        if conn is None or not self.up:
            return  # the lock went with the connection
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                                 TimeoutError):
            async with self._query:
                await asyncio.wait_for(
                    conn.fetchval("SELECT pg_advisory_unlock($1, $2)", space, key),
                    self.timeout_s)


__all__ = ["CHANNEL", "INSTANCES", "JOBS", "Peer", "new_holder"]
