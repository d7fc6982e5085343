"""Users talking to the bot in Slack: mentions, threads, DMs, commands, duplicates, failures."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.types import ConversationKey
from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fakes.slack import FakeSlack
from tests.fixtures.slack_bot import SlackBot, start_bot


def prompt_text(request: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in request["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


async def stored(bot: SlackBot, channel: str, thread: str) -> list[Any]:
    conversation = await bot.store.get_conversation(ConversationKey("slack", bot.fake.team_id, channel, thread))
    assert conversation is not None
    return await bot.store.history(conversation.id)


async def test_mention_gets_a_threaded_streamed_answer_once(bot: SlackBot) -> None:
    fake = bot.fake
    bot.kimi.tokens_per_second = 400
    deliveries = await fake.send_mention(bot.url, fake.general, fake.alice, "tell me [[len=900]]")
    assert all(d.acked_in_time for d in deliveries) and len(deliveries) == 2
    await bot.settle(2)
    mention_ts = deliveries[0].payload["event"]["ts"]
    replies = bot.bot_replies(fake.general, mention_ts)
    assert len(replies) == 1 and len(bot.kimi.requests) == 1
    versions = [v.text for v in fake.versions(fake.general, replies[0].ts)]
    assert versions[0] == "_Thinking…_" and len(versions) >= 3  # placeholder, interim text, final text
    assert versions[-1].startswith("Paragraph 1") and len(versions[-1]) == 900
    assert "<@" not in prompt_text(bot.kimi.requests[0]).split("tell me")[-1]
    assert fake.rate_limited_count == 0


async def test_thread_follow_up_needs_no_mention_and_other_threads_are_ignored(bot: SlackBot) -> None:
    fake = bot.fake
    first = await fake.send_mention(bot.url, fake.general, fake.alice, "first question")
    await bot.settle(2)
    thread = first[0].payload["event"]["ts"]
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.bob, "and more?", thread_ts=thread))
    other = fake.seed_thread(fake.general, [(fake.alice, "unrelated"), (fake.bob, "chatter")])
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.bob, "x", thread_ts=other[0].ts))
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.bob, "top-level chatter"))
    await bot.settle(5)
    texts = [m.text for m in bot.bot_replies(fake.general, thread)]
    assert len(texts) == 2 and texts[0] == "Echo: first question" and texts[1].endswith("and more?")
    assert len(bot.kimi.requests) == 2
    assert "first question" in prompt_text(bot.kimi.requests[1])
    assert not bot.bot_replies(fake.general, other[0].ts)
    # Two people in one thread: Kimi reads their display names (users.info), asked once per person.
    users = [m["content"] for m in bot.kimi.requests[1]["messages"] if m["role"] == "user"]
    alice, bob = (fake.state.users[u].name for u in (fake.alice, fake.bob))
    assert users[0].startswith(f"[{alice}] ") and users[1].startswith(f"[{bob}] ")
    assert len(fake.calls_to("users.info")) == 2


async def test_mention_mid_thread_reads_the_thread_once(bot: SlackBot) -> None:
    fake = bot.fake
    seeded = fake.seed_thread(fake.general, [(fake.alice, "Our deploy fails with error E42"),
                                             (fake.bob, "It started after the upgrade")])
    parent = seeded[0].ts
    await fake.send_mention(bot.url, fake.general, fake.alice, "what do you think?", thread_ts=parent)
    await bot.settle(2)
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.bob, "any other idea?", thread_ts=parent))
    await fake.send_mention(bot.url, fake.general, fake.bob, "summarize please", thread_ts=parent)
    await bot.settle(5)
    assert len(fake.calls_to("conversations.replies")) == 1
    assert len(bot.kimi.requests) == 3
    first_prompt = prompt_text(bot.kimi.requests[0])
    assert "error E42" in first_prompt and "after the upgrade" in first_prompt
    assert "error E42" in prompt_text(bot.kimi.requests[2])
    rows = await stored(bot, fake.general, parent)
    assert [r.role for r in rows][:2] == ["user", "user"] and len(rows) == 8


async def test_each_top_level_dm_is_a_conversation_answered_in_its_thread(bot: SlackBot) -> None:
    fake = bot.fake
    first = await fake.send_mention(bot.url, fake.dm_alice, fake.alice, "hello there")
    await bot.settle(1)
    second = await fake.send_event(bot.url, fake.payloads.message(fake.dm_alice, fake.alice, "second"))
    await bot.settle(2)
    assert not [m for m in fake.bot_messages(fake.dm_alice) if m.thread_ts is None]
    first_ts, second_ts = first[0].payload["event"]["ts"], second.payload["event"]["ts"]
    assert [m.text for m in bot.bot_replies(fake.dm_alice, first_ts)] == ["Echo: hello there"]
    assert [m.text for m in bot.bot_replies(fake.dm_alice, second_ts)] == ["Echo: second"]
    assert "hello there" not in prompt_text(bot.kimi.requests[1])  # a new conversation
    await fake.send_event(bot.url, fake.payloads.message(fake.dm_alice, fake.alice, "more", thread_ts=first_ts))
    await bot.settle(3)
    assert [m.text for m in bot.bot_replies(fake.dm_alice, first_ts)] == ["Echo: hello there", "Echo: more"]
    assert "hello there" in prompt_text(bot.kimi.requests[2])


async def test_with_dm_threads_off_a_dm_is_one_conversation_and_a_dm_thread_is_its_own(
        fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> None:
    bot = await start_bot(fast_slack, kimi, store, dm_threads=False)
    fake = bot.fake
    try:
        await fake.send_mention(bot.url, fake.dm_alice, fake.alice, "hello there")
        await bot.settle(1)
        await fake.send_event(bot.url, fake.payloads.message(fake.dm_alice, fake.alice, "second"))
        await bot.settle(2)
        top = [m for m in fake.bot_messages(fake.dm_alice) if m.thread_ts is None]
        assert [m.text for m in top] == ["Echo: hello there", "Echo: second"]
        assert "hello there" in prompt_text(bot.kimi.requests[1])
        thread_parent = top[0].ts
        await fake.send_event(bot.url, fake.payloads.message(fake.dm_alice, fake.alice, "side",
                                                             thread_ts=thread_parent))
        await bot.settle(3)
        assert [m.text for m in bot.bot_replies(fake.dm_alice, thread_parent)] == ["Echo: side"]
        assert "hello there" not in prompt_text(bot.kimi.requests[2])
    finally:
        await bot.close()


async def test_duplicate_and_retried_deliveries_are_answered_once(bot: SlackBot) -> None:
    fake = bot.fake
    event = fake.payloads.app_mention(fake.general, fake.alice, "only once")
    first = await fake.send_event(bot.url, event, event_id="EvDUPLICATE1")
    retry = await fake.send_event(bot.url, event, event_id="EvDUPLICATE1", retry_num=1, retry_reason="http_timeout")
    twin = await fake.send_event(bot.url, fake.payloads.message_for(fake.general, event["ts"]))
    assert first.ok and retry.ok and twin.ok
    await fake.send_event(bot.url, fake.payloads.message_changed(fake.general, event["ts"], "<@U0FAKEBOT1> edited"))
    await fake.send_event(bot.url, fake.payloads.message_deleted(fake.general, event["ts"]))
    await fake.send_event(bot.url, fake.payloads.bot_message(fake.general, "<@U0FAKEBOT1> from a bot"))
    await bot.settle(6)
    assert len(bot.kimi.requests) == 1
    assert [m.text for m in bot.bot_replies(fake.general, event["ts"])] == ["Echo: only once"]


async def test_bang_reset_in_a_thread_starts_afresh(bot: SlackBot) -> None:
    fake = bot.fake
    first = await fake.send_mention(bot.url, fake.general, fake.alice, "remember the word banana")
    await bot.settle(2)
    thread = first[0].payload["event"]["ts"]
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.alice, "!reset", thread_ts=thread))
    await bot.settle(3)
    assert bot.bot_replies(fake.general, thread)[-1].text.startswith("Started a fresh conversation")
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.alice, "what word?", thread_ts=thread))
    await bot.settle(4)
    assert len(bot.kimi.requests) == 2 and "banana" not in prompt_text(bot.kimi.requests[1])


async def test_slash_command_posts_a_parent_and_streams_into_its_thread(bot: SlackBot) -> None:
    fake = bot.fake
    delivery = await fake.send_slash_command(bot.url, "/kimi", "why is the sky blue?")
    assert delivery.status == 200 and delivery.acked_in_time
    await bot.settle(1)
    parent = [m for m in fake.bot_messages(fake.general) if m.thread_ts in (None, m.ts)]
    assert len(parent) == 1 and "why is the sky blue?" in parent[0].text
    assert [m.text for m in bot.bot_replies(fake.general, parent[0].ts)] == ["Echo: why is the sky blue?"]
    await fake.send_event(bot.url, fake.payloads.message(fake.general, fake.bob, "go on", thread_ts=parent[0].ts))
    await bot.settle(2)
    assert bot.bot_replies(fake.general, parent[0].ts)[-1].text.endswith("go on")

    help_cmd = await fake.send_slash_command(bot.url, "/kimi", "help")
    await bot.settle(3)
    posts = fake.response_url_posts(help_cmd.payload["response_url"])
    assert len(posts) == 1 and "/kimi reset" in posts[0]["text"] and posts[0]["response_type"] == "ephemeral"


async def test_slash_command_where_the_bot_cannot_post_explains_why(bot: SlackBot) -> None:
    fake = bot.fake
    delivery = await fake.send_slash_command(bot.url, "/kimi", "hello?", channel=fake.random)
    await bot.settle(1)
    posts = fake.response_url_posts(delivery.payload["response_url"])
    assert len(posts) == 1 and "/invite" in posts[0]["text"] and bot.kimi.requests == []


async def test_kimi_failure_mid_stream_is_shown_and_stored_as_failed(bot: SlackBot) -> None:
    fake = bot.fake
    bot.kimi.fail_next("cut", after_chunks=3)
    bot.kimi.enqueue(Reply(content="The first part of the answer arrives, then the connection breaks off."))
    first = await fake.send_mention(bot.url, fake.general, fake.alice, "please answer")
    await bot.settle(2)
    thread = first[0].payload["event"]["ts"]
    replies = bot.bot_replies(fake.general, thread)
    assert len(replies) == 1 and replies[0].text.startswith("The first")
    assert replies[0].text.endswith("cut off before it finished.")
    rows = await stored(bot, fake.general, thread)
    assert rows[-1].role == "assistant" and rows[-1].status == "failed"


async def test_access_lists_refuse_clearly(fast_slack: Any, kimi: Any, store: Any) -> None:
    from tests.fixtures.slack_bot import start_bot

    harness = await start_bot(fast_slack, kimi, store, access={"allow_users": [fast_slack.alice],
                                                               "admins": [fast_slack.alice]})
    try:
        fake = fast_slack
        sent = await fake.send_mention(harness.url, fake.general, fake.bob, "let me in")
        await harness.settle(2)
        thread = sent[0].payload["event"]["ts"]
        assert "not on this bot's list" in harness.bot_replies(fake.general, thread)[0].text
        sent = await fake.send_mention(harness.url, fake.general, fake.alice, "hi")
        await harness.settle(4)
        thread = sent[0].payload["event"]["ts"]
        await fake.send_event(harness.url, fake.payloads.message(fake.general, fake.alice, "!model kimi-k2.6",
                                                                 thread_ts=thread))
        await harness.settle(5)
        assert harness.bot_replies(fake.general, thread)[-1].text == "This conversation now uses `kimi-k2.6`."
        assert len(kimi.requests) == 1
    finally:
        await harness.close()


async def test_many_mentions_at_once_by_one_person_look_their_name_up_once(kimi: FakeKimi, store: Store) -> None:
    """Twenty questions from one person in one burst: one users.info call, and no 429 anywhere. Slack's minutes
    run only five times faster here: at twenty, a 100 ms stall of a loaded CI machine is two Slack seconds of
    requests arriving together, a burst no client-side pacing can rule out."""
    async with FakeSlack(time_scale=5.0) as fake:
        bot = await start_bot(fake, kimi, store, time_scale=5.0)
        try:
            sent = await asyncio.gather(*(fake.send_mention(bot.url, fake.general, fake.alice, f"question {i}")
                                          for i in range(20)))
            await bot.settle(sum(len(s) for s in sent), limit=60)
        finally:
            await bot.close()
        assert len(fake.calls_to("users.info")) == 1
        assert fake.rate_limited_count == 0, [(c.method, round(c.at, 3)) for c in fake.calls if c.status == 429]
        for deliveries in sent:
            thread = deliveries[0].payload["event"]["ts"]
            assert len(bot.bot_replies(fake.general, thread)) == 1


async def test_a_channel_set_to_answer_every_message_needs_no_mention(bot: SlackBot) -> None:
    fake = bot.fake
    quiet = fake.add_channel("quiet")
    setup = await fake.send_mention(bot.url, fake.general, fake.alice, "!channel mentions optional")
    await bot.settle(len(setup))
    said = bot.bot_replies(fake.general, setup[0].payload["event"]["ts"])
    assert "I now answer every message in this channel." in said[0].text
    asked = fake.payloads.message(fake.general, fake.bob, "is the build green?")
    elsewhere = fake.payloads.message(quiet.id, fake.bob, "chatter in another channel")
    await fake.send_event(bot.url, asked)
    await fake.send_event(bot.url, elsewhere)
    await bot.settle(len(setup) + 2)
    replies = bot.bot_replies(fake.general, asked["ts"])
    assert [r.text for r in replies] == ["Echo: is the build green?"]
    assert not bot.bot_replies(quiet.id, elsewhere["ts"])
    assert len(bot.kimi.requests) == 1
