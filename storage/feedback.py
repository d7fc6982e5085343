"""Feedback on answers: a rating per turn and user (changed in place when they change their mind), a reason
with a thumbs-down, and the views admins read (counts, the newest entries)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from storage.base import StoreBase
from storage.models import ConversationRow, FeedbackRow, TurnRow, utcnow
from storage.records import FeedbackCounts, FeedbackEntry, Rating, valid_optional

MAX_REASON = 2000


class FeedbackOps(StoreBase):
    async def record_feedback(self, turn_id: int, user: str, rating: Rating) -> FeedbackEntry | None:
        """Store `user`'s rating of the answer of `turn_id` (None: no such turn). A new rating clears the reason
        given with the old one."""
        async with self._sessions() as session:
            where = await session.execute(
                select(ConversationRow.platform, ConversationRow.workspace, ConversationRow.channel)
                .join(TurnRow, TurnRow.conversation_id == ConversationRow.id).where(TurnRow.id == turn_id))
            place = where.one_or_none()
            if place is None:
                return None
            now = utcnow()
            await session.execute(self._insert_ignoring(FeedbackRow, ("turn_id", "user"), {
                "turn_id": turn_id, "platform": place.platform, "workspace": place.workspace,
                "channel": place.channel, "user": user, "rating": rating.value, "created_at": now,
                "updated_at": now}))
            row = await session.scalar(select(FeedbackRow).where(FeedbackRow.turn_id == turn_id,
                                                                 FeedbackRow.user == user).with_for_update())
            if row is None:
                raise RuntimeError("feedback vanished right after it was stored")
            if row.rating != rating.value:
                row.rating, row.reason, row.updated_at = rating.value, None, now
            await session.commit()
            return _entry(row)

    async def set_feedback_reason(self, turn_id: int, user: str, reason: str) -> bool:
        """Attach `reason` to `user`'s rating of the turn; False when they have not rated it."""
        async with self._sessions() as session:
            row = await session.scalar(select(FeedbackRow).where(FeedbackRow.turn_id == turn_id,
                                                                 FeedbackRow.user == user).with_for_update())
            if row is None:
                return False
            row.reason = valid_optional(reason.strip()[:MAX_REASON] or None)
            await session.commit()
            return True

    async def feedback_counts(self, platform: str, workspace: str, *, since: datetime | None = None,
                              user: str | None = None) -> FeedbackCounts:
        stmt = (select(FeedbackRow.rating, func.count(FeedbackRow.id))
                .where(FeedbackRow.platform == platform, FeedbackRow.workspace == workspace)
                .group_by(FeedbackRow.rating))
        if since is not None:
            stmt = stmt.where(FeedbackRow.updated_at >= since)
        if user is not None:
            stmt = stmt.where(FeedbackRow.user == user)
        async with self._sessions() as session:
            counts = {rating: int(n) for rating, n in (await session.execute(stmt)).all()}
        return FeedbackCounts(up=counts.get(Rating.UP.value, 0), down=counts.get(Rating.DOWN.value, 0))

    async def recent_feedback(self, platform: str, workspace: str, *, limit: int = 5) -> list[FeedbackEntry]:
        """The newest ratings (by when they were last changed), newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(FeedbackRow).where(FeedbackRow.platform == platform, FeedbackRow.workspace == workspace)
                .order_by(FeedbackRow.updated_at.desc(), FeedbackRow.id.desc()).limit(limit))
            return [_entry(row) for row in rows]


def _entry(row: FeedbackRow) -> FeedbackEntry:
    return FeedbackEntry(turn_id=row.turn_id, platform=row.platform, workspace=row.workspace, channel=row.channel,
                         user=row.user, rating=Rating(row.rating), reason=row.reason, at=row.updated_at)
