"""Measurements for the Discord benchmark: when each answer's last token left Kimi, and what Discord showed when.

Times on the Discord side come from the fake's message versions (each create/edit is stamped on arrival);
Kimi's last token is stamped by `TimingKimi`, the production client with a recording wrapper around `stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.kimi import ChatRequest, KimiClient, TextDelta
from bot.kimi.events import KimiEvent
from tests.fakes.discord import FakeDiscord, StoredMessage
from tests.fakes.kimi_responder import long_text
from tests.surface_fake import unsplit

MESSAGE_ROUTES = ("POST /channels/{channel_id}/messages", "PATCH /channels/{channel_id}/messages/{message_id}")


@dataclass(frozen=True)
class Scenario:
    name: str
    n: int
    layout: str  # "channels": one answer per channel; "one": every answer in one channel
    reply_in: str


@dataclass
class ScenarioResult:
    name: str
    answers: int
    rate_limited: int
    complete_pct: float
    first_text_p50: float
    first_text_p95: float
    final_lag_p50: float
    final_lag_p95: float
    writes_per_answer: float
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    wall_seconds: float = 0.0
    limited_routes: list[str] = field(default_factory=list)
    final_lags: list[float] = field(default_factory=list)


class TimingKimi(KimiClient):
    """Records, per question tag, the wall time of the last text token Kimi sent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_token: dict[str, float] = {}

    async def stream(self, request: ChatRequest) -> AsyncIterator[KimiEvent]:
        tag = _tag(request)
        async for event in super().stream(request):
            if isinstance(event, TextDelta):
                self.last_token[tag] = time.time()
            yield event


def _tag(request: ChatRequest) -> str:
    user = [m for m in request.messages if m.get("role") == "user"][-1]
    content = user.get("content")
    text = content if isinstance(content, str) else " ".join(str(p.get("text", "")) for p in content or [])
    return next((word for word in text.split() if word.startswith("bench#")), "")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


async def measure(scenario: Scenario, fake: FakeDiscord, client: Any, kimi: TimingKimi, channels: list[int], *,
                  length: int, handover: Callable[[], Awaitable[None]] | None = None) -> ScenarioResult:
    """`handover`: run between the first and the second half of the questions (another process takes over
    intake); then the answers are awaited in the fake, since no one client handles them all."""
    expected = long_text(length)
    sent_at: dict[int, float] = {}

    async def ask(i: int) -> int:
        channel = channels[i % len(channels)]
        sent_at[i] = time.time()
        message = await fake.dispatch_message(channel, f"{fake.bot_user.mention} bench#{i} [[len={length}]]")
        return message.id

    if handover is None:
        question_ids = await asyncio.gather(*(ask(i) for i in range(scenario.n)))
        async with asyncio.timeout(600):
            await client.wait_for_turns(scenario.n)
    else:
        half = scenario.n // 2
        question_ids = list(await asyncio.gather(*(ask(i) for i in range(half))))
        await handover()
        question_ids += await asyncio.gather(*(ask(i) for i in range(half, scenario.n)))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(600):
                while _whole(fake, scenario, channels, question_ids, expected) < scenario.n:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
    first_texts, lags, complete, writes = [], [], 0, 0
    for i, question_id in enumerate(question_ids):
        messages = _answer_messages(fake, scenario, channels[i % len(channels)], question_id)
        if messages and unsplit([m.text for m in messages]) == expected:
            complete += 1
        shown = [v.at.timestamp() for m in messages for v in m.versions if v.content.strip()]
        if shown:
            first_texts.append(min(shown) - sent_at[i])
        finals = [m.versions[-1].at.timestamp() for m in messages]
        last_token = kimi.last_token.get(f"bench#{i}")
        if finals and last_token is not None:
            lags.append(max(0.0, max(finals) - last_token))
        if scenario.reply_in == "thread":
            writes += sum(1 for c in fake.calls if c.route_key in MESSAGE_ROUTES and c.major == str(question_id))
    if scenario.reply_in == "channel":
        # Answers share their channels' endpoints: count every message write there, spread over the answers.
        majors = {str(c) for c in channels}
        writes = sum(1 for c in fake.calls if c.route_key in MESSAGE_ROUTES and c.major in majors)
    return ScenarioResult(
        name=scenario.name, answers=scenario.n, rate_limited=fake.rate_limited_count,
        complete_pct=100.0 * complete / scenario.n,
        first_text_p50=percentile(first_texts, 50), first_text_p95=percentile(first_texts, 95),
        final_lag_p50=percentile(lags, 50), final_lag_p95=percentile(lags, 95),
        writes_per_answer=writes / scenario.n, final_lags=[round(x, 2) for x in lags],
        limited_routes=[f"{hit.scope} {hit.route_key}" for hit in fake.rate_limits.hits],
    )


def _whole(fake: FakeDiscord, scenario: Scenario, channels: list[int], question_ids: list[int],
           expected: str) -> int:
    return sum(unsplit([m.text for m in _answer_messages(fake, scenario, channels[i % len(channels)], q)]) == expected
               for i, q in enumerate(question_ids))


def _answer_messages(fake: FakeDiscord, scenario: Scenario, channel: int, question_id: int) -> list[StoredMessage]:
    if scenario.reply_in == "thread":
        return fake.bot_messages(question_id)  # the thread opened from the question has the question's id
    mine = fake.bot_messages(channel)
    first = [m for m in mine if m.reference and str(m.reference.get("message_id")) == str(question_id)]
    if not first:
        return []
    # Continuations follow their first message; with one bench answer under 2,000 characters there are none.
    return first
