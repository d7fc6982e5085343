"""Whether this process is alive and ready: the answers behind /healthz and /readyz.

Alive means running and not draining (a load balancer should stop sending work while a process drains).
Ready means the database answers, Redis answers when write budgets are shared through it, and every platform
this process runs is connected; adapters report their connection through `platform()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from storage.store import Store

PING_TIMEOUT = 2.0


class Health:
    def __init__(self, store: Store, draining: Callable[[], bool], *,
                 redis: Callable[[], Awaitable[bool]] | None = None) -> None:
        self._store = store
        self._redis = redis
        self._draining = draining
        self._platforms: dict[str, Callable[[], bool]] = {}

    def platform(self, name: str, connected: Callable[[], bool]) -> None:
        self._platforms[name] = connected

    def forget(self, name: str) -> None:
        self._platforms.pop(name, None)

    @property
    def alive(self) -> bool:
        return not self._draining()

    async def readiness(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await self._store.ping()
            database = True
        except Exception:
            database = False
        platforms = {name: bool(connected()) for name, connected in self._platforms.items()}
        ready = database and self.alive and all(platforms.values())
        state: dict[str, Any] = {"database": database, "platforms": platforms, "draining": not self.alive}
        if self._redis is not None:
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    state["redis"] = await self._redis()
            except Exception:
                state["redis"] = False
            ready = ready and state["redis"]
        return {"ready": ready, **state}
