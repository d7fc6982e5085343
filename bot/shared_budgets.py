"""Write budgets shared by every replica through Redis: one atomic token bucket per platform limit.

Each bucket is a Redis hash (tokens, stamp, blocked-until) changed only by one Lua script, on Redis's own
clock, so replicas on different machines neither race nor disagree about time. The script keeps the same
rules as the in-process `TokenBucketBudget`: interim writes leave `reserve` tokens for final ones, and a 429
empties the bucket and blocks it for Retry-After, for every replica at once.

Within a process, waiters still queue in order (finals first) and only the head asks Redis, so a wave of
answers costs one round trip per grant, not one per answer per poll.

Tallies (how many answers in a workspace owe a final write) are shared the same way: each replica writes its
own count into a hash every `TALLY_EVERY` seconds while it has any, and reads the sum of the others', counting
only replicas the census still sees, so a killed replica's commitments vanish with it.

If Redis cannot be reached, each bucket falls back to an in-process one at the platform's rate divided by
the replica count last seen (`ReplicaCensus`): the replicas together stay near the limit, nobody stops
answering, and one warning says so. Redis is tried again after `retry_seconds`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.budget import BucketState, TokenBucketBudget, WaitQueue
from bot.metrics import budget_wait

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.metrics import Metrics

log = logging.getLogger(__name__)


# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, threshold (1 for finals, reserve + 1 for interim writes),
# op ("take" or "penalize"), penalty seconds. Returns {granted, tokens, wait, blocked_for} as strings
# (Redis truncates Lua numbers to integers).
_BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'blocked')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate)
  stamp = now
end
local granted = 0
if ARGV[4] == 'penalize' then
  blocked = math.max(blocked, now + tonumber(ARGV[5]))
  tokens = 0
elseif ARGV[4] == 'take' and now >= blocked and tokens + 1e-9 >= threshold then
  tokens = math.max(0, tokens - 1)
  granted = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(stamp), 'blocked', tostring(blocked))
local blocked_for = math.max(0, blocked - now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + blocked_for) * 1000) + 1000)
local wait = 0
if granted == 0 then
  wait = math.max(blocked_for, (threshold - tokens) / rate)
end
return {tostring(granted), tostring(tokens), tostring(wait), tostring(blocked_for)}
"""


# KEYS[1]: the tally, KEYS[2]: the census. ARGV: this replica, its count. Returns the other live replicas' sum.
_TALLY_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], 600000)
local others = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local alive = redis.call('ZSCORE', KEYS[2], all[i])
    if alive and tonumber(alive) > now then
      others = others + tonumber(all[i + 1])
    else
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
return others
"""
TALLY_EVERY = 0.2
# A tally nobody here has read or changed for this long is not exchanged (idle workspaces cost no Redis calls).
TALLY_IDLE = 60.0


class SharedTally:
    """`Tally` whose total includes the other replicas' counts as last read from Redis."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.mine = 0
        self.others = 0
        self.reported = 0
        self.used = clock()

    def add(self, delta: int) -> None:
        self.mine += delta
        self.used = self._clock()

    @property
    def total(self) -> int:
        self.used = self._clock()
        return self.mine + self.others

    def active(self, now: float) -> bool:
        return bool(self.mine or self.reported) or now - self.used < TALLY_IDLE


class RedisBudgets:
    """Makes `SharedBudget`s and `SharedTally`s on one Redis and tracks whether Redis answers (`Budgets` for
    several replicas)."""

    def __init__(self, client: Redis, *, prefix: str, member: str, replicas: Callable[[], int],
                 retry_seconds: float = 2.0, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._prefix = prefix
        self._member = member
        self._replicas = replicas
        self._retry_seconds = retry_seconds
        self._metrics = metrics
        self._clock = clock
        self._script = client.register_script(_BUCKET_SCRIPT)
        self._tally_script = client.register_script(_TALLY_SCRIPT)
        self._tallies: dict[str, SharedTally] = {}
        self._down_until = float("-inf")
        self._down = False

    def tally(self, key: str) -> SharedTally:
        full = f"{self._prefix}:tally:{key}"
        tally = self._tallies.get(full)
        if tally is None:
            if len(self._tallies) > 5000:  # forget what nobody here counts or has asked about for a while
                now = self._clock()
                self._tallies = {k: t for k, t in self._tallies.items() if t.active(now)}
            tally = self._tallies[full] = SharedTally(self._clock)
        return tally

    async def exchange_tallies(self) -> None:
        """Report this replica's counts and read the others' (every `TALLY_EVERY` s, by the budget source)."""
        for key, tally in list(self._tallies.items()):
            now = self._clock()
            if not tally.active(now) or now < self._down_until:
                continue
            mine = tally.mine
            try:
                tally.others = int(await self._tally_script(keys=[key, f"{self._prefix}:replicas"],
                                                            args=[self._member, mine]))
                tally.reported = mine
            except Exception as error:  # Redis away (the buckets report it): count only this replica, as the
                # fallback buckets do; others' last counts would hold answers back for as long as it lasts
                log.debug("tally exchange failed", extra={"error": type(error).__name__})
                for each in self._tallies.values():
                    each.others = 0
                return

    @property
    def reachable(self) -> bool:
        return not self._down

    def bucket(self, key: str, *, rate: float, burst: int, reserve: int = 0) -> SharedBudget:
        return SharedBudget(self, f"{self._prefix}:bucket:{key}", rate=rate, burst=burst, reserve=reserve,
                            clock=self._clock, on_waited=budget_wait(self._metrics, key))

    def fallback(self, *, rate: float, burst: int, reserve: int) -> TokenBucketBudget:
        """This process's share of a limit while Redis is away: the rate split over the replicas last seen."""
        count = max(1, self._replicas())
        share = max(1, burst // count)
        return TokenBucketBudget(rate=rate / count, burst=share, reserve=min(reserve, share - 1), clock=self._clock)

    async def call(self, key: str, *, rate: float, burst: int, threshold: int, op: str,
                  penalty: float = 0.0) -> tuple[bool, float, float, float] | None:
        """(granted, tokens, wait, blocked_for) from Redis; None while Redis is unreachable."""
        now = self._clock()
        if now < self._down_until:
            return None
        try:
            reply = await self._script(keys=[key], args=[repr(rate), burst, threshold, op, repr(penalty)])
        except Exception as error:  # any Redis failure: connection refused, timeout, READONLY, OOM
            self._down_until = now + self._retry_seconds
            if not self._down:
                self._down = True
                log.warning("redis unreachable: write budgets fall back to this process's share",
                            extra={"error": type(error).__name__, "replicas": max(1, self._replicas()),
                                   "retry_seconds": self._retry_seconds})
                if self._metrics is not None:
                    self._metrics.budget_fallbacks.inc()
            return None
        if self._down:
            self._down = False
            log.info("redis reachable again: write budgets are shared")
        granted, tokens, wait, blocked_for = (float(x) for x in reply)
        return granted >= 1, tokens, wait, blocked_for


class SharedBudget:
    """One platform limit in Redis (`WriteBudget`). Estimates come from the last reply, refilled locally."""

    def __init__(self, hub: RedisBudgets, key: str, *, rate: float, burst: int, reserve: int,
                 clock: Callable[[], float], on_waited: Callable[[float], object] | None = None) -> None:
        self._hub = hub
        self.key = key
        self._seen = BucketState(rate=rate, burst=burst, reserve=reserve, clock=clock)
        self._local: TokenBucketBudget | None = None
        self._queue = WaitQueue(on_waited)

    async def try_acquire(self, *, final: bool = False) -> bool:
        return not self._queue.ahead(final) and await self._take(final)

    async def acquire(self, *, final: bool = False) -> None:
        if not await self.try_acquire(final=final):
            await self._queue.serve(final, lambda: self._take(final), lambda: self._estimate().wait(final))

    async def penalize(self, retry_after: float) -> None:
        retry_after = max(0.0, retry_after)
        self._seen.penalize(retry_after)
        reply = await self._hub.call(self.key, rate=self._seen.rate, burst=self._seen.burst, threshold=1,
                                     op="penalize", penalty=retry_after)
        if reply is None:
            await self._fallback().penalize(retry_after)
        self._queue.wake_heads()

    def available(self) -> float:
        return self._estimate().available()

    def waiting(self) -> int:
        return len(self._queue)

    def next_available_in(self, *, final: bool = False) -> float:
        return self._estimate().wait(final, self._queue.ahead(final))

    # -- internals -------------------------------------------------------------------------------------

    async def _take(self, final: bool) -> bool:
        seen = self._seen
        reply = await self._hub.call(self.key, rate=seen.rate, burst=seen.burst, threshold=seen.threshold(final),
                                     op="take")
        if reply is None:
            return await self._fallback().try_acquire(final=final)
        self._local = None  # Redis is back: the next outage splits the limit by the replicas seen then
        granted, tokens, _, blocked_for = reply
        seen.observe(tokens, blocked_for)
        return granted

    def _estimate(self) -> BucketState:
        """The bucket writes are measured against now: this replica's share while Redis is away, else the
        last reply from Redis."""
        if self._local is not None and not self._hub.reachable:
            return self._local.state
        return self._seen

    def _fallback(self) -> TokenBucketBudget:
        if self._local is None:
            seen = self._seen
            self._local = self._hub.fallback(rate=seen.rate, burst=seen.burst, reserve=seen.reserve)
        return self._local
