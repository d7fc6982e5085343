"""`kimibot run` entry point for Discord: connect, answer until cancelled, close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord

from adapters.discord.client import INTENT_MISSING, KimiDiscordClient, discord_endpoints
from bot.app import Services
from bot.config import ConfigError

log = logging.getLogger(__name__)


class DiscordSetupError(ConfigError):
    """Discord refused the bot's setup (token, intents): one line that says what to change, then stop."""


async def serve(services: Services, stopping: asyncio.Event, **client_options: object) -> None:
    """Runs the Discord bot until `stopping` is set, then drains: off the gateway first (no new messages),
    answers in flight finished or handed over by the engine, then closed. `client_options` are for tests."""
    config = services.config.discord
    if config.token is None or not config.token.get_secret_value():
        raise ConfigError("discord.token: not set; export DISCORD_TOKEN=<the bot token from the developer portal>")
    with discord_endpoints(config.api_url, config.gateway_url):
        client = KimiDiscordClient(services, **client_options)  # type: ignore[arg-type]
        services.health.platform("discord", lambda: client.is_ready() and not client.is_closed())
        async with client:
            running = asyncio.create_task(_start(client, config.token.get_secret_value()), name="discord-start")
            stop = asyncio.create_task(stopping.wait(), name="discord-stopping")
            try:
                await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
                if running.done():
                    running.result()  # a failure raises here; the supervisor restarts the platform
                    return
                await client.stop_intake()
                await services.engine.drain(services.config.turns.shutdown_grace_seconds)
            finally:
                services.health.forget("discord")
                stop.cancel()
                await client.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await running


async def _start(client: KimiDiscordClient, token: str) -> None:
    try:
        await client.start(token)
    except discord.PrivilegedIntentsRequired:
        log.error("message content intent not enabled", extra={"close_code": 4014})
        raise DiscordSetupError(INTENT_MISSING) from None
    except discord.LoginFailure:
        raise DiscordSetupError(
            "discord.token: Discord rejected the bot token (401); copy it again from the developer "
            "portal, Bot → Reset Token") from None
