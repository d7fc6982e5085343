"""Hostile and broken HTTP requests: a 4xx each, never a 5xx, and nothing of their bodies in the log.

The log is captured the way production writes it (JSON at INFO, configured before the adapter starts), so
library loggers (Bolt's per-class loggers among them) are covered too.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.logs import setup_logging
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_events import signature
from tests.fixtures.slack_bot import SlackBot, start_bot

SECRET = "fake-signing-secret"
MARK = "PRIVATE-WORDS-7731"


@pytest.fixture
async def logged(fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> AsyncIterator[tuple[SlackBot, io.StringIO]]:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)  # before the adapter: Bolt's loggers copy levels when made
    harness = await start_bot(fast_slack, kimi, store)
    yield harness, stream
    await harness.close()


async def post(url: str, body: bytes, *, timestamp: str | None = None, sign: bool = True, forged: bool = False,
               content_type: str = "application/json") -> tuple[int, str]:
    ts = timestamp if timestamp is not None else str(int(time.time()))
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts}
    if sign:
        headers["X-Slack-Signature"] = signature(SECRET + ("-forged" if forged else ""), ts, body)
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def envelope(fake: FakeSlack, text: str, **event: object) -> bytes:
    payload = fake.payloads.envelope(fake.payloads.app_mention(fake.general, fake.alice, text), None, None)
    payload["event"].update(event)
    return json.dumps(payload).encode()


async def test_hostile_requests_get_4xx_and_leave_no_body_in_the_log(logged: tuple[SlackBot, io.StringIO]) -> None:
    bot, log = logged
    fake = bot.fake
    body = envelope(fake, f"hello {MARK}")
    answers = [
        await post(bot.url, body, forged=True),  # a signature made with another secret
        await post(bot.url, body, timestamp=str(int(time.time()) - 3600)),  # replayed an hour later
        await post(bot.url, body, timestamp="yesterday", sign=False),  # unsigned, non-numeric timestamp
        await post(bot.url, body, sign=False),  # no signature at all
        await post(bot.url, f'{{"type": "event_callback", "text": "{MARK}"'.encode()),  # signed, broken JSON
        await post(bot.url, b"\xff\xfe" + MARK.encode() + b"\xc3("),  # signed, not UTF-8
        await post(bot.url, f"payload={{{MARK}".encode(), content_type="application/x-www-form-urlencoded"),
    ]
    assert [status for status, _ in answers] == [401, 401, 401, 401, 400, 400, 400]
    text = log.getvalue()
    assert MARK not in text
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    rejected = [r for r in records if r["msg"] == "slack request rejected"]
    assert [r["status"] for r in rejected] == [401, 401, 401, 401, 400, 400, 400]
    assert rejected[-1]["rejected_total"] == 7
    assert not any("exc" in r or r["level"] == "error" for r in records)
    assert bot.adapter.deliveries == 0 and bot.kimi.requests == []


async def test_oversized_bodies_get_413_and_a_warning(logged: tuple[SlackBot, io.StringIO]) -> None:
    bot, log = logged
    huge = envelope(bot.fake, MARK + "x" * (5 * 1024 * 1024))
    status, _ = await post(bot.url, huge)
    assert status == 413
    (line,) = [json.loads(x) for x in log.getvalue().splitlines() if "slack request rejected" in x]
    assert line["level"] == "warning" and line["reason"] == "body too large" and MARK not in log.getvalue()


async def test_the_longest_message_slack_can_send_is_read_and_refused_politely(logged: tuple[SlackBot, io.StringIO],
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A 1 MB message with its blocks (a 2 MB body, beyond aiohttp's 1 MB default): a clear reply, no 413."""
    bot, log = logged
    fake = bot.fake
    text = "word " * 200_000
    blocks = [{"type": "rich_text", "elements": [{"type": "rich_text_section",
                                                  "elements": [{"type": "text", "text": text}]}]}]
    body = envelope(fake, text, blocks=blocks)
    assert len(body) > 2_000_000
    status, _ = await post(bot.url, body)
    assert status == 200
    await bot.settle(1)
    event_ts = json.loads(body)["event"]["ts"]
    (reply,) = bot.bot_replies(fake.general, event_ts)
    assert "characters long" in reply.text and "attach it as a text file" in reply.text
    assert bot.kimi.requests == []
    assert "word word" not in log.getvalue()


async def test_database_errors_never_carry_message_text(store: Store) -> None:
    secret = f"message text {MARK}"
    with pytest.raises(LookupError) as failure:
        await store.add_message(987654, role="user", text=secret)  # no such conversation
    cause = failure.value.__cause__
    assert cause is not None and MARK not in str(cause) and "hide_parameters" in str(cause)
