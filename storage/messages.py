"""Messages: appending with per-conversation seq, updating while streaming, history, interrupted answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.base import StoreBase
from storage.models import ConversationRow, MessageRow, utcnow
from storage.records import (
    UNSET,
    StoredMessage,
    _Unset,
    check_status,
    message_from_row,
    message_values,
    valid_optional,
)

# A writer loses a seq race only to another writer of the same conversation; a few retries always suffice.
_SEQ_ATTEMPTS = 20

log = logging.getLogger(__name__)

_TEXT_FIELDS = frozenset({"text", "reasoning", "error"})


class MessageOps(StoreBase):
    async def add_message(
        self,
        conversation_id: int,
        *,
        role: str,
        text: str = "",
        media_ids: Sequence[int] = (),
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        tool_name: str | None = None,
        reasoning: str | None = None,
        author: str | None = None,
        platform_message_ids: Sequence[str] = (),
        status: str = "complete",
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        error: str | None = None,
    ) -> StoredMessage:
        fields = {
            "role": role, "text": text, "media_ids": media_ids, "tool_calls": tool_calls,
            "tool_call_id": tool_call_id, "tool_name": tool_name, "reasoning": reasoning, "author": author,
            "platform_message_ids": platform_message_ids, "status": status, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "error": error,
        }  # fmt: skip
        (message,) = await self.add_messages(conversation_id, [fields])
        return message

    async def add_messages(
        self, conversation_id: int, messages: Sequence[Mapping[str, Any]]
    ) -> list[StoredMessage]:
        """Append several messages in one transaction, in order, each with the next free seq."""
        if not messages:
            return []
        async with self._sessions() as session:
            stored = await self._append_messages(session, conversation_id, messages)
            await session.commit()
        return stored

    async def _append_messages(self, session: AsyncSession, conversation_id: int,
                               messages: Sequence[Mapping[str, Any]]) -> list[StoredMessage]:
        """The inserts of add_messages inside a caller's transaction (which commits)."""
        prepared = [message_values(dict(m)) for m in messages]
        stored: list[StoredMessage] = []
        try:
            seq = await self._next_seq(session, conversation_id)
            for values in prepared:
                row, seq = await self._insert_message(session, conversation_id, seq, values)
                stored.append(message_from_row(row))
                seq += 1
        except IntegrityError as exc:
            # Seq conflicts never raise (ON CONFLICT DO NOTHING); what remains is the foreign key.
            raise LookupError(f"conversation {conversation_id} does not exist") from exc
        return stored

    async def _next_seq(self, session: AsyncSession, conversation_id: int) -> int:
        last = await session.scalar(
            select(func.max(MessageRow.seq)).where(MessageRow.conversation_id == conversation_id)
        )
        return (last or 0) + 1

    async def _insert_message(
        self, session: AsyncSession, conversation_id: int, seq: int, values: dict[str, Any]
    ) -> tuple[MessageRow, int]:
        for _ in range(_SEQ_ATTEMPTS):
            now = utcnow()
            stmt = self._insert_ignoring(
                MessageRow,
                ("conversation_id", "seq"),
                {
                    "conversation_id": conversation_id,
                    "seq": seq,
                    "created_at": now,
                    "updated_at": now,
                    **values,
                },
            ).returning(MessageRow)
            row = (await session.scalars(stmt)).first()
            if row is not None:
                return row, seq
            # Another process took this seq; it has committed by now (the insert waited for it), so re-read.
            log.debug("message seq taken, retrying", extra={"conversation_id": conversation_id, "seq": seq})
            seq = max(seq + 1, await self._next_seq(session, conversation_id))
        raise RuntimeError(f"could not allocate a message seq in conversation {conversation_id}")

    async def update_message(
        self,
        message_id: int,
        *,
        text: str | _Unset = UNSET,
        status: str | _Unset = UNSET,
        reasoning: str | _Unset | None = UNSET,
        tool_calls: list[dict[str, Any]] | _Unset | None = UNSET,
        platform_message_ids: Sequence[str] | _Unset = UNSET,
        prompt_tokens: int | _Unset | None = UNSET,
        completion_tokens: int | _Unset | None = UNSET,
        error: str | _Unset | None = UNSET,
    ) -> None:
        changes: dict[str, Any] = {
            "text": text, "status": status, "reasoning": reasoning, "tool_calls": tool_calls,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "error": error,
        }  # fmt: skip
        values = {name: valid_optional(value) if name in _TEXT_FIELDS and isinstance(value, str | None) else value
                  for name, value in changes.items() if value is not UNSET}
        if not isinstance(platform_message_ids, _Unset):
            values["platform_message_ids"] = [str(i) for i in platform_message_ids]
        if "status" in values:
            check_status(values["status"])
        values["updated_at"] = utcnow()
        async with self._sessions() as session:
            result = await session.execute(
                update(MessageRow).where(MessageRow.id == message_id).values(values)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise LookupError(f"message {message_id} does not exist")
            await session.commit()

    async def history(self, conversation_id: int) -> list[StoredMessage]:
        """Messages after the last reset, in seq order (summary_upto_seq is left to the caller)."""
        reset_seq = (
            select(ConversationRow.reset_seq).where(ConversationRow.id == conversation_id).scalar_subquery()
        )
        async with self._sessions() as session:
            rows = await session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id, MessageRow.seq > reset_seq)
                .order_by(MessageRow.seq)
            )
            return [message_from_row(row) for row in rows]

    async def has_messages(self, conversation_id: int) -> bool:
        """Whether the conversation has any message (since its last reset): one indexed lookup, not a load."""
        async with self._sessions() as session:
            reset_seq = await session.scalar(
                select(ConversationRow.reset_seq).where(ConversationRow.id == conversation_id))
            if reset_seq is None:
                return False
            found = await session.scalar(
                select(MessageRow.id)
                .where(MessageRow.conversation_id == conversation_id, MessageRow.seq > reset_seq)
                .limit(1))
            return found is not None
