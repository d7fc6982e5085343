"""Slack's agent surface: a conversation opened from the top bar gets suggested prompts, a title from its first
question, loading messages while Kimi works and a Stop button on its streamed answer; the agent view's Messages
tab gets the prompts; a workspace without the surface degrades to plain DM threads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from storage.store import Store, TurnState
from tests.fakes.kimi import FakeKimi, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_web import WebOptions
from tests.fixtures.slack_bot import SlackBot, start_bot
from tests.process_support import until

PROMPTS = [{"title": "Summarize", "message": "Summarize this for me"},
           {"title": "Explain", "message": "Explain this error"}]
ASSISTANT = {"suggested_prompts": PROMPTS, "loading_messages": ["Reading…", "Thinking…"]}


def in_thread(fake: FakeSlack, text: str, thread_ts: str) -> dict[str, Any]:
    """A user's message in an assistant thread, as Slack records it (with its assistant_thread action token)."""
    event = fake.payloads.message(fake.dm_alice, fake.alice, text, thread_ts=thread_ts)
    return {**event, "parent_user_id": fake.bot_user_id, "assistant_thread": {"action_token": "10647.96043.afce"}}


async def test_a_conversation_from_the_top_bar_is_prompted_titled_and_streamed(fast_slack: FakeSlack,
                                                                               kimi: FakeKimi, store: Store) -> None:
    fake = fast_slack
    bot = await start_bot(fake, kimi, store, assistant=ASSISTANT)
    try:
        started = fake.assistant.open_thread(fake.team_id, fake.dm_alice, fake.alice, context_channel=fake.general)
        await fake.send_event(bot.url, started)
        root = started["assistant_thread"]["thread_ts"]
        await until(lambda: (fake.dm_alice, root) in fake.assistant.prompts, what="suggested prompts")
        # Opened beside #general: the channel prompt (naming it) comes first.
        assert fake.assistant.prompts[(fake.dm_alice, root)] == [
            {"title": "About this channel", "message": f"What is <#{fake.general}> for, going by its name?"},
            *PROMPTS]
        await fake.send_event(bot.url, in_thread(fake, "Explain this error [[len=700]]", root))
        await bot.settle(2)
        await fake.send_event(bot.url, in_thread(fake, "and shorter?", root))
        await bot.settle(3)
    finally:
        await bot.close()
    assert fake.assistant.titles == {(fake.dm_alice, root): "Explain this error [[len=700]]"}  # first only
    assert fake.chat.loading_messages[(fake.dm_alice, root)] == ["Reading…", "Thinking…"]
    replies = bot.bot_replies(fake.dm_alice, root)
    assert len(replies[0].text) == 700 and replies[1].text == "Echo: and shorter?"
    starts = fake.calls_to("chat.startStream")
    assert len(starts) == 2 and all(c.params.get("is_stoppable") for c in starts)
    assert not any(m.text.startswith("_") for m in replies)  # no placeholder: the status showed instead
    assert "Explain this error" in str(kimi.requests[1]["messages"])  # one conversation per thread


async def _stop_mid_answer(bot: SlackBot, *, send_event: bool) -> str:
    fake, kimi = bot.fake, bot.kimi
    kimi.tokens_per_second = 40
    parent = fake.seed_thread(fake.dm_alice, [(fake.alice, "a long story please [[len=3000]]")])[0].ts
    streams = len(fake.calls_to("chat.startStream"))
    await fake.send_event(bot.url, fake.payloads.message_for(fake.dm_alice, parent))
    await until(lambda: len(fake.calls_to("chat.startStream")) > streams, what="the stream started")
    ts = bot.bot_replies(fake.dm_alice, parent)[0].ts
    await asyncio.sleep(0.3)
    stopped = fake.assistant.press_stop(fake.dm_alice, ts, fake.alice)
    if send_event:
        await fake.send_event(bot.url, {**stopped, "event_ts": f"{time.time():.6f}"})
    await bot.settle(1, limit=30)
    return ts


async def test_stop_in_slack_ends_the_answer_like_the_stop_command(fast_slack: FakeSlack, kimi: FakeKimi,
                                                                   store: Store) -> None:
    for turn_id, send_event in ((1, True), (2, False)):  # the message_stream_stopped event, or the refused append
        bot = await start_bot(fast_slack, kimi, store)
        try:
            ts = await _stop_mid_answer(bot, send_event=send_event)
        finally:
            await bot.close()
        answer = fast_slack.message(fast_slack.dm_alice, ts)
        assert answer.text.endswith("_Stopped._"), answer.text[-80:]
        assert len(answer.text) < 2000, "the answer went on after Stop"
        turn = await store.get_turn(turn_id)
        assert turn is not None and turn.state is TurnState.STOPPED


async def test_the_agent_views_messages_tab_gets_the_prompts(fast_slack: FakeSlack, kimi: FakeKimi,
                                                             store: Store) -> None:
    fake = fast_slack
    bot = await start_bot(fake, kimi, store, assistant=ASSISTANT)
    try:
        for _ in range(2):  # opened twice in a minute: set once
            await fake.send_event(bot.url, {"type": "app_home_opened", "user": fake.alice, "channel": fake.dm_alice,
                                            "tab": "messages", "event_ts": f"{time.time():.6f}"})
        await fake.drain()
        await until(lambda: (fake.dm_alice, "") in fake.assistant.prompts, what="messages tab prompts")
        deliveries = await fake.send_mention(bot.url, fake.dm_alice, fake.alice, "what is a monad?")
        await bot.settle(1)
    finally:
        await bot.close()
    assert fake.assistant.prompts[(fake.dm_alice, "")] == PROMPTS
    assert len(fake.calls_to("assistant.threads.setSuggestedPrompts")) == 1
    question = deliveries[0].payload["event"]["ts"]
    assert fake.assistant.titles[(fake.dm_alice, question)] == "what is a monad?"
    assert [m.text for m in bot.bot_replies(fake.dm_alice, question)] == ["Echo: what is a monad?"]


async def test_a_workspace_without_the_agent_surface_gets_plain_dm_threads(kimi: FakeKimi, store: Store) -> None:
    async with FakeSlack(time_scale=20.0, options=WebOptions(agent_app=False)) as fake:
        bot = await start_bot(fake, kimi, store, assistant=ASSISTANT)
        try:
            for n, text in enumerate(("first question", "second question"), start=1):
                await fake.send_mention(bot.url, fake.dm_alice, fake.alice, text)
                await bot.settle(n)  # one after the other: two first questions at once would both ask
        finally:
            await bot.close()
        assert len(fake.calls_to("assistant.threads.setTitle")) == 1  # refused once, then not asked again
        assert sorted(m.text for m in fake.bot_messages(fake.dm_alice)) == ["Echo: first question",
                                                                           "Echo: second question"]


async def test_a_search_after_the_answer_began_shows_as_a_task_in_the_stream(fast_slack: FakeSlack, kimi: FakeKimi,
                                                                             store: Store) -> None:
    fake = fast_slack
    kimi.enqueue(Reply(content="Let me look that up. ", tool_calls=[{"name": "web_search",
                                                                     "arguments": {"query": "release date"}}]))
    kimi.enqueue(Reply(content="It was released in May."))
    kimi.tools.latency = 1.5
    bot = await start_bot(fake, kimi, store)
    try:
        asked = await fake.send_mention(bot.url, fake.dm_alice, fake.alice, "when was it released?")
        await bot.settle(1)
    finally:
        await bot.close()
    [answer] = bot.bot_replies(fake.dm_alice, asked[0].payload["event"]["ts"])
    assert answer.text.startswith("Let me look that up. ") and "It was released in May." in answer.text
    assert answer.stream is not None
    steps = [(c["title"], c["status"]) for c in answer.stream.chunks if c["type"] == "task_update"]
    assert steps == [("Searching the web…", "in_progress"), ("Searching the web…", "complete")]
