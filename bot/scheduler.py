"""One turn at a time per conversation, in the order messages arrived; `stop` cancels the running one and
drops the queued ones.

A place in a conversation's queue is a `Ticket`, reserved synchronously the moment a message arrives, before
any I/O (the dedupe claim, a user lookup): whichever await finishes first, turns still run in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from bot.types import ConversationKey

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Ticket:
    key: ConversationKey
    generation: int
    # Turns ahead of this one when it was reserved (0: it may start at once).
    ahead: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class _Slot:
    queue: deque[Ticket] = field(default_factory=deque)
    running: asyncio.Task[object] | None = None
    generation: int = 0
    # The running turn was told to stop: a second stop (a double click, the platform's Stop and a refused write
    # both reporting it) must not cut the first one's clean-up short.
    stopping: bool = False


class TurnScheduler:
    def __init__(self, policy: Literal["queue", "restart"] = "queue", max_queued: int = 5) -> None:
        self._policy = policy
        self.max_queued = max_queued
        self._slots: dict[ConversationKey, _Slot] = {}

    def reserve(self, key: ConversationKey) -> Ticket:
        """A place in the conversation's queue, in call order. Never blocks and never refuses: the caller
        compares `ticket.ahead` with `max_queued` once it knows the message is a turn."""
        slot = self._slots.setdefault(key, _Slot())
        if self._policy == "restart":
            self.cancel(key)
        ticket = Ticket(key, slot.generation, ahead=len(slot.queue))
        slot.queue.append(ticket)
        self._wake(slot)
        return ticket

    def release(self, ticket: Ticket) -> None:
        """Give up a place without running (a duplicate delivery, an ignored message); idempotent."""
        slot = self._slots.get(ticket.key)
        if slot is None:
            return
        with contextlib.suppress(ValueError):
            slot.queue.remove(ticket)
        if not slot.queue and slot.running is None:
            self._slots.pop(ticket.key, None)
        else:
            self._wake(slot)

    @staticmethod
    def _wake(slot: _Slot) -> None:
        if slot.running is None and slot.queue:
            slot.queue[0].ready.set()

    def waiting(self, key: ConversationKey) -> int:
        """Tickets of the conversation not running now."""
        slot = self._slots.get(key)
        if slot is None:
            return 0
        return len(slot.queue) - (1 if slot.running is not None else 0)

    def busy(self, key: ConversationKey) -> bool:
        slot = self._slots.get(key)
        return slot is not None and (slot.running is not None or bool(slot.queue))

    async def run(self, ticket: Ticket, turn: Callable[[], Awaitable[T]]) -> T | None:
        """Run `turn` when the ticket's turn comes; None when it was stopped or superseded before it finished."""
        slot = self._slots.get(ticket.key)
        if slot is None or ticket not in slot.queue:
            return None
        try:
            await ticket.ready.wait()
            if slot.generation != ticket.generation:
                return None
            task: asyncio.Task[T] = asyncio.ensure_future(turn())
            slot.running, slot.stopping = task, False  # type: ignore[assignment]
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    # Our caller was cancelled: take the turn down with it.
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
            self.release(ticket)

    def cancel(self, key: ConversationKey) -> bool:
        """Stop the running turn and drop the queued ones. True if anything was running or queued."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        slot.generation += 1
        had = slot.running is not None or bool(slot.queue)
        if slot.running is not None and not slot.stopping:
            slot.stopping = True
            slot.running.cancel()
        return had

    def hold_queued(self) -> None:
        """Queued turns will not start (they return None); running ones go on. For a graceful shutdown."""
        for slot in self._slots.values():
            slot.generation += 1

    def waiting_total(self) -> int:
        """Questions queued behind a running answer, over every conversation."""
        return sum(len(slot.queue) - (1 if slot.running is not None else 0) for slot in self._slots.values())

    def running(self, keys: set[ConversationKey] | None = None) -> list[asyncio.Task[object]]:
        return [slot.running for key, slot in self._slots.items()
                if slot.running is not None and (keys is None or key in keys)]

    async def shutdown(self) -> None:
        self.hold_queued()
        tasks = self.running()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
