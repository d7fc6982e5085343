"""Cache-friendly context: compaction in large steps, a stable prompt start, cache keys, calibrated counts."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from bot.summarize import INSTRUCTION
from bot.token_gauge import TokenGauge
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import Harness, build_harness

BUDGET = 3000


def is_summary(body: dict[str, Any]) -> bool:
    return body["messages"][-1].get("content") == INSTRUCTION


def answers(kimi: FakeKimi) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(body, usage) for body, usage in kimi.served if not is_summary(body)]


async def converse(harness: Harness, turns: int, text: str = "lorem ipsum dolor sit amet ", *,
                   thread: str = "t1") -> None:
    for index in range(turns):
        await harness.ask(f"point {index}: " + text * 8, thread=thread)


async def thread(kimi: FakeKimi, store: Store, turns: int, text: str = "lorem ipsum dolor sit amet ",
                 **context: object) -> Harness:
    """A conversation of `turns` questions under a prompt budget of BUDGET (the engine is shut down after)."""
    harness = await build_harness(kimi, store, context={"max_prompt_tokens": BUDGET, **context})
    try:
        await converse(harness, turns, text)
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()
    return harness


async def test_the_prompt_start_changes_only_when_compacting(kimi: FakeKimi, store: Store) -> None:
    await thread(kimi, store, 40)
    summaries = [body for body, _ in kimi.served if is_summary(body)]
    sent = [body["messages"] for body, _ in answers(kimi)]
    breaks = sum(1 for before, after in pairwise(sent) if after[: len(before)] != before)
    assert 1 <= len(summaries) <= 8  # compacts in large steps, not every turn
    assert breaks == len(summaries)
    # Every compaction brings the prompt down to about half the budget, so many turns follow before the next.
    assert all(usage["prompt_tokens"] <= BUDGET for _, usage in answers(kimi))


async def test_summary_requests_reuse_the_cached_prompt_start(kimi: FakeKimi, store: Store) -> None:
    await thread(kimi, store, 30)
    summaries = [(body, usage) for body, usage in kimi.served if is_summary(body)]
    assert summaries
    for body, usage in summaries:
        assert body["tool_choice"] == "none"
        assert usage["cached_tokens"] >= 0.8 * usage["prompt_tokens"]
    prompt = sum(usage["prompt_tokens"] for _, usage in kimi.served)
    cached = sum(usage["cached_tokens"] for _, usage in kimi.served)
    assert cached >= 0.7 * prompt


async def test_each_conversation_sends_its_own_cache_key(kimi: FakeKimi, store: Store) -> None:
    harness = await build_harness(kimi, store)
    try:
        await converse(harness, 2, thread="a")
        await converse(harness, 2, thread="b")
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()
    keys = [body.get("prompt_cache_key") for body in kimi.requests]
    assert all(isinstance(key, str) and key for key in keys)
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]


async def test_calibration_uses_the_whole_budget_for_text_the_guess_overcounts(store: Store) -> None:
    """The guess counts a CJK character as a token; the fake (like Kimi) packs about 1.5 per token. Calibrated,
    the thread uses the budget it has instead of compacting at two thirds of it."""
    async with FakeKimi() as kimi:
        harness = await thread(kimi, store, 30, "日本語のテキストです。")
        conversation = await store.get_or_create_conversation(harness.message("").key)
        ratio = harness.engine.compactor.gauge.ratio(conversation.id)
        assert ratio is not None and 0.55 <= ratio <= 0.85
        first_summary = next(i for i, (body, _) in enumerate(kimi.served) if is_summary(body))
        before = [usage["prompt_tokens"] for body, usage in kimi.served[:first_summary]]
        assert max(before) > 0.85 * BUDGET
        assert all(usage["prompt_tokens"] <= BUDGET for _, usage in answers(kimi))


async def test_kimi_counts_exactly_only_near_the_limit(kimi: FakeKimi, store: Store) -> None:
    await thread(kimi, store, 30)
    turns = len(answers(kimi))
    assert 0 < len(kimi.token_counts) < turns / 2
    assert all(body["model"] == "kimi-k2.6" and body["messages"] for body in kimi.token_counts)


async def test_without_summaries_the_cut_is_kept_so_the_prompt_start_stays(kimi: FakeKimi, store: Store) -> None:
    harness = await thread(kimi, store, 30, summarize=False)
    sent = [body["messages"] for body, _ in kimi.served]
    breaks = sum(1 for before, after in pairwise(sent) if after[: len(before)] != before)
    assert not any(is_summary(body) for body, _ in kimi.served)
    assert 1 <= breaks <= 8
    conversation = await store.get_or_create_conversation(harness.message("").key)
    assert conversation.summary is None and conversation.summary_upto_seq > 0


def test_a_guess_that_runs_low_is_corrected_upwards() -> None:
    gauge = TokenGauge()
    assert gauge.scale(1, 1000) == 1000
    gauge.observe(1, 1000, 2000)
    assert gauge.scale(1, 1000) >= 2000
    gauge.observe(1, 10, 1000)  # too small to say anything
    assert gauge.scale(1, 1000) < 2200
    assert gauge.scale(2, 1000) == 1000  # per conversation


def test_the_gauge_forgets_the_oldest_conversations() -> None:
    gauge = TokenGauge(capacity=2)
    for conversation in (1, 2, 3):
        gauge.observe(conversation, 1000, 500)
    assert gauge.ratio(1) is None and gauge.ratio(3) == 0.5
