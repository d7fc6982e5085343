"""A recording ReplySurface that enforces a platform's limits on its own, for publisher and engine tests.

`FakeSurface` checks every write the way a platform would: text over `max_chars` or blank text is refused
(recorded in `violations` and raised), and an independent token bucket (`enforce_rate`, or a `RateEnforcer`
shared by several surfaces, like one Slack workspace) answers RateLimited when writes come too fast.
Giving the publisher a budget looser than the enforcement is how tests provoke real-looking 429s;
`fail_next` injects them outright.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.budget import UnlimitedBudget
from bot.types import AnswerControls, RateLimited, WriteBudget


class ManualClock:
    """A clock that only moves when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SurfaceViolation(ValueError):
    """A write a real platform would have refused (too long, blank, unknown message)."""


@dataclass(frozen=True, slots=True)
class WriteRecord:
    kind: str  # "post", "edit" or "status"
    at: float
    message_id: str | None
    text: str | None
    accepted: bool = True
    retry_after: float | None = None


class RateEnforcer:
    """The platform's side of a rate limit: a strict token bucket, independent of any client budget.

    `jitter` models the few microseconds between a client granting itself a token and the request arriving.
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 jitter: float = 0.0005) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._jitter = jitter
        self._tokens = float(burst)
        self._stamp = clock()
        self.accepted = 0
        self.rejected = 0

    def check(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens + self._jitter * self.rate < 1.0:
            self.rejected += 1
            raise RateLimited((1.0 - self._tokens) / self.rate)
        self._tokens = max(0.0, self._tokens - 1.0)
        self.accepted += 1


class FakeSurface:
    def __init__(self, *, max_chars: int = 4000, budget: WriteBudget | None = None,
                 edit_budget: WriteBudget | None = None, post_budget: WriteBudget | None = None,
                 enforce_rate: tuple[float, int] | None = None, enforcer: RateEnforcer | None = None,
                 post_enforcer: RateEnforcer | None = None,
                 latency: float | Callable[[str], float] = 0.0,
                 clock: Callable[[], float] = time.monotonic, id_prefix: str = "m") -> None:
        shared = budget or UnlimitedBudget()
        self.max_chars = max_chars
        self.edit_budget: WriteBudget = edit_budget or shared
        self.post_budget: WriteBudget = post_budget or shared
        if enforcer is None and enforce_rate is not None:
            enforcer = RateEnforcer(*enforce_rate, clock=clock)
        self.enforcer = enforcer
        # Posts may have an allowance of their own (Slack: chat.postMessage per channel vs chat.update per workspace).
        self.post_enforcer = post_enforcer
        self._latency = latency
        self._clock = clock
        self._prefix = id_prefix
        self.records: list[WriteRecord] = []
        self.violations: list[str] = []
        self.messages: dict[str, str] = {}
        self.order: list[str] = []
        self.statuses: list[str | None] = []
        self.controls: dict[str, AnswerControls] = {}  # message id -> the controls shown under it
        self._injected: list[float] = []
        self._changed = asyncio.Condition()

    # -- ReplySurface ---------------------------------------------------------------------------------

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        self._admit("post", None, text)
        message_id = f"{self._prefix}{len(self.order) + 1}"
        if controls is not None:
            self.controls[message_id] = controls
        self.order.append(message_id)
        self.messages[message_id] = text
        self.records.append(WriteRecord("post", self._clock(), message_id, text))
        await self._settle("post")
        return message_id

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        if message_id not in self.messages:
            self._violate(f"edit of unknown message {message_id}")
        if controls is not None:
            self.controls[message_id] = controls
        self._admit("edit", message_id, text)
        self.messages[message_id] = text
        self.records.append(WriteRecord("edit", self._clock(), message_id, text))
        await self._settle("edit")

    async def set_status(self, status: str | None) -> None:
        self.statuses.append(status)
        self.records.append(WriteRecord("status", self._clock(), None, status))
        await self._settle("status")

    # -- test controls and views ----------------------------------------------------------------------

    def fail_next(self, count: int = 1, retry_after: float = 0.01) -> None:
        """Answer the next `count` posts/edits with RateLimited(retry_after), whatever the enforcer says."""
        self._injected.extend([retry_after] * count)

    @property
    def writes(self) -> list[WriteRecord]:
        """Accepted posts and edits, in order."""
        return [r for r in self.records if r.kind in ("post", "edit") and r.accepted]

    @property
    def rate_limited(self) -> list[WriteRecord]:
        return [r for r in self.records if not r.accepted]

    def visible_messages(self) -> list[str]:
        return [self.messages[message_id] for message_id in self.order]

    def visible_text(self) -> str:
        """What a user sees: every message, in order, one after the other."""
        return "".join(self.visible_messages())

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait for a write that makes `predicate` true (`within` only stops a broken test from hanging)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    # -- internals ------------------------------------------------------------------------------------

    def _admit(self, kind: str, message_id: str | None, text: str) -> None:
        if len(text) > self.max_chars:
            self._violate(f"{kind} of {len(text)} chars over the limit of {self.max_chars}")
        if not text.strip():
            self._violate(f"{kind} with blank text")
        retry_after: float | None = None
        if self._injected:
            retry_after = self._injected.pop(0)
        elif (enforcer := self.post_enforcer if kind == "post" and self.post_enforcer else self.enforcer) is not None:
            try:
                enforcer.check()
            except RateLimited as limited:
                retry_after = limited.retry_after
        if retry_after is not None:
            self.records.append(WriteRecord(kind, self._clock(), message_id, text, False, retry_after))
            raise RateLimited(retry_after)

    def _violate(self, problem: str) -> None:
        self.violations.append(problem)
        raise SurfaceViolation(problem)

    async def _settle(self, kind: str) -> None:
        # The platform applied the write when the request arrived; the response may still take a while.
        async with self._changed:
            self._changed.notify_all()
        delay = self._latency(kind) if callable(self._latency) else self._latency
        if delay > 0:
            await asyncio.sleep(delay)


_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_CLOSER_END = re.compile(r"(?:^|(?<=\n))(`{3,}|~{3,})\Z")


def fences_balanced(message: str) -> bool:
    """True when a message opens and closes its fenced code blocks (simple fences, as tests write them)."""
    return len(_FENCE_LINE.findall(message)) % 2 == 0


def unsplit(messages: list[str]) -> str:
    """Join split messages back into the source text: drop the fence lines added at each split."""
    pieces = list(messages)
    for i in range(len(pieces) - 1):
        end = _CLOSER_END.search(pieces[i])
        if end and pieces[i + 1].startswith(end.group(1)):
            pieces[i] = pieces[i][:end.start()]
            pieces[i + 1] = pieces[i + 1].split("\n", 1)[1] if "\n" in pieces[i + 1] else ""
    return "".join(pieces)


def long_markdown(total: int = 10_000, *, max_chars: int = 2000) -> str:
    """A deterministic Markdown answer of about `total` chars: prose, lists and several code blocks, one of
    them longer than `max_chars` (so it has to be split), with unicode throughout."""
    words = ("Kimi", "answers", "naïve", "café", "straße", "東京", "emoji", "👍🏽", "résumé", "data",
             "stream", "token", "message", "über", "coöperate", "🇯🇵", "fast", "limit")
    parts: list[str] = []
    size, n = 0, 0
    while size < total:
        n += 1
        if n % 4 == 0:
            lines = 8 if n % 8 else max_chars // 24 + 20  # every other block outgrows a message
            code = "\n".join(f"    value_{n}_{i} = compute({i}, 'ß→{i}')  # step" for i in range(lines))
            piece = f"```python\n{code}\n```"
        elif n % 4 == 2:
            piece = "\n".join(
                f"- item {n}.{i}: " + " ".join(words[(n + i + j) % len(words)] for j in range(6))
                for i in range(5)
            )
        else:
            sentence = " ".join(words[(n * 7 + j) % len(words)] for j in range(12))
            piece = " ".join(f"{sentence.capitalize()} {k}." for k in range(1 + n % 5))
        parts.append(piece)
        size += len(piece) + 2
    return "\n\n".join(parts) + "\n"
