from __future__ import annotations

from typing import Any, Literal, Optional

import pytest

from bot.tools import ToolConfigError, ToolContext, tool_from_function
from bot.tools.schema import parse_docstring


def assert_mfjs(schema: dict[str, Any], path: str = "$") -> None:
    """Every (nested) schema carries a "type" and nothing uses anyOf."""
    assert "type" in schema, f"{path} has no type"
    assert "anyOf" not in schema and "oneOf" not in schema, f"{path} uses a union"
    for name, prop in schema.get("properties", {}).items():
        assert_mfjs(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        assert_mfjs(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        assert_mfjs(schema["additionalProperties"], f"{path}{{}}")


async def search_notes(
    ctx: ToolContext,
    query: str,
    limit: int = 5,
    ratio: float = 0.5,
    exact: bool = False,
    mode: Literal["fast", "thorough"] = "fast",
    tags: list[str] | None = None,
    weights: dict[str, float] | None = None,
    note: Optional[str] = None,  # noqa: UP045 - Optional must be supported as well as `X | None`
    level: Literal[1, 2, 3] | None = None,
    matrix: list[list[int]] | None = None,
) -> dict[str, Any]:
    """Search the team's notes for a phrase.

    Matching ignores case unless exact is set.

    Args:
        query: The phrase to look for.
        limit (int): How many notes to return,
            at most 50.
        mode: Search strategy.

    Returns:
        The matching notes.
    """
    return {"query": query, "limit": limit, "tags": tags, "note": note, "options": dict(ctx.options)}


def test_schema_for_every_supported_annotation() -> None:
    tool = tool_from_function(search_notes)
    assert tool.name == "search_notes"
    assert tool.description == "Search the team's notes for a phrase."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "The phrase to look for."},
            "limit": {
                "type": "integer",
                "description": "How many notes to return, at most 50.",
                "default": 5,
            },
            "ratio": {"type": "number", "default": 0.5},
            "exact": {"type": "boolean", "default": False},
            "mode": {
                "type": "string",
                "enum": ["fast", "thorough"],
                "description": "Search strategy.",
                "default": "fast",
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "weights": {"type": "object", "additionalProperties": {"type": "number"}},
            "note": {"type": "string"},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        },
        "required": ["query"],
    }
    assert_mfjs(tool.parameters)
    assert tool.openai_spec() == {
        "type": "function",
        "function": {"name": "search_notes", "description": tool.description, "parameters": tool.parameters},
    }


async def no_params() -> str:
    """Say hello."""
    return "hello"


async def optional_without_default(when: str | None) -> str:
    """Echo.

    Args:
        when: Optional moment.
    """
    return repr(when)


def test_schema_without_parameters_and_optional_without_default() -> None:
    assert tool_from_function(no_params).parameters == {"type": "object", "properties": {}}
    params = tool_from_function(optional_without_default).parameters
    assert params == {
        "type": "object",
        "properties": {"when": {"type": "string", "description": "Optional moment."}},
    }


async def test_optional_without_default_receives_none() -> None:
    result = await tool_from_function(optional_without_default).run("{}")
    assert result.ok and result.content == "None"


async def test_arguments_validated_and_context_injected() -> None:
    tool = tool_from_function(search_notes, options={"team": "core"})
    result = await tool.run('{"query": "standup", "limit": "7", "tags": ["a", "b"]}')
    assert result.ok, result.content
    assert '"limit": 7' in result.content
    assert '"tags": ["a", "b"]' in result.content
    assert '"options": {"team": "core"}' in result.content
    assert '"note": null' in result.content


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        ('{"limit": 3}', ["missing required argument 'query'"]),
        ('{"query": 5}', ["query", "valid string"]),
        ('{"query": "x", "limit": 2.5}', ["limit"]),
        ('{"query": "x", "mode": "random"}', ["mode", "'fast'"]),
        ('{"query": "x", "tags": ["ok", 3]}', ["tags[1]"]),
        ('{"query": "x", "weights": {"a": "heavy"}}', ["weights['a']"]),
        ('{"query": "x", "colour": "red"}', ["unknown argument 'colour'"]),
    ],
)
async def test_validation_errors_reported_to_model(arguments: str, fragments: list[str]) -> None:
    result = await tool_from_function(search_notes).run(arguments)
    assert not result.ok
    assert result.content.startswith("Invalid arguments for search_notes:")
    assert "\n" not in result.content
    for fragment in fragments:
        assert fragment in result.content


def test_docstring_parsing() -> None:
    description, args = parse_docstring(
        "Fetch a thing\nfrom somewhere.\n\nMore detail here.\n\nArgs:\n    a: First.\n    b (int): Second,\n"
        "        continued.\n    c:\n        On its own line.\n\nRaises:\n    ValueError: never.\n"
    )
    assert description == "Fetch a thing from somewhere."
    assert args == {"a": "First.", "b": "Second, continued.", "c": "On its own line."}


def test_docstring_description_stops_at_section() -> None:
    assert parse_docstring("Short.\nArgs:\n    x: y")[0] == "Short."


async def union_param(value: int | str) -> str:
    """Doc."""
    return ""


async def tuple_param(value: tuple[int, int]) -> str:
    """Doc."""
    return ""


async def unannotated(value) -> str:  # type: ignore[no-untyped-def]
    """Doc."""
    return ""


async def bare_list(value: list) -> str:  # type: ignore[type-arg]
    """Doc."""
    return ""


async def int_keys(value: dict[int, str]) -> str:
    """Doc."""
    return ""


async def var_kwargs(**kwargs: str) -> str:
    """Doc."""
    return ""


async def mixed_literal(value: Literal["a", 1]) -> str:
    """Doc."""
    return ""


async def undocumented(value: str) -> str:
    return value


UNSUPPORTED = [
    union_param,
    tuple_param,
    unannotated,
    bare_list,
    int_keys,
    var_kwargs,
    mixed_literal,
    undocumented,
]


@pytest.mark.parametrize("fn", UNSUPPORTED)
def test_unsupported_signatures_rejected(fn: Any) -> None:
    with pytest.raises(ToolConfigError) as err:
        tool_from_function(fn)
    assert fn.__name__ in str(err.value)
