"""MCP servers as tools: a real MCP server process (tests/mcp_server.py, official SDK) over stdio and streamable
HTTP, its tools offered to the fake Kimi (which checks their schemas like Kimi) and called from answers."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.config import Config, McpServerEntry
from bot.tools.mcp import McpServers, offered_names
from bot.tools.mfjs import moonshot_schema
from bot.tools.registry import ToolRegistry, is_valid_name
from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fixtures.engine import DEFAULT_TOOLS, Harness, build_harness
from tests.process_support import free_port, until

ROOT = Path(__file__).resolve().parent.parent
STDIO = {"name": "tickets", "transport": "stdio", "command": [sys.executable, "-m", "tests.mcp_server", "stdio"],
         "env": {"PYTHONPATH": str(ROOT)}}


def entry(**values: object) -> McpServerEntry:
    return McpServerEntry.model_validate({**STDIO, **values})


@pytest.fixture
async def mcp_harness(kimi: FakeKimi, store: Store) -> AsyncIterator[tuple[Harness, ToolRegistry, McpServers]]:
    registry = ToolRegistry.from_specs(DEFAULT_TOOLS)
    servers = McpServers([entry(timeout=2, max_output_chars=500)], registry)
    await servers.start()
    harness = await build_harness(kimi, store, tools=registry)
    try:
        yield harness, registry, servers
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()
        await servers.aclose()


async def call(harness: Harness, name: str, arguments: dict[str, object]) -> str:
    harness.kimi.enqueue(Reply(tool_calls=[{"name": name, "arguments": arguments}]))
    _, surface = await harness.ask(f"use {name}")
    return surface.visible_text()


async def test_a_stdio_servers_tools_are_offered_and_called(mcp_harness: tuple[Harness, ToolRegistry, McpServers]
                                                            ) -> None:
    harness, registry, _ = mcp_harness
    names = {tool.name for tool in registry}
    assert {"tickets_tickets_lookup", "tickets_annotate", "tickets_r_sum", "tickets_break", "tickets_slow",
            "tickets_dump"} <= names
    assert "current_time" in names  # beside the Python tools
    said = await call(harness, "tickets_tickets_lookup", {"number": 7})
    assert "Ticket 7: login page shows a blank screen" in said
    # The fake Kimi refuses MFJS-invalid schemas, so the request with `annotate` (a parameter typed Any) went through.
    offered = {t["function"]["name"]: t["function"] for t in harness.kimi.requests[-1]["tools"]}
    assert offered["tickets_annotate"]["parameters"]["properties"]["note"]["type"] == "string"
    said = await call(harness, "tickets_annotate", {"number": 7, "note": "customer called again"})
    assert "Noted on ticket 7: 'customer called again'" in said


async def test_errors_timeouts_and_huge_outputs_reach_kimi_as_results(
        mcp_harness: tuple[Harness, ToolRegistry, McpServers]) -> None:
    harness, _, _ = mcp_harness
    said = await call(harness, "tickets_break", {})
    assert "Error executing tool break" in said
    said = await call(harness, "tickets_slow", {"seconds": 30})
    assert "tickets_slow timed out after 2 seconds" in said
    await call(harness, "tickets_dump", {})
    result = harness.kimi.requests[-1]["messages"][-1]
    assert result["role"] == "tool" and "[output truncated: showing 500 of 120000 characters]" in result["content"]
    # After the timeout the server still answers: the connection was not given up.
    assert "Ticket 9" in await call(harness, "tickets_tickets_lookup", {"number": 9})


@pytest.fixture
def mcp_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the HTTP server will listen, and the token kimibot is configured with."""
    monkeypatch.setenv("KIMIBOT_TEST_MCP_TOKEN", "s3cret")
    return f"http://127.0.0.1:{free_port()}/mcp"


async def start_http(url: str, token: str) -> asyncio.subprocess.Process:
    port = url.split(":")[2].split("/")[0]
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.mcp_server", "http", port, token,
                                                   cwd=ROOT, stderr=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(30), aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url.replace("/mcp", "/")):
                    return process
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)


async def test_a_streamable_http_server_with_a_token(mcp_url: str) -> None:
    url = mcp_url
    process = await start_http(url, "s3cret")
    registry = ToolRegistry()
    servers = McpServers([entry(name="desk", transport="http", url=url, token_env="KIMIBOT_TEST_MCP_TOKEN")],
                         registry)
    try:
        await servers.start()
        lookup = registry.get("desk_tickets_lookup")
        assert lookup is not None
        result = await lookup.run('{"number": 12}')
        assert result.ok and result.content.startswith("Ticket 12:")
    finally:
        await servers.aclose()
        process.terminate()
        await process.wait()


async def test_a_server_that_is_down_is_reported_once_then_picked_up_and_dropped(
        mcp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    url = mcp_url
    registry = ToolRegistry()
    servers = McpServers([entry(name="desk", transport="http", url=url, token_env="KIMIBOT_TEST_MCP_TOKEN",
                                connect_timeout=3)], registry, retry_seconds=0.2)
    process = None
    with caplog.at_level(logging.INFO, logger="bot.tools.mcp"):
        try:
            await servers.start()  # nothing listens yet
            assert len(registry) == 0
            await asyncio.sleep(1.0)  # several more attempts
            down = [r for r in caplog.records if r.getMessage().startswith("mcp server unavailable")]
            assert len(down) == 1 and down[0].__dict__["server"] == "desk"
            process = await start_http(url, "s3cret")
            await until(lambda: registry.get("desk_tickets_lookup") is not None, 20, "tools offered")
            process.kill()
            await process.wait()
            tool = registry.get("desk_tickets_lookup")
            assert tool is not None
            result = await tool.run('{"number": 1}')
            assert not result.ok  # the call itself fails with a clear result...
            # ...and the tools are withdrawn.
            await until(lambda: registry.get("desk_tickets_lookup") is None, 20, "tools withdrawn")
        finally:
            await servers.aclose()
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("mcp server connected") == 1
    assert messages.count("mcp server disconnected; its tools are withdrawn") == 1


async def test_a_wrong_token_means_no_tools_and_one_warning(mcp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    url = mcp_url
    process = await start_http(url, "another")
    registry = ToolRegistry()
    servers = McpServers([entry(name="desk", transport="http", url=url, token_env="KIMIBOT_TEST_MCP_TOKEN",
                                connect_timeout=5)], registry, retry_seconds=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.tools.mcp"):
            await servers.start()
            await asyncio.sleep(0.8)
        assert len(registry) == 0
        assert sum(r.getMessage().startswith("mcp server unavailable") for r in caplog.records) == 1
    finally:
        await servers.aclose()
        process.terminate()
        await process.wait()


def test_names_are_kept_within_kimis_rules_and_unique() -> None:
    names = offered_names("srv", ["a.b", "a_b", "résumé", "x" * 100, "", "..."])
    assert len(names) == 6 and all(is_valid_name(name) for name in names)
    assert names["srv_a_b"] == "a.b" and names["srv_a_b_2"] == "a_b"


def test_schemas_are_made_moonshot_flavoured() -> None:
    fixed = moonshot_schema({"type": "object", "properties": {
        "any": {"title": "Any"},
        "maybe": {"type": "string", "anyOf": [{"maxLength": 3}, {"type": "null"}]},
        "mode": {"enum": ["a", "b"]},
        "tags": {"items": {"const": 1}},
    }})
    props = fixed["properties"]
    assert props["any"]["type"] == "string" and props["mode"]["type"] == "string"
    assert "type" not in props["maybe"] and props["maybe"]["anyOf"] == [{"maxLength": 3, "type": "string"},
                                                                       {"type": "null"}]
    assert props["tags"]["type"] == "array" and props["tags"]["items"]["type"] == "integer"
    assert moonshot_schema(None) == {"type": "object", "properties": {}}


def test_config_names_what_a_server_entry_lacks() -> None:
    with pytest.raises(ValueError, match="needs `url`"):
        Config.model_validate({"tools": {"mcp": [{"name": "desk", "transport": "http"}]}})
    with pytest.raises(ValueError, match="its own `name`"):
        Config.model_validate({"tools": {"mcp": [STDIO, STDIO]}})
