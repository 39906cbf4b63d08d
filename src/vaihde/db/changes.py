"""What other processes (other instances, the CLI) committed, as soon as they commit.

Every change to shared state bumps a revision counter (`revisions`: presence, directory, config,
callers, messages, auth) in its own transaction. On PostgreSQL a trigger on that table sends
`NOTIFY vaihde_revisions, 'name:counter'` (migration 0005), which PostgreSQL delivers when the
transaction commits; the instance's Peer connection LISTENs and wakes the caches that watch that
name, which then re-read what changed. The table changes a few times a second at most, so the
global lock a committing NOTIFY takes costs nothing measurable.

Notifications sent while the Peer is disconnected are lost: whenever it (re)connects every watch
is woken to re-read everything, and while it is down the watches poll at their own pace (as on
SQLite). While notifications flow, watches still re-read every SAFETY_S, in case one is lost some
other way. On SQLite (one machine) there is no Peer and watches poll as they always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from vaihde.db.peer import Peer
from vaihde.jobs import until_set

# While notifications flow, each watch still re-reads this often (a safety net).
SAFETY_S = 5.0
FOLLOW_POLL_S = 3600.0  # `follow` has nothing to do when its time runs out


class Watch:
    """What one cache waits on: `await watch.wait(poll_s)` returns when one of its names was
    bumped, when the Peer connected or disconnected (re-read everything), or after `poll_s`
    seconds when notifications do not flow (SQLite, Peer down), SAFETY_S when they do."""

    def __init__(self, changes: Changes, names: frozenset[str]) -> None:
        self.changes = changes
        self.names = names
        self._event = asyncio.Event()
        self.woken = 0  # by a notification or a (re)connect, not by time

    def wake(self) -> None:
        self.woken += 1
        self._event.set()

    async def wait(self, poll_s: float) -> bool:
        """True if woken, False if the time ran out."""
        timeout = max(poll_s, SAFETY_S) if self.changes.live else poll_s
        woken = await until_set(self._event, timeout)
        self._event.clear()
        return woken


class Changes:
    """The feed of committed changes for the caches of one process. `live`: notifications flow
    now (PostgreSQL with the Peer connected)."""

    def __init__(self, peer: Peer | None = None) -> None:
        self.peer = peer
        self._watches: list[Watch] = []
        self.resyncs = 0
        if peer is not None:
            peer.add_notify_listener(self._notified)
            peer.add_state_listener(self._state)

    @property
    def live(self) -> bool:
        return self.peer is not None and self.peer.up

    def watch(self, *names: str) -> Watch:
        w = Watch(self, frozenset(names))
        self._watches.append(w)
        return w

    def unwatch(self, watch: Watch) -> None:
        if watch in self._watches:
            self._watches.remove(watch)

    async def follow(self, names: Iterable[str], callback: Callable[[], None]) -> None:
        """Call `callback` whenever one of `names` changes elsewhere (or the Peer reconnects),
        until cancelled; on SQLite never (nothing notifies)."""
        watch = self.watch(*names)
        try:
            while True:
                if await watch.wait(FOLLOW_POLL_S):
                    callback()
        finally:
            self.unwatch(watch)

    def changed(self, names: Iterable[str]) -> None:
        """Wake the watches of these names (this process changed them itself)."""
        wanted = set(names)
        for w in list(self._watches):
            if w.names & wanted:
                w.wake()

    def _notified(self, payload: str) -> None:
        name, _, _counter = payload.partition(":")
        self.changed((name,))

    def _state(self, up: bool) -> None:
        # Connected: notifications lost meanwhile must be made up for by re-reading everything.
        # Disconnected: the watches go back to polling at their own pace, starting now.
        if up:
            self.resyncs += 1
        for w in list(self._watches):
            w.wake()


__all__ = ["FOLLOW_POLL_S", "SAFETY_S", "Changes", "Watch"]
