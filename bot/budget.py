"""Shared write allowances: how many platform writes a workspace or channel may make, across all answers.

A `TokenBucketBudget` is created by an adapter per rate-limit scope (a Slack workspace's chat.update tier, a
Discord channel's edit bucket) and shared by every answer in that scope. Interim updates must leave `reserve`
tokens untouched so final writes, which carry an answer's complete text, are never starved by interim ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from bot.metrics import Metrics, budget_wait

# A waiter that finds the bucket short recomputes after at least this long, so float rounding and timers
# that fire a hair early cannot turn into a busy loop.
_MIN_WAIT = 0.001
# Refill arithmetic on large clock values loses a few ulps; a token that is due must not be refused for that.
_EPSILON = 1e-9


class _Waiter:
    __slots__ = ("final", "wake")

    def __init__(self, final: bool) -> None:
        self.final = final
        self.wake = asyncio.Event()


class WaitQueue:
    """Writers waiting for one bucket: finals before interim writes, each kind in arrival order; only the
    head of the queue tries the bucket, so nobody is overtaken and a busy bucket is not polled by everyone."""

    def __init__(self, on_waited: Callable[[float], object] | None = None) -> None:
        self._final: deque[_Waiter] = deque()
        self._interim: deque[_Waiter] = deque()
        self._on_waited = on_waited  # seconds a writer queued before it was served (metrics)

    def __len__(self) -> int:
        return len(self._final) + len(self._interim)

    def ahead(self, final: bool) -> int:
        """Waiters a new writer of this kind would have to let go first."""
        return len(self._final) if final else len(self)

    async def serve(self, final: bool, take: Callable[[], Awaitable[bool]], wait: Callable[[], float]) -> None:
        """Queue until `take()` succeeds at the head; `wait()` says how long the head sleeps after a miss."""
        waiter = _Waiter(final)
        queue = self._final if final else self._interim
        queue.append(waiter)
        started = time.monotonic()
        try:
            while True:
                waiter.wake.clear()
                if not self._is_head(waiter):
                    await waiter.wake.wait()
                    continue
                if await take():
                    if self._on_waited is not None:
                        self._on_waited(time.monotonic() - started)
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait(), _MIN_WAIT)):
                        await waiter.wake.wait()
        finally:
            queue.remove(waiter)
            self.wake_heads()

    def wake_heads(self) -> None:
        """Let the head re-check now (a penalty, a token returned, a waiter gone)."""
        if self._final:
            self._final[0].wake.set()
        elif self._interim:
            self._interim[0].wake.set()

    def _is_head(self, waiter: _Waiter) -> bool:
        if waiter.final:
            return self._final[0] is waiter
        return not self._final and self._interim[0] is waiter


class BucketState:
    """The arithmetic of one token bucket: refill at `rate` up to `burst`, a `reserve` only final writes may take,
    and a penalty box after a 429. `TokenBucketBudget` keeps it as the bucket itself; `SharedBudget` keeps one as
    its estimate of the bucket in Redis, overwritten by every reply (`observe`)."""

    def __init__(self, *, rate: float, burst: int, reserve: int, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 <= reserve < burst:
            raise ValueError("reserve must be between 0 and burst - 1")
        self.rate = float(rate)
        self.burst = burst
        self.reserve = reserve
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._blocked_until = float("-inf")

    def threshold(self, final: bool) -> int:
        return 1 if final else self.reserve + 1

    def available(self) -> float:
        now = self._refill()
        return 0.0 if now < self._blocked_until else self._tokens

    def take(self, final: bool) -> bool:
        now = self._refill()
        if not self._can_take(final, now):
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True

    def penalize(self, retry_after: float) -> None:
        now = self._refill()
        self._blocked_until = max(self._blocked_until, now + max(0.0, retry_after))
        # The platform's own bucket is empty after a 429; ours restarts from empty too, or the first burst
        # after the penalty would trip it again.
        self._tokens = 0.0

    def observe(self, tokens: float, blocked_for: float) -> None:
        """What the authoritative bucket (Redis) said just now."""
        now = self._clock()
        self._tokens, self._stamp = tokens, now
        self._blocked_until = now + blocked_for if blocked_for > 0 else float("-inf")

    def wait(self, final: bool, ahead: int = 0) -> float:
        """Seconds until a write of this kind could go with `ahead` writers before it (0 if now)."""
        now = self._refill()
        if not ahead and self._can_take(final, now):
            return 0.0
        blocked = max(0.0, self._blocked_until - now)
        refill = max(0.0, (self.threshold(final) + ahead - self._tokens) / self.rate)
        return max(blocked, refill, _MIN_WAIT)

    def _refill(self) -> float:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
        return now

    def _can_take(self, final: bool, now: float) -> bool:
        return now >= self._blocked_until and self._tokens + _EPSILON >= self.threshold(final)


class TokenBucketBudget:
    """A token bucket with a reserve for final writes, FIFO waiters and a penalty box for 429s.

    Final waiters are served before interim waiters (the reserve exists to let finals through); within each
    kind, waiters are served in arrival order, and `try_acquire` never jumps ahead of a queued waiter.
    """

    def __init__(self, *, rate: float, burst: int, reserve: int = 0, clock: Callable[[], float] = time.monotonic,
                 on_waited: Callable[[float], object] | None = None) -> None:
        self._state = BucketState(rate=rate, burst=burst, reserve=reserve, clock=clock)
        self._queue = WaitQueue(on_waited)

    @property
    def state(self) -> BucketState:
        return self._state

    async def try_acquire(self, *, final: bool = False) -> bool:
        return not self._queue.ahead(final) and self._state.take(final)

    async def acquire(self, *, final: bool = False) -> None:
        if await self.try_acquire(final=final):
            return

        async def take() -> bool:
            return self._state.take(final)

        await self._queue.serve(final, take, lambda: self._state.wait(final))

    async def penalize(self, retry_after: float) -> None:
        self._state.penalize(retry_after)
        self._queue.wake_heads()

    def available(self) -> float:
        """Tokens in the bucket now (0 while a penalty lasts); schedulers use it to plan, not to take."""
        return self._state.available()

    def waiting(self) -> int:
        """How many writers are queued in `acquire`."""
        return len(self._queue)

    def next_available_in(self, *, final: bool = False) -> float:
        return self._state.wait(final, self._queue.ahead(final))


class UnlimitedBudget:
    """For surfaces without a platform limit (the terminal chat); still honours an explicit penalty."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._blocked_until = float("-inf")

    async def try_acquire(self, *, final: bool = False) -> bool:
        return self._clock() >= self._blocked_until

    async def acquire(self, *, final: bool = False) -> None:
        wait = self._blocked_until - self._clock()
        if wait > 0:
            await asyncio.sleep(max(wait, _MIN_WAIT))
            await self.acquire(final=final)  # a penalty may have been extended meanwhile

    async def penalize(self, retry_after: float) -> None:
        self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, retry_after))

    def next_available_in(self, *, final: bool = False) -> float:
        return max(0.0, self._blocked_until - self._clock())

    def available(self) -> float:
        return 0.0 if self._clock() < self._blocked_until else float("inf")

    def waiting(self) -> int:
        return 0


class LocalTally:
    """A count only this process keeps (`Tally`)."""

    def __init__(self) -> None:
        self.mine = 0

    def add(self, delta: int) -> None:
        self.mine += delta

    @property
    def total(self) -> int:
        return self.mine


class LocalBudgets:
    """Budgets kept in this process: right for one replica (or for several, scaled by hand with rate_scale)."""

    def __init__(self, *, clock: Callable[[], float] | None = None, metrics: Metrics | None = None) -> None:
        self._clock = clock
        self._metrics = metrics
        self._tallies: dict[str, LocalTally] = {}

    def tally(self, key: str) -> LocalTally:
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) > 5000:  # per-channel tallies of quiet channels are back at zero
                self._tallies = {k: t for k, t in self._tallies.items() if t.mine}
            tally = self._tallies[key] = LocalTally()
        return tally

    def bucket(self, key: str, *, rate: float, burst: int, reserve: int = 0) -> TokenBucketBudget:
        kwargs = {"clock": self._clock} if self._clock else {}
        return TokenBucketBudget(rate=rate, burst=burst, reserve=reserve, on_waited=budget_wait(self._metrics, key),
                                 **kwargs)
