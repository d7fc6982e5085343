"""Conversations: get-or-create by key, settings, reset, summary, and platform message references."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.types import ConversationKey
from storage.base import StoreBase
from storage.models import ConversationRow, MessageRefRow, MessageRow, TurnRow, utcnow
from storage.records import UNSET, Conversation, _Unset, conversation_from_row, valid_optional, valid_text


class ConversationOps(StoreBase):
    async def get_conversation(self, key: ConversationKey) -> Conversation | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ConversationRow).where(
                    ConversationRow.platform == key.platform,
                    ConversationRow.workspace == key.workspace,
                    ConversationRow.channel == key.channel,
                    ConversationRow.thread == key.thread,
                )
            )
            return conversation_from_row(row) if row is not None else None

    async def get_conversation_by_id(self, conversation_id: int) -> Conversation | None:
        async with self._sessions() as session:
            row = await session.get(ConversationRow, conversation_id)
            return conversation_from_row(row) if row is not None else None

    async def get_or_create_conversation(self, key: ConversationKey) -> Conversation:
        existing = await self.get_conversation(key)
        if existing is not None:
            return existing
        now = utcnow()
        values = {
            "platform": key.platform,
            "workspace": key.workspace,
            "channel": key.channel,
            "thread": key.thread,
            "summary_upto_seq": 0,
            "reset_seq": 0,
            "created_at": now,
            "updated_at": now,
        }
        async with self._sessions() as session:
            await session.execute(
                self._insert_ignoring(ConversationRow, ("platform", "workspace", "channel", "thread"), values)
            )
            await session.commit()
        # Whoever won the insert, the row now exists.
        created = await self.get_conversation(key)
        if created is None:
            raise RuntimeError(f"conversation {key} vanished right after it was created")
        return created

    async def _require_conversation(self, session: AsyncSession, conversation_id: int) -> ConversationRow:
        row = await session.get(ConversationRow, conversation_id)
        if row is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        return row

    async def update_settings(
        self,
        conversation_id: int,
        *,
        model: str | _Unset | None = UNSET,
        thinking: bool | _Unset | None = UNSET,
        system_prompt: str | _Unset | None = UNSET,
    ) -> Conversation:
        """Change per-conversation settings; UNSET leaves a setting alone, None restores the default."""
        async with self._sessions() as session:
            row = await self._require_conversation(session, conversation_id)
            if model is not UNSET:
                row.model = model
            if thinking is not UNSET:
                row.thinking = thinking
            if system_prompt is not UNSET:
                row.system_prompt = valid_optional(system_prompt)
            await session.commit()
            return conversation_from_row(row)

    async def reset_conversation(self, conversation_id: int) -> None:
        """Start the history afresh without deleting anything: history() then shows later messages only."""
        last_seq = (
            select(func.coalesce(func.max(MessageRow.seq), 0))
            .where(MessageRow.conversation_id == conversation_id)
            .scalar_subquery()
        )
        async with self._sessions() as session:
            # One statement, so a message added concurrently is either before the reset point or after it.
            result = await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(reset_seq=last_seq, summary=None, summary_upto_seq=0, updated_at=utcnow())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise LookupError(f"conversation {conversation_id} does not exist")
            await session.commit()

    async def set_summary(self, conversation_id: int, summary: str | None, upto_seq: int) -> None:
        """Messages up to `upto_seq` are no longer sent to Kimi; `summary` (if any) stands in for them."""
        async with self._sessions() as session:
            result = await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(summary=valid_text(summary) if summary is not None else None, summary_upto_seq=upto_seq,
                        updated_at=utcnow())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise LookupError(f"conversation {conversation_id} does not exist")
            await session.commit()

    async def link_platform_message(
        self, conversation_id: int, platform: str, platform_message_id: str
    ) -> None:
        """Remember which conversation a platform message belongs to; the first link of a message wins."""
        values = {
            "conversation_id": conversation_id,
            "platform": platform,
            "platform_message_id": platform_message_id,
            "created_at": utcnow(),
        }
        async with self._sessions() as session:
            try:
                await session.execute(
                    self._insert_ignoring(MessageRefRow, ("platform", "platform_message_id"), values)
                )
                await session.commit()
            except IntegrityError as exc:
                raise LookupError(f"conversation {conversation_id} does not exist") from exc

    async def conversation_for_platform_message(
        self, platform: str, platform_message_id: str
    ) -> Conversation | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ConversationRow)
                .join(MessageRefRow, MessageRefRow.conversation_id == ConversationRow.id)
                .where(
                    MessageRefRow.platform == platform,
                    MessageRefRow.platform_message_id == platform_message_id,
                )
            )
            return conversation_from_row(row) if row is not None else None

    async def recent_places(self, platform: str, *, since: datetime, limit: int) -> list[ConversationKey]:
        """Conversations of `platform` asked something since `since`, most recently asked first."""
        newest = func.max(TurnRow.created_at)
        stmt = (select(ConversationRow.workspace, ConversationRow.channel, ConversationRow.thread)
                .join(TurnRow, TurnRow.conversation_id == ConversationRow.id)
                .where(ConversationRow.platform == platform, TurnRow.created_at >= since)
                .group_by(ConversationRow.id, ConversationRow.workspace, ConversationRow.channel,
                          ConversationRow.thread)
                .order_by(newest.desc()).limit(limit))
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        return [ConversationKey(platform, workspace, channel, thread) for workspace, channel, thread in rows]
