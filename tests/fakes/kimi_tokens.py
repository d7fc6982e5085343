"""Deterministic token estimate used by the fake Kimi for usage, limits and the estimate endpoint.

The real tokenizer is not available offline, so the fake uses a documented, reproducible rule that tests can
recompute:

* text: ceil(ASCII characters / 4 + other characters / 1.5) (CJK packs fewer characters per token than English)
* every message: MESSAGE_OVERHEAD_TOKENS, plus its text content (string or text parts), plus
  IMAGE_TOKENS per image part / VIDEO_TOKENS per video part, plus name + arguments of each tool call
  (reasoning_content is not counted: K2.5 drops historical reasoning)
* tools: ceil(len(compact sorted JSON of the tools list) / 4)
* prompt = tools + all messages (+ the `usage.total_tokens` of every echoed `$web_search` result)
* completion = text tokens of reasoning + content + tool-call names and arguments
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

CHARS_PER_TOKEN = 4
OTHER_CHARS_PER_TOKEN = 1.5
MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 1024
VIDEO_TOKENS = 4096


def text_tokens(text: str) -> int:
    ascii_count = len(text) if text.isascii() else sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_count / CHARS_PER_TOKEN + (len(text) - ascii_count) / OTHER_CHARS_PER_TOKEN)


def _part_tokens(part: Any) -> int:
    if not isinstance(part, dict):
        return 0
    kind = part.get("type")
    if kind == "text":
        return text_tokens(str(part.get("text") or ""))
    if kind == "image_url":
        return IMAGE_TOKENS
    if kind == "video_url":
        return VIDEO_TOKENS
    return 0


def message_tokens(message: dict[str, Any]) -> int:
    total = MESSAGE_OVERHEAD_TOKENS
    content = message.get("content")
    if isinstance(content, str):
        total += text_tokens(content)
    elif isinstance(content, list):
        total += sum(_part_tokens(part) for part in content)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        total += text_tokens(str(function.get("name") or "")) + text_tokens(
            str(function.get("arguments") or "")
        )
    return total


def tools_tokens(tools: Sequence[Any] | None) -> int:
    if not tools:
        return 0
    return text_tokens(json.dumps(tools, separators=(",", ":"), sort_keys=True, ensure_ascii=False))


def prompt_tokens(messages: Iterable[dict[str, Any]], tools: Sequence[Any] | None = None) -> int:
    """Prompt estimate without web-search tokens (those are added by the chat handler)."""
    return tools_tokens(tools) + sum(message_tokens(m) for m in messages)


def completion_tokens(content: str, reasoning: str | None, tool_calls: Sequence[dict[str, Any]]) -> int:
    total = text_tokens(content) + text_tokens(reasoning or "")
    for call in tool_calls:
        function = call.get("function") or {}
        total += text_tokens(str(function.get("name") or "")) + text_tokens(
            str(function.get("arguments") or "")
        )
    return total


def message_key(message: dict[str, Any]) -> str:
    """Canonical form used to find the prefix a request shares with earlier ones (prefix caching)."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class PrefixCache:
    """Kimi's automatic prefix cache, roughly: cached tokens = tokens of the longest prefix (the tool definitions,
    then whole messages) shared with a recent request of the same partition.

    Requests that send a `prompt_cache_key` share a partition per key; requests without one share a single
    partition that keeps only the newest `capacity` prompts, so a busy bot that sends no keys evicts its own
    conversations' prefixes. A changed tool list shares nothing, as it comes first in the prompt.
    """

    def __init__(self, capacity: int = 32) -> None:
        self._capacity = capacity
        self._partitions: dict[str, deque[tuple[str, ...]]] = {}

    def cached_tokens(self, messages: Sequence[dict[str, Any]], tools: Sequence[Any] | None = None,
                      key: str | None = None) -> int:
        keys = (json.dumps(list(tools or []), sort_keys=True), *(message_key(m) for m in messages))
        partition = self._partitions.setdefault(key or "", deque(maxlen=self._capacity))
        best = max((_shared(keys, earlier) for earlier in partition), default=0)
        partition.append(keys)
        if best == 0:
            return 0
        return tools_tokens(tools) + sum(message_tokens(m) for m in messages[: best - 1])


def _shared(mine: tuple[str, ...], theirs: tuple[str, ...]) -> int:
    shared = 0
    for a, b in zip(mine, theirs, strict=False):
        if a != b:
            break
        shared += 1
    return shared
