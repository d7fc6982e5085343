"""One answer to one turn, from its stored question to a stored, fully shown reply, and the turn's final state.

A resumed turn (taken over after a crash or a deploy) is answered again from the stored question and history,
in the messages its first attempt already posted. Bookkeeping after the answer is shown (usage, links, the
turn's state) is retried until the database takes it and never turns a shown answer into an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.attachments import AttachmentProcessor, with_file_texts
from bot.compaction import Compactor, PromptShape, cache_key
from bot.config import Config, SearchBackend
from bot.context import BuiltContext, render_system_prompt
from bot.continuation import asks_to_continue, continuation_request, cut_note
from bot.conversation_lease import ConversationLeases
from bot.intake import persist
from bot.kimi import ChatRequest, Completion, KimiClient, KimiError, ToolCall
from bot.metrics import Metrics
from bot.models import ModelCatalog
from bot.publisher import StreamPublisher
from bot.runner import ToolLoop
from bot.search_tools import SearchTools, sources_block
from bot.settings import Effective, effective
from bot.tools.registry import ToolRegistry, ToolResult
from bot.turn_work import Interruption, TurnWork
from bot.types import AnswerControls, IncomingMessage, PublishOptions, TurnOutcome
from bot.usage import answer_footer, cost_usd, web_search_calls
from storage.store import Conversation, Store, StoredMessage, TurnState, UsageRecord

log = logging.getLogger(__name__)

STOPPED_NOTE = "_Stopped._"
# The usage rows of search/fetch tool calls (no model of their own) carry this in place of a model id.
SEARCH_TOOLS_MODEL = "kimi-search-tools"
INTERNAL_ERROR = "Something went wrong on my side while answering. The error was logged; please try again."
RESTARTED_STATUS = "Restarted; answering again…"
RESTARTED_NOTE = "I was restarted while answering, so this answer was written again."
SUSPENDED_NOTE = "_Restarting: this answer will be finished in a moment._"
# Seconds a departing process spends marking an interrupted answer before it lets go of it.
SUSPEND_WRITE_LIMIT = 3.0


@dataclass(slots=True)
class _Settings:
    model: str
    thinking: bool
    web_search: bool
    system_prompt: str
    note: str | None


@dataclass(slots=True)
class _Attempt:
    """What one run of a turn has set up so far: the failure and interruption paths close what exists."""

    work: TurnWork
    publisher: StreamPublisher
    conversation: Conversation | None = None
    recorder: _Recorder | None = field(default=None)
    uploads: set[int] = field(default_factory=set)  # media on Kimi's file store, deleted when the answer ends


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
        # Usage rows are written beside the answer, not in its way: a locked database must not hold back text.
        self.pending: set[asyncio.Task[None]] = set()

    def text(self, delta: str) -> None:
        self.round_text.append(delta)
        self.publisher.append(delta)

    def status(self, status: str | None) -> None:
        self.publisher.set_status(status)

    async def call_done(self, completion: Completion) -> None:
        task = asyncio.ensure_future(self._answer.record_usage(self._conversation, self._message, completion))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def tool_searches(self, calls: int) -> None:
        """Searches and page reads through Kimi's tool endpoints are billed per call: one usage row for them."""
        task = asyncio.ensure_future(self._answer.record_search_calls(self._conversation, self._message, calls))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def settle(self) -> None:
        """Wait for the usage rows still being written (after the answer is shown)."""
        await asyncio.gather(*self.pending, return_exceptions=True)

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
                 attachments: AttachmentProcessor, compactor: Compactor, leases: ConversationLeases,
                 models: ModelCatalog, clock: Callable[[], datetime], metrics: Metrics) -> None:
        self.config = config
        self._metrics = metrics
        self.store = store
        self._leases = leases
        self._models = models
        self._kimi = kimi
        self._tools = tools
        self._attachments = attachments
        self._compactor = compactor
        self._clock = clock
        self._search = SearchTools(kimi.search_api()) if config.kimi.search is SearchBackend.TOOLS else None
        self._loop = ToolLoop(kimi, tools, max_rounds=config.kimi.max_tool_rounds, search=self._search)

    async def run(self, work: TurnWork) -> TurnOutcome:
        """Answer one turn (a first attempt, or one resumed after a restart) and close it in storage."""
        work.started = True
        message, surface, turn = work.message, work.surface, work.turn
        options: PublishOptions = getattr(surface, "publish_options", None) or PublishOptions()

        async def record_ids(ids: list[str]) -> None:
            await self.store.set_turn_messages(turn.id, ids)

        publisher = StreamPublisher(
            surface, placeholder=options.placeholder, decorate=options.decorate, append_only=options.append_only,
            min_edit_interval=options.min_edit_interval or self.config.bot.edit_interval,
            adopt=turn.platform_message_ids, on_messages=record_ids,
        )
        # Posted when the turn's time comes, so an earlier place in the queue is already over by then.
        status = RESTARTED_STATUS if work.resumed else "Reading your files…" if message.attachments else "Thinking…"
        await publisher.start(status)
        attempt = _Attempt(work, publisher)
        try:
            outcome = await self._answer(attempt)
            self._observe(work, publisher, outcome)
            return outcome
        except asyncio.CancelledError:
            await asyncio.shield(self._interrupted(attempt))
            raise
        except KimiError as error:
            log.warning("kimi error", extra={"kind": error.kind, "status": error.status,
                                             "conversation": str(message.key)})
            text = error.message_for(work.command_prefix)
            if error.kind == "model_not_found" and self._models.known:
                text += f" Available: {', '.join(f'`{m}`' for m in self._models.ids())}."
            return await self._failed(attempt, text, error.kind)
        except Exception:
            log.exception("answer failed", extra={"conversation": str(message.key), "turn": turn.id})
            return await self._failed(attempt, INTERNAL_ERROR, "internal")
        finally:
            # A departing process leaves them for the process that finishes the answer.
            if attempt.uploads and work.interruption is not Interruption.SHUTDOWN:
                await asyncio.shield(self._release_uploads(attempt.uploads))

    async def _answer(self, attempt: _Attempt) -> TurnOutcome:
        work, publisher = attempt.work, attempt.publisher
        message, turn = work.message, work.turn
        async def waiting() -> None:
            publisher.set_status("Waiting for the previous answer…")

        await self._leases.acquire(turn.conversation_id, waiting=waiting)
        conversation = await self.store.get_conversation_by_id(turn.conversation_id)
        if conversation is None:
            raise LookupError(f"conversation {turn.conversation_id} of turn {turn.id} is gone")
        attempt.conversation = conversation
        applied = effective(conversation, await self.store.channel_settings(
            conversation.platform, conversation.workspace, conversation.channel), self.config, self._models.default)
        notes: list[str] = list(message.notes)
        question_row: dict[str, object] | None = None
        if turn.question_row_id is None:
            info = self._models.get(applied.model)
            files = await self._attachments.process(message.attachments, model=applied.model,
                                                    model_watches_video=info is None or info.video_in)
            attempt.uploads.update(files.uploads)
            notes += files.notes
            text = with_file_texts(message.text.strip(), files.file_texts)
            if not text and not files.media_ids:
                reason = files.notes[0] if files.notes else "I got an empty message."
                ids = await publisher.fail(reason if files.notes else reason + " Ask me something!")
                await self._close(turn.id, TurnState.DONE, ids=ids)
                return TurnOutcome(status="refused", text=reason, message_ids=ids)
            question_row = {"role": "user", "text": text, "media_ids": files.media_ids,
                            "author": message.user_name or message.user, "author_id": message.user or None,
                            "platform_message_ids": [message.message_id]}
        if work.resumed:
            notes.append(RESTARTED_NOTE)
        row = await self.store.begin_answer(turn.id, conversation.id, question_row)
        if question_row is not None:
            await self._bookkeep(lambda: self.store.link_platform_message(
                conversation.id, message.platform, message.message_id), "link", turn.id)
        recorder = attempt.recorder = _Recorder(self, conversation, message, publisher, row.id)
        settings = self._settings(applied)
        publisher.set_status("Thinking…")
        cut = await self._cut_answer(conversation, message) if asks_to_continue(message.text) else None
        shape = PromptShape(model=settings.model, system_prompt=settings.system_prompt, thinking=settings.thinking,
                            web_search=settings.web_search, tools=self._offered_tools(),
                            cache_key=cache_key(conversation))
        built = await self._compactor.build(conversation, shape, message, notes)
        attempt.uploads.update(built.uploads)
        messages = built.messages
        if cut is not None:
            # Partial mode with thinking on is unconfirmed (reference §9.1): then a plain follow-up instead.
            messages = continuation_request(messages, partial=not settings.thinking)
            publisher.append("…")
        request = ChatRequest(
            model=settings.model, messages=messages, tools=shape.tools, thinking=settings.thinking,
            web_search=settings.web_search, max_tokens=self._max_tokens(conversation, built, settings.model),
            cache_key=shape.cache_key,
        )
        result = await self._loop.run(request, recorder)
        if cut is None and result.completions:
            self._compactor.observe(conversation.id, built, result.completions[0])
        sources = sources_block(result.sources.cited(result.content))
        if result.hit_round_limit:
            notes.append("I reached the limit of tool rounds for one answer.")
        if applied.usage_footer:
            notes.append(answer_footer(self.config.kimi.pricing, result.completions, result.sources.calls))
        if result.cut_by_length:
            notes.append(cut_note(thinking_only=not result.content.strip() and bool(result.reasoning),
                                  max_tokens=request.max_tokens, prefix=work.command_prefix))
        footer = "\n\n".join(part for part in (sources, "\n".join(f"_{note}_" for note in notes)) if part) or None
        controls = AnswerControls(turn.id) if self.config.bot.feedback_buttons else None
        ids = await publisher.finish(footer=footer, controls=controls)
        if result.sources.calls:
            recorder.tool_searches(result.sources.calls)
        await recorder.settle()
        last = result.completions[-1]
        await self._close(turn.id, TurnState.DONE, ids=ids, row_id=recorder.row_id, answer={
            "text": result.content, "reasoning": result.reasoning,
            "status": "truncated" if result.cut_by_length else "complete",
            "platform_message_ids": ids, "prompt_tokens": last.usage.prompt_tokens,
            "completion_tokens": last.usage.completion_tokens})
        if cut is not None:  # carried on: `continue` now applies to the newest part only
            await self._bookkeep(lambda: self.store.update_message(cut.id, status="complete"), "continued", turn.id)
        await self._link(conversation, ids, turn.id)
        log.info("answer complete", extra={
            "conversation": str(message.key), "turn": turn.id, "model": settings.model,
            "calls": len(result.completions), "resumed": work.resumed,
            "prompt_tokens": sum(c.usage.prompt_tokens for c in result.completions),
            "completion_tokens": sum(c.usage.completion_tokens for c in result.completions),
            "messages": len(ids), "chars": len(publisher.text)})
        return TurnOutcome(status="complete", text=publisher.text, message_ids=ids)

    async def _release_uploads(self, attachment_ids: set[int]) -> None:
        for attachment_id in attachment_ids:
            try:
                stored = await self.store.get_attachment(attachment_id)
                if stored is not None and stored.remote_id is not None and \
                        await self._kimi.delete_file(stored.remote_id):
                    await self.store.set_remote_id(attachment_id, None)
            except Exception:
                log.exception("could not release an upload", extra={"attachment": attachment_id})

    async def _cut_answer(self, conversation: Conversation, message: IncomingMessage) -> StoredMessage | None:
        """The answer a `continue` picks up: the newest finished answer, if the output limit cut it."""
        for stored in reversed(await self.store.history(conversation.id)):
            if stored.role == "assistant" and stored.status != "streaming" and not stored.tool_calls:
                return stored if stored.status == "truncated" else None
        return None

    def _settings(self, applied: Effective) -> _Settings:
        plan = self._kimi.plan(applied.model, thinking=applied.thinking,
                               web_search=self.config.kimi.search is SearchBackend.BUILTIN)
        return _Settings(model=applied.model, thinking=plan.thinking, web_search=plan.web_search,
                         system_prompt=render_system_prompt(applied.system_prompt, self._clock()), note=plan.note)

    def _offered_tools(self) -> list[dict[str, Any]]:
        search = self._search.definitions() if self._search is not None else []
        return [*self._tools.openai_tools(), *search]

    def _max_tokens(self, conversation: Conversation, built: BuiltContext, model: str) -> int:
        # Kimi counts prompt + max_tokens against the window, so the output budget shrinks with a long prompt.
        prompt = self._compactor.estimate(conversation.id, built.estimated_tokens, built.tool_tokens)
        room = self._models.context_window(model) - prompt
        return max(256, min(self.config.kimi.max_output_tokens, room))

    def _observe(self, work: TurnWork, publisher: StreamPublisher, outcome: TurnOutcome) -> None:
        """Latency of a complete answer, counted from the question's arrival (its turn's creation)."""
        if outcome.status != "complete":
            return
        final = max(0.0, (self._clock() - work.turn.created_at).total_seconds())
        platform = work.message.platform
        self._metrics.final_text.labels(platform).observe(final)
        if publisher.first_text_at is not None:
            self._metrics.first_text.labels(platform).observe(
                max(0.0, final - (time.monotonic() - publisher.first_text_at)))

    def _count(self, record: UsageRecord) -> None:
        metrics = self._metrics
        if record.model != SEARCH_TOOLS_MODEL:
            metrics.kimi_calls.labels(record.model).inc()
        metrics.tokens.labels("prompt").inc(record.prompt_tokens)
        metrics.tokens.labels("cached").inc(record.cached_tokens)
        metrics.tokens.labels("completion").inc(record.completion_tokens)
        metrics.searches.inc(record.web_search_calls)
        metrics.cost.inc(record.cost_usd)

    async def record_usage(self, conversation: Conversation, message: IncomingMessage,
                           completion: Completion) -> None:
        record = UsageRecord(
            conversation_id=conversation.id, platform=message.platform, workspace=message.workspace,
            user=message.user, model=completion.model, prompt_tokens=completion.usage.prompt_tokens,
            cached_tokens=completion.usage.cached_tokens, completion_tokens=completion.usage.completion_tokens,
            web_search_calls=web_search_calls(completion), cost_usd=cost_usd(self.config.kimi.pricing, completion),
            latency_ms=completion.latency_ms,
        )
        self._count(record)
        await self._bookkeep(lambda: self.store.record_usage(record), "usage", None)

    async def record_search_calls(self, conversation: Conversation, message: IncomingMessage, calls: int) -> None:
        record = UsageRecord(
            conversation_id=conversation.id, platform=message.platform, workspace=message.workspace,
            user=message.user, model=SEARCH_TOOLS_MODEL, prompt_tokens=0, cached_tokens=0, completion_tokens=0,
            web_search_calls=calls, cost_usd=calls * self.config.kimi.pricing.search_tool_call, latency_ms=0)
        self._count(record)
        await self._bookkeep(lambda: self.store.record_usage(record), "usage", None)

    async def _failed(self, attempt: _Attempt, user_text: str, kind: str) -> TurnOutcome:
        publisher, recorder = attempt.publisher, attempt.recorder
        ids = await publisher.fail(user_text)
        answer = None if recorder is None else {"text": "".join(recorder.round_text), "status": "failed",
                                                 "error": kind, "platform_message_ids": ids}
        await self._close(attempt.work.turn.id, TurnState.FAILED, ids=ids, error=kind,
                          row_id=recorder.row_id if recorder else None, answer=answer)
        await self._link(attempt.conversation, ids, attempt.work.turn.id)
        return TurnOutcome(status="failed", text=publisher.shown_text, message_ids=ids, error=kind)

    async def _interrupted(self, attempt: _Attempt) -> None:
        """Cancelled: the user's stop closes the turn; a shutdown leaves it for the next process, saying so."""
        work, publisher, recorder = attempt.work, attempt.publisher, attempt.recorder
        if work.interruption is Interruption.SHUTDOWN:
            try:
                # A departing process must not wait on the platform's allowance: the resumed answer rewrites
                # these messages anyway.
                ids = await publisher.suspend(SUSPENDED_NOTE, limit=SUSPEND_WRITE_LIMIT)
                async with asyncio.timeout(SUSPEND_WRITE_LIMIT):
                    await self.store.set_turn_messages(work.turn.id, ids)
            except Exception:
                log.warning("could not mark an interrupted answer", extra={"turn": work.turn.id})
            log.info("answer left for resumption", extra={"turn": work.turn.id})
            return
        ids = await publisher.finish(footer=STOPPED_NOTE)
        answer = None if recorder is None else {"text": "".join(recorder.round_text), "status": "interrupted",
                                                 "platform_message_ids": ids}
        await self._close(work.turn.id, TurnState.STOPPED, ids=ids, row_id=recorder.row_id if recorder else None,
                          answer=answer)
        await self._link(attempt.conversation, ids, work.turn.id)

    async def _close(self, turn_id: int, state: TurnState, *, ids: list[str], row_id: int | None = None,
                     answer: dict[str, Any] | None = None, error: str | None = None) -> None:
        await self._bookkeep(lambda: self.store.finish_turn(turn_id, state, answer_row_id=row_id, answer=answer,
                                                            platform_message_ids=ids, error=error), "close", turn_id)

    async def _link(self, conversation: Conversation | None, ids: list[str], turn_id: int) -> None:
        if conversation is None:
            return
        for platform_id in ids:
            await self._bookkeep(lambda platform_id=platform_id: self.store.link_platform_message(
                conversation.id, conversation.platform, platform_id), "link", turn_id)

    async def _bookkeep(self, operation: Callable[[], Awaitable[object]], what: str, turn_id: int | None) -> None:
        """Records that follow what the user already sees: retried until the database takes them (see
        bot/intake.py), and if they are finally lost, logged; never an error in the chat."""
        try:
            await persist(operation, window=self.config.turns.intake_retry_seconds, what=what,
                          ids={"turn": turn_id})
        except Exception:
            log.exception("bookkeeping lost", extra={"what": what, "turn": turn_id})
