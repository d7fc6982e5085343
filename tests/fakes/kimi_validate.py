"""Request validation for the fake /v1/chat/completions, mirroring the K2.5 rules in the reference.

Wordings marked [OBSERVED] in reference §2.3-§2.5, §6.3, §7.2 are reproduced exactly; the others are the
fake's own (their real wording is unconfirmed) and always carry type invalid_request_error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.kimi_errors import KimiError, context_overflow, invalid, model_not_found
from tests.fakes.kimi_tokens import prompt_tokens

DEFAULT_MAX_TOKENS = 32768
MAX_TOOLS = 128
WEB_SEARCH = "$web_search"
BUILTINS = frozenset({WEB_SEARCH})
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9\-_]{2,63}$")
ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass
class ChatRequest:
    """A validated chat request, with what the responder and the usage numbers need."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    thinking: bool
    stream: bool
    include_usage: bool
    max_tokens: int
    function_names: set[str] = field(default_factory=set)
    web_search: bool = False
    search_tokens: int = 0
    prompt_tokens: int = 0
    cache_key: str | None = None


def _fixed_params(body: dict[str, Any], thinking: bool) -> None:
    fixed = {
        "temperature": 1.0 if thinking else 0.6,
        "top_p": 0.95,
        "n": 1,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
    for name, value in fixed.items():
        given = body.get(name)
        if given is None:
            continue
        if isinstance(given, bool) or not isinstance(given, int | float) or abs(given - value) > 1e-9:
            raise invalid(f"invalid {name}: only {value:g} is allowed for this model")


def _thinking(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    if thinking is None:
        return True
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled"):
        raise invalid(f"Invalid request: thinking.type must be one of enabled, disabled (got {kind!r})")
    return kind == "enabled"


def _schema_error(path: str, detail: str) -> KimiError:
    return invalid(
        "tools.function.parameters is not a valid moonshot flavored json schema, "
        f"details: <At path '{path}': {detail}>"
    )


def _check_schema(schema: Any, path: str) -> None:
    if not isinstance(schema, dict):
        raise _schema_error(path, "schema must be an object")
    for combiner in ("anyOf", "oneOf", "allOf"):
        if combiner in schema:
            if "type" in schema and combiner == "anyOf":
                raise _schema_error(
                    path,
                    "when using anyOf, type should be defined in anyOf items instead of the parent schema",
                )
            for i, branch in enumerate(schema[combiner] or []):
                _check_schema(branch, f"{path}.{combiner}[{i}]")
            return
    if "$ref" in schema:
        return
    if "type" not in schema:
        raise _schema_error(path, "type is required")
    for name, prop in (schema.get("properties") or {}).items():
        _check_schema(prop, f"{path}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        _check_schema(schema["items"], f"{path}.items")
    for name, sub in (schema.get("$defs") or schema.get("definitions") or {}).items():
        _check_schema(sub, f"{path}.$defs.{name}")


def _tools(req: ChatRequest) -> None:
    tools = req.tools
    if not isinstance(tools, list):
        raise invalid("Invalid request: tools must be a list")
    if len(tools) > MAX_TOOLS:
        raise invalid(f"Invalid request: the number of tools cannot exceed {MAX_TOOLS} (got {len(tools)})")
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if kind == "builtin_function":
            if name not in BUILTINS:
                raise invalid(f"Invalid request: unknown builtin function {name!r}")
            req.web_search = True
            continue
        if kind != "function" or not isinstance(name, str):
            raise invalid(f"Invalid request: unsupported tool type {kind!r}")
        if not FUNCTION_NAME.match(name):
            raise invalid(
                "Invalid request: function name is invalid, must start with a letter and can contain "
                "letters, numbers, underscores, and dashes"
            )
        params = function.get("parameters")
        if params is not None:
            if not isinstance(params, dict) or params.get("type") != "object":
                raise _schema_error("root", "the root schema must be of type object")
            _check_schema(params, "root")
        req.function_names.add(name)


def _tool_choice(body: dict[str, Any], req: ChatRequest) -> None:
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none"):
        return
    if choice == "required":
        if req.thinking:
            raise invalid("tool_choice 'required' is incompatible with thinking enabled")
        return
    if isinstance(choice, dict):
        if req.thinking:
            raise invalid("tool_choice 'specified' is incompatible with thinking enabled")
        name = (choice.get("function") or {}).get("name")
        if name not in req.function_names:
            raise invalid(f"Invalid request: tool_choice names an undeclared function {name!r}")
        return
    raise invalid(f"Invalid request: invalid tool_choice {choice!r}")


def _content(message: dict[str, Any], index: int) -> None:
    role = message["role"]
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not part.get("text"):
                    raise invalid("text content is empty")
            elif kind in ("image_url", "video_url"):
                ref = part.get(kind)
                url = ref.get("url") if isinstance(ref, dict) else ref
                if not isinstance(url, str) or not url.startswith(("data:", "ms://")):
                    raise invalid(
                        f"Invalid request: unsupported image url in message at index {index}: only base64 "
                        "data URLs and ms://<file_id> are supported"
                    )
            else:
                raise invalid(f"Invalid request: unsupported content part type {kind!r}")
    elif content is not None and not isinstance(content, str):
        raise invalid(f"Invalid request: invalid content in message at index {index}")
    may_be_empty = role == "tool" or (role == "assistant" and message.get("tool_calls"))
    if not may_be_empty and not content:
        raise invalid(f"Invalid request: the message at index {index} with role '{role}' must not be empty")


def _messages(req: ChatRequest) -> None:
    messages = req.messages
    if not isinstance(messages, list) or not messages:
        raise invalid("Invalid request: messages must not be empty")
    pending: dict[str, dict[str, Any]] = {}

    def close_round() -> None:
        if pending:
            missing = next(iter(pending))
            raise invalid(f"Invalid request: tool call {missing!r} has no matching tool message")

    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise invalid(f"Invalid request: invalid role {role!r} in message at index {index}")
        _content(message, index)
        if role == "tool":
            call = pending.pop(str(message.get("tool_call_id")), None)
            if call is None:
                raise invalid("tool_call_id not found")
            if (call.get("function") or {}).get("name") == WEB_SEARCH:
                req.search_tokens += _web_search_echo(call, message)
            continue
        close_round()
        calls = message.get("tool_calls") if role == "assistant" else None
        if calls:
            if req.thinking and "reasoning_content" not in message:
                raise invalid(
                    "thinking is enabled but reasoning_content is missing in assistant tool call message "
                    f"at index {index}"
                )
            pending = {str(call.get("id")): call for call in calls}
    close_round()


def _web_search_echo(call: dict[str, Any], message: dict[str, Any]) -> int:
    try:
        arguments = json.loads((call.get("function") or {}).get("arguments") or "")
        echoed = json.loads(message.get("content") or "")
    except (TypeError, ValueError):
        arguments, echoed = object(), None
    if echoed != arguments:
        raise invalid("Invalid request: $web_search tool message content must echo the tool call arguments")
    usage = arguments.get("usage") if isinstance(arguments, dict) else None
    return int(usage.get("total_tokens", 0)) if isinstance(usage, dict) else 0


def parse_chat_request(
    body: Any, *, models: Collection[str], retired: Collection[str], window: int
) -> ChatRequest:
    if not isinstance(body, dict):
        raise invalid("Invalid request: body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or model not in models or model in retired:
        raise model_not_found(str(model))
    thinking = _thinking(body)
    _fixed_params(body, thinking)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid(f"Invalid request: max_tokens must be a positive integer (got {max_tokens!r})")
    options = body.get("stream_options") or {}
    cache_key = body.get("prompt_cache_key")
    if cache_key is not None and not isinstance(cache_key, str):
        raise invalid(f"Invalid request: prompt_cache_key must be a string (got {type(cache_key).__name__})")
    req = ChatRequest(
        body=body,
        model=model,
        messages=body.get("messages") or [],
        tools=body.get("tools") or [],
        thinking=thinking,
        stream=bool(body.get("stream")),
        include_usage=bool(options.get("include_usage")) if isinstance(options, dict) else False,
        max_tokens=max_tokens,
        cache_key=cache_key,
    )
    _tools(req)
    _tool_choice(body, req)
    _messages(req)
    req.prompt_tokens = prompt_tokens(req.messages, req.tools) + req.search_tokens
    requested = req.prompt_tokens + max_tokens
    if requested > window:
        raise context_overflow(window, requested)
    return req


def check_media(req: ChatRequest, file_exists: Callable[[str], bool], video_models: Collection[str]) -> None:
    """Uploaded files must still exist where a request names them; videos only for models that watch them."""
    for message in req.messages:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("image_url", "video_url"):
                continue
            if kind == "video_url" and req.model not in video_models:
                raise invalid(f"Invalid request: model {req.model} does not support video input")
            ref = part.get(kind)
            url = ref.get("url") if isinstance(ref, dict) else ref
            if isinstance(url, str) and url.startswith("ms://") and not file_exists(url.removeprefix("ms://")):
                raise invalid(f"Invalid request: file {url.removeprefix('ms://')} not found")
