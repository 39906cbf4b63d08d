"""`vaihde serve` runs the guard as a child process (unless systemd runs it as a unit of its own):
started with the service, restarted if it exits, and ended by the kernel if the service dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from vaihde.guard.__main__ import GuardSettings
from vaihde.jobs import cancel_all
from vaihde.process import die_with_parent

log = logging.getLogger("vaihde.guard")

RESTART_DELAY_S = 1.0


class GuardChild:
    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def _spawn(self) -> asyncio.subprocess.Process:
        # systemd's notifications are the service's own (NotifyAccess=main): a child that
        # pinged the watchdog would keep a frozen service from being restarted.
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vaihde.guard", "--settings-stdin",
            stdin=asyncio.subprocess.PIPE, preexec_fn=die_with_parent, env=env,
        )
        assert process.stdin is not None
        process.stdin.write(self.settings.to_json().encode() + b"\n")
        await process.stdin.drain()
        process.stdin.close()
        self.starts += 1
        return process

    async def start(self) -> None:
        self.process = await self._spawn()
        self._task = asyncio.get_running_loop().create_task(self._supervise(),
                                                           name="vaihde-guard-child")
        log.info("guard started", extra={"pid": self.process.pid})

    async def _supervise(self) -> None:
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            log.error("guard exited; restarting it", extra={"exit_code": code})
            await asyncio.sleep(RESTART_DELAY_S)
            try:
                self.process = await self._spawn()
            except OSError as exc:
                log.error("guard could not be restarted", extra={"error": repr(exc)})

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await cancel_all([self._task])
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(3.0):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
