"""Compacts turns that no longer fit into a short summary kept with the conversation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.kimi import ChatRequest, Completion, KimiClient, KimiError
from bot.types import IncomingMessage
from storage.store import Conversation, Store, StoredMessage

log = logging.getLogger(__name__)

INSTRUCTION = (
    "Summarize the conversation below for your own later reference. Keep facts, decisions, names, numbers, "
    "open questions and what the user wants; drop pleasantries. Write at most 300 words."
)
# The summary request itself must fit; the oldest part is cut first.
MAX_SOURCE_CHARS = 400_000
# A summary is sent with every later request; a model that ignores the word limit must not crowd out the history.
MAX_SUMMARY_CHARS = 6_000

UsageRecorder = Callable[[Conversation, IncomingMessage, Completion], Awaitable[None]]


def transcript(previous: str | None, messages: Sequence[StoredMessage]) -> str:
    lines = [f"Earlier summary: {previous}"] if previous else []
    for message in messages:
        if message.role == "user":
            images = f" [{len(message.image_ids)} image(s)]" if message.image_ids else ""
            lines.append(f"User ({message.author or 'someone'}): {message.text}{images}")
        elif message.role == "assistant" and message.text:
            lines.append(f"Assistant: {message.text}")
        elif message.role == "tool":
            lines.append(f"Tool {message.tool_name} returned: {message.text[:500]}")
    text = "\n".join(lines)
    return text[-MAX_SOURCE_CHARS:]


class Summarizer:
    def __init__(self, kimi: KimiClient, store: Store, record_usage: UsageRecorder) -> None:
        self._kimi = kimi
        self._store = store
        self._record_usage = record_usage

    async def summarize(self, conversation: Conversation, message: IncomingMessage,
                        dropped: Sequence[StoredMessage], model: str) -> str | None:
        """Store and return a summary of `dropped` (plus the earlier summary); None when Kimi could not."""
        request = ChatRequest(model=model, thinking=False, max_tokens=1024, messages=[
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": transcript(conversation.summary, dropped)},
        ])
        completion: Completion | None = None
        try:
            async for event in self._kimi.stream(request):
                if isinstance(event, Completion):
                    completion = event
        except KimiError as error:
            log.warning("summary failed", extra={"kind": error.kind})
            return None
        if completion is None or not completion.content.strip():
            return None
        await self._record_usage(conversation, message, completion)
        summary = completion.content.strip()[:MAX_SUMMARY_CHARS]
        await self._store.set_summary(conversation.id, summary, dropped[-1].seq)
        return summary
