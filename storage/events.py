"""Exactly-once delivery: processed_events claims and their pruning."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select

from storage.base import StoreBase
from storage.models import ID_LENGTH, ProcessedEventRow, utcnow


def _hashed_if_long(value: str) -> str:
    """Keep identifiers within the column length; over-long ones are replaced by a stable digest."""
    if len(value) <= ID_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def claim_rows(platform: str, keys: Sequence[str]) -> list[dict[str, object]]:
    """The processed_events rows of one delivery; sorted so two claimers with overlapping keys lock rows in
    the same order (no PostgreSQL deadlock)."""
    now = utcnow()
    return [{"platform": platform, "key": k, "created_at": now} for k in sorted({_hashed_if_long(k) for k in keys})]


class EventOps(StoreBase):
    async def claim_event(self, platform: str, keys: Sequence[str]) -> bool:
        """True iff none of `keys` was claimed before; then all of them are recorded, atomically.

        An empty `keys` is trivially unclaimed (True) and records nothing.
        """
        rows = claim_rows(platform, keys)
        if not rows:
            return True
        stmt = self._insert_ignoring(ProcessedEventRow.__table__, ("platform", "key"), rows).returning(
            ProcessedEventRow.__table__.c.key
        )
        async with self._sessions() as session:
            inserted = (await session.execute(stmt)).all()
            if len(inserted) == len(rows):
                await session.commit()
                return True
            # Some key was already there (or a concurrent claimer won it): record none of them.
            await session.rollback()
            return False

    async def claimed_keys(self, platform: str, keys: Sequence[str]) -> set[str]:
        """Which of `keys` were claimed already (a read: whoever claims later still decides)."""
        hashed = {_hashed_if_long(k): k for k in keys}
        if not hashed:
            return set()
        async with self._sessions() as session:
            found = await session.scalars(select(ProcessedEventRow.key).where(
                ProcessedEventRow.platform == platform, ProcessedEventRow.key.in_(list(hashed))))
            return {hashed[k] for k in found}

    async def prune_events(self, older_than: timedelta) -> int:
        cutoff = utcnow() - older_than
        async with self._sessions() as session:
            result = await session.execute(
                delete(ProcessedEventRow).where(ProcessedEventRow.created_at < cutoff)
            )
            await session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]
