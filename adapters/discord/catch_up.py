"""Catch-up after downtime: on each new gateway session, the messages the bot would have answered while it was
away (longer than Discord's resume window, which replays them itself) are read from the channels it recently
answered in and answered once, late, saying so.

Bounded three ways: only channels with a conversation asked in within `catch_up_minutes` (at most
`catch_up_channels` of them), only messages newer than that window, and at most `catch_up_max` answers per
session. "Once" is the engine's dedupe key per message (`msg:<id>`): a message already answered, or answered by
another shard or replica meanwhile, is skipped without a Kimi call.

It starts SETTLE_SECONDS after the session is ready: in a rolling deploy the old process may have received a
question live a moment ago and not yet claimed it; read at once, it would be answered here with the late note.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import discord

from adapters.discord import incoming as conv

if TYPE_CHECKING:
    from adapters.discord.client import KimiDiscordClient
    from adapters.discord.events import Route
    from bot.scheduler import Ticket
    from bot.types import ConversationKey

log = logging.getLogger(__name__)

LATE_NOTE = "I was offline when this was asked, so my answer comes late."
PAGE = 50
SETTLE_SECONDS = 5.0


class CatchUp:
    def __init__(self, client: KimiDiscordClient, *, settle: float = SETTLE_SECONDS) -> None:
        self._client = client
        self._settle = settle
        self._config = client.config
        self._running: asyncio.Task[int] | None = None

    def start(self) -> None:
        """Run once per session in the background (on_ready); a run in progress is not doubled."""
        if self._config.catch_up_minutes <= 0 or (self._running is not None and not self._running.done()):
            return
        self._running = asyncio.create_task(self._settled_run(), name="kimibot-discord-catch-up")
        self._client.track(self._running)

    async def idle(self) -> None:
        """Wait for the run in progress, if any (tests)."""
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)

    async def _settled_run(self) -> int:
        await asyncio.sleep(self._settle)
        return await self.run()

    async def run(self) -> int:
        """Answer what was missed; returns how many messages were handed to the engine."""
        client = self._client
        me = client.user
        if me is None:
            return 0
        now = client.clock()
        since = now - timedelta(minutes=self._config.catch_up_minutes)
        try:
            places = await client.services.store.recent_places(conv.PLATFORM, since=since,
                                                               limit=self._config.catch_up_channels)
            seen = await self._missed(self._channel_ids(places), since, now)
            # Messages answered (or refused) already hold their dedupe key: they neither cost a route nor count
            # towards the limit. The engine's own claim still decides, for messages answered meanwhile.
            handled = await client.services.store.claimed_keys(conv.PLATFORM, [f"msg:{m.id}" for m in seen])
            missed = [m for m in seen if f"msg:{m.id}" not in handled]
        except Exception:
            log.exception("catch-up after downtime failed")
            return 0
        handed = 0
        router, engine = client.router, client.services.engine
        for message in missed:
            if handed >= self._config.catch_up_max:
                log.warning("catch-up stopped at its limit; newer missed messages stay unanswered",
                            extra={"limit": self._config.catch_up_max})
                break
            ticket = router.reserve(message)  # in message order, before any await, like live messages
            route = await router.route(message, me)
            if route is None or (ticket is not None and ticket.key != route.message.key):
                if ticket is not None:
                    engine.release(ticket)
                    ticket = None
                if route is None:
                    continue
            handed += 1
            late = replace(route, message=replace(route.message, notes=(*route.message.notes, LATE_NOTE)))
            # Conversations are answered side by side; each keeps its own order through its ticket.
            client.track(asyncio.create_task(self._answer(late, ticket, message.id), name="kimibot-late-answer"))
        if handed:
            log.info("caught up after downtime", extra={"messages": handed})
        return handed

    async def _answer(self, route: Route, ticket: Ticket | None, message_id: int) -> None:
        try:
            await self._client.router.answer(route, ticket)
        except Exception:
            log.exception("answering a missed message failed", extra={"message_id": message_id})

    @staticmethod
    def _channel_ids(places: list[ConversationKey]) -> list[int]:
        """Where those conversations' messages arrive: the channel, and the thread when it is one (a
        conversation keyed by a mention has the mention's id there, which is its thread's id too)."""
        ids: list[int] = []
        for key in places:
            for raw in (key.channel, key.thread):
                if raw.isdigit() and int(raw) not in ids:
                    ids.append(int(raw))
        return ids

    async def _missed(self, channel_ids: list[int], since: datetime, until: datetime) -> list[discord.Message]:
        """Messages between `since` and the session's start: later ones arrive live, and reading them here
        would race their own delivery (and answer them with the late note)."""
        client = self._client
        found: list[discord.Message] = []
        after = discord.Object(discord.utils.time_snowflake(since))
        before = discord.Object(discord.utils.time_snowflake(until, high=True))
        for channel_id in channel_ids:
            try:
                channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
                if not isinstance(channel, discord.abc.Messageable):
                    continue
                await client.budgets.global_requests.acquire()
                found.extend([m async for m in channel.history(after=after, before=before, limit=PAGE,
                                                              oldest_first=True)])
            except (discord.NotFound, discord.Forbidden):
                continue  # a conversation keyed by a message, or a channel the bot lost access to
            except discord.HTTPException as error:
                log.info("catch-up could not read a channel", extra={"channel": channel_id, "status": error.status})
        return sorted(found, key=lambda m: m.id)
