"""What spending limits need from storage: spend since a time, by user, channel or workspace, admins' lifts, and
the limits admins set for their workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from storage.base import StoreBase
from storage.models import ConversationRow, LimitLiftRow, UsageRow, WorkspaceLimitRow, utcnow

# (scope, period, usd, tokens) of a limit set for a workspace; usd and tokens both None: that limit is off there.
SetLimit = tuple[str, str, float | None, int | None]


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
        await self._replace(LimitLiftRow, {"platform": platform, "workspace": workspace, "scope": scope,
                                           "subject": subject},
                            {"until": until, "lifted_by": lifted_by, "created_at": utcnow()})

    async def restore_limits(self, platform: str, workspace: str, scope: str, subject: str) -> bool:
        return await self._delete(LimitLiftRow, {"platform": platform, "workspace": workspace, "scope": scope,
                                                 "subject": subject})

    async def lifted_until(self, platform: str, workspace: str, scope: str, subject: str) -> datetime | None:
        async with self._sessions() as session:
            return await session.scalar(select(LimitLiftRow.until).where(
                LimitLiftRow.platform == platform, LimitLiftRow.workspace == workspace,
                LimitLiftRow.scope == scope, LimitLiftRow.subject == subject, LimitLiftRow.until > utcnow()))

    async def workspace_limits(self, platform: str, workspace: str) -> list[SetLimit]:
        async with self._sessions() as session:
            rows = (await session.execute(select(WorkspaceLimitRow).where(
                WorkspaceLimitRow.platform == platform, WorkspaceLimitRow.workspace == workspace))).scalars()
            return [(r.scope, r.period, r.usd, r.tokens) for r in rows]

    async def set_workspace_limit(self, platform: str, workspace: str, limit: SetLimit, *, set_by: str) -> None:
        scope, period, usd, tokens = limit
        await self._replace(WorkspaceLimitRow, {"platform": platform, "workspace": workspace, "scope": scope,
                                                "period": period},
                            {"usd": usd, "tokens": tokens, "set_by": set_by, "created_at": utcnow()})

    async def unset_workspace_limit(self, platform: str, workspace: str, scope: str, period: str) -> bool:
        return await self._delete(WorkspaceLimitRow, {"platform": platform, "workspace": workspace, "scope": scope,
                                                      "period": period})

    async def _replace(self, model: Any, key: dict[str, str], values: dict[str, Any]) -> None:
        """The one row of `model` with this unique key, replaced (a concurrent writer's insert wins quietly)."""
        async with self._sessions() as session:
            await session.execute(delete(model).filter_by(**key))
            await session.execute(self._insert_ignoring(model, tuple(key), {**key, **values}))
            await session.commit()

    async def _delete(self, model: Any, key: dict[str, str]) -> bool:
        async with self._sessions() as session:
            result = await session.execute(delete(model).filter_by(**key))
            await session.commit()
            return bool(result.rowcount)
