"""Compacts the older part of a conversation into a short summary kept with the conversation.

The summary request repeats the conversation's own prefix (system prompt, earlier summary, the turns to compact,
the same tool definitions) and only then asks for the summary, so Kimi's prefix cache serves almost all of it:
the turns being compacted were the start of the previous request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.kimi import ChatRequest, Completion, KimiClient, KimiError
from bot.types import IncomingMessage
from storage.store import Conversation, Store

log = logging.getLogger(__name__)

INSTRUCTION = (
    "Summarize this whole conversation so far, including any earlier summary, for your own later reference: "
    "older messages will be replaced by your summary. Keep facts, decisions, names, numbers, open questions and "
    "what each person wants; drop pleasantries. Write at most 300 words and reply with the summary only."
)
# A summary is sent with every later request; a model that ignores the word limit must not crowd out the history.
MAX_SUMMARY_CHARS = 6_000
SUMMARY_MAX_TOKENS = 1024

UsageRecorder = Callable[[Conversation, IncomingMessage, Completion], Awaitable[None]]


class Summarizer:
    def __init__(self, kimi: KimiClient, store: Store, record_usage: UsageRecorder) -> None:
        self._kimi = kimi
        self._store = store
        self._record_usage = record_usage

    async def summarize(self, conversation: Conversation, message: IncomingMessage, *,
                        prefix: list[dict[str, Any]], upto_seq: int, request: ChatRequest) -> str | None:
        """Summarize `prefix` (the messages being compacted, as last sent) and store the summary as standing in
        for everything up to `upto_seq`. `request` carries the conversation's model, tools and cache key, so the
        prefix is the one Kimi has cached. None when Kimi could not."""
        summary_request = ChatRequest(
            model=request.model, messages=[*prefix, {"role": "user", "content": INSTRUCTION}], tools=request.tools,
            web_search=request.web_search, tool_choice="none" if request.tools or request.web_search else None,
            thinking=False, max_tokens=SUMMARY_MAX_TOKENS, cache_key=request.cache_key)
        completion: Completion | None = None
        try:
            async for event in self._kimi.stream(summary_request):
                if isinstance(event, Completion):
                    completion = event
        except KimiError as error:
            log.warning("summary failed", extra={"kind": error.kind})
            return None
        if completion is None or not completion.content.strip() or completion.tool_calls:
            return None
        await self._record_usage(conversation, message, completion)
        summary = completion.content.strip()[:MAX_SUMMARY_CHARS]
        await self._store.set_summary(conversation.id, summary, upto_seq)
        return summary
