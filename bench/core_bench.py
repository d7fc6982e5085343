"""Core benchmark: N answers at once through the real engine, the fake Kimi and a rate-limited fake surface.

Measures what users feel and what the platform sees, with no platform SDK involved:
  * event → first visible text, and first token (Kimi's first content byte) → first visible token
  * last token → final complete text
  * writes per answer, rate-limited writes (must be 0), answers whose final text is complete (must be 100 %)
  * database writes per turn (must not grow with the answer's length), CPU seconds, peak RSS

    python -m bench.core_bench --answers 20 --ttft 0.5 --tps 50 --length 2000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.budget import TokenBucketBudget
from bot.types import IncomingMessage, PublishOptions
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import build_harness
from tests.surface_fake import FakeSurface, RateEnforcer


class BenchSurface(FakeSurface):
    # A status (typing / assistant status) instead of a placeholder post: the first text then costs a post
    # from the channel's allowance, not an edit from the workspace-wide one.
    publish_options = PublishOptions(placeholder=None)


@dataclass
class Sample:
    start: float
    first_visible: float | None
    final: float
    complete: bool
    writes: int
    expected: str
    first_token: float
    last_token: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def answer_text(prompt: str) -> str:
    return f"Echo: {prompt}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    writes_sql = 0
    post_enforcers: list[RateEnforcer] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeKimi(ttft=args.ttft, tokens_per_second=args.tps) as kimi:
            store = await Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")

            @event.listens_for(store.engine.sync_engine, "before_cursor_execute")
            def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
                nonlocal writes_sql
                if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
                    writes_sql += 1

            h = await build_harness(kimi, store, bot={"edit_interval": args.edit_interval})
            # One shared allowance, like a Slack workspace's chat.update tier; the surface enforces the
            # platform's own limit independently and counts every violation.
            enforcer = RateEnforcer(args.edit_rate, args.edit_burst)
            budget = TokenBucketBudget(rate=args.edit_rate, burst=args.edit_burst, reserve=args.reserve)
            filler = "lorem ipsum dolor sit amet " * (args.length // 27 + 1)

            async def one(index: int) -> Sample:
                prompt = f"{index} {filler[:args.length]}"
                # Each conversation's channel has its own post allowance (about 1 a second on Slack).
                post_enforcer = RateEnforcer(args.post_rate, args.post_burst)
                post_enforcers.append(post_enforcer)
                surface = BenchSurface(
                    max_chars=4000, edit_budget=budget, enforcer=enforcer, post_enforcer=post_enforcer,
                    post_budget=TokenBucketBudget(rate=args.post_rate, burst=args.post_burst))
                message = IncomingMessage(platform="bench", workspace="W", channel=f"C{index}", thread="t",
                                          message_id=f"m{index}", user="U", text=prompt)
                start = time.monotonic()
                await h.engine.handle(message, surface)
                expected = answer_text(prompt)
                first = next((r.at for r in surface.records
                              if r.kind in ("post", "edit") and r.accepted and r.text and r.text[:4] == "Echo"), None)
                final = max(r.at for r in surface.writes)
                marks = next(m for content, m in kimi.stream_marks if content == expected)
                return Sample(start, first, final, surface.visible_text() == expected, len(surface.writes),
                              expected, marks["first_content"], marks["last_content"])

            writes_before = writes_sql
            cpu_before = time.process_time()
            wall = time.monotonic()
            samples = await asyncio.gather(*(one(i) for i in range(args.answers)))
            wall = time.monotonic() - wall
            cpu = time.process_time() - cpu_before
            await h.client.aclose()
            await store.close()
    first_visible = [s.first_visible - s.start for s in samples if s.first_visible is not None]
    ttft_gap = [s.first_visible - s.first_token for s in samples if s.first_visible is not None]
    tail = [s.final - s.last_token for s in samples]
    return {
        "answers": args.answers,
        "complete_pct": 100.0 * sum(s.complete for s in samples) / len(samples),
        "rate_limited": enforcer.rejected + sum(e.rejected for e in post_enforcers),
        "first_visible_p50": percentile(first_visible, 0.5),
        "first_visible_p95": percentile(first_visible, 0.95),
        "first_token_to_visible_p95": percentile(ttft_gap, 0.95),
        "last_token_to_final_p50": percentile(tail, 0.5),
        "last_token_to_final_p95": percentile(tail, 0.95),
        "writes_per_answer": statistics.mean(s.writes for s in samples),
        "db_writes_per_turn": (writes_sql - writes_before) / len(samples),
        "cpu_s": cpu,
        "wall_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=20)
    parser.add_argument("--ttft", type=float, default=0.5, help="fake Kimi's time to first token (s)")
    parser.add_argument("--tps", type=float, default=50, help="fake Kimi's tokens per second")
    parser.add_argument("--length", type=int, default=2000, help="characters per answer")
    parser.add_argument("--edit-rate", type=float, default=50 / 60, help="shared edits per second")
    parser.add_argument("--edit-burst", type=int, default=5)
    parser.add_argument("--reserve", type=int, default=2)
    parser.add_argument("--post-rate", type=float, default=1.0, help="posts per second per channel")
    parser.add_argument("--post-burst", type=int, default=3)
    parser.add_argument("--edit-interval", type=float, default=1.0)
    result = asyncio.run(run(parser.parse_args()))
    for key, value in result.items():
        print(f"{key:28} {value:.3f}" if isinstance(value, float) else f"{key:28} {value}")


if __name__ == "__main__":
    main()
