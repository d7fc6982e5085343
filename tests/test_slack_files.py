"""Screenshots and files on Slack messages: download with the bot token, stubs, the HTML login page, refusals."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from adapters.slack.files import NO_SCOPE, NOT_VISIBLE, token_may_go_to
from tests.fixtures import media
from tests.fixtures.screenshots import Shot
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
    assert "can't read this kind of file" in answer and "PDFs" in answer and "videos" in answer


@pytest.mark.parametrize("transfer", ["length", "chunked"])
async def test_a_screen_recording_is_watched_and_its_upload_deleted(bot: SlackBot, transfer: str) -> None:
    bot.fake.options.file_transfer = transfer
    recording = bot.fake.add_file("Screen Recording 2026-11-30 at 10.02.11.mov", media.mp4(12_000_000),
                                  "video/quicktime")
    answer = await ask_with_file(bot, recording.id, "why does the button flicker?")
    assert answer.startswith("I watched 1 video: 12,000,000 bytes of MP4"), answer
    [upload] = bot.kimi.files
    assert upload.purpose == "video" and upload.deleted


async def test_a_word_document_is_read(bot: SlackBot) -> None:
    document = bot.fake.add_file("Q3 plan.docx", media.docx("Ship the importer by October."),
                                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    answer = await ask_with_file(bot, document.id, "what is the deadline?")
    assert "Ship the importer by October." in answer


@pytest.mark.parametrize("transfer", ["length", "chunked"])
@pytest.mark.parametrize("name", ["png-180k", "png-730k", "jpeg-730k", "png-4.3m", "png-8m"])
async def test_real_size_screenshots_arrive_whole(bot: SlackBot, screenshots: Callable[[str], Shot],
                                                  name: str, transfer: str) -> None:
    """Slack serves a screenshot in many reads; the whole file must reach the decoder, whatever its size."""
    shot = screenshots(name)
    bot.fake.options.file_transfer = transfer
    uploaded = bot.fake.add_file(f"Screenshot 2026-11-30{shot.suffix}", shot.data, shot.mime)
    answer = await ask_with_file(bot, uploaded.id)
    scale = min(1.0, 2048 / max(shot.width, shot.height))
    assert answer.startswith(f"I see 1 image: {round(shot.width * scale)}x{round(shot.height * scale)}"), answer
    assert "damaged" not in answer


@pytest.fixture
async def foreign_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that is not Slack's, recording every Authorization header it is sent."""
    seen: list[str] = []

    async def grab(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(body=png(), content_type="image/png")

    app = web.Application()
    app.add_routes([web.get("/{tail:.*}", grab)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_bot_token_never_goes_to_a_host_that_is_not_slack(bot: SlackBot,
                                                                 foreign_host: tuple[str, list[str]]) -> None:
    fake = bot.fake
    host, seen = foreign_host
    shot = fake.add_file("screen.png", png(), "image/png")
    event: dict[str, Any] = fake.payloads.app_mention(fake.general, fake.alice, "what is this?", files=[shot.id])
    for file in event["files"]:
        file["url_private"] = f"{host}/files-pri/{fake.team_id}-{shot.id}/screen.png"
        file["url_private_download"] = f"{host}/files-pri/{fake.team_id}-{shot.id}/download/screen.png"
    await fake.send_event(bot.url, event)
    await bot.settle(1)
    replies = bot.bot_replies(fake.general, event["ts"])
    assert seen == []
    assert len(replies) == 1 and "does not point at Slack's file servers" in replies[0].text


@pytest.mark.parametrize(("url", "api", "allowed"), [
    ("https://files.slack.com/files-pri/T1-F1/a.png", "https://slack.com/api/", True),
    ("https://files.slack-gov.com/files-pri/T1-F1/a.png", "https://slack-gov.com/api/", True),
    ("https://slack.com/files-pri/T1-F1/a.png", "https://slack.com/api/", True),
    ("http://files.slack.com/files-pri/T1-F1/a.png", "https://slack.com/api/", False),
    ("https://files.slack.com.evil.example/a.png", "https://slack.com/api/", False),
    ("https://evilslack.com/a.png", "https://slack.com/api/", False),
    ("https://files.slack.com:8443/a.png", "https://slack.com/api/", False),
    ("http://127.0.0.1:9000/files-pri/a.png", "http://127.0.0.1:9000/api/", True),
    ("http://127.0.0.1:9001/files-pri/a.png", "http://127.0.0.1:9000/api/", False),
    ("file:///etc/passwd", "https://slack.com/api/", False),
])
def test_file_hosts_that_may_receive_the_token(url: str, api: str, allowed: bool) -> None:
    assert token_may_go_to(url, api) is allowed
