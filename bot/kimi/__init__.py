"""The Kimi client: the only code that knows Kimi's wire rules (see ../shared/reference/kimi-api.md)."""

from bot.kimi.client import KimiClient, RequestPlan
from bot.kimi.errors import KimiError
from bot.kimi.events import (
    ChatRequest,
    Completion,
    Quiet,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallStarted,
    Usage,
)

__all__ = [
    "ChatRequest",
    "Completion",
    "KimiClient",
    "KimiError",
    "Quiet",
    "ReasoningDelta",
    "RequestPlan",
    "TextDelta",
    "ToolCall",
    "ToolCallStarted",
    "Usage",
]
