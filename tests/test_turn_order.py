"""Two quick messages in one conversation are answered in the order they were sent, on SQLite and PostgreSQL.

The order used to come from whichever dedupe-claim round trip finished first (reversed about 3 times in 20 on
PostgreSQL); now each message takes its queue place before its first await.
"""

from __future__ import annotations

from storage.store import Store
from tests.discord_support import make_services, running_bot, texts, turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.kimi import FakeKimi
from tests.fixtures.slack_bot import SlackBot

PAIRS = 50


async def test_fifty_pairs_of_quick_discord_dms_keep_their_order(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                  store: Store) -> None:
    fake = discord_fake
    # A fast DM message bucket (5 writes per 0.1 s, the fake's and the bot's alike): 100 answers take seconds.
    services = make_services(fake, kimi, store, message_rate_window=0.1)
    fake.rate_limits.config.message_per = 0.1
    sent: list[str] = []
    async with running_bot(services, fake) as client:
        for i in range(PAIRS):
            for text in (f"first {i}", f"second {i}"):
                sent.append(text)
                await fake.dispatch_message(fake.dm_channel_id, text)
            await turns(client, len(sent))
    assert texts(fake.bot_messages(fake.dm_channel_id)) == [f"Echo: {text}" for text in sent]


async def test_fifty_pairs_of_quick_slack_dms_keep_their_order(bot: SlackBot) -> None:
    fake = bot.fake
    # One conversation: a DM thread (each top-level DM starts a conversation of its own).
    parent = fake.seed_thread(fake.dm_alice, [(fake.alice, "let's talk")])[0].ts
    sent: list[str] = []
    for i in range(PAIRS):
        for text in (f"first {i}", f"second {i}"):
            sent.append(text)
            event = fake.payloads.message(fake.dm_alice, fake.alice, text, thread_ts=parent)
            await fake.send_event(bot.url, event)
        await bot.settle(len(sent))
    replies = [m.text for m in bot.bot_replies(fake.dm_alice, parent)]
    assert replies == [f"Echo: {text}" for text in sent]
