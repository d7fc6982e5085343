"""Long threads: prompt cache share, cost per turn and summarization calls over one scripted thread.

One conversation of `--turns` questions (about 100 tokens each, answers of about 300) through the real engine,
store and Kimi client against the fake Kimi, whose prefix cache and token counting stand in for Kimi's
(tests/fakes/kimi_tokens.py). The prompt budget (`--budget`) is far below the thread's size, so it has to be
compacted repeatedly. Cost uses kimi-k2.5's published prices (input $0.60, cached input $0.10, output $3.00 per
million tokens); the summarization calls are included.

    python -m bench.context_bench [--turns 60] [--budget 8000] [--language en|ja]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import build_harness

PRICES = {"input": 0.60, "cached": 0.10, "output": 3.00}  # kimi-k2.5, USD per million tokens
SENTENCES = {
    "en": "Here is another detail about the deployment we are planning for next quarter. ",
    "ja": "来四半期に予定しているデプロイについての詳細をもう一つ共有します。",
}


@dataclass
class Figures:
    turns: int
    summary_calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    max_prompt: int
    summary_cached_share: float

    @property
    def cost(self) -> float:
        uncached = self.prompt_tokens - self.cached_tokens
        return (uncached * PRICES["input"] + self.cached_tokens * PRICES["cached"]
                + self.completion_tokens * PRICES["output"]) / 1e6


def is_summary(body: dict[str, Any]) -> bool:
    """Summary requests, as this version or the one before it sends them."""
    messages = body.get("messages") or []
    first, last = messages[0], messages[-1]
    return any(m.get("role") in ("system", "user") and str(m.get("content") or "").startswith("Summarize")
               for m in (first, last))


async def run(turns: int, budget: int, language: str) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            return await _thread(store, turns, budget, language)
        finally:
            await store.close()


async def _thread(store: Store, turns: int, budget: int, language: str) -> Figures:
    async with FakeKimi() as kimi:
        harness = await build_harness(kimi, store, kimi={"model": "kimi-k2.5"},
                                      context={"max_prompt_tokens": budget})
        try:
            for index in range(turns):
                await harness.ask(f"Note {index}: " + SENTENCES[language] * 4 + " [[len=1200]]")
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()
        usages = [usage for _, usage in kimi.served]
        return Figures(
            turns=turns, summary_calls=sum(1 for body, _ in kimi.served if is_summary(body)),
            prompt_tokens=sum(u["prompt_tokens"] for u in usages),
            cached_tokens=sum(u["cached_tokens"] for u in usages),
            completion_tokens=sum(u["completion_tokens"] for u in usages),
            max_prompt=max(u["prompt_tokens"] for body, u in kimi.served if not is_summary(body)),
            summary_cached_share=_share([u for body, u in kimi.served if is_summary(body)]))


def _share(usages: list[dict[str, Any]]) -> float:
    return sum(u["cached_tokens"] for u in usages) / max(1, sum(u["prompt_tokens"] for u in usages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--budget", type=int, default=8000)
    parser.add_argument("--language", choices=sorted(SENTENCES), default="en")
    args = parser.parse_args()
    figures = asyncio.run(run(args.turns, args.budget, args.language))
    print(f"turns {figures.turns}, budget {args.budget}, language {args.language}")
    print(f"summarization calls  {figures.summary_calls} ({figures.summary_cached_share:.1%} of their prompt cached)")
    print(f"prompt tokens        {figures.prompt_tokens:,} (largest answer prompt {figures.max_prompt:,})")
    print(f"cached share         {figures.cached_tokens / max(1, figures.prompt_tokens):.1%}")
    print(f"completion tokens    {figures.completion_tokens:,}")
    print(f"cost                 ${figures.cost:.4f} total, ${figures.cost / figures.turns:.5f} per turn")


if __name__ == "__main__":
    main()
