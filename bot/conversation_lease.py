"""One process answers in a conversation at a time, across replicas.

Inside a process the scheduler runs a conversation's turns one by one; across replicas behind a load balancer
two messages of one thread can reach two processes, and two answers written at once would each read the other's
question as the latest. So answering takes the conversation's lease in the database first (renewed by the same
heartbeat as turn leases), waits while another live process holds it, and takes it at once from a dead one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.config import TurnsConfig
from bot.context import utc_now
from bot.replica import Replica, lease_end
from storage.store import Store


class ConversationLeases:
    def __init__(self, store: Store, replica: Replica, config: TurnsConfig,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._store = store
        self._replica = replica
        self._config = config
        self._clock = clock

    async def acquire(self, conversation_id: int, *, waiting: Callable[[], Awaitable[None]]) -> None:
        """Returns once this process holds the conversation; `waiting` runs once if it has to wait."""
        delay = 0.1
        told = False
        while True:
            until = lease_end(self._clock(), self._config.lease_seconds)
            holder = await self._store.lease_conversation(conversation_id, self._replica.id, until)
            if holder is not None and self._replica.holds_dead_lease(holder):
                holder = await self._store.lease_conversation(conversation_id, self._replica.id, until,
                                                              dead_owner=holder)
            if holder is None:
                return
            if not told:
                told = True
                await waiting()
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def release(self, conversation_id: int) -> None:
        await self._store.release_conversation(conversation_id, self._replica.id)
