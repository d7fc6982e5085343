"""One answer, from a stored question to a stored, fully shown reply: what a turn is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.attachments import AttachmentProcessor, with_file_texts
from bot.config import Config
from bot.context import BuiltContext, ContextBuilder, render_system_prompt
from bot.kimi import ChatRequest, Completion, KimiClient, KimiError, ToolCall
from bot.publisher import StreamPublisher
from bot.runner import ToolLoop
from bot.summarize import Summarizer
from bot.tools.registry import ToolRegistry, ToolResult
from bot.types import IncomingMessage, PublishOptions, ReplySurface, TurnOutcome
from bot.usage import cost_usd, web_search_calls
from storage.store import Conversation, Store, UsageRecord

log = logging.getLogger(__name__)

STOPPED_NOTE = "_Stopped._"
INTERNAL_ERROR = "Something went wrong on my side while answering. The error was logged; please try again."


@dataclass(slots=True)
class _Settings:
    model: str
    thinking: bool
    web_search: bool
    system_prompt: str
    note: str | None


class _Recorder:
    """The loop's sink: text and status go to the publisher, rounds and usage to storage (a few writes a round)."""

    def __init__(self, answer: Answer, conversation: Conversation, message: IncomingMessage,
                 publisher: StreamPublisher, row_id: int) -> None:
        self._answer = answer
        self._conversation = conversation
        self._message = message
        self.publisher = publisher
        self.row_id = row_id
        self.round_text: list[str] = []

    def text(self, delta: str) -> None:
        self.round_text.append(delta)
        self.publisher.append(delta)

    def status(self, status: str | None) -> None:
        self.publisher.set_status(status)

    async def call_done(self, completion: Completion) -> None:
        await self._answer.record_usage(self._conversation, self._message, completion)

    async def round_done(self, completion: Completion, results: list[tuple[ToolCall, ToolResult]]) -> None:
        store = self._answer.store
        # The streaming row becomes this round's tool-call message; a new streaming row follows the results,
        # so stored order matches what Kimi must see next time.
        await store.update_message(
            self.row_id, text=completion.content, tool_calls=[call.wire() for call in completion.tool_calls],
            reasoning=completion.reasoning, status="complete", prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
        )
        rows = [{"role": "tool", "text": outcome.content, "tool_call_id": call.id, "tool_name": call.name,
                 "status": "complete" if outcome.ok else "failed"} for call, outcome in results]
        rows.append({"role": "assistant", "status": "streaming"})
        stored = await store.add_messages(self._conversation.id, rows)
        self.row_id = stored[-1].id
        self.round_text = []


class Answer:
    def __init__(self, *, config: Config, store: Store, kimi: KimiClient, tools: ToolRegistry,
                 attachments: AttachmentProcessor, summarizer: Summarizer, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.store = store
        self._kimi = kimi
        self._tools = tools
        self._attachments = attachments
        self._summarizer = summarizer
        self._clock = clock
        self._loop = ToolLoop(kimi, tools, max_rounds=config.kimi.max_tool_rounds)

    async def run(self, message: IncomingMessage, surface: ReplySurface, *, queued: bool = False) -> TurnOutcome:
        options: PublishOptions = getattr(surface, "publish_options", None) or PublishOptions()
        publisher = StreamPublisher(
            surface, placeholder=options.placeholder, decorate=options.decorate, append_only=options.append_only,
            min_edit_interval=options.min_edit_interval or self.config.bot.edit_interval,
        )
        status = "Waiting for the previous answer…" if queued else (
            "Reading your files…" if message.attachments else "Thinking…")
        await publisher.start(status)
        conversation = await self.store.get_or_create_conversation(message.key)
        files = await self._attachments.process(message.attachments)
        notes = list(files.notes)
        text = with_file_texts(message.text.strip(), files.file_texts)
        if not text and not files.image_ids:
            reason = notes[0] if notes else "I got an empty message."
            await publisher.fail(reason if notes else reason + " Ask me something!")
            return TurnOutcome(status="refused", text=reason, message_ids=publisher.message_ids)
        await self.store.add_message(
            conversation.id, role="user", text=text, image_ids=files.image_ids,
            author=message.user_name or message.user, platform_message_ids=[message.message_id],
        )
        await self.store.link_platform_message(conversation.id, message.platform, message.message_id)
        row = await self.store.add_message(conversation.id, role="assistant", status="streaming")
        recorder = _Recorder(self, conversation, message, publisher, row.id)
        try:
            settings = self._settings(conversation)
            publisher.set_status("Thinking…")
            built = await self._context(conversation, settings, message, notes)
            request = ChatRequest(
                model=settings.model, messages=built.messages, tools=self._tools.openai_tools(),
                thinking=settings.thinking, web_search=settings.web_search,
                max_tokens=self._max_tokens(built),
            )
            result = await self._loop.run(request, recorder)
        except asyncio.CancelledError:
            await asyncio.shield(self._stopped(conversation, recorder))
            raise
        except KimiError as error:
            log.warning("kimi error", extra={"kind": error.kind, "status": error.status, "conversation": str(
                message.key)})
            return await self._failed(conversation, recorder, error.user_message, error.kind)
        except Exception:
            log.exception("answer failed", extra={"conversation": str(message.key)})
            return await self._failed(conversation, recorder, INTERNAL_ERROR, "internal")
        if result.hit_round_limit:
            notes.append("I reached the limit of tool rounds for one answer.")
        footer = "\n".join(f"_{note}_" for note in notes) or None
        ids = await publisher.finish(footer=footer)
        last = result.completions[-1]
        await self.store.update_message(
            recorder.row_id, text=result.content, reasoning=result.reasoning, status="complete",
            platform_message_ids=ids, prompt_tokens=last.usage.prompt_tokens,
            completion_tokens=last.usage.completion_tokens,
        )
        await self._link(conversation, ids)
        log.info("answer complete", extra={
            "conversation": str(message.key), "model": settings.model, "calls": len(result.completions),
            "prompt_tokens": sum(c.usage.prompt_tokens for c in result.completions),
            "completion_tokens": sum(c.usage.completion_tokens for c in result.completions),
            "messages": len(ids), "chars": len(publisher.text)})
        return TurnOutcome(status="complete", text=publisher.text, message_ids=ids)

    def _settings(self, conversation: Conversation) -> _Settings:
        kimi = self.config.kimi
        model = conversation.model or kimi.model
        thinking = kimi.thinking if conversation.thinking is None else conversation.thinking
        plan = self._kimi.plan(model, thinking=thinking, web_search=kimi.web_search)
        template = conversation.system_prompt or self.config.bot.system_prompt
        return _Settings(model=model, thinking=plan.thinking, web_search=plan.web_search,
                         system_prompt=render_system_prompt(template, self._clock()), note=plan.note)

    def _prompt_budget(self) -> int:
        ctx = self.config.context.max_prompt_tokens
        return ctx or self.config.kimi.context_window - self.config.kimi.max_output_tokens

    def _max_tokens(self, built: BuiltContext) -> int:
        # Kimi counts prompt + max_tokens against the window, so the output budget shrinks with a long prompt.
        room = self.config.kimi.context_window - built.estimated_tokens
        return max(256, min(self.config.kimi.max_output_tokens, room))

    async def _context(self, conversation: Conversation, settings: _Settings, message: IncomingMessage,
                       notes: list[str]) -> BuiltContext:
        history = [m for m in await self.store.history(conversation.id)
                   if m.seq > conversation.summary_upto_seq and m.status != "streaming"]
        authors = {m.author for m in history if m.role == "user" and m.author}
        builder = ContextBuilder(self.store.get_attachment, max_prompt_tokens=self._prompt_budget(),
                                 max_images=self.config.context.max_images)
        tools = self._tools.openai_tools()
        built = await builder.build(history, system_prompt=settings.system_prompt, summary=conversation.summary,
                                    tools=tools, multi_author=len(authors) > 1)
        if not built.dropped:
            return built
        summary = None
        if self.config.context.summarize:
            summary = await self._summarizer.summarize(conversation, message, built.dropped, settings.model)
        if summary is None:
            notes.append(f"I left out {len(built.dropped)} older messages to fit Kimi's context.")
            return built
        notes.append(f"I summarized {len(built.dropped)} older messages to fit Kimi's context.")
        kept = [m for m in history if m.seq > built.dropped[-1].seq]
        return await builder.build(kept, system_prompt=settings.system_prompt, summary=summary, tools=tools,
                                   multi_author=len(authors) > 1)

    async def record_usage(self, conversation: Conversation, message: IncomingMessage,
                           completion: Completion) -> None:
        await self.store.record_usage(UsageRecord(
            conversation_id=conversation.id, platform=message.platform, workspace=message.workspace,
            user=message.user, model=completion.model, prompt_tokens=completion.usage.prompt_tokens,
            cached_tokens=completion.usage.cached_tokens, completion_tokens=completion.usage.completion_tokens,
            web_search_calls=web_search_calls(completion), cost_usd=cost_usd(self.config.kimi.pricing, completion),
            latency_ms=completion.latency_ms,
        ))

    async def _failed(self, conversation: Conversation, recorder: _Recorder, user_text: str,
                      kind: str) -> TurnOutcome:
        ids = await recorder.publisher.fail(user_text)
        await self.store.update_message(recorder.row_id, text="".join(recorder.round_text), status="failed",
                                        error=kind, platform_message_ids=ids)
        await self._link(conversation, ids)
        return TurnOutcome(status="failed", text=recorder.publisher.shown_text, message_ids=ids, error=kind)

    async def _stopped(self, conversation: Conversation, recorder: _Recorder) -> None:
        ids = await recorder.publisher.finish(footer=STOPPED_NOTE)
        await self.store.update_message(recorder.row_id, text="".join(recorder.round_text), status="interrupted",
                                        platform_message_ids=ids)
        await self._link(conversation, ids)

    async def _link(self, conversation: Conversation, ids: list[str]) -> None:
        for platform_id in ids:
            await self.store.link_platform_message(conversation.id, conversation.platform, platform_id)
