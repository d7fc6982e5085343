"""Cost of Kimi calls from the configured price table, and how usage reads in chat."""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import PricingConfig
from bot.kimi import Completion
from storage.store import UsageSummary

PER_MILLION = 1_000_000


def web_search_calls(completion: Completion) -> int:
    # Kimi bills a search when a response asks for $web_search (finish_reason tool_calls), per call.
    return sum(1 for call in completion.tool_calls if call.name == "$web_search")


def cost_usd(pricing: PricingConfig, completion: Completion) -> float:
    price = pricing.models.get(completion.model)
    usage = completion.usage
    total = web_search_calls(completion) * pricing.web_search_call
    if price is not None:
        fresh = max(0, usage.prompt_tokens - usage.cached_tokens)
        total += (fresh * price.input + usage.cached_tokens * price.cached_input
                  + usage.completion_tokens * price.output) / PER_MILLION
    return total


def format_summary(label: str, summary: UsageSummary) -> str:
    if summary.calls == 0:
        return f"*{label}:* no Kimi calls yet"
    cached = f" ({summary.cached_tokens:,} cached)" if summary.cached_tokens else ""
    searches = f", {summary.web_search_calls} web search{'es' if summary.web_search_calls != 1 else ''}" \
        if summary.web_search_calls else ""
    return (f"*{label}:* {summary.calls} call{'s' if summary.calls != 1 else ''}, "
            f"{summary.prompt_tokens:,} prompt tokens{cached}, {summary.completion_tokens:,} output tokens"
            f"{searches}, ${summary.cost_usd:.4f}")


def answer_footer(pricing: PricingConfig, completions: Sequence[Completion], tool_searches: int) -> str:
    """One line under an answer: what it took and cost (all its Kimi calls and searches)."""
    prompt = sum(c.usage.prompt_tokens for c in completions)
    cached = sum(c.usage.cached_tokens for c in completions)
    output = sum(c.usage.completion_tokens for c in completions)
    searches = tool_searches + sum(web_search_calls(c) for c in completions)
    cost = sum(cost_usd(pricing, c) for c in completions) + tool_searches * pricing.search_tool_call
    parts = [f"{prompt + output:,} tokens"]
    if prompt:
        parts[0] += f" ({cached / prompt:.0%} of the prompt cached)"
    if searches:
        parts.append(f"{searches} search{'es' if searches != 1 else ''}")
    parts.append(f"${cost:.4f}")
    return " · ".join(parts)
