"""Rating answers on Slack (feedback_buttons under the answer, a reason form for 👎) and the App Home."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from storage.store import Rating, Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_state import Message
from tests.fixtures.slack_bot import SlackBot, start_bot


async def until(check: Callable[[], Awaitable[bool]], limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        while not await check():  # noqa: ASYNC110 (the store changes from other requests; there is no event)
            await asyncio.sleep(0.02)


def feedback_values(msg: Message) -> list[str]:
    return [element[side]["value"] for block in msg.blocks or [] if block["type"] == "context_actions"
            for element in block["elements"] for side in ("positive_button", "negative_button")]


async def answered(bot: SlackBot, text: str) -> Message:
    fake = bot.fake
    deliveries = await fake.send_mention(bot.url, fake.general, fake.alice, text)
    await bot.settle(2)
    [answer] = bot.bot_replies(fake.general, deliveries[0].payload["event"]["ts"])
    return answer


async def test_an_answer_is_rated_and_a_thumbs_down_gives_its_reason(bot: SlackBot) -> None:
    fake, store = bot.fake, bot.store
    answer = await answered(bot, "tell me [[len=600]]")
    up, down = feedback_values(answer)
    assert up.startswith("up:") and down == "down:" + up[3:]
    [markdown] = [b for b in answer.blocks or [] if b["type"] == "markdown"]
    assert markdown["text"] == answer.text and len(answer.text) == 600  # the text shows in full beside them

    assert (await fake.interactive.press_feedback(bot.url, answer, user=fake.alice, positive=True)).status == 200
    assert (await fake.interactive.press_feedback(bot.url, answer, user=fake.bob, positive=False)).status == 200

    async def form_opened() -> bool:
        return bool(fake.views.opened)
    await until(form_opened)
    [form] = fake.views.opened
    assert form.user == fake.bob and form.view["private_metadata"] == up[3:]
    assert (await fake.interactive.submit(bot.url, form, {"reason": "Outdated: that API was removed"})).status == 200

    async def reason_stored() -> bool:
        return any(e.reason for e in await store.recent_feedback("slack", fake.team_id))
    await until(reason_stored)
    entries = {e.user: e for e in await store.recent_feedback("slack", fake.team_id)}
    assert entries[fake.alice].rating is Rating.UP and entries[fake.alice].reason is None
    assert entries[fake.bob].rating is Rating.DOWN
    assert entries[fake.bob].reason == "Outdated: that API was removed"
    assert entries[fake.bob].channel == fake.general and entries[fake.bob].turn_id == int(up[3:])


async def test_a_thumbs_down_whose_form_cannot_open_still_counts(bot: SlackBot) -> None:
    fake = bot.fake
    answer = await answered(bot, "hello")
    fake.fail_next("views.open", "expired_trigger_id")
    await fake.interactive.press_feedback(bot.url, answer, user=fake.bob, positive=False)

    async def counted() -> bool:
        return (await bot.store.feedback_counts("slack", fake.team_id)).down == 1
    await until(counted)
    assert not fake.views.opened


async def test_native_streams_carry_the_buttons_in_their_stop(fast_slack: FakeSlack, kimi: FakeKimi,
                                                              store: Store) -> None:
    bot = await start_bot(fast_slack, kimi, store, streaming="native")
    try:
        answer = await answered(bot, "tell me [[len=900]]")
    finally:
        await bot.close()
    [stop] = fast_slack.calls_to("chat.stopStream")
    assert stop.params["blocks"][0]["type"] == "context_actions"
    assert len(feedback_values(answer)) == 2 and answer.text.startswith("Paragraph 1")
    assert not fast_slack.calls_to("chat.update")  # no extra write was spent on the buttons


def home_text(view: dict[str, Any]) -> str:
    return "\n".join(str((b.get("text") or {}).get("text", "")) for b in view["blocks"])


async def test_app_home_shows_usage_to_everyone_and_feedback_to_admins(fast_slack: FakeSlack, kimi: FakeKimi,
                                                                       store: Store) -> None:
    fake = fast_slack
    bot = await start_bot(fake, kimi, store, access={"admins": [fake.alice]})
    try:
        answer = await answered(bot, "hello there")
        await fake.interactive.press_feedback(bot.url, answer, user=fake.bob, positive=False)
        await until(lambda: _opened(fake))
        await fake.interactive.submit(bot.url, fake.views.opened[0], {"reason": "too vague"})

        async def has_reason() -> bool:
            return any(e.reason for e in await store.recent_feedback("slack", fake.team_id))
        await until(has_reason)
        for user in (fake.alice, fake.bob):
            await fake.send_event(bot.url, {"type": "app_home_opened", "user": user, "channel": fake.dm_alice,
                                            "tab": "home", "event_ts": f"{time.time():.6f}"})

        async def published() -> bool:
            return len(fake.views.home) == 2
        await until(published)
        # Opening the tab again at once is served from what was just published.
        await fake.send_event(bot.url, {"type": "app_home_opened", "user": fake.alice, "channel": fake.dm_alice,
                                        "tab": "home", "event_ts": f"{time.time():.6f}"})
        await fake.send_event(bot.url, {"type": "app_home_opened", "user": fake.alice, "channel": fake.dm_alice,
                                        "tab": "messages", "event_ts": f"{time.time():.6f}"})
        await fake.drain()
    finally:
        await bot.close()
    [admin_view] = fake.views.home[fake.alice]
    [user_view] = fake.views.home[fake.bob]
    admin, user = home_text(admin_view), home_text(user_view)
    assert "You, this month:* 1 call" in admin and "You, this month:* no Kimi calls" in user
    assert "model `kimi-k2.6`, thinking off" in user
    assert "Everyone, this month:* 1 call" in admin and f"<#{fake.general}>" in admin
    assert "👍 0 · 👎 1" in admin and "“too vague”" in admin and f"<@{fake.bob}>" in admin
    assert "Everyone" not in user and "too vague" not in user


async def _opened(fake: FakeSlack) -> bool:
    return bool(fake.views.opened)
