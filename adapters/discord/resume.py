"""Discord's way back into an unfinished turn: a channel surface rebuilt from the stored reply address (REST
only, no gateway cache needed), and the question's files fetched again from their CDN links.

An answer that was opening a thread from the mention opens it again (or finds the one its first attempt
opened: a thread from a message has that message's id); an answer begun through a slash command's
interaction continues in the channel, since the interaction token belonged to the first attempt; unless the bot
has no access there (a user install in a group DM): then the turn ends as failed, logged for the operator.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from adapters.discord.surface import ChannelSurface, FixedTarget, Target, ThreadFromMessage
from bot.types import IncomingAttachment, ReplyUnreachable, ResumedTurn

if TYPE_CHECKING:
    from adapters.discord.client import KimiDiscordClient


class DiscordResumer:
    def __init__(self, client: KimiDiscordClient) -> None:
        self._client = client

    @contextlib.asynccontextmanager
    async def surface_for(self, turn: ResumedTurn) -> AsyncIterator[ChannelSurface]:
        address: dict[str, Any] = turn.reply
        if address.get("reachable") is False:
            raise ReplyUnreachable("a user-install interaction: its token belonged to the first attempt")
        client = self._client
        channel_id = int(address.get("channel_id") or 0)
        channel = client.get_partial_messageable(channel_id)
        target: Target = FixedTarget(channel, channel_id)
        thread_from = int(address.get("thread_from") or 0)
        if thread_from and turn.platform_message_ids:
            target = FixedTarget(client.get_partial_messageable(thread_from), thread_from, replies=False)
        elif thread_from:
            target = ThreadFromMessage(channel.get_partial_message(thread_from), str(address.get("name") or "Kimi"),
                                       archive_minutes=client.config.thread_archive_minutes,
                                       global_requests=client.budgets.global_requests,
                                       partial_channel=client.get_partial_messageable)
        reply_to = int(address.get("reply_to") or 0)
        surface = ChannelSurface(target, client.budgets,
                                 reply_to=channel.get_partial_message(reply_to) if reply_to else None)
        try:
            yield surface
        finally:
            await surface.close()

    def attachments_for(self, turn: ResumedTurn) -> tuple[IncomingAttachment, ...]:
        downloads = self._client.downloads
        found: list[IncomingAttachment] = []
        for item in turn.question.get("attachments") or ():
            if not isinstance(item, dict) or not item.get("ref"):
                continue
            url = str(item["ref"])
            found.append(IncomingAttachment(
                filename=str(item.get("filename") or "file"), mime=item.get("mime"), size=item.get("size"),
                fetch=lambda url=url: downloads.get(url), source=str(item.get("source") or ""), ref=url))
        return tuple(found)
