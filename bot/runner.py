"""The model's tool loop: call Kimi, run the tools it asks for, call again, until it answers."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bot.kimi import (
    ChatRequest,
    Completion,
    KimiClient,
    Quiet,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallStarted,
)
from bot.search_tools import NAMES as SEARCH_NAMES
from bot.search_tools import SearchTools, Sources
from bot.tools.registry import ToolRegistry, ToolResult

log = logging.getLogger(__name__)


class LoopSink(Protocol):
    """Where the loop reports progress: the publisher for what users see, storage for what is kept."""

    def text(self, delta: str) -> None: ...

    def status(self, status: str | None) -> None: ...

    async def round_done(self, completion: Completion, results: list[tuple[ToolCall, ToolResult]]) -> None: ...

    async def call_done(self, completion: Completion) -> None: ...


@dataclass(slots=True)
class LoopResult:
    content: str
    reasoning: str | None
    completions: list[Completion] = field(default_factory=list)
    hit_round_limit: bool = False
    sources: Sources = field(default_factory=Sources)

    @property
    def cut_by_length(self) -> bool:
        """The answer stopped at the output limit (`finish_reason: "length"`), not because it was done."""
        return bool(self.completions) and self.completions[-1].finish_reason == "length"


STILL_WORKING = "Kimi is still working…"


def describe_tool(name: str) -> str:
    if name in ("$web_search", "web_search"):
        return "Searching the web…"
    if name == "open_url":
        return "Reading a page…"
    return f"Running `{name}`…"


class ToolLoop:
    def __init__(self, client: KimiClient, tools: ToolRegistry, *, max_rounds: int,
                 search: SearchTools | None = None) -> None:
        self._client = client
        self._tools = tools
        self._max_rounds = max_rounds
        self._search = search

    async def run(self, request: ChatRequest, sink: LoopSink) -> LoopResult:
        messages: list[dict[str, Any]] = list(request.messages)
        result = LoopResult(content="", reasoning=None)
        shown_any = False
        for round_number in range(self._max_rounds + 1):
            last_round = round_number == self._max_rounds
            # The last round forbids tool calls, so the model has to answer with what it has; the tools stay
            # declared because they start the prompt, and Kimi's cache keeps that start (reference §8).
            current = replace(request, messages=messages,
                              tool_choice="none" if last_round else request.tool_choice)
            completion = await self._one_call(current, sink, separate=shown_any)
            shown_any = shown_any or bool(completion.content)
            result.completions.append(completion)
            await sink.call_done(completion)
            if not completion.tool_calls or completion.finish_reason != "tool_calls":
                result.content = completion.content
                result.reasoning = completion.reasoning
                result.hit_round_limit = last_round and round_number > 0
                return result
            results = await self._run_tools(completion.tool_calls, sink, result.sources)
            await sink.round_done(completion, results)
            messages.append(completion.assistant_message())
            for call, outcome in results:
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                                 "content": outcome.content})
        raise AssertionError("unreachable: the last round declares no tools")

    async def _one_call(self, request: ChatRequest, sink: LoopSink, *, separate: bool) -> Completion:
        started_text = False
        quiet = False
        completion: Completion | None = None
        async for event in self._client.stream(request):
            if isinstance(event, TextDelta):
                if not started_text or quiet:
                    sink.status(None)
                    quiet = False
                if not started_text:
                    started_text = True
                    if separate:
                        sink.text("\n\n")
                sink.text(event.text)
            elif isinstance(event, Quiet):
                quiet = True
                sink.status(STILL_WORKING)
            elif isinstance(event, ReasoningDelta):
                if not started_text:
                    sink.status("Thinking…")
            elif isinstance(event, ToolCallStarted):
                sink.status(describe_tool(event.name))
            else:
                completion = event
        if completion is None:
            raise AssertionError("Kimi stream ended without a completion")
        return completion

    async def _run_tools(self, calls: list[ToolCall], sink: LoopSink,
                         sources: Sources) -> list[tuple[ToolCall, ToolResult]]:
        names = ", ".join(dict.fromkeys(call.name for call in calls))
        sink.status(describe_tool(calls[0].name) if len(calls) == 1 else f"Running {names}…")
        outcomes = await asyncio.gather(*(self._run_one(call, sources) for call in calls))
        return list(zip(calls, outcomes, strict=True))

    async def _run_one(self, call: ToolCall, sources: Sources) -> ToolResult:
        if self._search is not None and call.name in SEARCH_NAMES:
            return await self._search.run(call, sources)
        if call.is_builtin:
            # Kimi runs its built-ins itself: the caller echoes the arguments back as the result.
            return ToolResult(ok=True, content=call.arguments)
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolResult(ok=False, content=f"Error: there is no tool named {call.name!r}.")
        log.info("tool call", extra={"tool": call.name, "tool_call_id": call.id})
        return await tool.run(call.arguments)


