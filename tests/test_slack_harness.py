"""The Slack adapter in HTTP mode against the fake Slack, the fake Kimi and a real store (+ transport tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.slack.app import SlackAdapter
from adapters.slack.limits import SlackLimits
from bot.app import Services
from bot.engine import Engine
from bot.kimi import KimiClient
from bot.tools.registry import ToolRegistry
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack, Message
from tests.fixtures.engine import make_config

# Tests run Slack's real tiers twenty times faster, and the scheduler plans with the same numbers.
TIME_SCALE = 20.0


@dataclass
class SlackBot:
    fake: FakeSlack
    kimi: FakeKimi
    store: Store
    adapter: SlackAdapter
    url: str
    runner: web.AppRunner
    client: KimiClient

    async def settle(self, deliveries: int, limit: float = 10.0) -> None:
        """Wait until the adapter has seen `deliveries` listener calls and every answer has finished."""
        async with asyncio.timeout(limit):
            # Bolt runs listeners in tasks of its own after the HTTP ack; a counter is all there is to watch.
            while self.adapter.deliveries < deliveries:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            await self.adapter.idle()
            await self.fake.drain()

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        return self.fake.messages_in_thread(channel, thread_ts)

    def bot_replies(self, channel: str, thread_ts: str) -> list[Message]:
        return [m for m in self.thread(channel, thread_ts) if m.bot_id == self.fake.bot_id and m.ts != thread_ts]

    async def close(self) -> None:
        await self.adapter.aclose(grace=2)
        await self.runner.cleanup()
        await self.adapter.services.engine.shutdown()
        await self.client.aclose()


async def start_bot(fake: FakeSlack, kimi: FakeKimi, store: Store, *, time_scale: float = TIME_SCALE,
                    **slack: Any) -> SlackBot:
    settings = {"bot_token": fake.bot_token, "signing_secret": "fake-signing-secret", "api_url": fake.base_url,
                "mode": "http", **slack}
    config = make_config(kimi, slack=settings)
    client = KimiClient(api_key="sk-test", base_url=kimi.base_url, timeout=10, max_retries=0)
    tools = ToolRegistry.from_specs([])
    engine = Engine(config=config, store=store, kimi=client, tools=tools)
    services = Services(config=config, store=store, kimi=client, tools=tools, engine=engine)
    adapter = SlackAdapter(services, limits=SlackLimits(time_scale=time_scale))
    runner = web.AppRunner(adapter.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    return SlackBot(fake, kimi, store, adapter, url, runner, client)


@pytest.fixture
async def fast_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(time_scale=TIME_SCALE) as fake:
        yield fake


@pytest.fixture
async def bot(fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> AsyncIterator[SlackBot]:
    harness = await start_bot(fast_slack, kimi, store)
    yield harness
    await harness.close()


# --- transport -------------------------------------------------------------------------------------------


async def test_healthz_and_url_verification(bot: SlackBot) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(bot.url.replace("/slack/events", "/healthz")) as response:
            assert response.status == 200 and (await response.json())["ok"] is True
    status, body, _ = await bot.fake.send_url_verification(bot.url)
    assert status == 200 and "challenge" in body


async def test_forged_or_stale_signature_is_rejected(bot: SlackBot) -> None:
    fake = bot.fake
    forged = await fake.send_event(bot.url, fake.payloads.app_mention(fake.general, fake.alice, "hi"),
                                   bad_signature=True)
    stale = await fake.send_event(bot.url, fake.payloads.app_mention(fake.general, fake.alice, "hi"),
                                  stale_timestamp=True)
    command = await fake.send_slash_command(bot.url, "/kimi", "hello", bad_signature=True)
    assert [forged.status, stale.status, command.status] == [401, 401, 401]
    assert bot.adapter.deliveries == 0
    assert not fake.bot_messages() and bot.kimi.requests == []
