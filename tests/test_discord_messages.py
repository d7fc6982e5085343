"""Messages end to end: mention → thread → streamed answer, follow-ups, reply chains, DMs, files, replays."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bot.types import ConversationKey
from storage.store import Store
from tests.discord_support import make_services, png, running_bot, texts, turns
from tests.fakes.discord import FakeDiscord, FakeFile
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fixtures.discord import discord_fake
from tests.fixtures.screenshots import Shot

__all__ = ["discord_fake"]


def last_user_text(kimi: FakeKimi) -> str:
    body = kimi.requests[-1]
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def user_turns(kimi: FakeKimi) -> int:
    return sum(1 for m in kimi.requests[-1]["messages"] if m["role"] == "user")


async def test_mention_opens_a_thread_and_streams_the_answer(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                             store: Store) -> None:
    fake = discord_fake
    kimi.tokens_per_second = 400
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        question = await fake.dispatch_message(content=f"{fake.bot_user.mention} explain [[len=900]]")
        await turns(client, 1)
    [thread] = fake.threads_created
    assert (thread.starter_message_id, thread.parent_id) == (question.id, fake.channel_id)
    assert thread.name == "explain [[len=900]]"
    [answer] = fake.bot_messages(thread.thread_id)
    assert answer.text == long_text(900)
    assert len(answer.versions) >= 2, "the answer was written once instead of streamed"
    assert all(len(v.content) <= 2000 for v in answer.versions)
    # The typing indicator ran in the thread before the first text.
    assert fake.typing_calls and fake.typing_calls[0].channel_id == thread.thread_id
    assert fake.typing_calls[0].at <= answer.versions[0].at
    assert fake.bot_messages(fake.channel_id) == []
    assert fake.rate_limited_count == 0
    key = await services.engine.conversation_of("discord", str(answer.id))
    assert key == ConversationKey("discord", str(fake.guild_id), str(fake.channel_id), str(question.id))


async def test_thread_follow_up_needs_no_mention(discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} first question")
        await turns(client, 1)
        thread_id = fake.threads_created[0].thread_id
        await fake.dispatch_message(thread_id, "and a follow-up")
        await turns(client, 2)
        # A thread the bot has no conversation in stays quiet without a mention.
        await fake.dispatch_message(fake.thread_id, "people chatting")
        await turns(client, 3)
    assert texts(fake.bot_messages(thread_id)) == ["Echo: first question", "Echo: and a follow-up"]
    assert user_turns(kimi) == 2 and len(kimi.requests) == 2
    assert fake.bot_messages(fake.thread_id) == []


async def test_a_channel_set_to_answer_every_message_needs_no_mention(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                      store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content="is anyone there?")  # before: not a mention, not answered
        await turns(client, 1)
        await fake.dispatch_message(content=f"{fake.bot_user.mention} !channel mentions optional")
        await turns(client, 2)
        await fake.dispatch_message(content="is the build green?")
        await turns(client, 3)
        # A thread of that channel follows it too.
        await fake.dispatch_message(fake.thread_id, "and in here?")
        await turns(client, 4)
    answered = [m.text for thread in fake.threads_created for m in fake.bot_messages(thread.thread_id)]
    assert "I now answer every message in this channel." in answered
    assert "Echo: is the build green?" in answered and not any("anyone there" in t for t in answered)
    assert texts(fake.bot_messages(fake.thread_id)) == ["Echo: and in here?"]


async def test_mention_in_an_unseen_thread_reads_its_earlier_messages(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                       store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(fake.thread_id, "the build fails on step 3")
        await fake.dispatch_message(fake.thread_id, f"{fake.bot_user.mention} any idea?")
        await turns(client, 2)
    assert texts(fake.bot_messages(fake.thread_id)) == ["Echo: any idea?"]
    sent = [m["content"] for m in kimi.requests[-1]["messages"] if m["role"] == "user"]
    assert any("the build fails on step 3" in str(c) for c in sent)


async def test_reply_to_the_bots_message_continues_the_conversation(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                    store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store, reply_in="channel")
    async with running_bot(services, fake) as client:
        question = await fake.dispatch_message(content=f"{fake.bot_user.mention} remember 42")
        await turns(client, 1)
        [answer] = fake.bot_messages(fake.channel_id)
        assert answer.reference is not None and answer.reference["message_id"] == str(question.id)
        # No ping, no mention: only the reply chain ties this message to the conversation.
        await fake.dispatch_message(content="what number?", reply_to=answer.id, mention_replied_user=False)
        await turns(client, 2)
        await fake.dispatch_message(content="unrelated chatter")
        await turns(client, 3)
    assert fake.threads_created == []
    assert texts(fake.bot_messages(fake.channel_id)) == ["Echo: remember 42", "Echo: what number?"]
    assert user_turns(kimi) == 2 and len(kimi.requests) == 2


async def test_direct_messages_are_turns_without_mentions(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                          store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(fake.dm_channel_id, "hello")
        await fake.dispatch_message(fake.dm_channel_id, "again")
        await turns(client, 2)
    assert texts(fake.bot_messages(fake.dm_channel_id)) == ["Echo: hello", "Echo: again"]
    key = ConversationKey("discord", "@me", str(fake.dm_channel_id), "dm")
    assert await services.engine.has_history(key)


async def test_screenshot_and_files_are_read_or_refused(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                        store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} what is this?",
                                    attachments=[FakeFile("screen.png", png(64, 48), "image/png", 64, 48)])
        await turns(client, 1)
        thread_id = fake.threads_created[0].thread_id
        await fake.dispatch_message(thread_id, "and these?", attachments=[
            FakeFile("notes.txt", b"line one\nline two", "text/plain"),
            FakeFile("archive.zip", b"PK\x03\x04", "application/zip")])
        await turns(client, 2)
    first, second = fake.bot_messages(thread_id)
    assert first.text == "I see 1 image: 64x48 PNG."
    assert "line one" in last_user_text(kimi)
    assert "archive.zip" in second.text and "I can read images" in second.text


async def test_question_about_someone_elses_screenshot(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                       store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    bob = fake.add_user("bob")
    async with running_bot(services, fake) as client:
        shot = await fake.dispatch_message(content="look at this error", author=bob,
                                           attachments=[FakeFile("err.png", png(30, 20), "image/png")])
        await fake.dispatch_message(content=f"{fake.bot_user.mention} what does it mean?", reply_to=shot.id)
        await turns(client, 2)
    [answer] = fake.bot_messages(fake.threads_created[0].thread_id)
    assert answer.text == "I see 1 image: 30x20 PNG."
    assert "look at this error" in last_user_text(kimi)


async def test_replayed_message_after_a_resume_is_answered_once(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                               store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        session = fake.gateway.live_session()
        question = await fake.dispatch_message(content=f"{fake.bot_user.mention} once please")
        await turns(client, 1)
        await fake.force_reconnect(redeliver_message_ids=[question.id])
        await turns(client, 2)
    assert session.resumes == 1
    assert len(fake.threads_created) == 1 and len(kimi.requests) == 1
    assert texts(fake.bot_messages(fake.threads_created[0].thread_id)) == ["Echo: once please"]


async def test_own_and_other_bots_messages_are_ignored(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                       store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    other_bot = fake.add_user("otherbot", bot=True)
    async with running_bot(services, fake) as client:
        # Own messages are dropped before they count as turns; the other bot's, delivered after, counts.
        await fake.dispatch_message(fake.dm_channel_id, "my own words", author=fake.bot_user)
        await fake.dispatch_message(content=f"{fake.bot_user.mention} from a bot", author=other_bot)
        await turns(client, 1)
    assert kimi.requests == [] and fake.threads_created == []
    assert fake.bot_messages(fake.channel_id) == [] and len(fake.messages(fake.dm_channel_id)) == 1


async def test_an_event_discord_py_cannot_parse_is_skipped_and_the_bot_keeps_answering(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Discord changes payloads without notice: a MESSAGE_CREATE without its author used to end the process."""
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        with caplog.at_level(logging.INFO):
            good = fake.world.messages[(await fake.dispatch_message(content="secret words")).id]
            await turns(client, 1)
            payload = fake.payload_of(good)
            renamed = {**payload, "id": "1234567890123456789", "channelId": payload["channel_id"]}
            del renamed["channel_id"]  # a field Discord renamed: discord.py's parser raises
            no_author = {k: v for k, v in payload.items() if k != "author"} | {"id": "1234567890123456790"}
            # discord.py parses this one, but the message it makes has no author for the handler to read.
            sparse = {"id": "1234567890123456791", "channel_id": payload["channel_id"], "guild_id": payload["guild_id"],
                      "content": "secret words", "type": 0, "attachments": [], "embeds": [], "mentions": []}
            for broken in (renamed, no_author, sparse):
                await fake.gateway.dispatch("MESSAGE_CREATE", broken, guild_id=fake.guild_id)
            await fake.dispatch_message(content=f"{fake.bot_user.mention} still there?")
            await turns(client, 3)
        assert not client.is_closed() and client.skipped_events == 2
    thread_id = fake.threads_created[0].thread_id
    assert texts(fake.bot_messages(thread_id)) == ["Echo: still there?"]
    skipped = [r for r in caplog.records if r.getMessage().startswith("discord event skipped")]
    assert len(skipped) == 2 and {r.levelno for r in skipped} == {logging.ERROR}
    assert skipped[0].__dict__["event"] == "MESSAGE_CREATE" and "KeyError" in skipped[0].__dict__["error"]
    failed = [r for r in caplog.records if r.getMessage() == "handling a Discord message failed"]
    assert len(failed) == 1 and failed[0].__dict__["message_id"] == 1234567890123456791
    assert "secret words" not in caplog.text


async def test_mentioning_the_bots_managed_role_is_a_mention(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                             store: Store) -> None:
    """Discord's autocomplete often offers the bot's role, not the bot: `<@&role>` must be answered too."""
    fake = discord_fake
    role = fake.world.bot_role(fake.guild_id)
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"<@&{role.id}> what is a token bucket?")
        await turns(client, 1)
    (thread,) = fake.threads_created
    assert texts(fake.bot_messages(thread.thread_id)) == ["Echo: what is a token bucket?"]


async def test_users_roles_and_channels_reach_kimi_by_name(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                           store: Store) -> None:
    fake = discord_fake
    bob = fake.add_user("bob")
    ops = fake.world.add_role(fake.guild_id, "oncall")
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} what did <@{bob.id}> ask <@&{ops.id}> "
                                            f"about in <#{fake.channel_id}> at <t:1700000000:f>? <:party:123>")
        await turns(client, 1)
    assert last_user_text(kimi) == ("what did @bob ask @oncall about in #general at 2023-11-14 22:13 UTC? "
                                    ":party:")


@pytest.mark.parametrize("name", ["png-180k", "jpeg-730k", "png-4.3m", "png-8m"])
async def test_real_size_screenshots_arrive_whole_from_the_cdn(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                               store: Store, screenshots: Callable[[str], Shot],
                                                               name: str) -> None:
    fake = discord_fake
    shot = screenshots(name)
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        await fake.dispatch_message(content=f"{fake.bot_user.mention} what is wrong here?", attachments=[
            FakeFile(f"Screenshot{shot.suffix}", shot.data, shot.mime, shot.width, shot.height)])
        await turns(client, 1)
    scale = min(1.0, 2048 / max(shot.width, shot.height))
    (thread,) = fake.threads_created
    (answer,) = texts(fake.bot_messages(thread.thread_id))
    assert answer.startswith(f"I see 1 image: {round(shot.width * scale)}x{round(shot.height * scale)} ")
