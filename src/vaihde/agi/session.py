"""Runs one AGI session: read the environment, route to a handler, and on any failure send the call
down the dialplan's path to a human instead of hanging up.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vaihde import contract
from vaihde.agi.channel import AgiConnection, Channel, SilenceGuard
from vaihde.agi.protocol import AgiError, AgiHangup
from vaihde.agi.stalls import LoopStalls

log = logging.getLogger("vaihde.agi")

Handler = Callable[[Channel], Coroutine[Any, Any, None]]

# How long Asterisk may take to send the environment block (it sends it at once on connect).
ENV_TIMEOUT_S = 2.0
# Caller silence we allow ourselves; the dialplan needs a moment more to start ringing someone,
# and the promise is < 3 s.
SILENCE_BUDGET_S = 2.0
# The fallback instruction itself must not add silence.
FALLBACK_TIMEOUT_S = 0.5
# How long a handler cancelled for keeping the caller silent may take to stop before the
# fallback route is sent without it.
CANCEL_GRACE_S = 0.1
# Handlers given up on while they unwind (kept referenced until they end).
_STUCK: set[asyncio.Task[None]] = set()


class Router:
    """Maps `agi_network_script` paths (without the ?query) to handlers."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}

    def add(self, path: str, handler: Handler) -> None:
        key = path.strip("/")
        if key in self._routes:
            raise ValueError(f"AGI route registered twice: {key}")
        self._routes[key] = handler

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(path, handler)
            return handler

        return register

    def resolve(self, path: str) -> Handler | None:
        return self._routes.get(path.strip("/"))

    @property
    def paths(self) -> list[str]:
        return sorted(self._routes)


@dataclass(slots=True)
class SessionResult:
    """How a session ended; the server keeps counters of these."""

    outcome: str  # "done", "hangup", "fallback", "rejected"
    reason: str = ""
    script: str = ""
    uniqueid: str = ""
    seconds: float = 0.0


async def run_session(
    conn: AgiConnection,
    router: Router,
    *,
    env_timeout: float = ENV_TIMEOUT_S,
    silence_budget: float = SILENCE_BUDGET_S,
    script_override: str | None = None,
    on_channel: Callable[[Channel], None] | None = None,
    secret: str = "",
    stalls: LoopStalls | None = None,
) -> SessionResult:
    """`secret`: the shared secret the AGI URL must carry as its first path segment
    (agi://host:port/SECRET/inbound); sessions without it are closed unanswered."""
    started = time.monotonic()
    try:
        try:
            async with asyncio.timeout(env_timeout):
                env = await conn.read_environment()
        except (TimeoutError, AgiError) as exc:
            # Not a call we can help (port scanner, garbage, a peer that left): just drop it.
            log.info("agi session rejected", extra={"why": type(exc).__name__, "detail": str(exc)})
            return SessionResult("rejected", str(exc) or "timeout")

        script = env.network_script if script_override is None else script_override
        if secret:
            given, _, script = script.lstrip("/").partition("/")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                log.warning("agi session without the shared secret refused",
                            extra={"uniqueid": env.uniqueid, "channel": env.channel})
                return SessionResult("rejected", "no secret")
        channel = Channel(conn, env, SilenceGuard(silence_budget), script=script, stalls=stalls)
        if on_channel is not None:
            on_channel(channel)
        ids = {"uniqueid": channel.uniqueid, "channel": channel.name, "script": channel.script}
        handler = router.resolve(channel.script)
        if handler is None:
            log.error("no AGI handler for script", extra=ids)
            return await _fallback(channel, "unknown-script", started)

        # The handler runs in a task of its own so that the caller's fallback never waits for
        # it to stop: a handler cancelled inside a database call can take as long as the
        # database to unwind (the driver's rollback waits for a frozen server).
        loop = asyncio.get_running_loop()
        work = loop.create_task(handler(channel), name=f"agi-{channel.script}")
        expired: asyncio.Future[None] = loop.create_future()

        def expire() -> None:
            if not expired.done():
                expired.set_result(None)

        channel.silence.bind(work, expire)
        try:
            await asyncio.wait((work, expired), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await asyncio.wait((work,), timeout=CANCEL_GRACE_S)
        except asyncio.CancelledError:
            # The service is shutting down under this call: hand it to the dialplan's human path.
            channel.silence.stop()
            await _abandon(channel, work, ids)
            await _fallback(channel, "service-stopping", started)
            raise
        finally:
            channel.silence.stop()
        if not work.done():
            await _abandon(channel, work, ids)
            log.error("agi handler kept the caller silent too long and did not stop", extra=ids)
            return await _fallback(channel, "service-timeout", started)
        if work.cancelled():
            log.error("agi handler kept the caller silent too long", extra=ids)
            return await _fallback(channel, "service-timeout", started)
        failure = work.exception()
        if isinstance(failure, AgiHangup):
            return _result(channel, "hangup", "caller hung up", started)
        if isinstance(failure, TimeoutError):
            log.error("agi handler kept the caller silent too long", extra=ids)
            return await _fallback(channel, "service-timeout", started)
        if failure is not None:  # any bug must still reach a human
            log.error(
                "agi handler failed", extra={**ids, "error": repr(failure)}, exc_info=failure
            )
            return await _fallback(channel, "service-error", started)
        return _result(channel, "done", channel.variables_set.get(contract.ROUTE, ""), started)
    finally:
        conn.close()


async def _abandon(channel: Channel, work: asyncio.Task[None], ids: dict[str, str]) -> None:
    """Stop waiting for a handler: cancel it, keep it from using the connection again, and let
    it unwind in the background (its error, if any, is logged then)."""
    channel.abandoned = True
    work.cancel()
    # A handler waiting for an AGI reply stops at once; let it, so that it no longer reads the
    # connection when the fallback does.
    await asyncio.wait((work,), timeout=CANCEL_GRACE_S)
    if not work.done():
        _STUCK.add(work)
        work.add_done_callback(_STUCK.discard)
        work.add_done_callback(lambda t: _log_late(t, ids))


def _log_late(task: asyncio.Task[None], ids: dict[str, str]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("abandoned agi handler ended with an error",
                    extra={**ids, "error": repr(exc)})


def _result(channel: Channel, outcome: str, reason: str, started: float) -> SessionResult:
    return SessionResult(
        outcome, reason, channel.script, channel.uniqueid, time.monotonic() - started
    )


async def _fallback(channel: Channel, reason: str, started: float) -> SessionResult:
    """Tell the dialplan to take the call to a human. If even that fails, closing the connection
    leaves VAIHDE_ROUTE unset, which the dialplan also treats as "to the operator"."""
    # The session's own word, even over a handler it has abandoned (which stays shut out).
    abandoned, channel.abandoned = channel.abandoned, False
    try:
        async with asyncio.timeout(FALLBACK_TIMEOUT_S):
            await channel.set_variable(contract.REASON, reason)
            await channel.set_variable(contract.ROUTE, contract.Route.FALLBACK)
    except AgiHangup:
        return _result(channel, "hangup", "caller hung up", started)
    except (TimeoutError, AgiError, OSError) as exc:
        log.warning(
            "could not send fallback route; dialplan falls back by itself",
            extra={"uniqueid": channel.uniqueid, "error": repr(exc)},
        )
    finally:
        channel.abandoned = abandoned
    return _result(channel, "fallback", reason, started)
