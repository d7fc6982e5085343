"""MESSAGE_CREATE → which conversation, which reply place, or nothing.

* DM: every message is a turn; key (discord, "@me", channel, "dm").
* Mention in a channel: a new conversation keyed by the mention's id; answered in a thread opened from the
  message (`reply_in = "thread"`, the thread then has that same id) or as a reply in the channel.
* Any message in a thread whose conversation the bot keeps: a turn, no mention needed. A mention in a thread
  the bot has not seen first stores the thread's earlier messages (backfill).
* A reply to one of the bot's messages continues that message's conversation (`Engine.conversation_of`).
Own messages are always ignored, other bots' and webhooks' when `access.ignore_bots` is on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import discord

from adapters.discord import incoming as conv
from adapters.discord.surface import ChannelBudgets, ChannelSurface, FixedTarget, ThreadFromMessage
from adapters.downloads import Downloads
from bot.access import AccessPolicy
from bot.config import DiscordConfig
from bot.engine import Engine
from bot.scheduler import Ticket
from bot.types import BackfillItem, ConversationKey, IncomingAttachment, IncomingMessage

log = logging.getLogger(__name__)

ANSWERED_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


@dataclass(slots=True)
class Route:
    message: IncomingMessage
    surface: ChannelSurface


def _route(place: conv.Place, surface: ChannelSurface, message: discord.Message, text: str,
           attachments: tuple[IncomingAttachment, ...], *, mentioned: bool, actual: conv.Place | None = None) -> Route:
    question = conv.incoming(place, message_id=message.id, author=message.author, text=text,
                             attachments=attachments, mentioned=mentioned, dedupe_key=f"msg:{message.id}",
                             actual=actual, reply=surface.address())
    return Route(question, surface)


class MessageRouter:
    def __init__(self, *, engine: Engine, config: DiscordConfig, access: AccessPolicy, budgets: ChannelBudgets,
                 downloads: Downloads, partial_channel: Callable[[int], discord.abc.Messageable] | None = None) -> None:
        self._engine = engine
        self._downloads = downloads
        self._config = config
        self._access = access
        self._budgets = budgets
        self._partial_channel = partial_channel

    def reserve(self, message: discord.Message) -> Ticket | None:
        """The conversation's queue place for a DM or thread message, taken before any await (arrival order).
        A channel message starts a conversation of its own, or continues one found only by a lookup."""
        channel = message.channel
        if message.guild is not None and not isinstance(channel, discord.Thread):
            return None
        place = conv.place_of(channel, message.guild)
        return self._engine.reserve(ConversationKey(conv.PLATFORM, place.workspace, place.channel, place.thread))

    async def on_message(self, message: discord.Message, me: discord.ClientUser, ticket: Ticket | None = None) -> None:
        try:
            route = await self.route(message, me)
            if route is None:
                return
            if ticket is not None and ticket.key != route.message.key:
                self._engine.release(ticket)
                ticket = None
            await self.answer(route, ticket)
        finally:
            if ticket is not None:
                self._engine.release(ticket)

    async def answer(self, route: Route, ticket: Ticket | None = None) -> None:
        try:
            await self._engine.handle(route.message, route.surface, access=self._access, ticket=ticket)
        finally:
            await route.surface.close()

    async def route(self, message: discord.Message, me: discord.ClientUser) -> Route | None:
        author = message.author
        if author.id == me.id or message.type not in ANSWERED_TYPES:
            return None
        if (author.bot or message.webhook_id is not None) and self._config.access.ignore_bots:
            return None
        mentioned = conv.mentions_me(message, me)
        if not mentioned and message.guild is not None:
            # An admin may have set `channel mentions optional` (a thread follows its parent channel's setting).
            parent = message.channel.parent_id if isinstance(message.channel, discord.Thread) else message.channel.id
            mentioned = await self._engine.answers_every_message(conv.PLATFORM, str(message.guild.id), str(parent))
        text = conv.readable(message, me)
        attachments = tuple(conv.attachment(a, self._downloads) for a in message.attachments)
        channel = message.channel
        if message.guild is None:
            surface = ChannelSurface(FixedTarget(channel, channel.id), self._budgets)
            return _route(conv.place_of(channel, None), surface, message, text, attachments, mentioned=True)
        if isinstance(channel, discord.Thread):
            place = conv.place_of(channel, message.guild)
            key = ConversationKey(conv.PLATFORM, place.workspace, place.channel, place.thread)
            if not await self._engine.has_history(key):
                if not mentioned:
                    return None
                await self._backfill(channel, message, key, me)
            surface = ChannelSurface(FixedTarget(channel, channel.id), self._budgets)
            return _route(place, surface, message, text, attachments, mentioned=mentioned)
        actual = conv.place_of(channel, message.guild)
        linked = await self._linked(message, me)
        if linked is not None:
            place = conv.Place(linked.workspace, linked.channel, linked.thread)
            surface = ChannelSurface(FixedTarget(channel, channel.id), self._budgets, reply_to=message)
            return _route(place, surface, message, text, attachments, mentioned=mentioned, actual=actual)
        if not mentioned:
            return None
        text, attachments = self._with_reference(message, me, text, attachments)
        place = conv.place_of(channel, message.guild, thread=str(message.id))
        probe = conv.incoming(place, message_id=message.id, author=author, text=text, attachments=attachments,
                              mentioned=True, dedupe_key="")
        # A refusal is said in the channel: no thread is opened just to say no.
        if (self._config.reply_in == "thread" and isinstance(channel, discord.TextChannel)
                and self._access.check(probe).allowed):
            target = ThreadFromMessage(message, conv.thread_name(text),
                                       archive_minutes=self._config.thread_archive_minutes,
                                       global_requests=self._budgets.global_requests,
                                       partial_channel=self._partial_channel)
            return _route(place, ChannelSurface(target, self._budgets, reply_to=message), message, text,
                          attachments, mentioned=True)
        surface = ChannelSurface(FixedTarget(channel, channel.id), self._budgets, reply_to=message)
        return _route(place, surface, message, text, attachments, mentioned=True)

    async def _linked(self, message: discord.Message, me: discord.ClientUser) -> ConversationKey | None:
        """The conversation of the bot's message this one replies to, if any."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        resolved = reference.resolved
        if isinstance(resolved, discord.Message) and resolved.author.id != me.id:
            return None
        return await self._engine.conversation_of(conv.PLATFORM, str(reference.message_id))

    def _with_reference(self, message: discord.Message, me: discord.ClientUser, text: str,
                        attachments: tuple[IncomingAttachment, ...]) -> tuple[str, tuple[IncomingAttachment, ...]]:
        """"@bot what is this?" as a reply to someone's screenshot: the replied-to message is the subject."""
        reference = message.reference
        resolved = reference.resolved if reference is not None else None
        if not isinstance(resolved, discord.Message) or resolved.author.id == me.id:
            return text, attachments
        quote = conv.quoted(resolved, me)
        combined = f"{quote}\n\n{text}".strip() if quote else text
        return combined, attachments + tuple(conv.attachment(a, self._downloads) for a in resolved.attachments)

    async def _backfill(self, thread: discord.Thread, message: discord.Message, key: ConversationKey,
                        me: discord.ClientUser) -> None:
        limit = self._config.backfill_limit
        if limit <= 0:
            return
        items: list[BackfillItem] = []
        try:
            async for earlier in thread.history(limit=limit, before=message, oldest_first=False):
                if earlier.type not in ANSWERED_TYPES or not earlier.content.strip():
                    continue
                mine = earlier.author.id == me.id
                body = conv.readable(earlier, me)
                # Authors by display name, as the core stores live questions; it labels turns when several speak.
                items.append(BackfillItem(role="assistant" if mine else "user", text=body,
                                          message_id=str(earlier.id),
                                          author="" if mine else earlier.author.display_name,
                                          author_id="" if mine else str(earlier.author.id)))
        except discord.HTTPException as error:
            log.warning("cannot read thread history", extra={"status": error.status, "thread": thread.id})
            return
        items.reverse()
        stored = await self._engine.backfill(key, items)
        log.info("thread backfilled", extra={"thread": thread.id, "messages": stored})
