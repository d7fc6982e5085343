"""Persistent state: conversations, history, dedupe, attachments and usage (SQLite or PostgreSQL)."""

from storage.db import make_engine, migrate, normalize_url
from storage.store import (
    UNSET,
    Conversation,
    Store,
    StoredAttachment,
    StoredMessage,
    UsageRecord,
    UsageSummary,
)

__all__ = [
    "UNSET",
    "Conversation",
    "Store",
    "StoredAttachment",
    "StoredMessage",
    "UsageRecord",
    "UsageSummary",
    "make_engine",
    "migrate",
    "normalize_url",
]
