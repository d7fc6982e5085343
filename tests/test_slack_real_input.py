"""What real users and a real Slack send, end to end: long threads, mentions that come only as `message`
events, references Kimi cannot look up, odd error bodies, broken Unicode."""

from __future__ import annotations

from typing import Any

from bot.types import ConversationKey
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack
from tests.fixtures.slack_bot import SlackBot, start_bot


def prompt_texts(body: dict[str, Any]) -> list[str]:
    texts = []
    for m in body["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
        texts.append(str(content))
    return texts


async def test_first_mention_in_a_long_thread_reads_its_recent_discussion(bot: SlackBot) -> None:
    fake = bot.fake
    limit = bot.adapter.config.backfill_limit  # 200
    seeded = fake.seed_thread(fake.general, [(fake.alice, "Topic: the flaky deploy")]
                              + [(fake.bob if i % 2 else fake.alice, f"message number {i}") for i in range(1, 2000)])
    parent = seeded[0].ts
    await fake.send_mention(bot.url, fake.general, fake.alice, "so what did we decide?", thread_ts=parent)
    await bot.settle(2, limit=30)
    prompt = "\n".join(prompt_texts(bot.kimi.requests[0]))
    assert "Topic: the flaky deploy" in prompt  # the thread's first message, its topic
    assert "message number 1999" in prompt and f"message number {2000 - limit + 1}" in prompt
    assert f"message number {2000 - limit}" not in prompt and "message number 5\n" not in prompt
    reply = bot.bot_replies(fake.general, parent)[-1].text
    assert "left out" in reply and "most recent" in reply
    assert fake.rate_limited_count == 0


async def test_a_refused_users_mention_does_not_read_the_thread(fast_slack: FakeSlack, kimi: FakeKimi,
                                                                 store: Store) -> None:
    fake = fast_slack
    bot = await start_bot(fake, kimi, store, access={"block_users": [fake.bob]})
    try:
        seeded = fake.seed_thread(fake.general, [(fake.alice, "private discussion"), (fake.alice, "more of it")])
        await fake.send_mention(bot.url, fake.general, fake.bob, "summarize this", thread_ts=seeded[0].ts)
        await bot.settle(2)
    finally:
        await bot.close()
    assert fake.calls_to("conversations.replies") == []
    assert kimi.requests == []
    conversation = await store.get_conversation(ConversationKey("slack", fake.team_id, fake.general, seeded[0].ts))
    assert conversation is None or not await store.has_messages(conversation.id)
    assert "not allowed" in bot.bot_replies(fake.general, seeded[0].ts)[0].text


async def test_a_mention_that_arrives_only_as_a_message_event_is_answered(bot: SlackBot) -> None:
    """An install without the app_mention subscription: the message event alone must do."""
    fake = bot.fake
    event = fake.payloads.message(fake.general, fake.alice, f"<@{fake.bot_user_id}> are you there?")
    await fake.send_event(bot.url, event)
    await bot.settle(1)
    thread = event["ts"]
    assert [m.text for m in bot.bot_replies(fake.general, thread)] == ["Echo: are you there?"]
    follow_up = fake.payloads.message(fake.general, fake.alice, "and a follow-up", thread_ts=thread)
    await fake.send_event(bot.url, follow_up)
    await bot.settle(2)
    assert [m.text for m in bot.bot_replies(fake.general, thread)][-1] == "Echo: and a follow-up"


async def test_both_deliveries_of_one_mention_are_answered_once(bot: SlackBot) -> None:
    fake = bot.fake
    sent = await fake.send_mention(bot.url, fake.general, fake.alice, "just once")
    assert len(sent) == 2  # app_mention and message, as Slack sends both
    await bot.settle(2)
    assert [m.text for m in bot.bot_replies(fake.general, sent[0].payload["event"]["ts"])] == ["Echo: just once"]
    assert len(bot.kimi.requests) == 1


async def test_users_channels_and_specials_reach_kimi_by_name(bot: SlackBot) -> None:
    fake = bot.fake
    text = (f"what did <@{fake.bob}> say in <#{fake.random}> and <#{fake.general}|general>? <!here> "
            "see <https://example.com/a?b=1|the doc> &amp; <mailto:x@example.com>")
    await fake.send_mention(bot.url, fake.general, fake.alice, text)
    await bot.settle(2)
    asked = prompt_texts(bot.kimi.requests[0])[-1]
    bob = fake.state.users[fake.bob].name
    assert asked == (f"what did @{bob} say in #random and #general? @here see the doc "
                     "(https://example.com/a?b=1) & mailto:x@example.com")
    assert len(fake.calls_to("conversations.info")) == 1  # a labelled channel needs no lookup


async def test_an_error_body_that_is_not_json_still_gets_an_answer(bot: SlackBot) -> None:
    fake = bot.fake
    fake.fail_next("users.info", status=502, raw_body="<html><body>Bad gateway</body></html>")
    sent = await fake.send_mention(bot.url, fake.general, fake.alice, "hello through a broken proxy")
    await bot.settle(2)
    replies = bot.bot_replies(fake.general, sent[0].payload["event"]["ts"])
    assert [m.text for m in replies] == ["Echo: hello through a broken proxy"]


async def test_text_with_a_lone_surrogate_is_answered(bot: SlackBot) -> None:
    fake = bot.fake
    event = fake.payloads.app_mention(fake.general, fake.alice, "broken \ud800 emoji")
    await fake.send_event(bot.url, event)
    await bot.settle(1)
    replies = bot.bot_replies(fake.general, event["ts"])
    assert [m.text for m in replies] == ["Echo: broken \ufffd emoji"]


async def test_a_refused_response_url_still_gets_the_reply_to_the_user(bot: SlackBot) -> None:
    """Slack's response_url expires after 30 minutes and five uses; the reply then comes as an ephemeral."""
    fake = bot.fake
    fake.file_server.response_url_error = "expired_url"
    before = bot.adapter.deliveries
    delivery = await fake.send_slash_command(bot.url, "/kimi", "help")
    assert delivery.ok
    await bot.settle(before + 1)
    assert fake.response_url_posts(delivery.payload["response_url"]) == []
    ((channel, user, text),) = fake.chat.ephemeral
    assert channel == fake.general and user == fake.alice and "/kimi reset" in text
