"""Custom tools the model may call: typed async functions turned into MFJS-compatible tool definitions."""

from bot.tools.registry import Tool, ToolRegistry, ToolResult, ToolSpec, tool_from_function
from bot.tools.schema import ToolConfigError, ToolContext, ToolError

__all__ = [
    "Tool",
    "ToolConfigError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "tool_from_function",
]
