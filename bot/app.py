"""Assembles the core services from the configuration; adapters and the CLI start from here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.budget import LocalBudgets
from bot.budget_source import BudgetSource, budget_source
from bot.config import Config, ConfigError
from bot.engine import Engine
from bot.health import Health
from bot.kimi import KimiClient
from bot.leases import TurnKeeper
from bot.tools.registry import ToolConfigError, ToolRegistry, ToolSpec
from storage.db import describe_failure
from storage.retry import RetryPolicy
from storage.store import Store

if TYPE_CHECKING:
    from bot.tools.mcp import McpServers

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Services:
    config: Config
    store: Store
    kimi: KimiClient
    tools: ToolRegistry
    engine: Engine
    # Write budgets for the platforms' limits: in this process, or shared by every replica through Redis.
    budgets: BudgetSource = field(default_factory=lambda: BudgetSource(LocalBudgets()))
    mcp: McpServers | None = None
    keeper: TurnKeeper | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    # /healthz and /readyz: adapters report their connection here.
    health: Health = field(init=False)

    def __post_init__(self) -> None:
        self.health = Health(self.store, lambda: self.engine.draining,
                             redis=self.budgets.ping if self.budgets.shared else None)

    async def maintain(self, every: float = 3600.0, keep_events: timedelta = timedelta(days=7)) -> None:
        """Housekeeping while the bot runs: dedupe keys are needed for retries and replays, not forever; with
        `[storage] retention_days`, nothing else is kept past that either."""
        days = self.config.storage.retention_days
        while True:
            try:
                pruned = await self.store.prune_events(keep_events)
                if pruned:
                    log.info("pruned processed events", extra={"count": pruned})
                if days:
                    deleted = await self.store.purge_older_than(datetime.now(UTC) - timedelta(days=days))
                    if deleted.total:
                        log.info("retention: deleted data older than the retention period",
                                 extra={"retention_days": days, **asdict(deleted)})
            except Exception:  # housekeeping must never take the bot down
                log.exception("housekeeping failed")
            await asyncio.sleep(every)

    async def refresh_models(self, every: float = 3600.0) -> None:
        """Kimi's model list, hourly: models come and go (retirements, new releases, account changes)."""
        while True:
            await asyncio.sleep(every)
            await self.engine.models.refresh()

    def start_background(self) -> None:
        """Housekeeping, turn leases (heartbeat, resume sweeps) and the model list; stopped and awaited by
        `aclose`."""
        self.keeper = self.keeper or TurnKeeper(store=self.store, engine=self.engine, config=self.config.turns)
        self._background = [asyncio.create_task(self.maintain(), name="kimibot-maintenance"),
                            asyncio.create_task(self.keeper.run(), name="kimibot-turn-leases"),
                            asyncio.create_task(self.refresh_models(), name="kimibot-models")]
        self.budgets.start()

    async def stop_background(self) -> None:
        tasks, self._background = self._background, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        await self.stop_background()
        await self.engine.shutdown()
        await self.budgets.aclose()
        if self.mcp is not None:
            await self.mcp.aclose()
        await self.kimi.aclose()
        await self.store.close()


def load_tools(config: Config) -> ToolRegistry:
    specs = [ToolSpec(path=t.path, timeout=t.timeout, max_output_chars=t.max_output_chars, options=t.options)
             for t in config.tools.custom]
    try:
        return ToolRegistry.from_specs(specs)
    except ToolConfigError as exc:
        raise ConfigError(f"tools.custom: {exc}") from None


def kimi_client(config: Config, api_key: str) -> KimiClient:
    k = config.kimi
    return KimiClient(
        api_key=api_key, base_url=k.base_url, timeout=k.request_timeout, connect_timeout=k.connect_timeout,
        max_retries=k.max_retries, web_search_needs_thinking_off=tuple(k.web_search_needs_thinking_off),
        first_token_timeout=k.first_token_timeout, idle_timeout=k.idle_timeout,
        still_working_after=k.still_working_after,
    )


async def build_services(config: Config) -> Services:
    api_key = config.require_kimi_key()
    tools = load_tools(config)
    try:
        store = await Store.open(config.storage.url, retry=RetryPolicy(window=config.storage.retry_seconds),
                                 wait=config.storage.wait_seconds)
    except Exception as exc:  # the driver's own errors name the problem (file permissions, unreachable host)
        raise ConfigError(f"storage.url: {describe_failure(config.storage.url, exc)}") from None
    kimi = kimi_client(config, api_key)
    engine = Engine(config=config, store=store, kimi=kimi, tools=tools)
    budgets = budget_source(config.redis, member=engine.replica.id, metrics=engine.metrics)
    await engine.models.refresh()  # a default the account lacks is reported now, once, not at every message
    mcp = None
    if config.tools.mcp:
        # The MCP SDK and its dependencies cost ~25 MB per process: loaded only when servers are configured.
        from bot.tools.mcp import McpServers

        mcp = McpServers(config.tools.mcp, tools)
        await mcp.start()  # each server connected or reported down before the first question
    return Services(config=config, store=store, kimi=kimi, tools=tools, engine=engine, budgets=budgets, mcp=mcp)
