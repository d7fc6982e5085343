"""`kimibot run` entry point for Discord: connect, answer until cancelled, close cleanly."""

from __future__ import annotations

import logging

import discord

from adapters.discord.client import INTENT_MISSING, KimiDiscordClient, discord_endpoints
from bot.app import Services
from bot.config import ConfigError

log = logging.getLogger(__name__)


class DiscordSetupError(ConfigError):
    """Discord refused the bot's setup (token, intents): one line that says what to change, then stop."""


async def serve(services: Services, **client_options: object) -> None:
    """Runs the Discord bot until cancelled. `client_options` are for tests (e.g. a short guild_ready_timeout)."""
    config = services.config.discord
    if config.token is None or not config.token.get_secret_value():
        raise ConfigError("discord.token: not set; export DISCORD_TOKEN=<the bot token from the developer portal>")
    with discord_endpoints(config.api_url, config.gateway_url):
        client = KimiDiscordClient(services, **client_options)  # type: ignore[arg-type]
        async with client:
            try:
                await client.start(config.token.get_secret_value())
            except discord.PrivilegedIntentsRequired:
                log.error("message content intent not enabled", extra={"close_code": 4014})
                raise DiscordSetupError(INTENT_MISSING) from None
            except discord.LoginFailure:
                raise DiscordSetupError(
                    "discord.token: Discord rejected the bot token (401); copy it again from the developer "
                    "portal, Bot → Reset Token") from None
