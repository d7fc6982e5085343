"""SQLAlchemy declarative models: the single description of the schema.

Callers never see these rows; storage.store converts them to frozen dataclasses. Any change here needs a new
hand-written migration in storage/migrations/versions (tests compare the two and fail on any drift).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names let future migrations (including SQLite batch rebuilds) refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Identifier columns (platform ids, event keys) are short; a bound length keeps PostgreSQL indexes compact.
ID_LENGTH = 255
PLATFORM_LENGTH = 32


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone storage, so values are stored as naive UTC there and given tzinfo back on read;
    naive input is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "workspace", "channel", "thread"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    workspace: Mapped[str] = mapped_column(String(ID_LENGTH))
    channel: Mapped[str] = mapped_column(String(ID_LENGTH))
    thread: Mapped[str] = mapped_column(String(ID_LENGTH))
    # Settings: None means "use the configured default".
    model: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    thinking: Mapped[bool | None] = mapped_column(Boolean)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    summary_upto_seq: Mapped[int] = mapped_column(Integer, default=0)
    reset_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Which process answers in this conversation until when: one at a time across replicas (bot/engine.py).
    lease_owner: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ChannelSettingsRow(Base):
    """An admin's defaults for every conversation in one channel; None means "use the configured default"."""

    __tablename__ = "channel_settings"
    __table_args__ = (UniqueConstraint("platform", "workspace", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    workspace: Mapped[str] = mapped_column(String(ID_LENGTH))
    channel: Mapped[str] = mapped_column(String(ID_LENGTH))
    model: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    thinking: Mapped[bool | None] = mapped_column(Boolean)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    usage_footer: Mapped[bool | None] = mapped_column(Boolean)
    answer_without_mention: Mapped[bool | None] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "conversation_id", "seq", unique=True),
        Index(None, "status"),
        Index(None, "author_id"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    media_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # none_as_null: a message without tool calls is SQL NULL, not the JSON literal null.
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    tool_call_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    tool_name: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    reasoning: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(ID_LENGTH))  # display name, as Kimi is told
    # The platform's id of the person who wrote it (NULL for answers, and for rows older than migration 0007).
    author_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    platform_message_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class AttachmentRow(Base):
    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    mime: Mapped[str] = mapped_column(String(ID_LENGTH))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    # Empty for a video too large to keep: that one lives on Kimi's file store as `remote_id` until its answer ends.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="image", server_default="image")
    filename: Mapped[str] = mapped_column(Text, default="", server_default="")
    remote_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProcessedEventRow(Base):
    __tablename__ = "processed_events"
    __table_args__ = (
        UniqueConstraint("platform", "key"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    key: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MessageRefRow(Base):
    """Maps a platform message (ours or the user's) to its conversation, e.g. for Discord reply chains."""

    __tablename__ = "message_refs"
    __table_args__ = (
        UniqueConstraint("platform", "platform_message_id"),
        Index(None, "conversation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    platform_message_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsageRow(Base):
    """One row per Kimi call."""

    __tablename__ = "usage"
    __table_args__ = (
        Index(None, "platform", "workspace", "created_at"),
        Index(None, "user"),
        Index(None, "conversation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    workspace: Mapped[str] = mapped_column(String(ID_LENGTH))
    user: Mapped[str] = mapped_column(String(ID_LENGTH))
    model: Mapped[str] = mapped_column(String(ID_LENGTH))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    web_search_calls: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Double)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LimitLiftRow(Base):
    """An admin lifted the spending limits of one scope (user, channel or workspace) until `until`."""

    __tablename__ = "limit_lifts"
    __table_args__ = (UniqueConstraint("platform", "workspace", "scope", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    workspace: Mapped[str] = mapped_column(String(ID_LENGTH))
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(ID_LENGTH))
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    lifted_by: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WorkspaceLimitRow(Base):
    """A spending limit an admin set for one scope and period in a workspace, replacing the configuration's for
    that scope and period; neither usd nor tokens: that limit is off in this workspace."""

    __tablename__ = "workspace_limits"
    __table_args__ = (UniqueConstraint("platform", "workspace", "scope", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    workspace: Mapped[str] = mapped_column(String(ID_LENGTH))
    scope: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(8))
    usd: Mapped[float | None] = mapped_column(Double, nullable=True)
    tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    set_by: Mapped[str] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FeedbackRow(Base):
    """A user's rating of one answer (a turn): one row per turn and user, changed when they change their mind."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("turn_id", "user"),
        Index(None, "platform", "workspace", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    workspace: Mapped[str] = mapped_column(String(ID_LENGTH))
    channel: Mapped[str] = mapped_column(String(ID_LENGTH))
    user: Mapped[str] = mapped_column(String(ID_LENGTH))
    rating: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class TurnRow(Base):
    """One acknowledged question, from receipt to its final answer: the durable unit a crash cannot lose.

    A turn is written together with its delivery's dedupe keys. `lease_owner`/`lease_until` say which process
    works on it until when; a turn whose lease has run out (its process died, or let go at shutdown) is taken
    over by another process, in the database, so exactly one process resumes it.
    """

    __tablename__ = "turns"
    __table_args__ = (
        Index(None, "state", "platform"),
        Index(None, "lease_owner"),
        Index(None, "conversation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(PLATFORM_LENGTH))
    state: Mapped[str] = mapped_column(String(16))
    # The question as the adapter delivered it, and where its answer goes (adapter-defined address).
    question: Mapped[dict[str, Any]] = mapped_column(JSON)
    reply: Mapped[dict[str, Any]] = mapped_column(JSON)
    platform_message_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    question_row_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    lease_owner: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
