"""Reply surfaces over Discord channels: send, edit, typing, paced by one shared budget per channel.

Answers are plain message content (2,000 characters), not embeds: content renders Markdown and code blocks at
full width, can be copied and searched, shows in notifications, and the core's splitter keeps every code block
whole across messages. Embeds allow 4,096 characters but render narrow, in a coloured box, with smaller code,
and their 6,000-character total would still force splitting.

Sends and edits in one channel share one Discord bucket, so every answer in a channel draws from the same
budget (in this process, or in Redis for every shard and replica). Its burst plus what it refills in one
window never exceeds the bucket's limit, so the bucket is never overdrawn (no 429) and discord.py rarely has
to sleep; when it does, only the publisher's background writer waits, never the token loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import discord

from adapters.discord.feedback import feedback_view
from bot.types import AnswerControls, Budgets, PublishOptions, RateLimited, WriteBudget

log = logging.getLogger(__name__)

MAX_CHARS = 2000
# Discord shows "is typing…" for about 10 s after each trigger.
TYPING_INTERVAL = 8.0
# A typing loop is a courtesy; it never runs longer than an interaction token lives.
MAX_TYPING = 15 * 60.0
NO_PINGS = discord.AllowedMentions.none()
DISCORD_OPTIONS = PublishOptions(placeholder=None)
THREAD_EXISTS = 160004
_MAX_BUDGETS = 2048
T = TypeVar("T")


class ChannelBudgets:
    """One write budget per channel (a thread is its own channel), shared by every answer written there."""

    def __init__(self, *, limit: int, window: float, source: Budgets) -> None:
        # burst + rate * window <= limit: no fixed window of the platform's bucket can see more than `limit`.
        self.burst = 2
        self.rate = (limit - self.burst) / window
        self._source = source
        self._budgets: OrderedDict[int, WriteBudget] = OrderedDict()
        # Discord's global limit (50 requests/s per bot) covers every bot-token call of every shard, and
        # discord.py only reacts to it after a 429. Burst 20 + 30/s keeps any one second within 50.
        self.global_requests = source.bucket("discord:global", rate=30.0, burst=20)

    def for_channel(self, channel_id: int) -> WriteBudget:
        budget = self._budgets.get(channel_id)
        if budget is None:
            budget = self._source.bucket(f"discord:channel:{channel_id}", rate=self.rate, burst=self.burst,
                                         reserve=1)
            self._budgets[channel_id] = budget
            while len(self._budgets) > _MAX_BUDGETS:
                # The oldest budget has been idle longest, so it is full again: dropping it loses nothing.
                self._budgets.popitem(last=False)
        self._budgets.move_to_end(channel_id)
        return budget


def rate_limited(error: discord.HTTPException | discord.RateLimited) -> RateLimited | None:
    """discord.py sleeps through short 429s itself; what still reaches us becomes the core's RateLimited."""
    if isinstance(error, discord.RateLimited):
        return RateLimited(error.retry_after)
    if error.status == 429:
        return RateLimited(1.0)
    return None


class Target(Protocol):
    """Where an answer's messages go; resolved on the first write."""

    channel_id: int
    # Whether the first message should be a reply to the user's message (not inside a fresh thread).
    replies: bool

    async def get(self) -> discord.abc.Messageable: ...

    def address(self) -> dict[str, Any]:
        """Stored with the turn; adapters/discord/resume.py rebuilds the target from it."""
        ...


class FixedTarget:
    def __init__(self, channel: discord.abc.Messageable, channel_id: int, *, replies: bool = True) -> None:
        self.channel_id = channel_id
        self.replies = replies
        self._channel = channel

    async def get(self) -> discord.abc.Messageable:
        return self._channel

    def address(self) -> dict[str, Any]:
        return {"channel_id": str(self.channel_id)}


class ThreadFromMessage:
    """Opens a thread from the mention on the first write, so duplicate or refused deliveries open nothing.

    Falls back to the message's channel when a thread cannot be opened (no permission, wrong channel type).
    """

    def __init__(self, message: discord.Message | discord.PartialMessage, name: str, *, archive_minutes: int,
                 global_requests: WriteBudget,
                 partial_channel: Callable[[int], discord.abc.Messageable] | None = None) -> None:
        self._message = message
        self._partial_channel = partial_channel
        self._global = global_requests
        self._name = name
        self._archive = archive_minutes
        self._channel: discord.abc.Messageable | None = None
        self._lock = asyncio.Lock()
        # A thread opened from a message has the message's id (channel.mdx "Start Thread from Message").
        self.channel_id = message.id
        self.replies = False

    async def get(self) -> discord.abc.Messageable:
        async with self._lock:
            if self._channel is None:
                self._channel = await self._open()
            return self._channel

    def address(self) -> dict[str, Any]:
        return {"channel_id": str(self._message.channel.id), "thread_from": str(self._message.id),
                "name": self._name}

    async def _open(self) -> discord.abc.Messageable:
        message = self._message
        await self._global.acquire(final=True)
        try:
            return await message.create_thread(name=self._name, auto_archive_duration=self._archive)  # type: ignore[arg-type]
        except discord.HTTPException as error:
            if error.code == THREAD_EXISTS:
                # Opened by an earlier attempt at this answer (or a twin delivery): the thread has the message's id.
                existing = message.guild.get_thread(message.id) if message.guild is not None else None
                if existing is not None:
                    return existing
                if self._partial_channel is not None:
                    return self._partial_channel(message.id)
            log.warning("cannot open a thread; answering in the channel",
                        extra={"code": error.code, "status": error.status, "channel": message.channel.id})
        self.replies = True
        self.channel_id = message.channel.id
        return message.channel


class ChannelSurface:
    """The core's ReplySurface on a Discord channel, thread or DM."""

    max_chars = MAX_CHARS
    publish_options = DISCORD_OPTIONS

    def __init__(self, target: Target, budgets: ChannelBudgets, *,
                 reply_to: discord.Message | discord.PartialMessage | None = None,
                 typing_interval: float = TYPING_INTERVAL) -> None:
        self._target = target
        self._budgets = budgets
        self._reply_to = reply_to
        self._typing_interval = typing_interval
        self._typing: asyncio.Task[None] | None = None
        self.posted: list[int] = []

    @property
    def edit_budget(self) -> WriteBudget:
        return self._budgets.for_channel(self._target.channel_id)

    @property
    def post_budget(self) -> WriteBudget:
        return self._budgets.for_channel(self._target.channel_id)

    async def channel(self) -> discord.abc.Messageable:
        return await self._target.get()

    def address(self) -> dict[str, Any]:
        reply_to = str(self._reply_to.id) if self._reply_to is not None else None
        return {**self._target.address(), "reply_to": reply_to}

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        channel = await self._target.get()
        # Only the first message answers the user's message; continuations simply follow it.
        reply = self._reply_to if self._target.replies and not self.posted else None
        # The user may have deleted their message meanwhile: then the answer goes out without the reply link
        # (by default Discord refuses the whole message).
        reference = reply.to_reference(fail_if_not_exists=False) if reply is not None else None
        await self._budgets.global_requests.acquire(final=True)
        extra = {"view": feedback_view(controls.turn_id)} if controls is not None else {}
        sent = await call_discord(channel.send(text, reference=reference, mention_author=False,  # type: ignore[call-overload]
                                        allowed_mentions=NO_PINGS, **extra))
        self.posted.append(sent.id)
        return str(sent.id)

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        channel = await self._target.get()
        partial = channel.get_partial_message(int(message_id))  # type: ignore[attr-defined]
        await self._budgets.global_requests.acquire(final=True)
        extra = {"view": feedback_view(controls.turn_id)} if controls is not None else {}
        await call_discord(partial.edit(content=text, allowed_mentions=NO_PINGS, **extra))

    async def set_status(self, status: str | None) -> None:
        if status is None:
            self._stop_typing()
            return
        if self._typing is None or self._typing.done():
            channel = await self._target.get()
            self._typing = asyncio.create_task(self._keep_typing(channel), name="kimibot-discord-typing")

    async def _keep_typing(self, channel: discord.abc.Messageable) -> None:
        async with asyncio.timeout(MAX_TYPING):
            while True:
                try:
                    # Typing is cosmetic: under global pressure it is skipped rather than queued.
                    if await self._budgets.global_requests.try_acquire():
                        await channel.typing()
                except discord.HTTPException as error:
                    log.debug("typing trigger failed", extra={"status": error.status})
                await asyncio.sleep(self._typing_interval)

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None

    async def close(self) -> None:
        task, self._typing = self._typing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await task


async def call_discord(request: Awaitable[T]) -> T:
    try:
        return await request
    except (discord.HTTPException, discord.RateLimited) as error:
        limited = rate_limited(error)
        if limited is not None:
            raise limited from error
        raise
