"""Slack HTTP transport: health check, URL verification, Bolt's signature checks."""

from __future__ import annotations

import aiohttp

from tests.fixtures.slack_bot import SlackBot


async def test_healthz_and_url_verification(bot: SlackBot) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(bot.url.replace("/slack/events", "/healthz")) as response:
            assert response.status == 200 and (await response.json())["ok"] is True
    status, body, _ = await bot.fake.send_url_verification(bot.url)
    assert status == 200 and "challenge" in body


async def test_forged_or_stale_signature_is_rejected(bot: SlackBot) -> None:
    fake = bot.fake
    forged = await fake.send_event(bot.url, fake.payloads.app_mention(fake.general, fake.alice, "hi"),
                                   bad_signature=True)
    stale = await fake.send_event(bot.url, fake.payloads.app_mention(fake.general, fake.alice, "hi"),
                                  stale_timestamp=True)
    command = await fake.send_slash_command(bot.url, "/kimi", "hello", bad_signature=True)
    assert [forged.status, stale.status, command.status] == [401, 401, 401]
    assert bot.adapter.deliveries == 0
    assert not fake.bot_messages() and bot.kimi.requests == []
