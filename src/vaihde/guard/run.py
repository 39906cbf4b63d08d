"""The guard's I/O: AMI events into an AgiWatch, rescues (Setvar + Redirect) out.

Run as `python -m vaihde.guard` (a child of `vaihde serve`, or its own systemd unit). It imports
only the AMI client so that it starts in a fraction of a second and shares nothing with the
service it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable

from vaihde import contract
from vaihde.ami.client import AmiActionError, AmiClient, AmiError, AmiMessage
from vaihde.guard.watch import AgiWatch, Stalled

log = logging.getLogger("vaihde.guard")

# The service's own silence guard gives up after 2 s and sends the call to the operator itself;
# the guard acts only when the service cannot, and still within the 3 s we promise callers.
DEFAULT_STALL_S = 2.5


class Guard:
    def __init__(
        self, ami: AmiClient, *, stall_s: float = DEFAULT_STALL_S,
        contexts: Iterable[str] = contract.AGI_CONTEXTS, agi_url: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.ami = ami
        self.watch = AgiWatch(stall_s, contexts, agi_url)
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._wake: asyncio.Event | None = None
        self._rescues: set[asyncio.Task[None]] = set()
        ami.add_event_listener(self._on_event)
        ami.add_on_connected(self._resync)

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def _on_event(self, event: AmiMessage) -> None:
        if self.watch.event(event, self._now()) and self._wake is not None:
            self._wake.set()  # a new wait began: the next deadline may be earlier

    async def _resync(self, client: AmiClient) -> None:
        reply = await client.action({"Action": "CoreShowChannels"})
        self.watch.resync(e for e in reply.events if e.get("Event") == "CoreShowChannel")
        log.info("guard following AGI sessions", extra={"sessions": len(self.watch)})

    async def run(self) -> None:
        """Check for stalled sessions until cancelled."""
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        while True:
            due = self.watch.next_due()
            timeout = None if due is None else max(0.0, due - self._now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            for stalled in self.watch.due(self._now()):
                task = loop.create_task(self._rescue(stalled), name="vaihde-guard-rescue")
                self._rescues.add(task)
                task.add_done_callback(self._rescues.discard)

    async def _rescue(self, stalled: Stalled) -> None:
        ids = {"uniqueid": stalled.uniqueid, "channel": stalled.channel,
               "context": stalled.context, "waited_s": round(stalled.waited_s, 2)}
        try:
            await self.ami.action({
                "Action": "Setvar", "Channel": stalled.channel,
                "Variable": contract.RESCUE, "Value": contract.RESCUE_STALLED,
            })
            await self.ami.action({
                "Action": "Redirect", "Channel": stalled.channel, "Context": stalled.context,
                "Exten": contract.RESCUE_EXTEN, "Priority": "1",
            })
        except AmiActionError as exc:
            # Most often the caller hung up in the meantime; Hangup will forget the session.
            self.counts["failed"] += 1
            log.info("guard could not move a stalled call", extra={**ids, "error": str(exc)})
            return
        except AmiError as exc:
            self.counts["retried"] += 1
            self.watch.rescue_failed(stalled.uniqueid, self._now())
            log.warning("guard lost AMI while moving a stalled call; retrying",
                        extra={**ids, "error": repr(exc)})
            return
        self.counts["rescued"] += 1
        log.warning("caller taken out of a stalled AGI session", extra=ids)

    async def close(self) -> None:
        for task in list(self._rescues):
            task.cancel()
        await asyncio.gather(*self._rescues, return_exceptions=True)
