"""The `kimibot run` entry point (serve), the missing-intent refusal, and the access rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from adapters.discord.runner import DiscordSetupError, serve
from bot.config import Config
from storage.store import Store
from tests.discord_support import WAIT, make_services, running_bot, texts, turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.kimi import FakeKimi
from tests.fixtures.discord import discord_fake

__all__ = ["discord_fake"]


class _ReadyLog(logging.Handler):
    """Sets an event when the client logs that it is ready (serve gives tests no handle on the client)."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "discord ready":
            self.ready.set()


async def test_serve_answers_until_stopping_then_returns(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                        store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    watcher = _ReadyLog()
    client_log = logging.getLogger("adapters.discord.client")
    client_log.addHandler(watcher)
    client_log.setLevel(logging.INFO)
    stopping = asyncio.Event()
    running = asyncio.create_task(serve(services, stopping, guild_ready_timeout=0.05, identify_delay=0))
    try:
        # Closing before READY settles would leave discord.py's ready-wait tasks behind.
        await asyncio.wait_for(watcher.ready.wait(), WAIT)
        await fake.dispatch_message(content=f"{fake.bot_user.mention} via serve")
        await fake.wait_for(lambda: bool(fake.threads_created)
                            and texts(fake.bot_messages(fake.threads_created[0].thread_id)) == ["Echo: via serve"],
                            WAIT)
        stopping.set()
        await asyncio.wait_for(running, WAIT)  # drains and returns by itself
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await services.engine.shutdown()
        await services.kimi.aclose()
        client_log.removeHandler(watcher)
    # Without sharding settings the shard count comes from /gateway/bot; the gateway is the configured one.
    assert fake.calls_to("GET /gateway/bot") and fake.sessions[0].identify["shard"] == [0, 1]
    assert [c["name"] for c in fake.global_commands] == ["kimi", "Ask Kimi"]


async def test_missing_message_content_intent_stops_with_one_clear_line(discord_fake: FakeDiscord,
                                                                        kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    fake.gateway.config.privileged_intents = 0  # not enabled in the developer portal
    services = make_services(fake, kimi, store)
    try:
        with pytest.raises(DiscordSetupError) as refused:
            await asyncio.wait_for(serve(services, asyncio.Event(), guild_ready_timeout=0.05, identify_delay=0),
                                   WAIT)
    finally:
        await services.kimi.aclose()
    line = str(refused.value)
    assert "\n" not in line and "4014" in line
    assert "MESSAGE CONTENT INTENT" in line and "https://discord.com/developers/applications" in line
    assert fake.gateway.close_codes == [4014]


async def test_missing_token_is_a_config_error(kimi: FakeKimi, store: Store) -> None:
    config = Config.model_validate({"kimi": {"api_key": "sk-test", "base_url": kimi.base_url}})
    from bot.app import Services

    services = Services(config=config, store=store, kimi=None, tools=None, engine=None)  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"discord\.token: not set"):
        await serve(services, asyncio.Event())


async def test_channel_allow_list_counts_thread_parents_and_refuses_elsewhere(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    allowed = fake.add_text_channel("kimi")
    services = make_services(fake, kimi, store, access={"allow_channels": [str(allowed.id)]})
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} in general")
        await fake.dispatch_message(allowed.id, f"{fake.bot_user.mention} in the allowed channel")
        await turns(client, 2)
        thread = next(t for t in fake.threads_created if t.parent_id == allowed.id)
        await fake.dispatch_message(thread.thread_id, "follow-up inside its thread")
        await turns(client, 3)
    # Refused in #general: said as a reply there, and no thread opened just to say no.
    assert texts(fake.bot_messages(fake.channel_id)) == ["This bot is not enabled in this channel."]
    assert [t.parent_id for t in fake.threads_created] == [allowed.id]
    assert texts(fake.bot_messages(thread.thread_id)) == ["Echo: in the allowed channel",
                                                          "Echo: follow-up inside its thread"]


async def test_role_allow_list_and_dms_off(discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    role = fake.world.add_role(fake.guild_id, "kimi-users")
    member = fake.add_user("carol")
    fake.world.guilds[fake.guild_id].members[member.id].roles.append(role.id)
    services = make_services(fake, kimi, store, access={"allow_roles": [str(role.id)], "allow_dms": False})
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} no role here")
        await fake.dispatch_message(content=f"{fake.bot_user.mention} I have the role", author=member)
        await fake.dispatch_message(fake.dm_channel_id, "hi in a DM")
        await turns(client, 3)
    assert texts(fake.bot_messages(fake.channel_id)) == ["You are not on this bot's list of allowed users."]
    [thread] = fake.threads_created
    assert texts(fake.bot_messages(thread.thread_id)) == ["Echo: I have the role"]
    assert "Direct messages are turned off" in fake.bot_messages(fake.dm_channel_id)[0].text
    assert len(kimi.requests) == 1
