"""Shared setup for the Discord adapter tests: the real bot (discord.py, openai SDK, store) against the fakes.

Holds no tests itself; the test_discord_* modules import `make_services` and `running_bot` from here.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from PIL import Image

from adapters.discord.client import KimiDiscordClient, discord_endpoints
from bot.app import Services
from bot.budget import LocalBudgets
from bot.budget_source import BudgetSource
from bot.engine import Engine
from bot.kimi import KimiClient
from bot.tools.registry import ToolRegistry
from storage.store import Store
from tests.fakes.discord import FakeDiscord, StoredMessage
from tests.fakes.kimi import FakeKimi
from tests.fixtures.discord import running_client
from tests.fixtures.engine import DEFAULT_TOOLS, make_config

WAIT = 10.0
# Fast test windows: the fake's message bucket and the bot's pacing both use 5 writes per 0.5 s.
FAST_WINDOW = 0.5


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def make_services(fake: FakeDiscord, kimi: FakeKimi, store: Store, *, budgets: BudgetSource | None = None,
                  **discord: Any) -> Services:
    fake.rate_limits.config.message_per = FAST_WINDOW
    values: dict[str, Any] = {"token": fake.token, "api_url": fake.api_base, "gateway_url": fake.gateway_url,
                              "message_rate_limit": fake.rate_limits.config.message_limit,
                              "message_rate_window": FAST_WINDOW}
    values.update(discord)
    config = make_config(kimi, discord=values)
    client = KimiClient(api_key="sk-test", base_url=kimi.base_url, timeout=10, max_retries=0)
    tools = ToolRegistry.from_specs(DEFAULT_TOOLS)
    engine = Engine(config=config, store=store, kimi=client, tools=tools)
    return Services(config=config, store=store, kimi=client, tools=tools, engine=engine,
                    budgets=budgets or BudgetSource(LocalBudgets()))


@asynccontextmanager
async def running_bot(services: Services, fake: FakeDiscord, *,
                      catch_up_settle: float = 0.0) -> AsyncIterator[KimiDiscordClient]:
    """The product's client, pointed at the fake through its own config, ready; closed with its turns after."""
    config = services.config.discord
    with discord_endpoints(config.api_url, config.gateway_url):
        client = KimiDiscordClient(services, guild_ready_timeout=0.05, identify_delay=0,
                                   clock=fake.clock.utcnow, catch_up_settle=catch_up_settle)
        try:
            async with running_client(client, fake.token, within=WAIT):
                yield client
        finally:
            await services.engine.shutdown()
            await services.kimi.aclose()


async def turns(client: KimiDiscordClient, count: int) -> None:
    async with asyncio.timeout(WAIT):
        await client.wait_for_turns(count)


def texts(messages: list[StoredMessage]) -> list[str]:
    return [m.text for m in messages]
