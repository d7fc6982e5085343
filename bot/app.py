"""Assembles the core services from the configuration; adapters and the CLI start from here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.config import Config, ConfigError
from bot.engine import Engine
from bot.kimi import KimiClient
from bot.tools.registry import ToolConfigError, ToolRegistry, ToolSpec
from storage.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    kimi: KimiClient
    tools: ToolRegistry
    engine: Engine

    async def maintain(self, every: float = 3600.0, keep_events: timedelta = timedelta(days=7)) -> None:
        """Housekeeping while the bot runs: dedupe keys are needed for retries and replays, not forever."""
        while True:
            try:
                pruned = await self.store.prune_events(keep_events)
                if pruned:
                    log.info("pruned processed events", extra={"count": pruned})
            except Exception:  # housekeeping must never take the bot down
                log.exception("event pruning failed")
            await asyncio.sleep(every)

    async def aclose(self) -> None:
        await self.engine.shutdown()
        await self.kimi.aclose()
        await self.store.close()


def load_tools(config: Config) -> ToolRegistry:
    specs = [ToolSpec(path=t.path, timeout=t.timeout, max_output_chars=t.max_output_chars, options=t.options)
             for t in config.tools.custom]
    try:
        return ToolRegistry.from_specs(specs)
    except ToolConfigError as exc:
        raise ConfigError(f"tools.custom: {exc}") from None


async def build_services(config: Config) -> Services:
    api_key = config.require_kimi_key()
    tools = load_tools(config)
    try:
        store = await Store.open(config.storage.url)
    except Exception as exc:  # the driver's own errors name the problem (file permissions, unreachable host)
        raise ConfigError(f"storage.url: cannot open the database: {type(exc).__name__}: {exc}") from exc
    # On a shared PostgreSQL another replica may be streaming right now: only rows older than any live answer
    # can be leftovers of a crash. A SQLite file has one writer process, so everything streaming is left over.
    shared = config.storage.url.startswith("postgres")
    interrupted = await store.interrupt_streaming(
        older_than=timedelta(seconds=2 * config.kimi.request_timeout * (config.kimi.max_tool_rounds + 1))
        if shared else None)
    if interrupted:
        log.warning("answers interrupted by the last shutdown marked as interrupted", extra={"count": interrupted})
    kimi = KimiClient(
        api_key=api_key, base_url=config.kimi.base_url, timeout=config.kimi.request_timeout,
        connect_timeout=config.kimi.connect_timeout, max_retries=config.kimi.max_retries,
        web_search_needs_thinking_off=tuple(config.kimi.web_search_needs_thinking_off),
    )
    engine = Engine(config=config, store=store, kimi=kimi, tools=tools)
    return Services(config=config, store=store, kimi=kimi, tools=tools, engine=engine)
