"""Replicas announce themselves in Redis, so each knows how many share the platforms' limits.

Every replica refreshes its entry in one sorted set (score: when the entry expires, on Redis's clock) every
`every` seconds; an entry not refreshed for `ttl` seconds is gone, so a replica that was killed stops counting
within `ttl`. The count matters only while Redis is unreachable: the shared budgets then fall back to
in-process ones, each replica taking 1/count of every limit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.metrics import Metrics

log = logging.getLogger(__name__)

# KEYS[1]: the set. ARGV: member, ttl in ms. Returns how many replicas are alive, this one included.
_ANNOUNCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
"""


class ReplicaCensus:
    def __init__(self, client: Redis, *, prefix: str, member: str, every: float = 5.0, ttl: float = 15.0,
                 metrics: Metrics | None = None) -> None:
        self._client = client
        self._key = f"{prefix}:replicas"
        self._member = member
        self.every = every
        self._ttl_ms = int(ttl * 1000)
        self._metrics = metrics
        self._script = client.register_script(_ANNOUNCE)
        self.count = 1  # until Redis has said otherwise, this replica knows only itself

    async def announce(self) -> int:
        """Refresh this replica's entry; the count of live replicas, or the last one known if Redis is away."""
        try:
            self.count = max(1, int(await self._script(keys=[self._key], args=[self._member, self._ttl_ms])))
        except Exception as error:  # Redis away: keep the last count, the budgets report the outage
            log.debug("replica announcement failed", extra={"error": type(error).__name__})
        if self._metrics is not None:
            self._metrics.replicas.set(self.count)
        return self.count

    async def withdraw(self) -> None:
        """Leave the count at a clean shutdown, so the others need not wait for the entry to expire."""
        try:
            await self._client.zrem(self._key, self._member)
        except Exception as error:
            log.debug("replica withdrawal failed", extra={"error": type(error).__name__})
