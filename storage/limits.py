"""What spending limits need from storage: spend since a time, by user, channel or workspace, and admins' lifts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select

from storage.base import StoreBase
from storage.models import ConversationRow, LimitLiftRow, UsageRow, utcnow


class LimitOps(StoreBase):
    async def spent(self, platform: str, workspace: str, *, since: datetime, user: str | None = None,
                    channel: str | None = None) -> tuple[float, int]:
        """Dollars and tokens (prompt + output) spent since `since`, by one user or in one channel if given."""
        stmt = (select(func.coalesce(func.sum(UsageRow.cost_usd), 0.0),
                       func.coalesce(func.sum(UsageRow.prompt_tokens + UsageRow.completion_tokens), 0))
                .where(UsageRow.platform == platform, UsageRow.workspace == workspace, UsageRow.created_at >= since))
        if user is not None:
            stmt = stmt.where(UsageRow.user == user)
        if channel is not None:
            stmt = stmt.join(ConversationRow, ConversationRow.id == UsageRow.conversation_id).where(
                ConversationRow.channel == channel)
        async with self._sessions() as session:
            usd, tokens = (await session.execute(stmt)).one()
        return float(usd), int(tokens)

    async def lift_limits(self, platform: str, workspace: str, scope: str, subject: str, *, until: datetime,
                          lifted_by: str) -> None:
        values = {"platform": platform, "workspace": workspace, "scope": scope, "subject": subject,
                  "until": until, "lifted_by": lifted_by, "created_at": utcnow()}
        async with self._sessions() as session:
            await session.execute(delete(LimitLiftRow).where(
                LimitLiftRow.platform == platform, LimitLiftRow.workspace == workspace,
                LimitLiftRow.scope == scope, LimitLiftRow.subject == subject))
            await session.execute(self._insert_ignoring(LimitLiftRow, ("platform", "workspace", "scope", "subject"),
                                                        values))
            await session.commit()

    async def restore_limits(self, platform: str, workspace: str, scope: str, subject: str) -> bool:
        async with self._sessions() as session:
            result = await session.execute(delete(LimitLiftRow).where(
                LimitLiftRow.platform == platform, LimitLiftRow.workspace == workspace,
                LimitLiftRow.scope == scope, LimitLiftRow.subject == subject))
            await session.commit()
            return bool(result.rowcount)

    async def lifted_until(self, platform: str, workspace: str, scope: str, subject: str) -> datetime | None:
        async with self._sessions() as session:
            return await session.scalar(select(LimitLiftRow.until).where(
                LimitLiftRow.platform == platform, LimitLiftRow.workspace == workspace,
                LimitLiftRow.scope == scope, LimitLiftRow.subject == subject, LimitLiftRow.until > utcnow()))
