"""`kimibot run` entry point for Slack: Socket Mode or HTTP, per `[slack] mode`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from adapters.slack.app import SlackAdapter
from adapters.slack.limits import SlackLimits
from bot.app import Services
from bot.config import ConfigError

log = logging.getLogger(__name__)


def check_config(services: Services) -> None:
    cfg = services.config.slack
    if cfg.bot_token is None:
        raise ConfigError("slack.bot_token: not set; export SLACK_BOT_TOKEN=xoxb-...")
    if cfg.mode == "http" and cfg.signing_secret is None:
        raise ConfigError("slack.signing_secret: HTTP mode needs it; export SLACK_SIGNING_SECRET=...")
    if cfg.mode == "socket" and cfg.app_token is None:
        raise ConfigError("slack.app_token: Socket Mode needs it; export SLACK_APP_TOKEN=xapp-... "
                          "(or set [slack] mode = \"http\")")


async def serve(services: Services, *, limits: SlackLimits | None = None) -> None:
    """Run the Slack adapter until cancelled."""
    check_config(services)
    adapter = SlackAdapter(services, limits=limits)
    cfg = services.config.slack
    try:
        if cfg.mode == "http":
            await _serve_http(adapter)
        else:
            await _serve_socket(adapter)
    finally:
        await adapter.aclose()


async def _serve_http(adapter: SlackAdapter) -> None:
    cfg = adapter.config
    runner = web.AppRunner(adapter.web_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
        log.info("slack listening", extra={"mode": "http", "host": cfg.http_host, "port": cfg.http_port})
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _serve_socket(adapter: SlackAdapter) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = adapter.config.app_token
    assert app_token is not None
    handler = AsyncSocketModeHandler(adapter.app, app_token.get_secret_value())
    await handler.connect_async()
    log.info("slack connected", extra={"mode": "socket"})
    try:
        await asyncio.Event().wait()
    finally:
        await handler.close_async()
