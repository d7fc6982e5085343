"""Slash commands end to end: sync, defer within the deadline, streamed edits, followups, settings, access."""

from __future__ import annotations

import re

from storage.store import Store
from tests.discord_support import make_services, png, running_bot, turns
from tests.fakes.discord import FakeDiscord, FakeFile
from tests.fakes.discord_interactions import InteractionRecord
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fixtures.discord import discord_fake
from tests.surface_fake import fences_balanced, unsplit

__all__ = ["discord_fake"]

WAIT = 10.0


async def test_commands_are_synced_as_one_group(discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    async with running_bot(make_services(fake, kimi, store), fake):
        pass
    group, menu = sorted(fake.global_commands, key=lambda c: c["type"])
    assert group["name"] == "kimi" and (menu["name"], menu["type"]) == ("Ask Kimi", 3)
    for command in (group, menu):  # installable to servers and to people's accounts, usable in DMs and groups
        assert sorted(command["integration_types"]) == [0, 1] and sorted(command["contexts"]) == [0, 1, 2]
    names = {option["name"] for option in group["options"]}
    assert names == {"ask", "reset", "model", "think", "system", "usage", "stop", "help", "channel", "limits",
                     "forget"}
    ask = next(o for o in group["options"] if o["name"] == "ask")
    assert [(o["name"], o["type"], o.get("required", False)) for o in ask["options"]] == [
        ("prompt", 3, True), ("image", 11, False)]


async def test_guild_sync_for_development(discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    async with running_bot(make_services(fake, kimi, store, sync_guilds=[fake.guild_id]), fake):
        pass
    assert fake.global_commands == []
    assert [c["name"] for c in fake.guild_commands(fake.guild_id)] == ["kimi", "Ask Kimi"]


async def test_ask_defers_streams_and_continues_in_followups(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                            store: Store) -> None:
    fake = discord_fake
    kimi.tokens_per_second = 2000
    async with running_bot(make_services(fake, kimi, store), fake):
        record = await fake.invoke_command("kimi ask", {"prompt": "long [[len=4500]]"})
        await _settle(fake, record)
    assert [c.callback_type for c in record.callbacks] == [5] and record.callbacks[0].status == 200
    ids = [record.original_message_id, *record.followup_message_ids]
    parts = [fake.final_text(fake.channel_id, i) for i in ids]
    assert all(len(p) <= 2000 and fences_balanced(p) for p in parts)
    assert unsplit(parts) == long_text(4500)
    assert fake.rate_limited_count == 0


async def _settle(fake: FakeDiscord, record: InteractionRecord) -> None:
    """Waits until the interaction's messages show the whole answer."""
    expected = long_text(4500)

    def done() -> bool:
        ids = [record.original_message_id, *record.followup_message_ids]
        return unsplit([fake.final_text(fake.channel_id, i) for i in ids if i is not None]) == expected

    await fake.wait_for(done, WAIT)


async def test_ask_with_an_image_option(discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    async with running_bot(make_services(fake, kimi, store), fake):
        record = await fake.invoke_command("kimi ask", {"prompt": "what is this?"},
                                           attachments={"image": FakeFile("shot.png", png(40, 30), "image/png")})
        await fake.wait_for(lambda: record.original_message_id is not None
                            and fake.message(record.original_message_id).text.endswith("."), WAIT)
    assert fake.final_text(fake.channel_id, record.original_message_id) == "I see 1 image: 40x30 PNG."


async def test_settings_commands_act_on_the_conversation(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                         store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store, access={"admins": [str(fake.user.id)]})
    bob = fake.add_user("bob")
    async with running_bot(services, fake):
        async def run(name: str, options: dict[str, str] | None = None, **kw: object) -> str:
            record = await fake.invoke_command(name, options, **kw)  # type: ignore[arg-type]
            await fake.wait_for(lambda: record.original_message_id is not None
                                and fake.message(record.original_message_id).text != "", WAIT)
            return fake.message(record.original_message_id).text

        assert "now uses `kimi-k2.6`" in await run("kimi model", {"model": "kimi-k2.6"})
        assert await run("kimi model", {"model": "kimi-k2.5"}, user=bob) == "Only admins can change the model."
        assert "Thinking is now on" in await run("kimi think", {"mode": "on"})
        assert "/kimi reset" in await run("kimi help")
        await run("kimi ask", {"prompt": "hi"})
    # The settings applied to the user's slash conversation in #general, which the ask then used.
    assert kimi.requests[-1]["model"] == "kimi-k2.6"
    assert kimi.requests[-1]["thinking"] == {"type": "enabled"}
    help_message = fake.interactions.records[3]
    assert fake.message(help_message.original_message_id).flags & 64  # help is ephemeral


async def test_an_admin_gives_a_channel_its_own_prompt(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                       store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store, access={"admins": [str(fake.user.id)]})
    async with running_bot(services, fake):
        async def run(name: str, options: dict[str, str] | None = None) -> str:
            record = await fake.invoke_command(name, options)
            await fake.wait_for(lambda: record.original_message_id is not None
                                and fake.message(record.original_message_id).text != "", WAIT)
            return fake.message(record.original_message_id).text

        said = await run("kimi channel", {"setting": "prompt", "value": "You are the on-call assistant."})
        assert "System prompt set" in said
        assert "on-call assistant" in await run("kimi channel")
        await run("kimi ask", {"prompt": "who are you?"})
    assert kimi.requests[-1]["messages"][0]["content"] == "You are the on-call assistant."


async def test_refused_users_get_a_private_answer_without_defer(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store, access={"block_users": [str(fake.user.id)]})
    async with running_bot(services, fake):
        record = await fake.invoke_command("kimi ask", {"prompt": "hi"})
        await fake.wait_for(lambda: bool(record.callbacks), WAIT)
    [callback] = record.callbacks
    assert callback.callback_type == 4 and callback.body is not None
    assert callback.body["data"]["flags"] & 64
    assert "not allowed" in callback.body["data"]["content"]
    assert kimi.requests == []


async def test_answer_outliving_the_interaction_token_finishes_in_the_channel(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    kimi.tokens_per_second = 300
    async with running_bot(make_services(fake, kimi, store), fake):
        record = await fake.invoke_command("kimi ask", {"prompt": "slow [[len=1200]]"})
        await fake.wait_for(lambda: record.original_message_id is not None
                            and fake.message(record.original_message_id).text != "", WAIT)
        fake.clock.advance(15 * 60)  # the token is dead: only the bot's own endpoints still work
        await fake.wait_for(lambda: fake.message(record.original_message_id).text == long_text(1200), WAIT)
    late = [c for c in fake.calls if c.route_key == "PATCH /channels/{channel_id}/messages/{message_id}"]
    assert late and all(c.status == 200 for c in late)
    assert not [c for c in fake.calls if c.status == 401]


async def test_forget_deletes_your_messages_after_the_confirmation(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                   store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} remember my plans")
        await turns(client, 1)
        workspace = str(fake.guild_id)
        assert await store.count_user_messages("discord", workspace, str(fake.user.id)) == 1

        async def run(options: dict[str, str] | None = None) -> tuple[str, int]:
            record = await fake.invoke_command("kimi forget", options)
            await fake.wait_for(lambda: record.original_message_id is not None
                                and fake.message(record.original_message_id).text != "", WAIT)
            message = fake.message(record.original_message_id)
            return message.text, message.flags

        asked, flags = await run()
        assert flags & 64  # only the person sees it
        code = re.search(r"confirm ([0-9a-f]{6})", asked)
        assert code is not None and "1 stored messages" in asked
        assert "wrong or expired" in (await run({"confirm": "000000"}))[0]
        assert await store.count_user_messages("discord", workspace, str(fake.user.id)) == 1
        done, _ = await run({"confirm": code.group(1)})
    # Their message, and the conversation only they took part in (its answer too).
    assert done.startswith("Deleted your data in this workspace: 2 messages, 1 conversations")
    assert await store.count_user_messages("discord", workspace, str(fake.user.id)) == 0
