"""Per-route buckets and the global limit, with the headers and 429 bodies discord.py acts on.

Model (rate-limits.mdx): a bucket is identified by a hash and scoped by its major parameter (channel, guild,
or webhook id + token); message creates and edits in one channel share a bucket. Windows are fixed: they open
at the first request and reset `per` seconds later. Interaction/webhook-token routes skip the global limit.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from tests.fakes.discord_state import FakeClock

MESSAGE_BUCKET_ROUTES = frozenset(
    {"POST /channels/{channel_id}/messages", "PATCH /channels/{channel_id}/messages/{message_id}"}
)


@dataclass(frozen=True)
class BucketRule:
    name: str
    limit: int
    per: float

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.name.encode()).hexdigest()[:32]


@dataclass
class RateLimitConfig:
    """Defaults follow the reference: 5 message writes per 5 s per channel, 50 requests/s globally."""

    message_limit: int = 5
    message_per: float = 5.0
    webhook_limit: int = 5
    webhook_per: float = 2.0
    default_limit: int = 50
    default_per: float = 1.0
    global_limit: int = 50
    global_per: float = 1.0
    enabled: bool = True
    overrides: dict[str, BucketRule] = field(default_factory=dict)


@dataclass(frozen=True)
class RateLimitHit:
    route_key: str
    major: str
    scope: str  # "user", "global" or "injected"
    retry_after: float
    at: float


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    headers: dict[str, str]
    body: dict[str, object] | None = None


@dataclass
class _Window:
    started: float
    count: int = 0


class RateLimiter:
    def __init__(self, config: RateLimitConfig, clock: FakeClock) -> None:
        self.config = config
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self.hits: list[RateLimitHit] = []

    @property
    def rate_limited_count(self) -> int:
        return len(self.hits)

    def set_limit(self, route_key: str, *, limit: int, per: float, bucket: str | None = None) -> None:
        """Overrides one route; routes given the same `bucket` name share a window."""
        self.config.overrides[route_key] = BucketRule(bucket or f"override:{route_key}", limit, per)

    def rule_for(self, route_key: str) -> BucketRule:
        cfg = self.config
        if route_key in cfg.overrides:
            return cfg.overrides[route_key]
        if route_key in MESSAGE_BUCKET_ROUTES:
            return BucketRule("channel-messages", cfg.message_limit, cfg.message_per)
        if "{webhook_token}" in route_key:
            return BucketRule("webhook-token", cfg.webhook_limit, cfg.webhook_per)
        return BucketRule(route_key, cfg.default_limit, cfg.default_per)

    def check(self, route_key: str, major: str) -> RateDecision:
        if not self.config.enabled:
            return RateDecision(True, {})
        now = self._clock.now()
        if "{webhook_token}" not in route_key:
            glob = self._window(("global", ""), now, self.config.global_per)
            if glob.count >= self.config.global_limit:
                retry = glob.started + self.config.global_per - now
                return self._global_429(route_key, major, retry)
            glob.count += 1
        rule = self.rule_for(route_key)
        window = self._window((rule.name, major), now, rule.per)
        reset_after = window.started + rule.per - now
        if window.count >= rule.limit:
            self.hits.append(RateLimitHit(route_key, major, "user", reset_after, now))
            headers = self._bucket_headers(rule, 0, reset_after)
            headers.update(_retry_headers(reset_after, "user"))
            return RateDecision(False, headers, _body(reset_after, is_global=False))
        window.count += 1
        return RateDecision(True, self._bucket_headers(rule, rule.limit - window.count, reset_after))

    def injected_429(
        self, route_key: str, major: str, retry_after: float, *, is_global: bool
    ) -> RateDecision:
        """A 429 from fault injection, shaped like a real one so discord.py sleeps and retries."""
        if is_global:
            return self._global_429(route_key, major, retry_after)
        self.hits.append(RateLimitHit(route_key, major, "injected", retry_after, self._clock.now()))
        rule = self.rule_for(route_key)
        headers = self._bucket_headers(rule, 0, retry_after)
        headers.update(_retry_headers(retry_after, "user"))
        return RateDecision(False, headers, _body(retry_after, is_global=False))

    def _global_429(self, route_key: str, major: str, retry_after: float) -> RateDecision:
        self.hits.append(RateLimitHit(route_key, major, "global", retry_after, self._clock.now()))
        headers = _retry_headers(retry_after, "global")
        headers["X-RateLimit-Global"] = "true"
        return RateDecision(False, headers, _body(retry_after, is_global=True))

    def _window(self, key: tuple[str, str], now: float, per: float) -> _Window:
        window = self._windows.get(key)
        if window is None or now >= window.started + per:
            window = self._windows[key] = _Window(started=now)
        return window

    def _bucket_headers(self, rule: BucketRule, remaining: int, reset_after: float) -> dict[str, str]:
        reset_after = _ceil_ms(reset_after)
        # Every header or none: discord.py falls back to X-RateLimit-Reset and KeyErrors if it is missing.
        return {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": f"{self._clock.wall() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": rule.hash,
        }


def _retry_headers(retry_after: float, scope: str) -> dict[str, str]:
    return {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": scope,
        # discord.py treats a 429 without Via as a Cloudflare ban and raises instead of retrying.
        "Via": "1.1 google",
    }


def _body(retry_after: float, *, is_global: bool) -> dict[str, object]:
    return {
        "message": "You are being rate limited.",
        "retry_after": _ceil_ms(retry_after),
        "global": is_global,
    }


def _ceil_ms(seconds: float) -> float:
    # Rounding up keeps a client that sleeps exactly this long from arriving a hair before the reset.
    return max(math.ceil(seconds * 1000) / 1000, 0.001)
