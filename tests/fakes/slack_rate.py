"""Slack's rate limits as token buckets: per method per workspace, plus chat.postMessage per channel.

Slack documents limits as "N+ per minute" per API method per app per workspace and allows short bursts without
saying how large. The default bursts below are deliberately small so an adapter that sprays writes is caught
here before it is caught in production; tests can raise them or speed time up with `time_scale`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Limit:
    per_minute: float
    burst: int


# Tiers per https://api.slack.com/apis/rate-limits: Tier 1 = 1+, 2 = 20+, 3 = 50+, 4 = 100+ per minute.
DEFAULT_TIERS: dict[int, Limit] = {
    1: Limit(per_minute=1, burst=1),
    2: Limit(per_minute=20, burst=3),
    3: Limit(per_minute=50, burst=5),
    4: Limit(per_minute=100, burst=10),
}

# Tier per method as listed in the docs.slack.dev method reference (see reference/slack.md §1).
METHOD_TIERS: dict[str, int] = {
    "chat.update": 3,
    "chat.delete": 3,
    "chat.startStream": 2,
    "chat.appendStream": 4,
    "chat.stopStream": 2,
    "conversations.replies": 3,
    "conversations.history": 3,
    "conversations.info": 3,
    "files.info": 4,
    "users.info": 4,
    "views.open": 4,
    "assistant.threads.setSuggestedPrompts": 4,
    "assistant.threads.setTitle": 4,
    "views.publish": 4,
}

# "Special" methods whose real limit is undocumented get an explicit, Tier-3-like default.
DEFAULT_SPECIAL: dict[str, Limit] = {
    "assistant.threads.setStatus": Limit(per_minute=50, burst=5),
}


@dataclass(slots=True)
class RateConfig:
    """Knobs for the limiter. `time_scale=60` makes one real second count as one Slack minute."""

    tiers: dict[int, Limit] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    method_tiers: dict[str, int] = field(default_factory=lambda: dict(METHOD_TIERS))
    overrides: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_SPECIAL))
    # "generally allows posting one message per second per channel" with short bursts.
    post_message_per_channel: Limit | None = field(default_factory=lambda: Limit(per_minute=60, burst=3))
    # Slack mentions a workspace-wide postMessage limit without a number; off unless a test sets one.
    post_message_workspace: Limit | None = None
    time_scale: float = 1.0
    min_retry_after: int = 1
    enabled: bool = True

    def limit_for(self, method: str) -> Limit | None:
        if method in self.overrides:
            return self.overrides[method]
        tier = self.method_tiers.get(method)
        return self.tiers.get(tier) if tier is not None else None


class TokenBucket:
    def __init__(self, limit: Limit, time_scale: float, clock: Callable[[], float]) -> None:
        self._capacity = float(max(1, limit.burst))
        self._rate = limit.per_minute / 60.0 * time_scale  # tokens per real second
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def wait_time(self) -> float:
        """Real seconds until one token is available (0 if one is available now)."""
        self._refill()
        if self._tokens >= 1.0:
            return 0.0
        if self._rate <= 0:
            return math.inf
        return (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        self._refill()
        self._tokens -= 1.0


class RateLimiter:
    """Decides whether a call may proceed; a refused call consumes nothing (as Slack's 429s do not)."""

    def __init__(self, config: RateConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}

    def reset(self) -> None:
        self._buckets.clear()

    def _bucket(self, key: tuple[str, ...], limit: Limit) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(limit, self.config.time_scale, self._clock)
            self._buckets[key] = bucket
        return bucket

    def check(self, team_id: str, method: str, channel: str | None) -> int | None:
        """Consume a token and return None, or return the integer Retry-After seconds."""
        cfg = self.config
        if not cfg.enabled:
            return None
        buckets: list[TokenBucket] = []
        limit = cfg.limit_for(method)
        if limit is not None:
            buckets.append(self._bucket((team_id, method), limit))
        if method == "chat.postMessage":
            if cfg.post_message_workspace is not None:
                buckets.append(self._bucket((team_id, method, "*"), cfg.post_message_workspace))
            if cfg.post_message_per_channel is not None and channel:
                buckets.append(self._bucket((team_id, method, channel), cfg.post_message_per_channel))
        wait = max((b.wait_time() for b in buckets), default=0.0)
        if wait > 0:
            # slack_sdk does int(Retry-After); Slack always sends whole seconds.
            return max(cfg.min_retry_after, math.ceil(wait)) if math.isfinite(wait) else 60
        for b in buckets:
            b.take()
        return None
