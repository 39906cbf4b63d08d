"""HTTP health endpoint: is the FastAGI server listening, is AMI up, how many sessions run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from vaihde.service import Service

SERVICE_KEY: web.AppKey[Service] = web.AppKey("service")


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    status = service.status()
    # FastAGI is what callers depend on; AMI being down only degrades (calls still flow).
    code = 200 if status["fastagi"]["listening"] else 503
    return web.json_response(status, status=code)


def make_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SERVICE_KEY] = service
    app.router.add_get("/health", health)
    return app
