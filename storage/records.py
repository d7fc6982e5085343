"""The plain values the store hands out. Callers never see ORM rows or sessions."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bot.types import ConversationKey
from storage.models import AttachmentRow, ConversationRow, MessageRow, TurnRow

ROLES: Final = frozenset({"system", "user", "assistant", "tool"})
# "truncated": an answer cut by the output limit, which `continue` picks up.
STATUSES: Final = frozenset({"streaming", "complete", "truncated", "interrupted", "failed"})


class _Unset(enum.Enum):
    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


# "Leave this field unchanged" in update methods, distinct from None (which clears a field).
UNSET: Final = _Unset.UNSET


class TurnState(enum.StrEnum):
    """Where an acknowledged question stands. RECEIVED and ANSWERING are unfinished: a process holds their
    lease, or nobody does and the next sweep resumes them. The other states are final."""

    RECEIVED = "received"
    ANSWERING = "answering"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        return self not in (TurnState.RECEIVED, TurnState.ANSWERING)


UNFINISHED: Final = (TurnState.RECEIVED.value, TurnState.ANSWERING.value)


@dataclass(frozen=True)
class Conversation:
    id: int
    platform: str
    workspace: str
    channel: str
    thread: str
    model: str | None
    thinking: bool | None
    system_prompt: str | None
    summary: str | None
    summary_upto_seq: int
    reset_seq: int
    created_at: datetime

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.platform, self.workspace, self.channel, self.thread)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    seq: int
    role: str  # system | user | assistant | tool
    text: str
    media_ids: list[int]
    tool_calls: list[dict[str, Any]] | None  # OpenAI wire format, stored verbatim
    tool_call_id: str | None
    tool_name: str | None
    reasoning: str | None
    author: str | None
    platform_message_ids: list[str]
    status: str  # streaming | complete | truncated | interrupted | failed
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class StoredTurn:
    id: int
    conversation_id: int
    platform: str
    state: TurnState
    question: dict[str, Any]
    reply: dict[str, Any]
    platform_message_ids: list[str]
    question_row_id: int | None
    lease_owner: str | None
    lease_until: datetime | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class ChannelSettings:
    model: str | None = None
    thinking: bool | None = None
    system_prompt: str | None = None
    usage_footer: bool | None = None
    answer_without_mention: bool | None = None
    updated_by: str = ""

    @property
    def empty(self) -> bool:
        return all(value is None for value in (self.model, self.thinking, self.system_prompt, self.usage_footer,
                                               self.answer_without_mention))


class Rating(enum.StrEnum):
    """A user's verdict on an answer."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    turn_id: int
    platform: str
    workspace: str
    channel: str
    user: str
    rating: Rating
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    up: int = 0
    down: int = 0


@dataclass(frozen=True, slots=True)
class ChannelUsage:
    channel: str
    answers: int
    cost_usd: float


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True)
class StoredAttachment:
    id: int
    sha256: str
    mime: str
    width: int
    height: int
    size: int
    data: bytes
    kind: MediaKind = MediaKind.IMAGE
    filename: str = ""
    remote_id: str | None = None


@dataclass(frozen=True)
class UsageRecord:
    conversation_id: int | None
    platform: str
    workspace: str
    user: str
    model: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    web_search_calls: int
    cost_usd: float
    latency_ms: int
    error: str | None = None


@dataclass(frozen=True)
class UsageSummary:
    calls: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    web_search_calls: int
    cost_usd: float


def conversation_from_row(row: ConversationRow) -> Conversation:
    return Conversation(
        id=row.id,
        platform=row.platform,
        workspace=row.workspace,
        channel=row.channel,
        thread=row.thread,
        model=row.model,
        thinking=row.thinking,
        system_prompt=row.system_prompt,
        summary=row.summary,
        summary_upto_seq=row.summary_upto_seq,
        reset_seq=row.reset_seq,
        created_at=row.created_at,
    )


def message_from_row(row: MessageRow) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        conversation_id=row.conversation_id,
        seq=row.seq,
        role=row.role,
        text=row.text,
        media_ids=list(row.media_ids),
        tool_calls=row.tool_calls,
        tool_call_id=row.tool_call_id,
        tool_name=row.tool_name,
        reasoning=row.reasoning,
        author=row.author,
        platform_message_ids=list(row.platform_message_ids),
        status=row.status,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        error=row.error,
        created_at=row.created_at,
    )


def turn_from_row(row: TurnRow) -> StoredTurn:
    return StoredTurn(
        id=row.id,
        conversation_id=row.conversation_id,
        platform=row.platform,
        state=TurnState(row.state),
        question=dict(row.question),
        reply=dict(row.reply),
        platform_message_ids=list(row.platform_message_ids),
        question_row_id=row.question_row_id,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        attempts=row.attempts,
        created_at=row.created_at,
    )


def attachment_from_row(row: AttachmentRow) -> StoredAttachment:
    return StoredAttachment(
        id=row.id,
        sha256=row.sha256,
        mime=row.mime,
        width=row.width,
        height=row.height,
        size=row.size,
        data=bytes(row.data),
        kind=MediaKind(row.kind),
        filename=row.filename,
        remote_id=row.remote_id,
    )


_MESSAGE_FIELDS: Final = frozenset(
    {
        "role",
        "text",
        "media_ids",
        "tool_calls",
        "tool_call_id",
        "tool_name",
        "reasoning",
        "author",
        "author_id",
        "platform_message_ids",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "error",
    }
)


def valid_text(text: str) -> str:
    """`text` with lone surrogates (valid in a Python str, invalid in UTF-8: the databases refuse them) replaced
    by U+FFFD. JSON from platforms and models can carry them as escapes such as \\ud800."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def valid_optional(text: str | None) -> str | None:
    return None if text is None else valid_text(text)


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown message status {status!r}; expected one of {sorted(STATUSES)}")
    return status


def message_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate one add_message keyword set and turn it into column values (sequences become lists)."""
    unknown = set(fields) - _MESSAGE_FIELDS
    if unknown:
        raise TypeError(f"unknown message fields: {sorted(unknown)}")
    if "role" not in fields:
        raise TypeError("a message needs a role")
    role = fields["role"]
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}; expected one of {sorted(ROLES)}")
    return {
        "role": role,
        "text": valid_text(fields.get("text", "")),
        "media_ids": [int(i) for i in fields.get("media_ids", ())],
        "tool_calls": fields.get("tool_calls"),
        "tool_call_id": fields.get("tool_call_id"),
        "tool_name": fields.get("tool_name"),
        "reasoning": valid_optional(fields.get("reasoning")),
        "author": valid_optional(fields.get("author")),
        "author_id": valid_optional(fields.get("author_id")),
        "platform_message_ids": [str(i) for i in fields.get("platform_message_ids", ())],
        "status": check_status(fields.get("status", "complete")),
        "prompt_tokens": fields.get("prompt_tokens"),
        "completion_tokens": fields.get("completion_tokens"),
        "error": valid_optional(fields.get("error")),
    }
