"""Whether this process is alive and ready: the answers behind /healthz and /readyz.

Alive means running and not draining (a load balancer should stop sending work while a process drains).
Ready means the database answers and every platform this process runs is connected; adapters report their
connection through `platform()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from storage.store import Store

PING_TIMEOUT = 2.0


class Health:
    def __init__(self, store: Store, draining: Callable[[], bool]) -> None:
        self._store = store
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
        return {"ready": ready, "database": database, "platforms": platforms, "draining": not self.alive}
