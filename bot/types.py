"""Platform-neutral values that flow between adapters, the engine and the publisher.

Adapters build these from platform events; the engine never sees a Slack or Discord object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Identifies one conversation. See the key table in docs/ARCHITECTURE.md."""

    platform: str
    workspace: str
    channel: str
    thread: str

    def __str__(self) -> str:
        return f"{self.platform}/{self.workspace}/{self.channel}/{self.thread}"


@dataclass(frozen=True, slots=True)
class IncomingAttachment:
    """A file on an incoming message; bytes are fetched lazily so refused files cost nothing."""

    filename: str
    mime: str | None
    size: int | None
    fetch: Callable[[], Awaitable[bytes]]
    source: str = ""
    # What the adapter needs to fetch the file again after a restart (a URL, a file id); stored with the turn.
    ref: str = ""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    platform: str
    workspace: str
    channel: str
    thread: str
    message_id: str
    user: str
    text: str
    attachments: tuple[IncomingAttachment, ...] = ()
    mentioned: bool = False
    is_dm: bool = False
    user_name: str = ""
    # Extra identities the access rules may match (Discord roles, a thread's parent channel, ...).
    roles: frozenset[str] = frozenset()
    parent_channels: tuple[str, ...] = ()
    # Keys that identify this delivery for exactly-once answering; the first one already seen wins.
    dedupe_keys: tuple[str, ...] = ()
    # Where the answer goes, in the adapter's own terms (channel, thread, message to reply to); stored with the
    # turn so that after a restart the adapter can rebuild the reply surface from it.
    reply: dict[str, Any] = field(default_factory=dict)
    # What the adapter wants said under the answer (e.g. that a long thread was read only in part).
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.platform, self.workspace, self.channel, self.thread)


class WriteBudget(Protocol):
    """A shared allowance of platform writes (e.g. one Slack workspace's chat.update tier).

    Interim writes must leave `reserve` tokens for final writes so every answer's complete text lands. Taking
    and penalising may talk to a store shared by replicas (Redis), so they are coroutines; the estimates
    (`available`, `waiting`, `next_available_in`) answer from what this process last saw and never wait.
    """

    async def try_acquire(self, *, final: bool = False) -> bool: ...

    async def acquire(self, *, final: bool = False) -> None: ...

    async def penalize(self, retry_after: float) -> None: ...

    def next_available_in(self, *, final: bool = False) -> float:
        """Seconds until a token could be granted (0 if now)."""
        ...

    def available(self) -> float:
        """Tokens in the bucket now, as far as this process knows (0 while a penalty lasts)."""
        ...

    def waiting(self) -> int:
        """Writers of this process queued in `acquire`."""
        ...


class Tally(Protocol):
    """A count kept by every replica for one scope (e.g. a workspace's answers that owe a final chat.update):
    `add` changes this replica's part at once; `total` adds what the other replicas last reported."""

    def add(self, delta: int) -> None: ...

    @property
    def total(self) -> int: ...


class Budgets(Protocol):
    """Makes the write budget for one rate-limit scope; the same key always names the same platform limit,
    so replicas that share a store share the budget (and the tally)."""

    def bucket(self, key: str, *, rate: float, burst: int, reserve: int = 0) -> WriteBudget: ...

    def tally(self, key: str) -> Tally: ...


class RateLimited(Exception):
    """Raised by a reply surface when the platform answered 429 despite the budget."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.1f}s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """How an answer is presented on a surface; a surface may set `publish_options`, else these defaults apply."""

    # Posted at once so the user sees a reply immediately; None shows surface.set_status (typing) instead.
    placeholder: str | None = "…"
    # Least seconds between interim edits of one answer; None takes the configured bot.edit_interval.
    min_edit_interval: float | None = None
    # Interim text with a status line and closed code fences (chat platforms); False streams raw text.
    decorate: bool = True
    # Never edit: post each finished paragraph as a new message (when the platform's edit allowance is spent
    # but posts are not). Implies no placeholder.
    append_only: bool = False


@dataclass(frozen=True, slots=True)
class AnswerControls:
    """What a finished answer offers under its last message: rating buttons for the answer of turn `turn_id`.
    A surface that has no such controls ignores them."""

    turn_id: int


class ReplySurface(Protocol):
    """What an adapter offers the engine for one answer: the few write primitives of its platform.

    It may also carry `publish_options: PublishOptions` to shape how answers are presented.
    """

    max_chars: int
    edit_budget: WriteBudget
    post_budget: WriteBudget

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        """Post a new message in the answer's place; return its platform id. `controls` come with the last
        write of a finished answer only."""
        ...

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None: ...

    async def set_status(self, status: str | None) -> None:
        """Show a transient status (typing indicator, assistant status); None clears it."""
        ...


@dataclass(frozen=True, slots=True)
class BackfillItem:
    """A message from a platform thread the bot joins midway, stored once so later turns rely on storage."""

    role: str  # "user" or "assistant"
    text: str
    message_id: str
    author: str = ""
    author_id: str = ""  # the platform's user id: what `forget` finds a person's messages by


@dataclass(slots=True)
class TurnOutcome:
    """What a finished turn looked like to the user, for tests and adapters."""

    status: str
    text: str
    message_ids: list[str] = field(default_factory=list)
    error: str | None = None


class ReplyUnreachable(Exception):
    """A resumer cannot reach where a turn's answer goes (an interaction token that was the only way in)."""


class ResumedTurn(Protocol):
    """What an adapter gets to rebuild a resumed turn's reply place (storage's StoredTurn has these)."""

    platform: str
    question: dict[str, Any]
    reply: dict[str, Any]
    platform_message_ids: list[str]


class TurnResumer(Protocol):
    """An adapter's way back into a turn another process (or a previous run) left unfinished."""

    def surface_for(self, turn: ResumedTurn) -> AbstractAsyncContextManager[ReplySurface]:
        """The reply surface at the turn's stored reply address, released when the context exits."""
        ...

    def attachments_for(self, turn: ResumedTurn) -> tuple[IncomingAttachment, ...]:
        """The question's files, fetchable again from their stored refs."""
        ...
