"""Custom tools: wrapping typed async functions for the model, running them safely, and the registry."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from bot.tools.schema import (
    ArgumentError,
    FunctionSignature,
    ToolConfigError,
    ToolContext,
    ToolError,
    describe_function,
)

log = logging.getLogger(__name__)

# Kimi's documented tool-name rule; it also keeps user tools from shadowing "$web_search".
_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]{2,63}$")
# Kimi accepts at most 128 functions per request; one slot stays free for the built-in $web_search.
MAX_TOOLS = 127
_MAX_ERROR_CHARS = 600


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    content: str
    truncated: bool = False


class ModelTool(Protocol):
    """What the registry offers Kimi and runs: a Python function (`Tool`) or an MCP server's tool."""

    name: str

    def openai_spec(self) -> dict[str, Any]: ...

    async def run(self, arguments_json: str) -> ToolResult: ...


def is_valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def failure(message: str) -> ToolResult:
    """A failed call as the model reads it: one line, bounded."""
    line = " ".join(message.split())
    if len(line) > _MAX_ERROR_CHARS:
        line = line[: _MAX_ERROR_CHARS - 1] + "…"
    return ToolResult(ok=False, content=line)


def capped(text: str, limit: int, *, ok: bool = True) -> ToolResult:
    if len(text) <= limit:
        return ToolResult(ok=ok, content=text)
    note = f"\n[output truncated: showing {limit} of {len(text)} characters]"
    return ToolResult(ok=ok, content=text[:limit] + note, truncated=True)


class Tool:
    """A model-callable function, built by `tool_from_function`. `run` raises only on cancellation."""

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        signature: FunctionSignature,
        *,
        name: str,
        timeout: float,
        max_output_chars: int,
        options: Mapping[str, Any],
    ) -> None:
        self.name = name
        self.description = signature.description
        self.parameters = signature.parameters
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        self._fn = fn
        self._signature = signature
        self._context = ToolContext(options=MappingProxyType(dict(options)))

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def openai_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    async def run(self, arguments_json: str) -> ToolResult:
        started = time.monotonic()
        result = await self._run(arguments_json)
        log.info(
            "tool call finished",
            extra={
                "tool": self.name,
                "ok": result.ok,
                "truncated": result.truncated,
                "duration_ms": round((time.monotonic() - started) * 1000),
                "output_chars": len(result.content),
            },
        )
        return result

    async def _run(self, arguments_json: str) -> ToolResult:
        try:
            kwargs = self._signature.bind(parse_arguments(arguments_json), self._context)
        except ArgumentError as exc:
            return self._failure(f"Invalid arguments for {self.name}: {exc}")
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                value = await self._fn(**kwargs)
        except TimeoutError as exc:
            if deadline.expired():
                return self._failure(f"{self.name} timed out after {self.timeout:g} seconds.")
            return self._crash(exc)
        except ToolError as exc:
            return self._failure(f"{self.name} failed: {exc}")
        except Exception as exc:
            return self._crash(exc)
        return self._output(value)

    def _crash(self, exc: Exception) -> ToolResult:
        log.warning("tool raised", extra={"tool": self.name, "error_type": type(exc).__name__}, exc_info=True)
        detail = str(exc) or "no details"
        return self._failure(f"{self.name} failed with {type(exc).__name__}: {detail}")

    def _failure(self, message: str) -> ToolResult:
        return failure(message)

    def _output(self, value: Any) -> ToolResult:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return capped(text, self.max_output_chars)


def parse_arguments(arguments_json: str) -> dict[str, Any]:
    # Models sometimes send an empty string for tools without parameters.
    if not arguments_json or not arguments_json.strip():
        return {}
    try:
        value = json.loads(arguments_json)
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"arguments are not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ArgumentError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


def tool_from_function(
    fn: Callable[..., Awaitable[Any]],
    *,
    name: str | None = None,
    timeout: float = 30.0,
    max_output_chars: int = 16_000,
    options: Mapping[str, Any] | None = None,
) -> Tool:
    """Wrap a typed async function; raises ToolConfigError if it cannot be offered to the model."""
    tool_name = name or getattr(fn, "__name__", "")
    if not inspect.iscoroutinefunction(fn):
        raise ToolConfigError(f"{tool_name or fn!r} is not an async function")
    if not _NAME_RE.match(tool_name):
        raise ToolConfigError(
            f"tool name {tool_name!r} must match {_NAME_RE.pattern} (letters, digits, _ and -, 3-64 chars)"
        )
    if timeout <= 0 or max_output_chars <= 0:
        raise ToolConfigError(f"{tool_name}: timeout and max_output_chars must be positive")
    try:
        signature = describe_function(fn)
    except ToolConfigError as exc:
        raise ToolConfigError(f"{tool_name}: {exc}") from exc
    return Tool(
        fn,
        signature,
        name=tool_name,
        timeout=timeout,
        max_output_chars=max_output_chars,
        options=options or {},
    )


@dataclass(frozen=True)
class ToolSpec:
    path: str  # "package.module:function"
    timeout: float = 30.0
    max_output_chars: int = 16_000
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None  # defaults to the function's name


class ToolRegistry:
    """The tools offered to Kimi. Python tools are fixed at start; an MCP server's tools come and go with its
    connection (`add`, `remove`)."""

    def __init__(self, tools: Sequence[Tool] = ()) -> None:
        self._tools: dict[str, ModelTool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ToolConfigError(f"duplicate tool name {tool.name!r}")
            self._tools[tool.name] = tool
        if len(self._tools) > MAX_TOOLS:
            raise ToolConfigError(f"{len(self._tools)} tools configured; Kimi accepts at most {MAX_TOOLS}")

    @classmethod
    def from_specs(cls, specs: Sequence[ToolSpec]) -> ToolRegistry:
        tools: list[Tool] = []
        seen: dict[str, str] = {}
        for spec in specs:
            try:
                tool = tool_from_function(
                    _import_function(spec.path),
                    name=spec.name,
                    timeout=spec.timeout,
                    max_output_chars=spec.max_output_chars,
                    options=spec.options,
                )
            except ToolConfigError as exc:
                raise ToolConfigError(f"tool {spec.path!r}: {exc}") from exc
            if tool.name in seen:
                raise ToolConfigError(
                    f"tool {spec.path!r}: name {tool.name!r} is already used by {seen[tool.name]!r}"
                )
            seen[tool.name] = spec.path
            tools.append(tool)
        return cls(tools)

    def add(self, tools: Sequence[ModelTool]) -> list[str]:
        """Offer more tools; a name already taken, or past Kimi's limit, is skipped (and logged)."""
        added: list[str] = []
        for tool in tools:
            if tool.name in self._tools or len(self._tools) >= MAX_TOOLS:
                log.warning("tool not offered", extra={"tool": tool.name, "reason": "name taken"
                                                       if tool.name in self._tools else "too many tools"})
                continue
            self._tools[tool.name] = tool
            added.append(tool.name)
        return added

    def remove(self, names: Sequence[str]) -> None:
        for name in names:
            self._tools.pop(name, None)

    def get(self, name: str) -> ModelTool | None:
        return self._tools.get(name)

    def openai_tools(self) -> list[dict[str, Any]]:
        return [tool.openai_spec() for tool in self._tools.values()]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[ModelTool]:
        return iter(self._tools.values())


def _import_function(path: str) -> Callable[..., Awaitable[Any]]:
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ToolConfigError("expected the form 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolConfigError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:  # an operator's module may fail in any way while importing
        raise ToolConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ToolConfigError(f"module {module_name!r} has no attribute {attr_path!r}") from exc
    if not callable(target):
        raise ToolConfigError(f"{attr_path!r} is not callable")
    return target
