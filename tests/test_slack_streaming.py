"""Streaming under Slack's limits: many answers at once, long answers, native streams and their fallback."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import pytest

from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fakes.kimi_responder import long_text
from tests.fakes.slack import FakeSlack
from tests.fixtures.slack_bot import TIME_SCALE, start_bot


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(time_scale=TIME_SCALE) as slack:
        yield slack


def fences(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("```"))


@pytest.mark.parametrize("streaming", ["edit", "native"])
async def test_twenty_concurrent_answers_complete_without_a_429(fake: FakeSlack, kimi: FakeKimi, store: Store,
                                                                streaming: str) -> None:
    channels = [fake.general] + [fake.add_channel(f"team-{i}").id for i in range(3)]
    kimi.tokens_per_second = 600
    bot = await start_bot(fake, kimi, store, streaming=streaming)
    try:
        sent = []
        for i in range(20):
            sent.append(await fake.send_mention(bot.url, channels[i % 4], fake.alice, f"q{i} [[len={700 + i}]]"))
        await bot.settle(40, limit=30)
        assert fake.rate_limited_count == 0
        for i, deliveries in enumerate(sent):
            event = deliveries[0].payload["event"]
            replies = bot.bot_replies(event["channel"], event["ts"])
            # Answers past the workspace's chat.update allowance arrive as paragraph posts: joined, they are whole.
            assert "".join(r.text for r in replies) == long_text(700 + i), f"answer {i}"
            for reply in replies:
                assert reply.stream is None or reply.stream.state == "stopped"
        assert len(kimi.requests) == 20
        if streaming == "native":
            assert fake.calls_to("chat.startStream") and fake.calls_to("chat.appendStream")
    finally:
        await bot.close()


async def test_long_answer_continues_in_new_messages_without_cutting_code(fake: FakeSlack, kimi: FakeKimi,
                                                                          store: Store) -> None:
    code = "```python\n" + "".join(f"value_{i} = compute({i})  # step {i}\n" for i in range(130)) + "```"
    answer = long_text(4000) + "\n\n" + code + "\n\n" + long_text(3000)
    assert len(answer) > 10_000
    kimi.enqueue(Reply(content=answer))
    bot = await start_bot(fake, kimi, store)
    try:
        sent = await fake.send_mention(bot.url, fake.general, fake.alice, "explain everything")
        await bot.settle(2)
        replies = bot.bot_replies(fake.general, sent[0].payload["event"]["ts"])
        assert len(replies) >= 3
        for reply in replies:
            assert len(reply.text) <= 3900 and fences(reply.text) % 2 == 0
        # Removing the fence lines added at the cuts gives back the answer's text.
        joined = re.sub(r"\s+", "", "".join(r.text for r in replies).replace("```python", "").replace("```", ""))
        assert joined == re.sub(r"\s+", "", answer.replace("```python", "").replace("```", ""))
        assert fake.rate_limited_count == 0
    finally:
        await bot.close()


async def test_native_stream_falls_back_to_edits(fake: FakeSlack, kimi: FakeKimi, store: Store) -> None:
    kimi.tokens_per_second = 400
    bot = await start_bot(fake, kimi, store, streaming="native")
    try:
        fake.fail_next("chat.appendStream", "message_not_in_streaming_state")
        sent = await fake.send_mention(bot.url, fake.general, fake.alice, "stream please [[len=800]]")
        await bot.settle(2)
        replies = bot.bot_replies(fake.general, sent[0].payload["event"]["ts"])
        assert [r.text for r in replies] == [long_text(800)]
        assert fake.calls_to("chat.startStream") and fake.calls_to("chat.update")
    finally:
        await bot.close()


async def test_native_stream_in_a_thread_is_started_appended_and_stopped(fake: FakeSlack, kimi: FakeKimi,
                                                                         store: Store) -> None:
    kimi.tokens_per_second = 400
    bot = await start_bot(fake, kimi, store, streaming="native")
    try:
        sent = await fake.send_mention(bot.url, fake.general, fake.alice, "stream please [[len=1200]]")
        await bot.settle(2)
        replies = bot.bot_replies(fake.general, sent[0].payload["event"]["ts"])
        assert len(replies) == 1 and replies[0].text == long_text(1200)
        stream = replies[0].stream
        assert stream is not None and stream.state == "stopped" and stream.recipient_user_id == fake.alice
        assert not fake.calls_to("chat.update")
    finally:
        await bot.close()


async def test_a_429_is_honoured_and_the_answer_still_completes(fake: FakeSlack, kimi: FakeKimi,
                                                                store: Store) -> None:
    kimi.tokens_per_second = 400
    bot = await start_bot(fake, kimi, store)
    try:
        fake.fail_next("chat.update", status=429, retry_after=1)
        sent = await fake.send_mention(bot.url, fake.general, fake.alice, "go [[len=900]]")
        await bot.settle(2)
        replies = bot.bot_replies(fake.general, sent[0].payload["event"]["ts"])
        assert [r.text for r in replies] == [long_text(900)]
        # Only the injected 429: the penalty kept every later write inside the limit.
        assert fake.rate_limited_count == 1
    finally:
        await bot.close()


async def test_answers_beyond_the_update_allowance_show_paragraphs_while_they_stream(
        kimi: FakeKimi, store: Store) -> None:
    # Slack's real tiers (not time-scaled): chat.update can stream only a few of these answers at once.
    async with FakeSlack() as fake:
        channels = [fake.general] + [fake.add_channel(f"busy-{i}").id for i in range(3)]
        kimi.tokens_per_second = 120
        bot = await start_bot(fake, kimi, store, time_scale=1.0)
        try:
            sent = [await fake.send_mention(bot.url, channels[i % 4], fake.alice, f"q{i} [[len={1500 + i}]]")
                    for i in range(12)]
            await bot.settle(24, limit=60)
            assert fake.rate_limited_count == 0
            offset = time.time() - time.monotonic()
            marks = {content: m for content, m in kimi.stream_marks}
            early = 0
            for i, deliveries in enumerate(sent):
                event = deliveries[0].payload["event"]
                replies = bot.bot_replies(event["channel"], event["ts"])
                assert "".join(r.text for r in replies) == long_text(1500 + i), f"answer {i}"
                if len(replies) > 1 and all(len(r.versions) == 1 for r in replies):
                    # A paragraph answer: never edited, and its first paragraph was out before Kimi finished.
                    first_shown = replies[0].versions[0].at - offset
                    early += first_shown < marks[long_text(1500 + i)]["last_content"]
            assert early >= 3
        finally:
            await bot.close()
