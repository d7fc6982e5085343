"""One turn at a time per conversation: later messages queue, or cancel and restart, and stop cancels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from bot.types import ConversationKey

T = TypeVar("T")


class QueueFull(Exception):
    pass


@dataclass(slots=True)
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    running: asyncio.Task[object] | None = None
    waiting: int = 0
    generation: int = 0


class TurnScheduler:
    def __init__(self, policy: Literal["queue", "restart"] = "queue", max_queued: int = 5) -> None:
        self._policy = policy
        self._max_queued = max_queued
        self._slots: dict[ConversationKey, _Slot] = {}

    def busy(self, key: ConversationKey) -> bool:
        slot = self._slots.get(key)
        return slot is not None and (slot.running is not None or slot.waiting > 0)

    async def run(self, key: ConversationKey, turn: Callable[[], Awaitable[T]]) -> T | None:
        """Run `turn` when the conversation is free; None when it was stopped or superseded before it finished."""
        slot = self._slots.setdefault(key, _Slot())
        if slot.waiting >= self._max_queued:
            raise QueueFull(key)
        if self._policy == "restart":
            self.cancel(key)
        generation = slot.generation
        slot.waiting += 1
        try:
            async with slot.lock:
                slot.waiting -= 1
                if slot.generation != generation:
                    return None
                task: asyncio.Task[T] = asyncio.ensure_future(turn())
                slot.running = task  # type: ignore[assignment]
                try:
                    return await asyncio.shield(task)
                except asyncio.CancelledError:
                    if not task.done():
                        # Our caller was cancelled (shutdown): take the turn down with it.
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                        raise
                    if task.cancelled():
                        return None
                    raise
                finally:
                    slot.running = None
        finally:
            if slot.running is None and slot.waiting == 0 and not slot.lock.locked():
                self._slots.pop(key, None)

    def cancel(self, key: ConversationKey) -> bool:
        """Stop the running turn and drop the queued ones. True if anything was running or queued."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        slot.generation += 1
        had = slot.running is not None or slot.waiting > 0
        if slot.running is not None:
            slot.running.cancel()
        return had

    async def shutdown(self) -> None:
        tasks = [slot.running for slot in self._slots.values() if slot.running is not None]
        for slot in self._slots.values():
            slot.generation += 1
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
