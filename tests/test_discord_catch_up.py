"""Mentions and follow-ups sent while the bot was offline longer than a gateway resume are answered once on the
next session, late and saying so; what was already answered is not answered again."""

from __future__ import annotations

import logging

import pytest

from adapters.discord.catch_up import LATE_NOTE
from storage.store import Store
from tests.discord_support import make_services, running_bot, turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.kimi import FakeKimi
from tests.fixtures.discord import discord_fake

__all__ = ["discord_fake"]
WAIT = 10.0


async def test_what_was_missed_is_answered_once_and_late(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                         store: Store) -> None:
    fake = discord_fake
    mention = fake.bot_user.mention
    async with running_bot(make_services(fake, kimi, store), fake) as client:
        await fake.dispatch_message(content=f"{mention} first question")
        await turns(client, 1)
    [thread] = fake.threads_created
    # Offline: nothing reaches the bot.
    await fake.post_unseen(thread.thread_id, "and a follow-up in the thread")
    missed = await fake.post_unseen(fake.channel_id, f"{mention} a question while you were away")
    await fake.post_unseen(fake.channel_id, "chatter that mentions nobody")
    async with running_bot(make_services(fake, kimi, store), fake):
        await fake.wait_for(lambda: len(kimi.requests) == 3 and len(fake.threads_created) == 2
                            and len(fake.bot_messages(thread.thread_id)) == 2
                            and bool(fake.bot_messages(fake.threads_created[1].thread_id)), WAIT)
        await fake.wait_for(lambda: all(LATE_NOTE in m.text for m in [fake.bot_messages(thread.thread_id)[-1],
                                                                      *fake.bot_messages(missed.id)]), WAIT)
    assert fake.threads_created[1].starter_message_id == missed.id
    late_in_thread = fake.bot_messages(thread.thread_id)[-1]
    assert late_in_thread.text.startswith("Echo: and a follow-up in the thread") and LATE_NOTE in late_in_thread.text
    asked = [str(r["messages"][-1]["content"]) for r in kimi.requests]
    # Each answered once; the two missed ones side by side (they are different conversations).
    assert asked[0] == "first question"
    assert sorted(asked[1:]) == ["a question while you were away", "and a follow-up in the thread"]


async def test_catch_up_stops_at_its_limit_and_says_so_in_the_log(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                  store: Store,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake = discord_fake
    mention = fake.bot_user.mention
    async with running_bot(make_services(fake, kimi, store), fake) as client:
        await fake.dispatch_message(content=f"{mention} hello")
        await turns(client, 1)
    for i in range(3):
        await fake.post_unseen(fake.channel_id, f"{mention} missed {i}")
    caplog.set_level(logging.WARNING, logger="adapters.discord.catch_up")
    async with running_bot(make_services(fake, kimi, store, catch_up_max=1), fake) as client:
        await fake.wait_for(lambda: len(kimi.requests) == 2, WAIT)
        await client.catch_up.idle()
    assert "missed 0" in str(kimi.requests[-1]["messages"][-1])  # oldest first
    assert "catch-up stopped at its limit" in caplog.text and len(kimi.requests) == 2
