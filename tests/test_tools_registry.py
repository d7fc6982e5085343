from __future__ import annotations

import asyncio

import pytest

from bot.tools import ToolConfigError, ToolContext, ToolError, ToolRegistry, ToolSpec, tool_from_function

HERE = __name__


async def explode(message: str) -> str:
    """Raise an ordinary exception.

    Args:
        message: Text of the exception.
    """
    raise RuntimeError(message)


async def refuse(reason: str) -> str:
    """Raise a tool error."""
    raise ToolError(reason)


async def inner_timeout() -> str:
    """Raise TimeoutError from inside the tool itself."""
    raise TimeoutError("upstream took too long")


async def sleepy() -> str:
    """Wait on something that never happens."""
    await asyncio.Event().wait()
    return "unreachable"


async def signal_then_wait(ctx: ToolContext) -> str:
    """Report that the call started, then wait forever."""
    ctx.options["started"].set()
    await asyncio.Event().wait()
    return "unreachable"


async def chatty(size: int) -> str:
    """Return a long text."""
    return "x" * size


async def structured() -> list[object]:
    """Return non-string data."""
    return [1, "two", {"three": 3.0}, None]


def sync_tool(value: str) -> str:
    """Not async."""
    return value


async def ab() -> str:
    """Name too short for Kimi."""
    return ""


async def bad_annotation(value: int | str) -> str:
    """Union of two types."""
    return ""


async def test_exception_in_tool_becomes_one_line_error() -> None:
    result = await tool_from_function(explode).run('{"message": "disk on fire\\nsecond line"}')
    assert not result.ok
    assert result.content == "explode failed with RuntimeError: disk on fire second line"


async def test_tool_error_message_passed_through() -> None:
    result = await tool_from_function(refuse).run('{"reason": "quota exhausted"}')
    assert (result.ok, result.content) == (False, "refuse failed: quota exhausted")


async def test_timeout_becomes_error_result() -> None:
    result = await tool_from_function(sleepy, timeout=0.01).run("{}")
    assert not result.ok
    assert result.content == "sleepy timed out after 0.01 seconds."


async def test_timeout_error_raised_by_tool_is_not_reported_as_our_timeout() -> None:
    result = await tool_from_function(inner_timeout, timeout=60).run("")
    assert not result.ok
    assert "TimeoutError: upstream took too long" in result.content
    assert "timed out after" not in result.content


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(tool_from_function(signal_then_wait, options={"started": started}).run("{}"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_output_cap() -> None:
    tool = tool_from_function(chatty, max_output_chars=10)
    result = await tool.run('{"size": 100}')
    assert result.ok and result.truncated
    assert result.content.startswith("x" * 10 + "\n")
    assert "x" * 11 not in result.content
    assert "10 of 100 characters" in result.content
    exact = await tool.run('{"size": 10}')
    assert (exact.content, exact.truncated) == ("x" * 10, False)


async def test_non_string_output_is_json() -> None:
    result = await tool_from_function(structured).run("{}")
    assert result.ok
    assert result.content == '[1, "two", {"three": 3.0}, null]'


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
    ],
)
async def test_invalid_json_arguments(arguments: str, fragment: str) -> None:
    result = await tool_from_function(chatty).run(arguments)
    assert not result.ok
    assert result.content.startswith("Invalid arguments for chatty:")
    assert fragment in result.content


def test_from_specs_builds_registry() -> None:
    registry = ToolRegistry.from_specs(
        [
            ToolSpec("bot.tools.clock:current_time", timeout=5),
            ToolSpec("bot.tools.web:fetch_page", options={"max_chars": 500}),
            ToolSpec(f"{HERE}:chatty", name="make_text", max_output_chars=99),
        ]
    )
    assert len(registry) == 3
    assert [tool.name for tool in registry] == ["current_time", "fetch_page", "make_text"]
    assert [spec["function"]["name"] for spec in registry.openai_tools()] == [
        "current_time",
        "fetch_page",
        "make_text",
    ]
    clock = registry.get("current_time")
    assert clock is not None and clock.timeout == 5
    fetch = registry.get("fetch_page")
    assert fetch is not None and "ctx" not in fetch.parameters["properties"]
    assert fetch.parameters["required"] == ["url"]
    made = registry.get("make_text")
    assert made is not None and made.max_output_chars == 99
    assert registry.get("chatty") is None


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (ToolSpec("tests.no_such_module_here:fn"), "cannot import module"),
        (ToolSpec(f"{HERE}:missing_function"), "has no attribute"),
        (ToolSpec(f"{HERE}.chatty"), "package.module:function"),
        (ToolSpec(f"{HERE}:sync_tool"), "not an async function"),
        (ToolSpec(f"{HERE}:ab"), "must match"),
        (ToolSpec(f"{HERE}:chatty", name="$web_search"), "must match"),
        (ToolSpec(f"{HERE}:chatty", name="9lives"), "must match"),
        (ToolSpec(f"{HERE}:chatty", name="has space"), "must match"),
        (ToolSpec(f"{HERE}:bad_annotation"), "unions"),
    ],
)
def test_from_specs_errors_name_the_path(spec: ToolSpec, fragment: str) -> None:
    with pytest.raises(ToolConfigError) as err:
        ToolRegistry.from_specs([ToolSpec("bot.tools.clock:current_time"), spec])
    assert spec.path in str(err.value)
    assert fragment in str(err.value)


def test_from_specs_duplicate_names() -> None:
    with pytest.raises(ToolConfigError) as err:
        ToolRegistry.from_specs([ToolSpec(f"{HERE}:chatty"), ToolSpec(f"{HERE}:explode", name="chatty")])
    assert "already used" in str(err.value) and f"{HERE}:explode" in str(err.value)


def test_registry_rejects_duplicate_tools() -> None:
    with pytest.raises(ToolConfigError):
        ToolRegistry([tool_from_function(chatty), tool_from_function(chatty)])
