"""What a Kimi call takes and what its stream yields, free of SDK types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WEB_SEARCH = "$web_search"


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    thinking: bool = False
    web_search: bool = False
    max_tokens: int = 16_384
    # Routes a conversation's calls to the same cache (reference §8): its stable prefix is then billed as cached.
    cache_key: str | None = None
    tool_choice: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    type: str = "function"

    @property
    def is_builtin(self) -> bool:
        # Kimi marks built-ins with a "$" name prefix; the "builtin_function" type is observed, not documented.
        return self.name.startswith("$")

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call's name is known (its arguments may still be streaming): lets the UI say what is happening."""

    name: str


@dataclass(frozen=True, slots=True)
class Quiet:
    """Kimi has sent nothing for `seconds` (still within the timeouts): lets the UI say it is still working."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Completion:
    """The end of one Kimi call."""

    content: str
    reasoning: str | None
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage
    latency_ms: int
    model: str
    thinking: bool

    def assistant_message(self) -> dict[str, Any]:
        """The assistant message to send back on the next request, kept as Kimi expects it."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
            if self.thinking:
                message["reasoning_content"] = self.reasoning or ""
        return message


KimiEvent = TextDelta | ReasoningDelta | ToolCallStarted | Quiet | Completion
