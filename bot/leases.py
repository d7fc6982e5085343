"""Keeping and taking over turn leases: every process renews the turns it holds and sweeps for turns whose
holder is gone, so a crash or a deploy never leaves a question unanswered.

* heartbeat: one UPDATE every third of a lease renews every unfinished turn this process holds;
* sweep: at start and every `turns.sweep_seconds`, unfinished turns of the platforms this process serves whose
  lease ran out (or whose holder is a dead process on this host) are taken with a compare-and-set in the
  database, so exactly one process wins each, then resumed by the engine, or, past
  `turns.resume_within_seconds`, closed with a notice to their asker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.config import TurnsConfig
from bot.context import utc_now
from bot.engine import Engine
from bot.replica import lease_end
from storage.store import Store, StoredTurn

log = logging.getLogger(__name__)


class TurnKeeper:
    def __init__(self, *, store: Store, engine: Engine, config: TurnsConfig,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._store = store
        self._engine = engine
        self._config = config
        self._clock = clock
        self._replica = engine.replica
        self.resumed = 0
        self.expired = 0

    async def run(self) -> None:
        """Heartbeat and sweep until cancelled; a failing database only delays them."""
        heartbeat = max(0.5, self._config.lease_seconds / 3)
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._store.renew_leases(self._replica.id, lease_end(self._clock(), self._config.lease_seconds))
                if loop.time() >= next_sweep and not self._engine.draining:
                    await self.sweep()
                    next_sweep = loop.time() + self._config.sweep_seconds
            except Exception:  # the next beat tries again; leases are long enough to miss one
                log.exception("turn lease upkeep failed")
            changed = self._engine.resumers_changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(heartbeat, self._config.sweep_seconds)):
                    await changed.wait()
            if changed.is_set():
                changed.clear()
                next_sweep = 0.0  # a platform just came up: look for its unfinished turns now

    async def sweep(self) -> int:
        """Take over every abandoned turn this process can answer; returns how many it took."""
        platforms = self._engine.resumable_platforms
        if not platforms:
            return 0
        now = self._clock()
        taken = 0
        for seen in await self._store.unfinished_turns(platforms, not_owned_by=self._replica.id):
            if not self._abandoned(seen, now):
                continue
            turn = await self._store.take_turn(seen, self._replica.id, lease_end(now, self._config.lease_seconds))
            if turn is None:
                continue  # another process took it first
            taken += 1
            if now - turn.created_at > timedelta(seconds=self._config.resume_within_seconds):
                self.expired += 1
                self._engine.expire(turn)
            else:
                self.resumed += 1
                self._engine.resume(turn)
        if taken:
            log.info("took over unfinished turns", extra={"count": taken})
        return taken

    def _abandoned(self, turn: StoredTurn, now: datetime) -> bool:
        return (turn.lease_until is None or turn.lease_until <= now
                or self._replica.holds_dead_lease(turn.lease_owner))
