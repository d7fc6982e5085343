"""Slack's way back into an unfinished turn: its reply surface from the stored address, its files from their
stored links. A resumed answer edits the messages its first attempt posted (chat.update); a native stream that
attempt left open is stopped first, since Slack refuses chat.update on a message still streaming."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack.errors import error_code
from adapters.slack.surface import SlackSurface
from bot.types import IncomingAttachment, ResumedTurn

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)


class SlackResumer:
    def __init__(self, adapter: SlackAdapter) -> None:
        self._adapter = adapter

    @contextlib.asynccontextmanager
    async def surface_for(self, turn: ResumedTurn) -> AsyncIterator[SlackSurface]:
        address: dict[str, Any] = turn.reply
        await self._adapter.clients.load(str(address.get("team") or ""))  # no request brought its token
        surface = self._adapter.surface(str(address.get("team") or ""), str(address.get("channel") or ""),
                                        address.get("thread_ts"), address.get("recipient"),
                                        bool(address.get("assistant")))
        if surface.streaming == "native":
            await self._close_streams(surface, turn.platform_message_ids)
        try:
            yield surface
        finally:
            surface.release()

    async def _close_streams(self, surface: SlackSurface, ids: list[str]) -> None:
        for ts in ids:
            await surface.allowances.stop.acquire(final=True)
            try:
                await surface.client.api_call("chat.stopStream", json={"channel": surface.channel, "ts": ts})
            except SlackApiError as error:  # not streaming (any more): nothing to close
                log.debug("no stream to close on resume", extra={"error": error_code(error)})

    def attachments_for(self, turn: ResumedTurn) -> tuple[IncomingAttachment, ...]:
        files = self._adapter.files(str(turn.reply.get("team") or ""))
        return tuple(files.again(str(a.get("filename") or "file"), a.get("mime"), a.get("size"),
                                 str(a.get("source") or ""), str(a.get("ref") or ""))
                     for a in turn.question.get("attachments") or () if isinstance(a, dict))
