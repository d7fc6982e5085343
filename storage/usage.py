"""Usage accounting: one row per Kimi call, and totals over any slice of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage.base import StoreBase
from storage.models import ConversationRow, UsageRow, utcnow
from storage.records import ChannelUsage, UsageRecord, UsageSummary


class UsageOps(StoreBase):
    async def record_usage(self, record: UsageRecord) -> None:
        async with self._sessions() as session:
            session.add(
                UsageRow(
                    conversation_id=record.conversation_id,
                    platform=record.platform,
                    workspace=record.workspace,
                    user=record.user,
                    model=record.model,
                    prompt_tokens=record.prompt_tokens,
                    cached_tokens=record.cached_tokens,
                    completion_tokens=record.completion_tokens,
                    web_search_calls=record.web_search_calls,
                    cost_usd=float(record.cost_usd),
                    latency_ms=record.latency_ms,
                    error=record.error,
                    created_at=utcnow(),
                )
            )
            try:
                await session.commit()
            except IntegrityError as exc:
                raise LookupError(f"conversation {record.conversation_id} does not exist") from exc

    async def usage_summary(
        self,
        *,
        conversation_id: int | None = None,
        platform: str | None = None,
        workspace: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
    ) -> UsageSummary:
        """Totals over the usage rows matching every given filter (no filter: everything)."""
        stmt = select(
            func.count(UsageRow.id),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRow.cached_tokens), 0),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0),
            func.coalesce(func.sum(UsageRow.web_search_calls), 0),
            func.coalesce(func.sum(UsageRow.cost_usd), 0.0),
        )
        if conversation_id is not None:
            stmt = stmt.where(UsageRow.conversation_id == conversation_id)
        if platform is not None:
            stmt = stmt.where(UsageRow.platform == platform)
        if workspace is not None:
            stmt = stmt.where(UsageRow.workspace == workspace)
        if user is not None:
            stmt = stmt.where(UsageRow.user == user)
        if since is not None:
            stmt = stmt.where(UsageRow.created_at >= since)
        async with self._sessions() as session:
            calls, prompt, cached, completion, searches, cost = (await session.execute(stmt)).one()
        return UsageSummary(
            calls=int(calls),
            prompt_tokens=int(prompt),
            cached_tokens=int(cached),
            completion_tokens=int(completion),
            web_search_calls=int(searches),
            cost_usd=float(cost),
        )

    async def usage_by_channel(self, platform: str, workspace: str, *, since: datetime,
                               limit: int = 5) -> list[ChannelUsage]:
        """The channels that cost most since `since`, costliest first (Kimi calls counted as answers' work)."""
        cost = func.coalesce(func.sum(UsageRow.cost_usd), 0.0)
        stmt = (select(ConversationRow.channel, func.count(func.distinct(UsageRow.conversation_id)), cost)
                .join(ConversationRow, ConversationRow.id == UsageRow.conversation_id)
                .where(UsageRow.platform == platform, UsageRow.workspace == workspace, UsageRow.created_at >= since)
                .group_by(ConversationRow.channel).order_by(cost.desc()).limit(limit))
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        return [ChannelUsage(channel=channel, answers=int(n), cost_usd=float(total)) for channel, n, total in rows]
