"""Platforms under supervision: a crash restarts that platform with backoff; the other one keeps answering."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.config import ConfigError
from bot.supervisor import supervise

FAST = (0.01, 0.02, 0.05)


async def test_a_crashing_platform_restarts_while_the_other_keeps_running(caplog: pytest.LogCaptureFixture) -> None:
    stopping = asyncio.Event()
    starts = {"slack": 0, "discord": 0}
    healthy_ticks = 0

    async def flaky() -> None:
        starts["discord"] += 1
        if starts["discord"] <= 3:
            raise KeyError("a payload discord.py choked on")
        await stopping.wait()

    async def steady() -> None:
        nonlocal healthy_ticks
        starts["slack"] += 1
        while not stopping.is_set():
            healthy_ticks += 1
            await asyncio.sleep(0.005)

    with caplog.at_level(logging.INFO, logger="bot.supervisor"):
        both = asyncio.gather(supervise("discord", flaky, stopping, backoff=FAST),
                              supervise("slack", steady, stopping, backoff=FAST))
        while starts["discord"] < 4:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        ticks_during_crashes = healthy_ticks
        stopping.set()
        await asyncio.wait_for(both, 5)
    assert starts == {"slack": 1, "discord": 4}
    assert ticks_during_crashes > 0
    crashes = [r for r in caplog.records if r.getMessage() == "platform crashed; restarting"]
    assert len(crashes) == 3 and all(r.exc_info for r in crashes) and crashes[0].__dict__["platform"] == "discord"


async def test_a_configuration_error_on_the_first_start_is_fatal() -> None:
    async def misconfigured() -> None:
        raise ConfigError("slack.bot_token: Slack refused it")

    with pytest.raises(ConfigError):
        await supervise("slack", misconfigured, asyncio.Event(), backoff=FAST)


async def test_a_configuration_error_after_running_is_retried() -> None:
    stopping = asyncio.Event()
    attempts = 0

    async def later_refused() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("connection dropped")
        if attempts == 2:
            raise ConfigError("discord: intents revoked")  # fixed in the portal while the bot keeps trying
        stopping.set()

    await asyncio.wait_for(supervise("discord", later_refused, stopping, backoff=FAST), 5)
    assert attempts == 3


async def test_stopping_during_a_backoff_ends_at_once() -> None:
    stopping = asyncio.Event()

    async def crash() -> None:
        stopping.set()
        raise RuntimeError("boom")

    await asyncio.wait_for(supervise("slack", crash, stopping, backoff=(60.0,)), 1)
