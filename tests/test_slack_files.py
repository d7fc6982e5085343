"""Screenshots and files on Slack messages: download with the bot token, stubs, the HTML login page, refusals."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from adapters.slack.files import NO_SCOPE, NOT_VISIBLE
from tests.fixtures.slack_bot import SlackBot


def png(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def ask_with_file(bot: SlackBot, file_id: str, text: str = "what is on this screenshot?") -> str:
    fake = bot.fake
    before = bot.adapter.deliveries
    sent = await fake.send_mention(bot.url, fake.general, fake.alice, text, files=[file_id])
    await bot.settle(before + len(sent))
    thread = sent[0].payload["event"]["ts"]
    replies = bot.bot_replies(fake.general, thread)
    assert len(replies) == 1
    return replies[0].text


async def test_screenshot_on_a_mention_reaches_kimi(bot: SlackBot) -> None:
    shot = bot.fake.add_file("screen.png", png(), "image/png")
    answer = await ask_with_file(bot, shot.id)
    assert answer.startswith("I see 1 image: 40x30")
    assert [d.authorized for d in bot.fake.downloads] == [True]


async def test_screenshot_in_a_thread_reply_and_a_stub_resolved_with_files_info(bot: SlackBot) -> None:
    fake = bot.fake
    first = await fake.send_mention(bot.url, fake.general, fake.alice, "hi")
    await bot.settle(2)
    thread = first[0].payload["event"]["ts"]
    shot = fake.add_file("later.png", png(64, 48), "image/png")
    event: dict[str, Any] = fake.payloads.message(fake.general, fake.alice, "and this?", thread_ts=thread,
                                                  files=[shot.id])
    event["files"] = [{"id": shot.id, "mode": "file_access", "file_access": "check_file_info", "created": 0,
                       "timestamp": 0, "user": ""}]
    await fake.send_event(bot.url, event)
    await bot.settle(3)
    assert len(fake.calls_to("files.info")) == 1
    assert bot.bot_replies(fake.general, thread)[-1].text.startswith("I see 1 image: 64x48")


async def test_login_page_instead_of_the_file_is_explained(bot: SlackBot) -> None:
    hidden = bot.fake.add_file("secret.png", png(), "image/png", bot_can_access=False)
    answer = await ask_with_file(bot, hidden.id)
    assert NOT_VISIBLE in answer and "secret.png" in answer


async def test_missing_files_read_scope_is_explained(bot: SlackBot) -> None:
    fake = bot.fake
    fake.set_scopes([s for s in fake.state.workspaces[fake.team_id].scopes if s != "files:read"])
    shot = fake.add_file("screen.png", png(), "image/png")
    answer = await ask_with_file(bot, shot.id)
    assert NO_SCOPE in answer and "files:read" in answer


async def test_text_files_are_read_and_other_files_refused(bot: SlackBot) -> None:
    fake = bot.fake
    notes = fake.add_file("notes.txt", b"The launch code is 0000.", "text/plain")
    answer = await ask_with_file(bot, notes.id, "summarize the file")
    assert answer.startswith("Echo:") and "launch code is 0000" in answer
    archive = fake.add_file("bundle.zip", b"PK\x03\x04junk", "application/zip")
    answer = await ask_with_file(bot, archive.id, "open this")
    assert "can't read this kind of file" in answer and "PDFs" in answer
