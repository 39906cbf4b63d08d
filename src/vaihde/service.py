"""The running service: FastAGI for call decisions, AMI for call state, HTTP for health.

Configuration is reloaded on SIGHUP: the new file is validated whole and swapped in for the next
caller; calls in progress keep the settings they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from vaihde import contract
from vaihde.agi.channel import Channel
from vaihde.agi.server import FastAgiServer
from vaihde.agi.session import Router
from vaihde.ami import AmiClient, CallTracker
from vaihde.config import settings as settings_mod
from vaihde.config.source import ConfigError
from vaihde.flows.inbound import inbound
from vaihde.http.health import make_app

log = logging.getLogger("vaihde.service")


def build_router(service: Service) -> Router:
    router = Router()

    async def inbound_handler(channel: Channel) -> None:
        # Read the settings once per call so a reload never changes a call half-way.
        await inbound(channel, service.settings.company)

    router.add(contract.SCRIPT_INBOUND, inbound_handler)
    return router


class Service:
    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        self.router = build_router(self)
        self.agi = FastAgiServer(self.router, settings.fastagi.host, settings.fastagi.port)
        ami = settings.ami
        self.ami = AmiClient(ami.host, ami.port, ami.username, ami.secret)
        self.tracker = CallTracker()
        self.tracker.attach(self.ami)
        self._http: web.AppRunner | None = None
        self.http_port = settings.http.port

    def status(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.agi.listening and self.ami.connected else "degraded",
            "fastagi": {
                "listening": self.agi.listening,
                "port": self.agi.port,
                "active_sessions": self.agi.active,
                "outcomes": dict(self.agi.outcomes),
            },
            "ami": {"connected": self.ami.connected, "last_error": self.ami.last_error},
            "channels": len(self.tracker.channels),
            "config": self.settings.source,
        }

    async def start(self) -> None:
        await self.agi.start()
        self.ami.start()
        self._http = web.AppRunner(make_app(self), access_log=None)
        await self._http.setup()
        site = web.TCPSite(self._http, self.settings.http.host, self.settings.http.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.http_port = server.sockets[0].getsockname()[1]
        log.info(
            "vaihde serving",
            extra={
                "fastagi": f"{self.agi.host}:{self.agi.port}",
                "http": f"{self.settings.http.host}:{self.http_port}",
                "ami": f"{self.settings.ami.host}:{self.settings.ami.port}",
            },
        )

    async def stop(self) -> None:
        await self.agi.stop()
        await self.ami.close()
        if self._http is not None:
            await self._http.cleanup()
            self._http = None

    def reload(self, path: str | Path | None = None) -> bool:
        source = path or self.settings.source
        try:
            new = settings_mod.load(source)
        except ConfigError as exc:
            log.error(
                "configuration not reloaded; the running one stays",
                extra={"problems": exc.problems},
            )
            return False
        self.settings = new
        log.info("configuration reloaded", extra={"config": str(source)})
        return True


async def serve(settings: settings_mod.Settings) -> None:
    service = Service(settings)
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    try:
        await stop.wait()
    finally:
        log.info("vaihde stopping")
        with contextlib.suppress(Exception):
            await service.stop()
