"""Turns: an acknowledged question stored with its dedupe keys, its answer's progress, and its lease.

Every state change is one short transaction. Leases are taken with a compare-and-set on what the taker read
(owner, expiry, attempt count), so when several processes sweep at once exactly one of them wins a turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from bot.types import ConversationKey
from storage.base import StoreBase
from storage.events import claim_rows
from storage.messages import MessageOps
from storage.models import ConversationRow, MessageRow, ProcessedEventRow, TurnRow, utcnow
from storage.records import (
    UNFINISHED,
    StoredMessage,
    StoredTurn,
    TurnState,
    message_from_row,
    turn_from_row,
    valid_optional,
)


class TurnOps(MessageOps, StoreBase):
    async def claim_turn(self, platform: str, keys: Sequence[str], *, key: ConversationKey,
                         question: Mapping[str, Any], reply: Mapping[str, Any], owner: str | None,
                         lease_until: datetime | None) -> StoredTurn | None:
        """Record a delivery's dedupe keys and its turn in one transaction; None when any key was seen before."""
        rows = claim_rows(platform, keys)
        now = utcnow()
        async with self._sessions() as session:
            if rows:
                stmt = self._insert_ignoring(ProcessedEventRow.__table__, ("platform", "key"), rows).returning(
                    ProcessedEventRow.__table__.c.key)
                if len((await session.execute(stmt)).all()) != len(rows):
                    await session.rollback()
                    return None
            conversation_id = await self._conversation_id(session, key)
            turn = TurnRow(conversation_id=conversation_id, platform=platform, state=TurnState.RECEIVED.value,
                           question=dict(question), reply=dict(reply), platform_message_ids=[],
                           lease_owner=owner, lease_until=lease_until, attempts=0, created_at=now, updated_at=now)
            session.add(turn)
            await session.flush()
            stored = turn_from_row(turn)
            await session.commit()
            return stored

    async def _conversation_id(self, session: Any, key: ConversationKey) -> int:
        lookup = select(ConversationRow.id).where(
            ConversationRow.platform == key.platform, ConversationRow.workspace == key.workspace,
            ConversationRow.channel == key.channel, ConversationRow.thread == key.thread)
        found = await session.scalar(lookup)
        if found is None:
            values = {"platform": key.platform, "workspace": key.workspace, "channel": key.channel,
                      "thread": key.thread, "summary_upto_seq": 0, "reset_seq": 0, "created_at": utcnow(),
                      "updated_at": utcnow()}
            await session.execute(self._insert_ignoring(
                ConversationRow, ("platform", "workspace", "channel", "thread"), values))
            found = await session.scalar(lookup)
        assert found is not None
        return int(found)

    async def get_turn(self, turn_id: int) -> StoredTurn | None:
        async with self._sessions() as session:
            row = await session.get(TurnRow, turn_id)
            return turn_from_row(row) if row is not None else None

    async def begin_answer(self, turn_id: int, conversation_id: int,
                           question_row: Mapping[str, Any] | None) -> StoredMessage:
        """Mark the turn answering and return the assistant row to stream into, in one transaction.

        A first attempt stores the user's question (`question_row`) and a new streaming row. A resumed attempt
        (question already stored) reuses the streaming row the interrupted attempt left, or adds one.
        """
        async with self._sessions() as session:
            turn = await session.get(TurnRow, turn_id)
            if turn is None:
                raise LookupError(f"turn {turn_id} does not exist")
            streaming: StoredMessage | None = None
            if question_row is not None and turn.question_row_id is None:
                question, streaming = await self._append_messages(
                    session, conversation_id, [question_row, {"role": "assistant", "status": "streaming"}])
                turn.question_row_id = question.id
            elif turn.question_row_id is not None:
                streaming = await self._leftover_stream(session, conversation_id, turn.question_row_id)
            if streaming is None:
                (streaming,) = await self._append_messages(
                    session, conversation_id, [{"role": "assistant", "status": "streaming"}])
            turn.state = TurnState.ANSWERING.value
            turn.updated_at = utcnow()
            await session.commit()
            return streaming

    async def _leftover_stream(self, session: Any, conversation_id: int, question_row_id: int) -> StoredMessage | None:
        question_seq = select(MessageRow.seq).where(MessageRow.id == question_row_id).scalar_subquery()
        row = await session.scalar(
            select(MessageRow).where(MessageRow.conversation_id == conversation_id,
                                     MessageRow.seq > question_seq, MessageRow.status == "streaming",
                                     MessageRow.role == "assistant")
            .order_by(MessageRow.seq.desc()).limit(1))
        if row is None:
            return None
        row.text, row.reasoning, row.updated_at = "", None, utcnow()
        return message_from_row(row)

    async def finish_turn(self, turn_id: int, state: TurnState, *, answer_row_id: int | None = None,
                          answer: Mapping[str, Any] | None = None, platform_message_ids: Sequence[str] | None = None,
                          error: str | None = None) -> None:
        """Final state, lease cleared, and (optionally) the answer row's final values: one transaction."""
        if not state.finished:
            raise ValueError(f"{state} is not a final turn state")
        now = utcnow()
        values: dict[str, Any] = {"state": state.value, "lease_owner": None, "lease_until": None,
                                  "error": error, "updated_at": now}
        if platform_message_ids is not None:
            values["platform_message_ids"] = [str(i) for i in platform_message_ids]
        async with self._sessions() as session:
            await session.execute(update(TurnRow).where(TurnRow.id == turn_id).values(values))
            if answer_row_id is not None and answer:
                changes = {k: valid_optional(v) if k in ("text", "reasoning", "error") else v
                           for k, v in answer.items()}
                if "platform_message_ids" in changes:
                    changes["platform_message_ids"] = [str(i) for i in changes["platform_message_ids"]]
                await session.execute(update(MessageRow).where(MessageRow.id == answer_row_id)
                                      .values({**changes, "updated_at": now}))
            await session.commit()

    async def set_turn_messages(self, turn_id: int, platform_message_ids: Sequence[str]) -> None:
        async with self._sessions() as session:
            await session.execute(update(TurnRow).where(TurnRow.id == turn_id).values(
                platform_message_ids=[str(i) for i in platform_message_ids], updated_at=utcnow()))
            await session.commit()

    async def renew_leases(self, owner: str, until: datetime) -> int:
        """Extend every unfinished turn and every conversation this process holds (one heartbeat)."""
        async with self._sessions() as session:
            result = await session.execute(
                update(TurnRow).where(TurnRow.lease_owner == owner, TurnRow.state.in_(UNFINISHED))
                .values(lease_until=until))
            await session.execute(update(ConversationRow).where(ConversationRow.lease_owner == owner)
                                  .values(lease_until=until))
            await session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def release_leases(self, owner: str, turn_ids: Sequence[int] | None = None) -> int:
        """Let go of unfinished turns (all, or `turn_ids`) so any process resumes them at its next sweep; letting
        go of all of them lets go of this process's conversations too."""
        stmt = update(TurnRow).where(TurnRow.lease_owner == owner, TurnRow.state.in_(UNFINISHED))
        if turn_ids is not None:
            stmt = stmt.where(TurnRow.id.in_(list(turn_ids)))
        async with self._sessions() as session:
            result = await session.execute(stmt.values(lease_owner=None, lease_until=None, updated_at=utcnow()))
            if turn_ids is None:
                await session.execute(update(ConversationRow).where(ConversationRow.lease_owner == owner)
                                      .values(lease_owner=None, lease_until=None))
            await session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def lease_conversation(self, conversation_id: int, owner: str, until: datetime, *,
                                 dead_owner: str | None = None) -> str | None:
        """Hold the conversation for answering; None when taken, else the holder that keeps it. A free or
        expired lease is taken, and so is one held by `dead_owner` (a holder known to be gone)."""
        now = utcnow()
        free = or_(ConversationRow.lease_owner.is_(None), ConversationRow.lease_owner == owner,
                   ConversationRow.lease_until < now)
        if dead_owner is not None:
            free = or_(free, ConversationRow.lease_owner == dead_owner)
        async with self._sessions() as session:
            result = await session.execute(
                update(ConversationRow).where(ConversationRow.id == conversation_id, free)
                .values(lease_owner=owner, lease_until=until))
            holder = None if result.rowcount == 1 else await session.scalar(  # type: ignore[attr-defined]
                select(ConversationRow.lease_owner).where(ConversationRow.id == conversation_id))
            await session.commit()
            return holder

    async def release_conversation(self, conversation_id: int, owner: str) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(ConversationRow).where(ConversationRow.id == conversation_id,
                                              ConversationRow.lease_owner == owner)
                .values(lease_owner=None, lease_until=None))
            await session.commit()

    async def unfinished_turns(self, platforms: Sequence[str], *, not_owned_by: str,
                               limit: int = 200) -> list[StoredTurn]:
        """Unfinished turns of these platforms that some other process holds (or nobody), oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(TurnRow).where(TurnRow.state.in_(UNFINISHED), TurnRow.platform.in_(list(platforms)),
                                      TurnRow.lease_owner.is_distinct_from(not_owned_by))
                .order_by(TurnRow.id).limit(limit))
            return [turn_from_row(row) for row in rows]

    async def take_turn(self, seen: StoredTurn, owner: str, until: datetime) -> StoredTurn | None:
        """Take over `seen` if nobody changed its lease since it was read; None when another process won."""
        async with self._sessions() as session:
            row = await session.scalar(
                update(TurnRow).where(
                    TurnRow.id == seen.id, TurnRow.state.in_(UNFINISHED), TurnRow.attempts == seen.attempts,
                    TurnRow.lease_owner.is_not_distinct_from(seen.lease_owner),
                    TurnRow.lease_until.is_not_distinct_from(seen.lease_until))
                .values(lease_owner=owner, lease_until=until, attempts=TurnRow.attempts + 1, updated_at=utcnow())
                .returning(TurnRow).execution_options(synchronize_session=False))
            taken = turn_from_row(row) if row is not None else None
            await session.commit()
            return taken
