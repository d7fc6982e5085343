"""The real discord.py 2.7.1 against the wire-level Discord fake: gateway, REST, rate limits, interactions."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fakes.discord import FakeDiscord, FakeFile
from tests.fakes.discord_state import INTENT_MESSAGE_CONTENT, shard_for_guild
from tests.fixtures.discord import bot_intents, discord_fake, running_client

__all__ = ["discord_fake"]  # the fixture, imported for pytest

WAIT = 5.0
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


class RecordingClient(discord.Client):
    """Queues every on_message so tests can await a specific delivery."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(guild_ready_timeout=0.05, **kwargs)
        self.inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.delivered: list[int] = []

    async def on_message(self, message: discord.Message) -> None:
        self.delivered.append(message.id)
        await self.inbox.put(message)

    async def next_message(self, message_id: int) -> discord.Message:
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.inbox.get()
                if message.id == message_id:
                    return message


class ShardedClient(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """The default sleeps 5 s between shards (identify concurrency); the fake has no such limit."""


async def test_client_receives_ready_and_guild_create(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        assert client.user is not None and client.user.id == fake.bot_user.id
        assert client.application_id == fake.application_id
        guild = client.get_guild(fake.guild_id)
        assert guild is not None and guild.name == "Fake Guild"
        general = guild.get_channel(fake.channel_id)
        assert isinstance(general, discord.TextChannel) and general.name == "general"
        thread = guild.get_thread(fake.thread_id)
        assert isinstance(thread, discord.Thread) and thread.parent_id == fake.channel_id
        # Without the GUILD_MEMBERS intent only the bot's own member comes, but the count is the real one.
        assert guild.me is not None and guild.member_count == 2
        session = fake.gateway.live_session()
        assert session.intents & INTENT_MESSAGE_CONTENT
        assert [int(g["id"]) for g in session.events("GUILD_CREATE")] == [fake.guild_id]
        assert fake.gateway.heartbeats >= 1
        assert [c.route_key for c in fake.calls[:2]] == ["GET /users/@me", "GET /oauth2/applications/@me"]


async def test_mention_reply_in_thread_with_attachment(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        earlier = await fake.dispatch_message(fake.thread_id, "earlier bot answer", author=fake.bot_user)
        sent = await fake.dispatch_message(
            fake.thread_id,
            f"{fake.bot_user.mention} what is in this screenshot?",
            reply_to=earlier.id,
            attachments=[FakeFile("shot.png", PNG, "image/png", width=1920, height=1080)],
        )
        message = await client.next_message(sent.id)
        assert message.content.endswith("what is in this screenshot?")
        assert client.user in message.mentions
        assert isinstance(message.channel, discord.Thread) and message.channel.parent_id == fake.channel_id
        assert isinstance(message.author, discord.Member) and message.author.id == fake.user.id
        assert message.reference is not None and isinstance(message.reference.resolved, discord.Message)
        assert message.reference.resolved.content == "earlier bot answer"
        [attachment] = message.attachments
        assert (attachment.width, attachment.content_type) == (1920, "image/png")
        assert await attachment.read() == PNG


async def test_missing_privileged_intent_closes_with_4014(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    fake.gateway.config.privileged_intents = 0  # MESSAGE_CONTENT not enabled in the developer portal
    client = RecordingClient(intents=bot_intents())
    async with client:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.start(fake.token), WAIT)
    assert fake.gateway.close_codes == [4014]
    assert fake.sessions == []


async def test_without_message_content_only_mentions_and_dms_keep_content(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents(message_content=False))
    async with running_client(client, fake.token):
        plain = await fake.dispatch_message(
            fake.channel_id, "just chatting", attachments=[FakeFile("a.png", PNG, "image/png")]
        )
        mention = await fake.dispatch_message(fake.channel_id, f"{fake.bot_user.mention} hi")
        direct = await fake.dispatch_message(fake.dm_channel_id, "hello in a DM")
        blanked = await client.next_message(plain.id)
        assert (blanked.content, blanked.attachments, blanked.embeds) == ("", [], [])
        assert (await client.next_message(mention.id)).content == f"{fake.bot_user.mention} hi"
        dm = await client.next_message(direct.id)
        assert dm.content == "hello in a DM" and isinstance(dm.channel, discord.DMChannel)
    assert fake.message(plain.id).content == "just chatting"  # only the delivery is blanked


async def test_send_edit_history_typing_round_trip(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        channel = client.get_channel(fake.channel_id)
        assert isinstance(channel, discord.TextChannel)
        async with channel.typing():
            sent = await channel.send("hello")
        edited = await sent.edit(content="hello, world")
        assert edited.content == "hello, world" and edited.edited_at is not None
        fetched = await channel.fetch_message(sent.id)
        assert fetched.content == "hello, world"
        assert [m.id async for m in channel.history(limit=5)] == [sent.id]
        gone = await channel.send("to be deleted")
        await gone.delete()
    assert fake.final_text(fake.channel_id, sent.id) == "hello, world"
    stored = fake.message(sent.id)
    assert [(v.source, v.content) for v in stored.versions] == [("create", "hello"), ("edit", "hello, world")]
    assert stored.versions[0].at <= stored.versions[1].at
    assert [m.id for m in fake.bot_messages(fake.channel_id)] == [sent.id]
    assert [t.channel_id for t in fake.typing_calls] == [fake.channel_id]
    assert fake.message(gone.id).deleted


async def test_over_long_content_and_embed_are_rejected_with_50035(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        channel = client.get_channel(fake.channel_id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert (too_long.value.status, too_long.value.code) == (400, 50035)
        assert "2000 or fewer" in too_long.value.text
        with pytest.raises(discord.HTTPException) as big_embed:
            await channel.send(embed=discord.Embed(description="y" * 4097))
        assert big_embed.value.code == 50035
        ok = await channel.send("x" * 2000)
    assert fake.final_text(fake.channel_id, ok.id) == "x" * 2000
    assert [c.status for c in fake.calls_to("POST /channels/{channel_id}/messages")] == [400, 400, 200]


async def test_write_burst_beyond_bucket_gets_429_and_discord_py_retries(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    fake.rate_limits.config.message_limit, fake.rate_limits.config.message_per = 2, 0.25
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        channel = client.get_channel(fake.channel_id)
        assert isinstance(channel, discord.TextChannel)
        answer = await channel.send("v0")
        # Another answer posting in the channel shares the bucket that the edits have not learned yet.
        await asyncio.gather(
            channel.send("other answer"), answer.edit(content="v1"), answer.edit(content="v2")
        )
        await answer.edit(content="final")
    assert fake.rate_limited_count >= 1
    limited = [c for c in fake.calls if c.status == 429]
    assert len(limited) == fake.rate_limited_count
    for hit in limited:  # every 429 was slept on and retried successfully by discord.py itself
        assert any(c.status == 200 and c.body == hit.body and c.at > hit.at for c in fake.calls)
    assert fake.final_text(fake.channel_id, answer.id) == "final"
    assert sorted(v.content for v in fake.message(answer.id).versions) == ["final", "v0", "v1", "v2"]
    assert [m.content for m in fake.bot_messages(fake.channel_id)] == ["final", "other answer"]


async def test_injected_faults_surface_as_discord_py_errors(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        channel = client.get_channel(fake.channel_id)
        assert isinstance(channel, discord.TextChannel)
        fake.fail_next("POST /channels/{channel_id}/messages", 403, 50013, "Missing Permissions")
        with pytest.raises(discord.Forbidden) as denied:
            await channel.send("nope")
        assert denied.value.code == 50013
        fake.fail_next("POST /channels/{channel_id}/messages", 429, retry_after=0.05, is_global=True)
        sent = await channel.send("after a global 429")
    assert fake.final_text(fake.channel_id, sent.id) == "after a global 429"
    assert [h.scope for h in fake.rate_limits.hits] == ["global"]


async def test_create_thread_from_message(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        channel = client.get_channel(fake.channel_id)
        assert isinstance(channel, discord.TextChannel)
        root = await channel.send("question")
        thread = await root.create_thread(name="Kimi: question", auto_archive_duration=1440)
        assert isinstance(thread, discord.Thread)
        assert (thread.id, thread.parent_id, thread.name) == (root.id, fake.channel_id, "Kimi: question")
        reply = await thread.send("answer in thread")
    [record] = fake.threads_created
    assert (record.thread_id, record.parent_id, record.starter_message_id) == (
        root.id,
        fake.channel_id,
        root.id,
    )
    assert fake.final_text(thread.id, reply.id) == "answer in thread"
    created = fake.sessions[0].events("THREAD_CREATE")
    assert [t["id"] for t in created] == [str(root.id)] and created[0]["newly_created"] is True


async def test_resume_replays_missed_and_redelivered_messages(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    async with running_client(client, fake.token):
        async with fake.outage() as session:
            missed = await fake.dispatch_message(
                fake.channel_id, f"{fake.bot_user.mention} while you were away"
            )
        assert (await client.next_message(missed.id)).content.endswith("while you were away")
        assert session.resumes == 1
        assert str(missed.id) in [
            e.data.get("id") for e in session.last_replay if e.event == "MESSAGE_CREATE"
        ]
        # Discord delivers at least once: a resume may bring an already-delivered message again.
        await fake.force_reconnect(redeliver_message_ids=[missed.id])
        await client.next_message(missed.id)
        assert session.resumes == 2
    assert client.delivered.count(missed.id) == 2
    assert len(fake.gateway.identify_payloads) == 1  # both reconnects resumed, none re-identified


async def test_slash_command_defer_edit_and_followup(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    client = RecordingClient(intents=bot_intents())
    tree = app_commands.CommandTree(client)
    done = asyncio.Event()
    errors: list[int] = []
    release_slow = asyncio.Event()

    @tree.command(name="ask", description="Ask Kimi")
    async def ask(
        interaction: discord.Interaction, prompt: str, image: discord.Attachment | None = None
    ) -> None:
        await interaction.response.defer(thinking=True)
        size = len(await image.read()) if image else 0
        await interaction.edit_original_response(content=f"answer to {prompt} ({size} bytes)")
        await interaction.followup.send("second part", wait=True)
        done.set()

    kimi = app_commands.Group(name="kimi", description="Kimi settings")

    @kimi.command(name="model", description="Switch model")
    async def model(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(f"model is now {name}")

    @tree.command(name="slow", description="Answers too late")
    async def slow(interaction: discord.Interaction) -> None:
        await release_slow.wait()
        try:
            await interaction.response.defer()
        except discord.NotFound as exc:
            errors.append(exc.code)
        done.set()

    tree.add_command(kimi)
    async with running_client(client, fake.token):
        synced = await tree.sync()
        assert sorted(c.name for c in synced) == ["ask", "kimi", "slow"]
        record = await fake.invoke_command(
            "ask", {"prompt": "why"}, attachments={"image": FakeFile("i.png", PNG)}
        )
        await asyncio.wait_for(done.wait(), WAIT)
        group = await fake.invoke_command("kimi model", {"name": "k2"})
        await fake.wait_for(lambda: bool(group.callbacks))
        done.clear()
        late = await fake.invoke_command("slow")
        fake.clock.advance(3.5)  # past the 3 s deadline for the first response
        release_slow.set()
        await asyncio.wait_for(done.wait(), WAIT)
    assert sorted(c["name"] for c in fake.global_commands) == ["ask", "kimi", "slow"]
    assert [c.callback_type for c in record.callbacks] == [5]
    assert [e.body["content"] for e in record.edits] == [f"answer to why ({len(PNG)} bytes)"]
    assert fake.final_text(fake.channel_id, record.original_message_id) == f"answer to why ({len(PNG)} bytes)"
    assert fake.message(record.original_message_id).flags == 0  # the "thinking" LOADING flag is gone
    [followup_id] = record.followup_message_ids
    assert fake.final_text(fake.channel_id, followup_id) == "second part"
    assert [c.callback_type for c in group.callbacks] == [4]
    assert fake.final_text(fake.channel_id, group.original_message_id) == "model is now k2"
    assert errors == [10062] and [c.status for c in late.callbacks] == [404]


async def test_auto_sharded_client_splits_guilds_across_two_shards(discord_fake: FakeDiscord) -> None:
    fake = discord_fake
    fake.recommended_shards = 2
    first_shard = shard_for_guild(fake.guild_id, 2)
    second = fake.add_guild("Second Guild", shard=(1 - first_shard, 2))
    client = ShardedClient(intents=bot_intents(), guild_ready_timeout=0.05)
    inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
    client.event(_queue_into(inbox))
    async with running_client(client, fake.token):
        assert client.shard_count == 2
        assert {client.get_guild(fake.guild_id).shard_id, client.get_guild(second.id).shard_id} == {0, 1}
        by_shard = {s.shard_id: [int(g["id"]) for g in s.events("GUILD_CREATE")] for s in fake.sessions}
        assert by_shard == {first_shard: [fake.guild_id], 1 - first_shard: [second.id]}
        general = second.channel_ids[0]
        sent = await fake.dispatch_message(
            general, f"{fake.bot_user.mention} hi from shard {1 - first_shard}"
        )
        async with asyncio.timeout(WAIT):
            received = await inbox.get()
        assert received.id == sent.id and received.guild is not None
        assert received.guild.shard_id == 1 - first_shard
    assert [d["shard"] for d in fake.gateway.identify_payloads] == [[0, 2], [1, 2]]
    assert fake.calls_to("GET /gateway/bot")


def _queue_into(inbox: asyncio.Queue[discord.Message]) -> Any:
    async def on_message(message: discord.Message) -> None:
        await inbox.put(message)

    return on_message
