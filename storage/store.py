"""The conversation store: history, settings, dedupe, attachments and usage behind plain async methods.

Store is assembled from one part per responsibility (storage/conversations.py, messages.py, events.py,
attachments.py, usage.py). Every method is one short transaction and returns frozen dataclasses, not ORM rows.
Races between processes sharing a database (replicas on PostgreSQL, or two processes on one SQLite file) are
settled by unique constraints with INSERT ... ON CONFLICT DO NOTHING, never by a read-then-write check.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import db
from storage.attachments import AttachmentOps
from storage.channels import ChannelOps
from storage.conversations import ConversationOps
from storage.events import EventOps
from storage.export import ExportOps
from storage.feedback import FeedbackOps
from storage.limits import LimitOps
from storage.messages import MessageOps
from storage.records import (
    UNSET,
    ChannelSettings,
    ChannelUsage,
    Conversation,
    FeedbackCounts,
    FeedbackEntry,
    MediaKind,
    Rating,
    StoredAttachment,
    StoredMessage,
    StoredTurn,
    TurnState,
    UsageRecord,
    UsageSummary,
    valid_text,
)
from storage.retention import Deleted, RetentionOps
from storage.retry import RetryPolicy, StoreUnavailable, retrying_methods
from storage.turns import TurnOps
from storage.usage import UsageOps

__all__ = [
    "UNSET",
    "ChannelSettings",
    "ChannelUsage",
    "Conversation",
    "Deleted",
    "FeedbackCounts",
    "FeedbackEntry",
    "MediaKind",
    "Rating",
    "Store",
    "StoreUnavailable",
    "StoredAttachment",
    "StoredMessage",
    "StoredTurn",
    "TurnState",
    "UsageRecord",
    "UsageSummary",
    "valid_text",
]


@retrying_methods
class Store(TurnOps, ConversationOps, ChannelOps, MessageOps, EventOps, AttachmentOps, UsageOps,
            FeedbackOps, LimitOps, RetentionOps, ExportOps):
    """Every public method retries busy-database and lost-connection errors for `retry_policy.window`
    seconds, then raises StoreUnavailable (storage/retry.py)."""

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, retry: RetryPolicy | None = None,
                   wait: float = 0.0) -> Store:
        """Connect (and by default migrate to the newest schema); the caller closes the store. A PostgreSQL
        server still starting (or not yet reachable) is waited for up to `wait` seconds."""
        engine: AsyncEngine = db.make_engine(url)
        try:
            if migrate:
                await db.migrate_when_up(engine, wait)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, retry)
