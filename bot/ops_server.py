"""The operator's endpoint, in every mode (Socket Mode, HTTP, Discord only): /healthz, /readyz and /metrics on
`[ops] host:port`."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.config import ConfigError, OpsConfig
from bot.health import Health
from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


def ops_app(health: Health, metrics: Metrics) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": health.alive, "draining": not health.alive},
                                 status=200 if health.alive else 503)

    async def readyz(request: web.Request) -> web.Response:
        state = await health.readiness()
        return web.json_response(state, status=200 if state["ready"] else 503)

    async def prometheus(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", prometheus)])
    return app


async def start_ops_server(config: OpsConfig, health: Health, metrics: Metrics) -> web.AppRunner | None:
    """Listening on the configured port (None when `port = 0`); the caller cleans the runner up."""
    if config.port == 0:
        return None
    runner = web.AppRunner(ops_app(health, metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as error:
        await runner.cleanup()
        raise ConfigError(f"ops.port: cannot listen on {config.host}:{config.port}: {error.strerror}") from None
    log.info("ops endpoint listening", extra={"host": config.host, "port": config.port})
    return runner
