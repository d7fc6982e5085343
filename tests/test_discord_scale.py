"""Load-shaped behaviour: many answers sharing one channel's bucket, long answers split, shards across processes."""

from __future__ import annotations

import asyncio

import pytest

from adapters.discord.http_metrics import route_template
from storage.store import Store
from tests.discord_support import make_services, running_bot, texts, turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import shard_for_guild
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fixtures.discord import discord_fake
from tests.surface_fake import fences_balanced, unsplit

__all__ = ["discord_fake"]


async def test_ten_concurrent_answers_in_one_channel_without_a_429(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                    store: Store) -> None:
    fake = discord_fake
    kimi.tokens_per_second = 600
    services = make_services(fake, kimi, store, reply_in="channel")
    async with running_bot(services, fake) as client:
        questions = await asyncio.gather(*(
            fake.dispatch_message(content=f"{fake.bot_user.mention} q{i} [[len={300 + 40 * i}]]") for i in range(10)))
        await turns(client, 10)
    assert fake.rate_limited_count == 0
    answers = {int(str(m.reference["message_id"])): m for m in fake.bot_messages(fake.channel_id) if m.reference}
    assert len(answers) == 10
    for i, question in enumerate(questions):
        assert answers[question.id].text == long_text(300 + 40 * i)
    writes = [c for c in fake.calls if c.major == str(fake.channel_id) and c.route_key.startswith(("POST", "PATCH"))
              and "/messages" in c.route_key]
    assert all(c.status == 200 for c in writes)


async def test_five_thousand_characters_with_code_blocks_are_split_cleanly(discord_fake: FakeDiscord,
                                                                           kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    kimi.tokens_per_second = 3000
    async with running_bot(make_services(fake, kimi, store), fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} [[len=5000]]")
        await turns(client, 1)
    parts = texts(fake.bot_messages(fake.threads_created[0].thread_id))
    expected = long_text(5000)
    assert "```python" in expected and len(parts) == 3
    assert all(0 < len(p) <= 2000 and fences_balanced(p) for p in parts)
    assert unsplit(parts) == expected
    # Cuts fall between blocks, not inside one: every message holds only whole code blocks.
    assert all(p.count("```python") * 2 == p.count("```") for p in parts)


async def test_two_processes_split_the_shards_and_share_one_store(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                  store: Store, second_store: Store) -> None:
    fake = discord_fake
    home_shard = shard_for_guild(fake.guild_id, 2)
    other = fake.add_guild("Second Guild", shard=(1 - home_shard, 2))
    other_channel = other.channel_ids[0]
    first = make_services(fake, kimi, store, shard_ids=[0], shard_count=2)
    second = make_services(fake, kimi, second_store, shard_ids=[1], shard_count=2)
    async with running_bot(first, fake) as zero, running_bot(second, fake) as one:
        by_shard = {0: zero, 1: one}
        await fake.dispatch_message(content=f"{fake.bot_user.mention} home guild")
        await fake.dispatch_message(other_channel, f"{fake.bot_user.mention} second guild")
        await fake.dispatch_message(fake.dm_channel_id, "a DM")
        await turns(by_shard[home_shard], 2 if home_shard == 0 else 1)
        await turns(by_shard[1 - home_shard], 2 if home_shard == 1 else 1)
        assert {zero.shard_count, one.shard_count} == {2}
    assert [d["shard"] for d in fake.gateway.identify_payloads] == [[0, 2], [1, 2]]
    assert sorted(len(fake.bot_messages(t.thread_id)) for t in fake.threads_created) == [1, 1]
    assert texts(fake.bot_messages(fake.dm_channel_id)) == ["Echo: a DM"]
    assert len(kimi.requests) == 3
    # Each process wrote to the one database: either sees the other's conversations.
    thread_in_other = next(t for t in fake.threads_created if t.parent_id == other_channel)
    answer = fake.bot_messages(thread_in_other.thread_id)[0]
    assert await first.store.conversation_for_platform_message("discord", str(answer.id)) is not None


async def test_writes_and_the_429s_discord_py_absorbs_are_counted_by_route(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                          store: Store) -> None:
    """discord.py sleeps through a 429 and retries on its own: the answer is whole, and /metrics still shows it."""
    fake = discord_fake
    services = make_services(fake, kimi, store, reply_in="channel")
    fake.fail_next("POST /channels/{channel_id}/messages", 429, retry_after=0.05)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} [[len=200]]")
        await turns(client, 1)
    assert texts(fake.bot_messages(fake.channel_id)) == [long_text(200)]
    metrics = services.engine.metrics.registry
    route = "POST /channels/{id}/messages"
    assert metrics.get_sample_value("kimibot_platform_rate_limited_total",
                                    {"platform": "discord", "method": route}) == 1
    posts = [c for c in fake.calls if c.route_key == "POST /channels/{channel_id}/messages"]
    assert metrics.get_sample_value("kimibot_platform_writes_total",
                                    {"platform": "discord", "method": route}) == len(posts) >= 2
    exposition = services.engine.metrics.exposition().decode()
    assert str(fake.channel_id) not in exposition and fake.token not in exposition  # ids and tokens stay out


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("PATCH", "/api/v10/channels/1234567890123/messages/987654321098765", "PATCH /channels/{id}/messages/{id}"),
    ("POST", "/api/v10/interactions/1234567890123/aW50ZXJhY3Rpb246dG9rZW4/callback",
     "POST /interactions/{id}/{token}/callback"),
    ("PATCH", "/api/v10/webhooks/1234567890123/aW50ZXJhY3Rpb246dG9rZW4/messages/@original",
     "PATCH /webhooks/{id}/{token}/messages/@original"),
    ("POST", "/api/v10/channels/1234567890123/typing", "POST /channels/{id}/typing"),
])
def test_routes_are_counted_by_template_without_ids_or_tokens(method: str, path: str, expected: str) -> None:
    assert route_template(method, path) == expected
