"""Two processes writing answers into one Discord channel, as in a rolling deploy: the old process finishes its
answers off the gateway while the new one, on the same shard, answers the questions that keep coming. With
Redis they share the channel's bucket and draw no 429; each pacing on its own, as a control, they overrun it.

(Two different shards never write to one channel: a guild and its channels live on one shard. The bot-wide
limit of 50 requests per second is shared by every shard, and is kept in Redis too.)"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import SecretStr

from adapters.discord.catch_up import LATE_NOTE
from bot.budget import LocalBudgets
from bot.budget_source import BudgetSource, budget_source
from bot.config import RedisConfig
from storage.store import Store
from tests.discord_support import make_services, running_bot, turns
from tests.fakes.discord import FakeDiscord, StoredMessage
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fixtures.discord import discord_fake
from tests.fixtures.redis import RedisServer

__all__ = ["discord_fake"]
EACH = 5


async def overlap(fake: FakeDiscord, kimi: FakeKimi, stores: tuple[Store, Store],
                  sources: tuple[BudgetSource, BudgetSource]) -> tuple[int, int]:
    """Ten answers in one channel, five from each process; returns (429s drawn, answers complete)."""
    kimi.tokens_per_second = 400
    old = make_services(fake, kimi, stores[0], budgets=sources[0], reply_in="channel")
    new = make_services(fake, kimi, stores[1], budgets=sources[1], reply_in="channel")
    lengths = [600 + 40 * i for i in range(2 * EACH)]
    questions = []
    async with running_bot(old, fake) as first:
        questions += [await fake.dispatch_message(content=f"{fake.bot_user.mention} q{i} [[len={lengths[i]}]]")
                      for i in range(EACH)]
        # The new process's catch-up waits a moment, as in production: the old one has claimed its questions by
        # then, so none of them is answered a second time, or late with the offline note.
        async with running_bot(new, fake, catch_up_settle=0.5) as second:
            await first.stop_intake()  # the old process is off the gateway; its answers go on
            questions += [await fake.dispatch_message(content=f"{fake.bot_user.mention} q{i} [[len={lengths[i]}]]")
                          for i in range(EACH, 2 * EACH)]
            await asyncio.gather(turns(first, EACH), turns(second, EACH))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    while complete(fake, questions, lengths) < 2 * EACH:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
    return fake.rate_limited_count, complete(fake, questions, lengths)


def complete(fake: FakeDiscord, questions: list[StoredMessage], lengths: list[int]) -> int:
    """Answers whose text is whole (a turn counts as handled once its question is taken, not when it ends)."""
    answers = {int(str(m.reference["message_id"])): m.text for m in fake.bot_messages(fake.channel_id) if m.reference}
    assert not any(LATE_NOTE in text for text in answers.values())
    return sum(answers.get(q.id) == long_text(n) for q, n in zip(questions, lengths, strict=True))


async def test_two_processes_sharing_redis_draw_no_429_in_one_channel(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store, second_store: Store,
        redis_server: RedisServer) -> None:
    config = RedisConfig(url=SecretStr(redis_server.url), key_prefix=redis_server.prefix)
    old, new = (budget_source(config, member=f"process-{i}", metrics=None) for i in range(2))
    for source in (old, new):
        source.start()
    try:
        limited, complete = await overlap(discord_fake, kimi, (store, second_store), (old, new))
    finally:
        await old.aclose()
        await new.aclose()
    assert limited == 0, [c.route_key for c in discord_fake.calls if c.status == 429]
    assert complete == 2 * EACH


async def test_two_processes_each_on_their_own_overrun_the_channel(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store, second_store: Store) -> None:
    """The control: what [redis] exists to prevent (discord.py waits out each 429, so answers still complete)."""
    limited, complete = await overlap(discord_fake, kimi, (store, second_store),
                                      (BudgetSource(LocalBudgets()), BudgetSource(LocalBudgets())))
    assert limited > 0
    assert complete == 2 * EACH
