"""Getting an acknowledged delivery into the database, and closing turns, without ever losing one silently.

The platform has been told "received" before the database is asked (Bolt acks at once; gateways have no ack),
so a database that is locked or down must not drop the event: it is held in memory and the write is retried
with backoff, with one warning, for `turns.intake_retry_seconds`. Only then is it given up, with an error line
naming it, and the adapter's caller tells the user to send it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bot.config import TurnsConfig
from bot.context import utc_now
from bot.replica import Replica, lease_end
from bot.turn_work import question_record
from bot.types import IncomingMessage
from storage.store import Store, StoredTurn, StoreUnavailable, TurnState

log = logging.getLogger(__name__)

T = TypeVar("T")


class IntakeLost(Exception):
    """The database did not take a delivery within the intake window; the user should send it again."""


class Intake:
    def __init__(self, store: Store, config: TurnsConfig, replica: Replica) -> None:
        self._store = store
        self._config = config
        self._replica = replica

    async def claim_keys(self, message: IncomingMessage, keys: Sequence[str]) -> bool:
        """Dedupe only (commands, refusals): True the first time this delivery is seen."""
        return await self._persist(lambda: self._store.claim_event(message.platform, keys), message)

    async def receive(self, message: IncomingMessage, keys: Sequence[str], *, hold: bool) -> StoredTurn | None:
        """Store the question as a turn with its dedupe keys, in one transaction; None for a duplicate.

        `hold`: lease it to this process (it will answer it); otherwise leave it for any process to resume."""
        def claim() -> Awaitable[StoredTurn | None]:
            return self._store.claim_turn(
                message.platform, keys, key=message.key, question=question_record(message), reply=message.reply,
                owner=self._replica.id if hold else None,
                lease_until=lease_end(utc_now(), self._config.lease_seconds) if hold else None)

        turn = await self._persist(claim, message)
        if turn is None:
            log.info("duplicate delivery ignored", extra={"platform": message.platform,
                                                          "message_id": message.message_id})
        return turn

    async def finish(self, turn_id: int, state: TurnState, *, error: str | None = None) -> None:
        try:
            await self._store.finish_turn(turn_id, state, error=error)
        except Exception:  # the lease runs out and a later sweep settles it
            log.exception("closing a turn failed", extra={"turn": turn_id, "state": state.value})

    async def _persist(self, operation: Callable[[], Awaitable[T]], message: IncomingMessage) -> T:
        ids = {"platform": message.platform, "channel": message.channel, "message_id": message.message_id}
        try:
            return await persist(operation, window=self._config.intake_retry_seconds, what="delivery", ids=ids)
        except StoreUnavailable as error:
            raise IntakeLost(message.message_id) from error


async def persist(operation: Callable[[], Awaitable[T]], *, window: float, what: str,
                  ids: dict[str, object]) -> T:
    """Run a store operation until the database takes it (each attempt already retries for the store's own
    window); warn once while waiting, and after `window` seconds log one error and raise StoreUnavailable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    delay = 1.0
    warned = False
    while True:
        try:
            return await operation()
        except StoreUnavailable as error:
            left = deadline - loop.time()
            if left <= 0:
                log.error(f"{what} lost: the database did not take it in time", extra={**ids, "error": str(error)})
                raise
            if not warned:
                warned = True
                log.warning(f"database unavailable: holding the {what} until it takes it",
                            extra={**ids, "hold_s": window})
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 15.0)
