"""Deleting what is no longer to be kept: retention (everything older than a cutoff) and a user's data on request.

Deletes run in batches of `batch` rows, each its own short transaction, so a large purge never holds SQLite's
write lock (or PostgreSQL row locks) for long and a purge cut off half-way is simply continued next time.
Usage rows are business records (cost, spending limits): retention rolls old ones up into one row per day,
user, workspace and model instead of deleting them, and drops the link to the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import Text, cast, delete, func, select, update

from storage.base import StoreBase
from storage.models import (
    AttachmentRow,
    ConversationRow,
    FeedbackRow,
    MessageRefRow,
    MessageRow,
    ProcessedEventRow,
    TurnRow,
    UsageRow,
)
from storage.records import TurnState

BATCH = 500
# Turns still being answered are never deleted under their process's feet.
_SETTLED = (TurnState.DONE.value, TurnState.FAILED.value, TurnState.EXPIRED.value)


@dataclass(slots=True)
class Deleted:
    conversations: int = 0
    messages: int = 0
    attachments: int = 0
    turns: int = 0
    events: int = 0
    feedback: int = 0
    usage_rolled_up: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


class RetentionOps(StoreBase):
    async def purge_older_than(self, cutoff: datetime, *, batch: int = BATCH) -> Deleted:
        """Delete messages, settled turns, feedback, dedupe keys and message links older than `cutoff`;
        conversations with nothing left that were last touched before it; attachments no message uses any more;
        and roll up older usage rows."""
        done = Deleted()
        done.messages = await self._delete_messages(MessageRow.created_at < cutoff, batch)
        done.turns = await self._delete_batches(
            TurnRow, (TurnRow.created_at < cutoff) & TurnRow.state.in_(_SETTLED), batch)
        done.feedback = await self._delete_batches(FeedbackRow, FeedbackRow.created_at < cutoff, batch)
        done.events = await self._delete_batches(ProcessedEventRow, ProcessedEventRow.created_at < cutoff, batch)
        await self._delete_batches(MessageRefRow, MessageRefRow.created_at < cutoff, batch)
        empty = ~select(MessageRow.id).where(MessageRow.conversation_id == ConversationRow.id).exists()
        no_turns = ~select(TurnRow.id).where(TurnRow.conversation_id == ConversationRow.id).exists()
        done.conversations = await self._delete_batches(
            ConversationRow, (ConversationRow.updated_at < cutoff) & empty & no_turns, batch)
        done.attachments = await self._drop_unused_attachments(batch)
        done.usage_rolled_up = await self.roll_up_usage(cutoff)
        return done

    async def forget_user(self, platform: str, workspace: str, user: str, *, batch: int = BATCH) -> Deleted:
        """Everything `user` wrote in this workspace: their messages (and in conversations only they took part
        in, such as their DMs, the whole conversation with its answers), their questions' turns, their feedback,
        and the attachments nobody else's messages use. Their usage rows stay (cost records, no content)."""
        done = Deleted()
        in_workspace = select(ConversationRow.id).where(ConversationRow.platform == platform,
                                                        ConversationRow.workspace == workspace)
        asked = TurnRow.conversation_id.in_(in_workspace) & (TurnRow.question["user"].as_string() == user)
        # Rows from before migration 0007 have no author_id; their turns still say who asked.
        theirs = (MessageRow.author_id == user) | MessageRow.id.in_(
            select(TurnRow.question_row_id).where(asked, TurnRow.question_row_id.is_not(None)))
        for ids in _chunks(await self._conversations_only_of(in_workspace, theirs), batch):
            done.messages += await self._delete_messages(MessageRow.conversation_id.in_(ids), batch)
            done.turns += await self._delete_batches(
                TurnRow, TurnRow.conversation_id.in_(ids) & TurnRow.state.in_(_SETTLED), batch)
            await self._delete_batches(MessageRefRow, MessageRefRow.conversation_id.in_(ids), batch)
            done.conversations += await self._delete_batches(
                ConversationRow, ConversationRow.id.in_(ids) & ~select(TurnRow.id).where(
                    TurnRow.conversation_id == ConversationRow.id).exists(), batch)
        done.messages += await self._delete_messages(MessageRow.conversation_id.in_(in_workspace) & theirs, batch)
        done.turns += await self._delete_batches(TurnRow, asked & TurnRow.state.in_(_SETTLED), batch)
        done.feedback = await self._delete_batches(
            FeedbackRow, (FeedbackRow.platform == platform) & (FeedbackRow.workspace == workspace) &
            (FeedbackRow.user == user), batch)
        done.attachments = await self._drop_unused_attachments(batch)
        return done

    async def count_user_messages(self, platform: str, workspace: str, user: str) -> int:
        """What `forget` would delete, for its confirmation question."""
        in_workspace = select(ConversationRow.id).where(ConversationRow.platform == platform,
                                                        ConversationRow.workspace == workspace)
        asked = TurnRow.conversation_id.in_(in_workspace) & (TurnRow.question["user"].as_string() == user)
        theirs = (MessageRow.author_id == user) | MessageRow.id.in_(
            select(TurnRow.question_row_id).where(asked, TurnRow.question_row_id.is_not(None)))
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count(MessageRow.id)).where(
                MessageRow.conversation_id.in_(in_workspace), theirs)) or 0)

    async def roll_up_usage(self, cutoff: datetime) -> int:
        """Usage rows older than `cutoff` become one row per UTC day, platform, workspace, user and model;
        returns how many rows were folded away. Idempotent: a day already rolled up is one row and stays."""
        day = func.date(UsageRow.created_at)
        key = (day, UsageRow.platform, UsageRow.workspace, UsageRow.user, UsageRow.model)
        async with self._sessions() as session:
            groups = (await session.execute(
                select(*key, func.count(UsageRow.id), func.min(UsageRow.created_at),
                       func.sum(UsageRow.prompt_tokens), func.sum(UsageRow.cached_tokens),
                       func.sum(UsageRow.completion_tokens), func.sum(UsageRow.web_search_calls),
                       func.sum(UsageRow.cost_usd), func.avg(UsageRow.latency_ms))
                .where(UsageRow.created_at < cutoff).group_by(*key)
                .having(func.count(UsageRow.id) > 1))).all()
            folded = 0
            for g in groups:
                platform, workspace, user, model, count, first = g[1:7]
                same = ((UsageRow.created_at < cutoff) & (day == g[0]) & (UsageRow.platform == platform) &
                        (UsageRow.workspace == workspace) & (UsageRow.user == user) & (UsageRow.model == model))
                await session.execute(delete(UsageRow).where(same))
                session.add(UsageRow(conversation_id=None, platform=platform, workspace=workspace, user=user,
                                     model=model, prompt_tokens=int(g[7] or 0), cached_tokens=int(g[8] or 0),
                                     completion_tokens=int(g[9] or 0), web_search_calls=int(g[10] or 0),
                                     cost_usd=float(g[11] or 0.0), latency_ms=int(g[12] or 0), error=None,
                                     created_at=first))
                folded += int(count) - 1
            await session.commit()
            return folded

    # -- internals -------------------------------------------------------------------------------------

    async def _delete_batches(self, model: type, condition: object, batch: int) -> int:
        deleted = 0
        while True:
            async with self._sessions() as session:
                ids = list(await session.scalars(
                    select(model.id).where(condition).order_by(model.id).limit(batch)))  # type: ignore[attr-defined]
                if not ids:
                    return deleted
                await session.execute(delete(model).where(model.id.in_(ids)))  # type: ignore[attr-defined]
                await session.commit()
            deleted += len(ids)

    async def _delete_messages(self, condition: object, batch: int) -> int:
        """Delete messages in batches; a conversation that lost any drops its summary too (it may quote them;
        the next answer summarises again from what is left)."""
        deleted = 0
        while True:
            async with self._sessions() as session:
                rows = (await session.execute(select(MessageRow.id, MessageRow.conversation_id).where(
                    condition).order_by(MessageRow.id).limit(batch))).all()  # type: ignore[arg-type]
                if not rows:
                    return deleted
                await session.execute(delete(MessageRow).where(MessageRow.id.in_([r[0] for r in rows])))
                await session.execute(update(ConversationRow).where(
                    ConversationRow.id.in_({r[1] for r in rows}), ConversationRow.summary.is_not(None))
                    .values(summary=None, summary_upto_seq=0))
                await session.commit()
            deleted += len(rows)

    async def _conversations_only_of(self, in_workspace: object, theirs: object) -> list[int]:
        """Conversations where these messages are the only ones people wrote (answers have no author)."""
        mine = select(MessageRow.id).where(MessageRow.conversation_id == ConversationRow.id, theirs).exists()
        others = select(MessageRow.id).where(
            MessageRow.conversation_id == ConversationRow.id, MessageRow.role == "user", ~theirs).exists()  # type: ignore[operator]
        async with self._sessions() as session:
            return list(await session.scalars(select(ConversationRow.id).where(
                ConversationRow.id.in_(in_workspace), mine, ~others)))  # type: ignore[arg-type]

    async def _drop_unused_attachments(self, batch: int) -> int:
        async with self._sessions() as session:
            lists = await session.scalars(select(MessageRow.media_ids).where(cast(MessageRow.media_ids, Text) != "[]"))
            used = {int(i) for ids in lists for i in (ids or [])}
            every = list(await session.scalars(select(AttachmentRow.id)))
        unused = [i for i in every if i not in used]
        for ids in _chunks(unused, batch):
            async with self._sessions() as session:
                await session.execute(delete(AttachmentRow).where(AttachmentRow.id.in_(ids)))
                await session.commit()
        return len(unused)


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]
