"""`kimibot run` entry point for Slack: Socket Mode or HTTP, per `[slack] mode`."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import SlackAdapter
from adapters.slack.errors import error_code
from adapters.slack.events import PLATFORM
from adapters.slack.limits import SlackLimits
from bot.app import Services
from bot.config import ConfigError

log = logging.getLogger(__name__)


def check_config(services: Services) -> None:
    cfg = services.config.slack
    if cfg.oauth.enabled:
        if cfg.oauth.client_secret is None:
            raise ConfigError("slack.oauth.client_secret: installs through OAuth need it; "
                              "export SLACK_CLIENT_SECRET=...")
    elif cfg.bot_token is None:
        raise ConfigError("slack.bot_token: not set; export SLACK_BOT_TOKEN=xoxb-... "
                          "(or set [slack.oauth] client_id to install in workspaces through OAuth)")
    if cfg.mode == "http" and cfg.signing_secret is None:
        raise ConfigError("slack.signing_secret: HTTP mode needs it; export SLACK_SIGNING_SECRET=...")
    if cfg.mode == "socket" and cfg.app_token is None:
        raise ConfigError("slack.app_token: Socket Mode needs it; export SLACK_APP_TOKEN=xapp-... "
                          "(or set [slack] mode = \"http\")")


async def preflight(adapter: SlackAdapter) -> None:
    """Fail at start, naming the key, when Slack refuses a token: slack_sdk would otherwise retry a refused
    Socket Mode connection forever, and a bad bot token would only show up as failed answers."""
    cfg = adapter.config
    try:
        # With OAuth installs there is no token of its own to check; each install's is checked by Bolt.
        if adapter.installs is None:
            await adapter.clients.app_client.auth_test()
    except SlackApiError as error:
        raise ConfigError(f"slack.bot_token: Slack refused it ({error_code(error)}); "
                          "check SLACK_BOT_TOKEN (xoxb-...)") from None
    except aiohttp.ClientError as error:
        raise ConfigError(f"slack.api_url: cannot reach Slack at {cfg.api_url} ({type(error).__name__})") from None
    if cfg.mode != "socket" or cfg.app_token is None:
        return
    try:
        await AsyncWebClient(base_url=cfg.api_url).apps_connections_open(
            app_token=cfg.app_token.get_secret_value())
    except SlackApiError as error:
        raise ConfigError(f"slack.app_token: Slack refused it ({error_code(error)}); check "
                          "SLACK_APP_TOKEN (xapp-..., with the connections:write scope)") from None


async def serve(services: Services, stopping: asyncio.Event, *, limits: SlackLimits | None = None) -> None:
    """Run the Slack adapter until `stopping` is set, then drain: stop taking events where Slack allows it,
    let the engine finish or hand over the answers in flight, and close."""
    check_config(services)
    adapter = SlackAdapter(services, limits=limits)
    cfg = services.config.slack
    try:
        await preflight(adapter)
        services.engine.register_resumer(PLATFORM, adapter.resumer)
        services.health.platform(PLATFORM, lambda: adapter.connected and not adapter.draining)
        if cfg.mode == "http":
            await _serve_http(adapter, stopping)
        else:
            await _serve_socket(adapter, stopping)
    finally:
        services.health.forget(PLATFORM)
        services.engine.unregister_resumer(PLATFORM, adapter.resumer)
        await adapter.aclose()


async def _serve_http(adapter: SlackAdapter, stopping: asyncio.Event) -> None:
    cfg = adapter.config
    runner = web.AppRunner(adapter.web_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
        adapter.connected = True
        log.info("slack listening", extra={"mode": "http", "host": cfg.http_host, "port": cfg.http_port})
        await stopping.wait()
        # /healthz now answers 503 so the load balancer sends elsewhere; events that still arrive are stored
        # as turns for the other replicas (or the next process) to answer.
        adapter.draining = True
        await adapter.services.engine.drain(adapter.services.config.turns.shutdown_grace_seconds)
    finally:
        await runner.cleanup()


async def _serve_socket(adapter: SlackAdapter, stopping: asyncio.Event) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = adapter.config.app_token
    assert app_token is not None
    handler = AsyncSocketModeHandler(adapter.app, app_token.get_secret_value())
    pages = await _serve_install_pages(adapter)
    # The handler owns a client session and a queue task from construction on, and connect_async retries
    # a refused token forever, so a cancel during connect must close it too.
    closed = False
    try:
        await handler.connect_async()
        adapter.connected = True
        log.info("slack connected", extra={"mode": "socket"})
        await stopping.wait()
        # Closing the socket first makes Slack send new events to the app's other connections.
        adapter.draining = True
        closed = True
        await handler.close_async()
        await adapter.services.engine.drain(adapter.services.config.turns.shutdown_grace_seconds)
    finally:
        if not closed:
            await handler.close_async()
        if pages is not None:
            await pages.cleanup()


async def _serve_install_pages(adapter: SlackAdapter) -> web.AppRunner | None:
    """Socket Mode needs no HTTP listener for events, but a browser still visits the OAuth install pages."""
    routes = adapter.install_routes()
    if not routes:
        return None
    application = web.Application()
    application.add_routes(routes)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    cfg = adapter.config
    await web.TCPSite(runner, cfg.http_host, cfg.http_port).start()
    log.info("slack install pages listening", extra={"host": cfg.http_host, "port": cfg.http_port})
    return runner
