"""What of a conversation goes into the next request: all of it until the prompt budget is reached, then a summary
plus the newest turns that fit in a fraction of the budget (half by default).

Compacting in one large step, rather than a few messages every turn, keeps the start of the prompt the same for
many turns, and that shared start is what Kimi's prefix cache bills at a sixth of the price. Budget decisions
use the character guess corrected per conversation by Kimi's reported counts (bot/token_gauge.py), and ask
Kimi's estimate endpoint when the corrected guess is too close to the limit to decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from bot.config import Config
from bot.context import BuiltContext, ContextBuilder, Layout
from bot.kimi import ChatRequest, Completion, KimiClient, KimiError
from bot.models import ModelCatalog
from bot.summarize import Summarizer
from bot.token_gauge import TokenGauge
from bot.types import IncomingMessage
from storage.store import Conversation, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PromptShape:
    """What every call of this answer shares: the summary request must match it to reuse the cached prefix."""

    model: str
    system_prompt: str
    thinking: bool
    web_search: bool
    tools: list[dict[str, Any]]
    cache_key: str


def cache_key(conversation: Conversation) -> str:
    return f"conversation-{conversation.id}"


class Compactor:
    def __init__(self, *, config: Config, store: Store, kimi: KimiClient, models: ModelCatalog,
                 summarizer: Summarizer) -> None:
        self._config = config
        self._store = store
        self._kimi = kimi
        self._models = models
        self._summarizer = summarizer
        self.gauge = TokenGauge()

    def budget(self, model: str) -> int:
        configured = self._config.context.max_prompt_tokens
        return configured or self._models.context_window(model) - self._config.kimi.max_output_tokens

    def estimate(self, conversation_id: int, guessed: int, tool_tokens: int) -> int:
        """The prompt's size: the messages' guess corrected by the conversation's calibration, plus the tool
        definitions' guess (the same for every conversation, and JSON, which the character rule overcounts)."""
        return self.gauge.scale(conversation_id, guessed - tool_tokens) + tool_tokens

    def observe(self, conversation_id: int, built: BuiltContext, first_call: Completion) -> None:
        """Calibrate from the answer's first call, whose prompt is exactly `built` (unless a video, whose cost the
        guess does not know, is in it)."""
        question = built.messages[-1].get("content") if built.messages else None
        if isinstance(question, list) and any(part.get("type") == "video_url" for part in question):
            return
        tools = built.tool_tokens
        self.gauge.observe(conversation_id, built.estimated_tokens - tools, first_call.usage.prompt_tokens - tools)

    async def build(self, conversation: Conversation, shape: PromptShape, message: IncomingMessage,
                    notes: list[str]) -> BuiltContext:
        history = [m for m in await self._store.history(conversation.id)
                   if m.seq > conversation.summary_upto_seq and m.status != "streaming"]
        multi_author = len({m.author for m in history if m.role == "user" and m.author}) > 1
        builder = ContextBuilder(self._store.get_attachment, max_prompt_tokens=self.budget(shape.model),
                                 max_images=self._config.context.max_images)
        media = await self._store.media_kinds([i for m in history for i in m.media_ids])
        layout = await builder.layout(history, system_prompt=shape.system_prompt, summary=conversation.summary,
                                      tools=shape.tools, multi_author=multi_author, media=media)
        budget = self.budget(shape.model)
        scale = partial(self.estimate, conversation.id, tool_tokens=layout.tool_tokens)
        if await self._fits(conversation.id, shape, layout, budget):
            return layout.context()
        drop = layout.oldest_to_drop(int(budget * self._config.context.compact_to), scale)
        if drop == 0:
            return layout.context()
        dropped = layout.context(drop).dropped
        upto_seq = dropped[-1].seq
        if not self._config.context.summarize:
            # The cut is kept, so the following turns share this prompt's start (and its cache).
            await self._store.set_summary(conversation.id, conversation.summary, upto_seq)
            notes.append(f"I left out {len(dropped)} older messages to fit Kimi's context.")
            return layout.context(drop)
        summary = await self._summarizer.summarize(
            conversation, message, prefix=layout.messages()[: len(layout.system) + _wire_count(layout, drop)],
            upto_seq=upto_seq, request=_request(shape))
        if summary is None:
            # Not stored: the next turn tries to summarize again rather than lose these messages for good.
            notes.append(f"I left out {len(dropped)} older messages to fit Kimi's context.")
            return layout.context(drop)
        notes.append(f"I summarized {len(dropped)} older messages to fit Kimi's context.")
        kept = [m for m in history if m.seq > upto_seq]
        compacted = await builder.layout(kept, system_prompt=shape.system_prompt, summary=summary,
                                         tools=shape.tools, multi_author=multi_author, media=media)
        return compacted.context(compacted.oldest_to_drop(budget, scale))

    async def _fits(self, conversation_id: int, shape: PromptShape, layout: Layout, budget: int) -> bool:
        guessed = layout.tokens
        estimate = self.estimate(conversation_id, guessed, layout.tool_tokens)
        near = budget * self._config.context.count_exactly_within
        if estimate <= budget - near:
            return True
        if estimate > budget + near:
            return False
        try:
            counted = await self._kimi.count_tokens(shape.model, layout.messages(), thinking=shape.thinking)
        except KimiError as error:
            log.info("token count unavailable; using the estimate", extra={"kind": error.kind})
            return estimate <= budget
        self.gauge.observe(conversation_id, guessed - layout.tool_tokens, counted)
        return counted + layout.tool_tokens <= budget


def _wire_count(layout: Layout, drop: int) -> int:
    return sum(len(turn.wire) for turn in layout.turns[:drop])


def _request(shape: PromptShape) -> ChatRequest:
    return ChatRequest(model=shape.model, messages=[], tools=shape.tools, thinking=shape.thinking,
                       web_search=shape.web_search, cache_key=shape.cache_key)

