"""FastAGI server: one asyncio task per Asterisk connection, so a stalled or hostile peer only
ever costs its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from vaihde.agi.channel import AgiConnection, Channel
from vaihde.agi.session import ENV_TIMEOUT_S, SILENCE_BUDGET_S, Router, run_session
from vaihde.agi.stalls import LoopStalls
from vaihde.agi.stream import AgiStream
from vaihde.jobs import cancel_all

log = logging.getLogger("vaihde.agi")


class FastAgiServer:
    def __init__(
        self,
        router: Router,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        silence_budget: float = SILENCE_BUDGET_S,
        env_timeout: float = ENV_TIMEOUT_S,
        max_sessions: int = 10_000,
        allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None,
        secret: str = "",
    ) -> None:
        """`allow`: the peers (Asterisk servers) that may connect, None = any; `secret`: the
        shared secret every AGI URL must carry (agi://host:port/SECRET/script)."""
        self.router = router
        self.host = host
        self.port = port
        self.silence_budget = silence_budget
        self.env_timeout = env_timeout
        self.max_sessions = max_sessions
        self.allow = tuple(allow) if allow is not None else None
        self.secret = secret
        self.stalls = LoopStalls()
        self._stall_watch: asyncio.Task[None] | None = None
        self.outcomes: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._channels: dict[asyncio.Task[None], Channel] = {}

    @property
    def active(self) -> int:
        return len(self._sessions)

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: AgiStream(self._on_connect), self.host, self.port, backlog=4096
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        self._stall_watch = loop.create_task(self.stalls.watch(), name="vaihde-agi-stalls")
        log.info("fastagi listening", extra={"host": self.host, "port": self.port})

    async def _on_connect(self, stream: AgiStream) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = AgiConnection(stream, stream)
        if not self._allowed(stream):
            self.outcomes["refused"] += 1
            conn.close()
            return
        if len(self._sessions) >= self.max_sessions:
            # Closing before the environment makes Asterisk continue its dialplan at once, which
            # routes the call to the operator: better than queueing the caller in silence.
            self.outcomes["overload"] += 1
            conn.close()
            return
        self._sessions.add(task)
        try:
            result = await run_session(
                conn,
                self.router,
                env_timeout=self.env_timeout,
                silence_budget=self.silence_budget,
                on_channel=lambda channel: self._channels.__setitem__(task, channel),
                secret=self.secret,
                stalls=self.stalls,
            )
            self.outcomes[result.outcome] += 1
        finally:
            self._sessions.discard(task)
            self._channels.pop(task, None)

    def _allowed(self, stream: AgiStream) -> bool:
        if self.allow is None:
            return True
        peer = stream.transport.get_extra_info("peername") if stream.transport else None
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        if isinstance(peer, tuple) and peer:
            with contextlib.suppress(TypeError, ValueError):
                address = ipaddress.ip_address(peer[0])
        if address is not None:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if any(address in net for net in self.allow):
                return True
        # Not an Asterisk we serve: it gets nothing, not even the time of a session.
        log.warning("fastagi connection from a peer not allowed", extra={"peer": str(peer)})
        return False

    def channels(self) -> list[Channel]:
        """The channels of the sessions in progress (for a handover when stopping)."""
        return [c for c in self._channels.values() if not c.hungup]

    async def stop(
        self,
        grace: float = 5.0,
        handover: Callable[[list[Channel]], Awaitable[object]] | None = None,
    ) -> None:
        """Stop accepting; `handover` may move the calls in progress elsewhere at once (e.g. an
        AMI Redirect to a person); sessions still open finish for `grace` seconds, then are cut
        (each cut session still gets its fallback route)."""
        if self._server is None:
            return
        self._server.close()
        if handover is not None and self._sessions:
            try:
                async with asyncio.timeout(2.0):
                    await handover(self.channels())
            except Exception as exc:  # the grace and the fallback route still apply
                log.warning("handover of calls in progress failed", extra={"error": repr(exc)})
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self._server.wait_closed()
        self._server = None
        if self._stall_watch is not None:
            await cancel_all([self._stall_watch])
            self._stall_watch = None
        log.info("fastagi stopped", extra={"outcomes": dict(self.outcomes)})
