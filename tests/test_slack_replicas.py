"""Three replicas of the Slack adapter behind one workspace, events spread across them: with Redis they share
Slack's limits (no 429, every answer whole); each on its own, as a control, they overrun them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.budget import LocalBudgets
from bot.budget_source import BudgetSource, budget_source
from bot.config import RedisConfig
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fakes.slack import FakeSlack
from tests.fixtures.redis import RedisServer
from tests.fixtures.slack_bot import TIME_SCALE, SlackBot, start_bot

REPLICAS = 3


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(time_scale=TIME_SCALE) as slack:
        yield slack


async def burst(fake: FakeSlack, kimi: FakeKimi, store: Store, sources: list[BudgetSource]) -> tuple[int, int]:
    """30 questions at once in one workspace, 12 of them in one channel, spread over the replicas; returns
    (429s drawn, answers complete)."""
    kimi.tokens_per_second = 600
    bots: list[SlackBot] = [await start_bot(fake, kimi, store, budgets=source) for source in sources]
    channels = [fake.general, fake.general] + [fake.add_channel(f"team-{i}").id for i in range(3)]
    try:
        sends = [fake.send_mention(bots[i % REPLICAS].url, channels[i % 5], fake.alice, f"q{i} [[len={700 + i}]]")
                 for i in range(30)]
        sent = await asyncio.gather(*sends)
        for bot in bots:
            await bot.settle(20, limit=60)
        complete = 0
        for i, deliveries in enumerate(sent):
            event = deliveries[0].payload["event"]
            replies = bots[0].bot_replies(event["channel"], event["ts"])
            complete += "".join(r.text for r in replies) == long_text(700 + i)
        return fake.rate_limited_count, complete
    finally:
        for bot in bots:
            await bot.close()


async def test_replicas_sharing_redis_draw_no_429(fake: FakeSlack, kimi: FakeKimi, store: Store,
                                                  redis_server: RedisServer) -> None:
    config = RedisConfig(url=SecretStr(redis_server.url), key_prefix=redis_server.prefix)
    sources = [budget_source(config, member=f"replica-{i}", metrics=None) for i in range(REPLICAS)]
    for source in sources:
        source.start()  # announce the replica, exchange commitments
    limited, complete = await burst(fake, kimi, store, sources)
    assert limited == 0, [(c.method, round(c.at, 3)) for c in fake.calls if c.status == 429]
    assert complete == 30


async def test_replicas_each_on_their_own_overrun_the_workspace(fake: FakeSlack, kimi: FakeKimi,
                                                                store: Store) -> None:
    """The control: what [redis] exists to prevent (a 429 still ends in a complete answer)."""
    limited, complete = await burst(fake, kimi, store, [BudgetSource(LocalBudgets()) for _ in range(REPLICAS)])
    assert limited > 0
    assert complete == 30
