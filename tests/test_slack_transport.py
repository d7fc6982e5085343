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


async def test_while_draining_healthz_fails_and_new_events_are_kept_for_another_process(bot: SlackBot) -> None:
    """A rolling deploy: the load balancer is told to move on, and what still arrives is stored, not dropped."""
    fake = bot.fake
    await bot.adapter.services.engine.drain(grace=1.0)
    bot.adapter.draining = True
    async with aiohttp.ClientSession() as session:
        async with session.get(bot.url.replace("/slack/events", "/healthz")) as response:
            assert response.status == 503 and (await response.json())["draining"] is True
    event = fake.payloads.app_mention(fake.general, fake.alice, "arrived during the deploy")
    delivery = await fake.send_event(bot.url, event)
    assert delivery.ok  # acknowledged: Slack will not send it again
    await bot.settle(1)
    assert bot.bot_replies(fake.general, event["ts"]) == [] and bot.kimi.requests == []
    (turn,) = await bot.store.unfinished_turns(["slack"], not_owned_by="nobody")
    assert turn.lease_owner is None and turn.question["text"] == "arrived during the deploy"
