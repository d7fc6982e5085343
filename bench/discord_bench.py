"""Discord benchmark: concurrent answers through the real bot against the fakes, with Discord's real limits.

The fake Discord enforces 5 message writes per 5 s per channel (sends and edits share it), 5 per 2 s per
interaction token and 50 requests/s overall; the fake Kimi streams at a realistic pace. Nothing is mocked: the
bot runs discord.py, the openai SDK and SQLite exactly as in production, all in this one process.

    python -m bench.discord_bench                # all scenarios, printed and written as JSON
    python -m bench.discord_bench --n 30 --layout channels
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.discord_metrics import Scenario, ScenarioResult, TimingKimi, measure
from bot.app import Services
from bot.budget import LocalBudgets
from bot.budget_source import BudgetSource, budget_source
from bot.config import RedisConfig
from bot.engine import Engine
from bot.tools.registry import ToolRegistry
from storage.store import Store
from tests.fakes.discord import FakeDiscord
from tests.fakes.kimi import FakeKimi
from tests.fixtures.discord import running_client
from tests.fixtures.engine import make_config

SCENARIOS = [
    Scenario("N=30 across channels (thread per answer)", n=30, layout="channels", reply_in="thread"),
    Scenario("N=10 in one channel (thread per answer)", n=10, layout="one", reply_in="thread"),
    Scenario("N=10 in one channel (answers in the channel)", n=10, layout="one", reply_in="channel"),
]
# A rolling deploy: the old process finishes five answers off the gateway while the new one, on the same shard,
# answers five more in the same channel (two shards never share a channel: a guild lives on one shard).
OVERLAP = Scenario("N=10 in one channel, two processes (rolling deploy)", n=10, layout="one", reply_in="channel")


def make_services(fake: FakeDiscord, fake_kimi: FakeKimi, store: Store, kimi: TimingKimi, *,
                  budgets: BudgetSource | None = None, **discord: Any) -> Services:
    config = make_config(fake_kimi, bot={"edit_interval": 1.0}, discord={
        "token": fake.token, "api_url": fake.api_base, "gateway_url": fake.gateway_url, **discord})
    tools = ToolRegistry.from_specs([])
    engine = Engine(config=config, store=store, kimi=kimi, tools=tools)
    return Services(config=config, store=store, kimi=kimi, tools=tools, engine=engine,
                    budgets=budgets or BudgetSource(LocalBudgets()))


async def run_scenario(scenario: Scenario, *, tps: float, ttft: float, length: int,
                       redis_url: str | None = None) -> ScenarioResult:
    from adapters.discord.client import KimiDiscordClient, discord_endpoints

    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as folder:
        async with FakeDiscord() as fake, FakeKimi(ttft=ttft, tokens_per_second=tps) as fake_kimi:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            kimi = TimingKimi(api_key="sk-test", base_url=fake_kimi.base_url, timeout=120, max_retries=0)
            overlap = scenario is OVERLAP
            sources = shared_sources(redis_url, 2) if overlap and redis_url else [
                BudgetSource(LocalBudgets()) for _ in range(2 if overlap else 1)]
            stores = [await Store.open(url) for _ in sources]
            services = [make_services(fake, fake_kimi, store, kimi, budgets=source, reply_in=scenario.reply_in)
                        for store, source in zip(stores, sources, strict=True)]
            channels = [fake.channel_id] if scenario.layout == "one" else [
                fake.add_text_channel(f"bench-{i}").id for i in range(scenario.n)]
            with discord_endpoints(services[0].config.discord.api_url, services[0].config.discord.gateway_url):
                client = KimiDiscordClient(services[0], guild_ready_timeout=0.1)
                async with contextlib.AsyncExitStack() as stack:
                    await stack.enter_async_context(running_client(client, fake.token, within=15))

                    async def handover() -> None:
                        successor = KimiDiscordClient(services[1], guild_ready_timeout=0.1)
                        await stack.enter_async_context(running_client(successor, fake.token, within=15))
                        await client.stop_intake()

                    result = await measure(scenario, fake, client, kimi, channels, length=length,
                                           handover=handover if overlap else None)
            for each in services:
                await each.engine.shutdown()
                await each.budgets.aclose()
            await kimi.aclose()
            for store in stores:
                await store.close()
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = round((usage_after.ru_utime + usage_after.ru_stime)
                               - (usage_before.ru_utime + usage_before.ru_stime), 2)
    result.peak_rss_mb = round(usage_after.ru_maxrss / 1024, 1)
    return result


def shared_sources(redis_url: str, count: int) -> list[BudgetSource]:
    config = RedisConfig(url=SecretStr(redis_url), key_prefix=f"kimibot-bench-{uuid.uuid4().hex[:8]}")
    sources = [budget_source(config, member=f"process-{i}", metrics=None) for i in range(count)]
    for source in sources:
        source.start()
    return sources


def render(results: list[ScenarioResult], settings: dict[str, Any]) -> str:
    head = ("| scenario | rate-limited calls | complete | first text p50 / p95 | last token → final p50 / p95 "
            "| writes / answer | CPU s | peak RSS MB |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        first = f"{r.first_text_p50:.2f} / {r.first_text_p95:.2f} s"
        lag = f"{r.final_lag_p50:.2f} / {r.final_lag_p95:.2f} s"
        lines.append(f"| {r.name} | {r.rate_limited} | {r.complete_pct:.0f} % | {first} | {lag} "
                     f"| {r.writes_per_answer:.1f} | {r.cpu_seconds} | {r.peak_rss_mb} |")
    lines.append("")
    lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    chosen = [s for s in SCENARIOS if args.layout in (None, s.layout)
              and (args.n is None or s.n == args.n) and args.reply_in in (None, s.reply_in)]
    if args.processes == 2:
        chosen = [OVERLAP]
    results = []
    for scenario in chosen:
        started = time.perf_counter()
        result = await run_scenario(scenario, tps=args.tps, ttft=args.ttft, length=args.length,
                                    redis_url=args.redis)
        if scenario is OVERLAP:
            result.name += " with Redis" if args.redis else " without Redis"
        result.wall_seconds = round(time.perf_counter() - started, 1)
        results.append(result)
        print(f"{scenario.name}: {json.dumps(asdict(result))}", flush=True)
    settings = {"answer_chars": args.length, "kimi_tokens_per_s": args.tps, "kimi_ttft_s": args.ttft,
                "discord_message_bucket": "5 per 5 s per channel", "edit_interval_s": 1.0}
    table = render(results, settings)
    print(table)
    if args.json:
        report = json.dumps({"settings": settings, "results": [asdict(r) for r in results]}, indent=2)
        await asyncio.to_thread(Path(args.json).write_text, report)
    return 0 if all(r.complete_pct == 100 for r in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="only the scenarios with this many answers")
    parser.add_argument("--layout", choices=["channels", "one"], default=None)
    parser.add_argument("--reply-in", choices=["thread", "channel"], default=None)
    parser.add_argument("--tps", type=float, default=40.0, help="fake Kimi tokens per second per answer")
    parser.add_argument("--ttft", type=float, default=0.5, help="fake Kimi time to first token")
    parser.add_argument("--length", type=int, default=1500, help="characters per answer")
    parser.add_argument("--processes", type=int, choices=[1, 2], default=1,
                        help="2: the rolling-deploy overlap (two processes answering in one channel)")
    parser.add_argument("--redis", default=None, help="with --processes 2: share the limits through this Redis")
    parser.add_argument("--json", default="bench/discord_results.json")
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
