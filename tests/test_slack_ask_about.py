"""The "Ask Kimi about this" message shortcut: a form for the question, the answer in the message's thread
quoting it (files included), or in the user's DM where the bot is not in the channel."""

from __future__ import annotations

from tests.fixtures.slack_bot import SlackBot
from tests.process_support import until
from tests.test_slack_files import png

SHORTCUT = "kimi_ask_about"


def user_text(bot: SlackBot) -> str:
    content = [m for m in bot.kimi.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]
    return content if isinstance(content, str) else "\n".join(p.get("text", "") for p in content)


async def test_a_message_with_a_screenshot_is_asked_about_in_its_thread(bot: SlackBot) -> None:
    fake = bot.fake
    shot = fake.add_file("error.png", png(64, 48), "image/png")
    [msg] = fake.seed_thread(fake.general, [(fake.alice, "Deploy fails with E42 since this morning", [shot.id])])
    delivery = await fake.interactive.message_shortcut(bot.url, msg, user=fake.bob, callback_id=SHORTCUT)
    assert delivery.status == 200 and delivery.acked_in_time
    await until(lambda: bool(fake.views.opened), what="the question form")
    [form] = fake.views.opened
    assert form.user == fake.bob and "E42" in str(form.view["blocks"][0])
    assert (await fake.interactive.submit(bot.url, form, {"question": "what does this error mean?"})).status == 200
    await bot.settle(1)
    question, answer = bot.bot_replies(fake.general, msg.ts)
    assert question.text.startswith(f"<@{fake.bob}> asked Kimi about this message:\n> what does this error mean?")
    assert answer.text.startswith("I see 1 image: 64x48")  # the message's screenshot reached Kimi
    said = user_text(bot)
    assert "About this message from alice:\n> Deploy fails with E42 since this morning" in said
    assert said.endswith("what does this error mean?")


async def test_where_the_bot_is_not_a_member_the_answer_goes_to_the_users_dm(bot: SlackBot) -> None:
    fake = bot.fake
    [msg] = fake.seed_thread(fake.random, [(fake.bob, "Is the office open on Friday?")])
    await fake.interactive.message_shortcut(bot.url, msg, user=fake.alice, callback_id=SHORTCUT)
    await until(lambda: bool(fake.views.opened), what="the question form")
    await fake.interactive.submit(bot.url, fake.views.opened[0], {"question": "summarize it"})
    await bot.settle(1)
    assert not bot.bot_replies(fake.random, msg.ts)
    [asked] = [m for m in fake.bot_messages(fake.dm_alice) if m.thread_ts in (None, m.ts)]  # a parent
    assert f"I'm not in <#{fake.random}>" in asked.text
    [answer] = bot.bot_replies(fake.dm_alice, asked.ts)
    assert "Is the office open on Friday?" in answer.text  # the fake echoes the question it was sent
