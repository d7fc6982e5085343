"""What `kimibot export` writes: stored rows as plain JSON-ready dicts, a page at a time.

One conversation, one person's data (their messages wherever they wrote, their usage and ratings), or
everything. Attachments are described (name, type, size, hash), not embedded: a line per message stays small.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, true

from storage.base import StoreBase
from storage.models import AttachmentRow, ConversationRow, FeedbackRow, MessageRow, UsageRow

PAGE = 500


def _plain(row: Any, kind: str, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    record: dict[str, Any] = {"type": kind}
    for column in row.__table__.columns:
        if column.key in skip:
            continue
        value = getattr(row, column.key)
        record[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return record


class ExportOps(StoreBase):
    async def export_page(self, kind: str, *, after: int = 0, conversation_id: int | None = None,
                          platform: str | None = None, workspace: str | None = None, user: str | None = None,
                          limit: int = PAGE) -> list[dict[str, Any]]:
        """Rows of `kind` (conversation, message, usage, feedback) with ids above `after`, in id
        order, within the scope given (a conversation, or a person on a platform and workspace, or all)."""
        model, where = self._scope(kind, conversation_id, platform, workspace, user)
        async with self._sessions() as session:
            rows = await session.scalars(select(model).where(model.id > after, where).order_by(model.id).limit(limit))
            return [_plain(row, kind, frozenset({"data"})) for row in rows]

    def _scope(self, kind: str, conversation_id: int | None, platform: str | None, workspace: str | None,
               user: str | None) -> tuple[Any, ColumnElement[bool]]:
        place = true()
        if platform is not None:
            place = place & (ConversationRow.platform == platform)
        if workspace is not None:
            place = place & (ConversationRow.workspace == workspace)
        conversations = select(ConversationRow.id).where(place)
        if conversation_id is not None:
            conversations = select(ConversationRow.id).where(ConversationRow.id == conversation_id)
        if user is not None:
            conversations = conversations.where(ConversationRow.id.in_(
                select(MessageRow.conversation_id).where(MessageRow.author_id == user)))
        if kind == "conversation":
            return ConversationRow, ConversationRow.id.in_(conversations)
        if kind == "message":
            mine = MessageRow.author_id == user if user is not None else true()
            return MessageRow, MessageRow.conversation_id.in_(conversations) & mine
        if kind == "usage":
            return UsageRow, _people(UsageRow, platform, workspace, user, conversation_id)
        if kind == "feedback":
            return FeedbackRow, _people(FeedbackRow, platform, workspace, user, None)
        raise ValueError(f"unknown export kind {kind!r}")

    async def attachment_ids(self, *, conversation_id: int | None = None, platform: str | None = None,
                             workspace: str | None = None, user: str | None = None) -> list[int]:
        """The attachments the scope's messages use."""
        ids: set[int] = set()
        after = 0
        while page := await self.export_page("message", after=after, conversation_id=conversation_id,
                                             platform=platform, workspace=workspace, user=user):
            for message in page:
                ids.update(int(i) for i in message.get("media_ids") or [])
            after = page[-1]["id"]
        return sorted(ids)

    async def export_attachments(self, ids: list[int]) -> list[dict[str, Any]]:
        async with self._sessions() as session:
            rows = await session.scalars(select(AttachmentRow).where(AttachmentRow.id.in_(ids)).order_by(
                AttachmentRow.id))
            return [_plain(row, "attachment", frozenset({"data"})) for row in rows]


def _people(model: Any, platform: str | None, workspace: str | None, user: str | None,
            conversation_id: int | None) -> ColumnElement[bool]:
    where: ColumnElement[bool] = true()
    if platform is not None:
        where = where & (model.platform == platform)
    if workspace is not None:
        where = where & (model.workspace == workspace)
    if user is not None:
        where = where & (model.user == user)
    if conversation_id is not None:
        where = where & (model.conversation_id == conversation_id)
    return where
