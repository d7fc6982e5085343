"""Tools from MCP servers (`[[tools.mcp]]`), offered to Kimi beside the Python ones, through the official `mcp` SDK.

Each server lives in its own task, because the SDK's streams must be closed by the task that opened them. The task
connects, lists the server's tools and adds them to the registry under names Kimi accepts; when the server is
unreachable it says so in one log line and tries again every `RETRY_SECONDS`, adding the tools when it comes up
and removing them when it goes away (one log line for each change, never one per attempt). A call has the
configured timeout and output cap, like a Python tool's, and any failure becomes a tool result the model reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, TextContent
from mcp.types import Tool as RemoteTool

from bot.config import McpServerEntry, McpTransport
from bot.tools.mfjs import moonshot_schema
from bot.tools.registry import (
    ToolRegistry,
    ToolResult,
    capped,
    failure,
    is_valid_name,
    parse_arguments,
)
from bot.tools.schema import ArgumentError

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0
_INVALID = re.compile(r"[^a-zA-Z0-9_-]+")
MAX_NAME = 64


class McpUnavailable(Exception):
    """The server is not connected (now)."""


def offered_names(server: str, remote: Sequence[str]) -> dict[str, str]:
    """Kimi-acceptable, unique names (`<server>_<tool>`, 3-64 of [a-zA-Z0-9_-]) → the server's own names."""
    names: dict[str, str] = {}
    for original in remote:
        base = f"{server}_{_INVALID.sub('_', original).strip('_') or 'tool'}"[:MAX_NAME]
        candidate, counter = base, 2
        while candidate in names or not is_valid_name(candidate):
            suffix = f"_{counter}"
            candidate, counter = base[: MAX_NAME - len(suffix)] + suffix, counter + 1
        names[candidate] = original
    return names


class McpTool:
    def __init__(self, connection: McpConnection, *, name: str, remote: RemoteTool) -> None:
        self.name = name
        self.remote_name = remote.name
        self._connection = connection
        self._description = (remote.description or remote.title or remote.name)[:1000]
        self._parameters = moonshot_schema(remote.input_schema)

    def __repr__(self) -> str:
        return f"McpTool({self.name!r} → {self.remote_name!r})"

    def openai_spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self._description,
                                                 "parameters": self._parameters}}

    async def run(self, arguments_json: str) -> ToolResult:
        entry = self._connection.entry
        try:
            arguments = parse_arguments(arguments_json)
        except ArgumentError as exc:
            return failure(f"Invalid arguments for {self.name}: {exc}")
        deadline = asyncio.timeout(entry.timeout)
        try:
            async with deadline:
                result = await self._connection.call(self.remote_name, arguments)
        except TimeoutError:
            if deadline.expired():
                return failure(f"{self.name} timed out after {entry.timeout:g} seconds.")
            return failure(f"{self.name}: the MCP server {entry.name} did not answer.")
        except McpUnavailable:
            return failure(f"{self.name}: the MCP server {entry.name} is not reachable right now.")
        except Exception as exc:  # the SDK raises its own errors and the transports' alike
            log.warning("mcp tool call failed", extra={"tool": self.name, "server": entry.name,
                                                       "error_type": type(exc).__name__})
            return failure(f"{self.name} failed: {type(exc).__name__}: {exc}")
        log.info("tool call finished", extra={"tool": self.name, "server": entry.name, "ok": not result.is_error})
        return capped(result_text(result), entry.max_output_chars, ok=not result.is_error)


def result_text(result: CallToolResult) -> str:
    parts = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        else:
            parts.append(f"[{item.type} content omitted]")
    if not any(isinstance(item, TextContent) for item in result.content) and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts) or "(no output)"


class McpConnection:
    """One configured server, connected (and reconnected) by its own task."""

    def __init__(self, entry: McpServerEntry, registry: ToolRegistry, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self.entry = entry
        self._registry = registry
        self._retry_seconds = retry_seconds
        self._client: Client | None = None
        self._offered: list[str] = []
        self._stopping = asyncio.Event()
        self._broken = asyncio.Event()
        self.first_attempt = asyncio.Event()  # set once the first connection has succeeded or failed

    @property
    def tool_names(self) -> list[str]:
        return list(self._offered)

    async def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        if self._client is None:
            raise McpUnavailable(self.entry.name)
        try:
            return await self._client.call_tool(name, arguments)
        except (MCPError, TimeoutError, asyncio.CancelledError):
            raise  # the server answered with an error, or the caller gave up: the connection is fine
        except Exception:
            self._broken.set()  # a dead process or a dropped connection: reconnect
            raise

    async def run(self) -> None:
        """Connect, and reconnect after `retry_seconds` whenever the server is or becomes unreachable. Logs one
        line per change (down, connected, disconnected), never one per attempt."""
        down_reported = False
        while not self._stopping.is_set():
            try:
                await self._session()
                down_reported = False
            except Exception as exc:  # unreachable, refused, crashed, misconfigured: the same to the operator
                if self._client is not None:
                    down_reported = True  # _withdraw says it was disconnected
                elif not down_reported:
                    log.warning("mcp server unavailable; its tools are not offered", extra={
                        "server": self.entry.name, "error_type": type(exc).__name__,
                        "error": str(exc)[:300], "retry_s": self._retry_seconds})
                    down_reported = True
            finally:
                self._withdraw()
                self.first_attempt.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._retry_seconds)

    async def _session(self) -> None:
        async with asyncio.timeout(self.entry.connect_timeout) as connecting, self._client_for() as client:
            listed = await client.list_tools()
            connecting.reschedule(None)
            self._offer(client, listed.tools)
            self.first_attempt.set()
            self._broken.clear()
            stopping = asyncio.ensure_future(self._stopping.wait())
            broken = asyncio.ensure_future(self._broken.wait())
            try:
                await asyncio.wait([stopping, broken], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                broken.cancel()
            if broken.done() and not broken.cancelled():
                raise McpUnavailable("the connection broke")

    def _client_for(self) -> Client:
        entry = self.entry
        if entry.transport is McpTransport.STDIO:
            # The SDK passes a safe default environment (PATH, HOME, …), not kimibot's secrets.
            params = StdioServerParameters(command=entry.command[0], args=entry.command[1:], env=entry.env or None)
            return Client(params)
        headers: dict[str, str] = {}
        if entry.token_env:
            token = os.environ.get(entry.token_env)
            if not token:
                raise McpUnavailable(f"the environment variable {entry.token_env} is not set")
            headers["Authorization"] = f"Bearer {token}"
        http = create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(entry.timeout,
                                                                                 connect=entry.connect_timeout))
        return Client(streamable_http_client(str(entry.url), http_client=http))

    def _offer(self, client: Client, tools: Sequence[RemoteTool]) -> None:
        wanted = [t for t in tools if not self.entry.tools or t.name in self.entry.tools]
        names = offered_names(self.entry.name, [t.name for t in wanted])
        by_remote = {t.name: t for t in wanted}
        offered = [McpTool(self, name=name, remote=by_remote[remote]) for name, remote in names.items()]
        self._client = client
        self._offered = self._registry.add(offered)
        log.info("mcp server connected", extra={"server": self.entry.name, "tools": len(self._offered)})

    def _withdraw(self) -> None:
        if self._client is not None and not self._stopping.is_set():
            log.warning("mcp server disconnected; its tools are withdrawn", extra={"server": self.entry.name})
        self._client = None
        self._registry.remove(self._offered)
        self._offered = []

    def stop(self) -> None:
        self._stopping.set()


class McpServers:
    """Every configured MCP server; `start` returns once each has connected or failed once."""

    def __init__(self, entries: Sequence[McpServerEntry], registry: ToolRegistry, *,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self.connections = [McpConnection(entry, registry, retry_seconds=retry_seconds) for entry in entries]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(c.run(), name=f"mcp-{c.entry.name}") for c in self.connections]
        await asyncio.gather(*(c.first_attempt.wait() for c in self.connections))

    async def aclose(self) -> None:
        for connection in self.connections:
            connection.stop()
        for task in self._tasks:
            try:
                async with asyncio.timeout(10):
                    await task
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
