"""Where write budgets live: in this process (no `[redis] url`) or in Redis, shared by every replica."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.budget import LocalBudgets
from bot.config import ConfigError, RedisConfig
from bot.types import Budgets

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.metrics import Metrics
    from bot.replica_census import ReplicaCensus

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BudgetSource:
    budgets: Budgets
    client: Redis | None = None
    census: ReplicaCensus | None = None
    # Reports this replica's tallies and reads the others' (RedisBudgets.exchange_tallies).
    tallies: Callable[[], Awaitable[None]] | None = None
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def shared(self) -> bool:
        return self.client is not None

    async def ping(self) -> bool:
        """For /readyz: True without Redis; with Redis, whether it answers now."""
        if self.client is None:
            return True
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    def start(self) -> None:
        if self.census is not None and self.tallies is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="kimibot-shared-budgets")

    async def _run(self) -> None:
        """Announce this replica every `census.every` s; exchange tallies in between."""
        from bot.shared_budgets import TALLY_EVERY

        census, tallies = self.census, self.tallies
        assert census is not None and tallies is not None
        next_announce = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= next_announce:
                await census.announce()
                next_announce = loop.time() + census.every
            await tallies()
            await asyncio.sleep(TALLY_EVERY)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.census is not None:
            await self.census.withdraw()
        if self.client is not None:
            await self.client.aclose()


def budget_source(config: RedisConfig, *, member: str, metrics: Metrics | None) -> BudgetSource:
    if config.url is None:
        return BudgetSource(LocalBudgets(metrics=metrics))
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise ConfigError("redis.url: set, but the redis package is missing; "
                          "pip install 'kimibot[redis]' (or kimibot[scale])") from None
    from bot.replica_census import ReplicaCensus
    from bot.shared_budgets import RedisBudgets

    try:
        client = Redis.from_url(config.url.get_secret_value(), socket_timeout=config.timeout_seconds,
                                socket_connect_timeout=config.timeout_seconds, health_check_interval=30)
    except ValueError as error:
        raise ConfigError(f"redis.url: {error}") from None
    census = ReplicaCensus(client, prefix=config.key_prefix, member=member, every=config.announce_seconds,
                           ttl=3 * config.announce_seconds, metrics=metrics)
    budgets = RedisBudgets(client, prefix=config.key_prefix, member=member, replicas=lambda: census.count,
                           retry_seconds=config.retry_seconds, metrics=metrics)
    return BudgetSource(budgets, client, census, budgets.exchange_tallies)
