"""What the fake Kimi answers: scripted `Reply` objects or the deterministic default responder."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image, UnidentifiedImageError

from tests.fakes.kimi_errors import invalid
from tests.fakes.kimi_validate import WEB_SEARCH, ChatRequest

CALL_PATTERN = re.compile(r"\bcall\s+([A-Za-z_][A-Za-z0-9_\-]*)")
LEN_PATTERN = re.compile(r"\[\[len=(\d+)\]\]")


@dataclass
class Reply:
    """A scripted answer. tool_calls entries: {"name", "arguments" (str or dict), optional "id", "type"}."""

    content: str = ""
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cut_after_chunks: int | None = None


@dataclass
class Answer:
    """A reply resolved against one request: normalised tool calls and a definite finish reason."""

    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    reply: Reply


def user_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user(req: ChatRequest) -> dict[str, Any] | None:
    return next((m for m in reversed(req.messages) if m.get("role") == "user"), None)


def _history_call_count(req: ChatRequest) -> int:
    return sum(len(m.get("tool_calls") or []) for m in req.messages if m.get("role") == "assistant")


def normalise_calls(calls: list[dict[str, Any]], first_index: int) -> list[dict[str, Any]]:
    """Kimi K2 ids look like functions.<name>:<n>, with n counting calls across the conversation."""
    out = []
    for offset, call in enumerate(calls):
        name = str(call["name"])
        arguments = call.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out.append(
            {
                "id": call.get("id") or f"functions.{name}:{first_index + offset}",
                "type": call.get("type") or ("builtin_function" if name.startswith("$") else "function"),
                "function": {"name": name, "arguments": arguments},
            }
        )
    return out


def resolve(reply: Reply, req: ChatRequest) -> Answer:
    calls = normalise_calls(reply.tool_calls, _history_call_count(req))
    if calls and req.body.get("tool_choice") == "none":
        # The model cannot call tools then; it writes what it can instead.
        calls, reply = [], replace(reply, tool_calls=[], content=reply.content or "Without tools: my best answer.")
    reasoning = reply.reasoning
    if reasoning is None and req.thinking:
        reasoning = default_reasoning(req)
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    content = reply.content
    prefix = partial_prefix(req)
    if prefix is not None and content.startswith(prefix):
        content = content[len(prefix):]  # partial mode: the reply excludes the prefix (reference §9.1)
    if reply.finish_reason is None and not calls:
        # Reasoning and content share the max_tokens budget (reference §2.2); overflow ends with "length".
        budget = req.max_tokens * 4
        if reasoning and len(reasoning) > budget:
            reasoning, content, finish = reasoning[:budget], "", "length"
        elif len(reasoning or "") + len(content) > budget:
            content, finish = content[: budget - len(reasoning or "")], "length"
    return Answer(content=content, reasoning=reasoning, tool_calls=calls, finish_reason=finish, reply=reply)


def partial_prefix(req: ChatRequest) -> str | None:
    """The content of a final `{"role": "assistant", "partial": true}` message, which the answer continues."""
    last = req.messages[-1] if req.messages else {}
    if last.get("role") == "assistant" and last.get("partial"):
        return str(last.get("content") or "")
    return None


def default_reasoning(req: ChatRequest) -> str:
    if req.messages and req.messages[-1].get("role") == "tool":
        return "Thinking about: the tool results."
    user = last_user(req)
    return f"Thinking about: {user_text(user)[:200] if user else ''}"


def search_arguments(query: str, index: int) -> dict[str, Any]:
    digest = hashlib.sha256(f"{index}:{query}".encode()).hexdigest()
    return {
        "search_result": {"search_id": f"search-{digest[:16]}"},
        "usage": {"total_tokens": 1000 + len(query)},
    }


def _tool_name_for(req: ChatRequest, tool_call_id: str) -> str:
    for message in reversed(req.messages):
        for call in message.get("tool_calls") or []:
            if call.get("id") == tool_call_id:
                return str((call.get("function") or {}).get("name") or "")
    return ""


def _tool_results(req: ChatRequest) -> str:
    trailing: list[dict[str, Any]] = []
    for message in reversed(req.messages):
        if message.get("role") != "tool":
            break
        trailing.insert(0, message)
    user = last_user(req)
    query = user_text(user) if user else ""
    lines = []
    for message in trailing:
        name = message.get("name") or _tool_name_for(req, str(message.get("tool_call_id")))
        if name == WEB_SEARCH:
            lines.append(f"Web search result for: {query}")
        elif name == "web_search":
            lines.append(_cite(str(message.get("content") or "")))
        else:
            lines.append(f"Tool {name} returned: {str(message.get('content') or '')[:200]}")
    return "\n".join(lines)


def _cite(content: str) -> str:
    """An answer from web_search function results that cites the first and the third as [n]."""
    try:
        found = json.loads(content).get("results") or []
    except (ValueError, AttributeError):
        return "The search found nothing I could read."
    picked = [r for i, r in enumerate(found) if i in (0, 2) and isinstance(r, dict)]
    return " ".join(f"{r.get('title')} says so [{r.get('n')}]." for r in picked) or "No results."


def _requested_calls(text: str, declared: set[str]) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    for match in CALL_PATTERN.finditer(text):
        name = match.group(1)
        if name not in declared:
            continue
        arguments: Any = {}
        rest = text[match.end() :]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            try:
                arguments, _ = decoder.raw_decode(stripped)
            except ValueError:
                arguments = {}
        calls.append({"name": name, "arguments": arguments})
    return calls


def long_text(length: int) -> str:
    """Exactly `length` characters of paragraphs and ```python blocks, each block intact."""
    blocks: list[str] = []
    total = 0
    k = 0
    while True:
        k += 1
        if k % 3 == 0:
            block = f"```python\ndef step_{k}(x: int) -> int:\n    # block {k}\n    return x * {k} + 1\n```"
        else:
            sentence = f"Paragraph {k} explains part {k} of the answer in plain words. "
            block = (sentence * 6).strip()
        separator = 2 if blocks else 0
        if total + separator + len(block) + 40 > length:
            break
        blocks.append(block)
        total += separator + len(block)
    tail_len = length - total - (2 if blocks else 0)
    if tail_len <= 0:
        return ("\n\n".join(blocks) + "x" * length)[:length]
    words = "The final paragraph fills the remaining space with ordinary words. " * (tail_len // 20 + 2)
    tail = words[:tail_len]
    if tail.endswith(" "):
        tail = tail[:-1] + "."
    return "\n\n".join([*blocks, tail])


def _describe_image(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.width}x{image.height} {image.format}"
    except (UnidentifiedImageError, OSError) as exc:
        raise invalid(f"Invalid request: failed to decode image: {exc}") from exc


def _image_bytes(url: str, file_bytes: Callable[[str], bytes | None]) -> bytes:
    if url.startswith("ms://"):
        data = file_bytes(url.removeprefix("ms://"))
        if data is None:
            raise invalid(f"Invalid request: file {url} not found")
        return data
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise invalid("Invalid request: image data URL must be base64 encoded")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("Invalid request: image data URL is not valid base64") from exc


async def describe_images(message: dict[str, Any], file_bytes: Callable[[str], bytes | None]) -> str | None:
    """What the model says it sees: each image's size and colour, each video's size and container."""
    content = message.get("content")
    if not isinstance(content, list):
        return None
    images, videos = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image_url", "video_url"):
            ref = part.get(kind)
            (images if kind == "image_url" else videos).append(ref.get("url") if isinstance(ref, dict) else ref)
    if not images and not videos:
        return None
    said = []
    if images:
        descriptions = [await asyncio.to_thread(_describe_image, _image_bytes(url, file_bytes)) for url in images]
        noun = "image" if len(images) == 1 else "images"
        said.append(f"I see {len(images)} {noun}: {', '.join(descriptions)}.")
    if videos:
        described = [_describe_video(_image_bytes(url, file_bytes)) for url in videos]
        noun = "video" if len(videos) == 1 else "videos"
        said.append(f"I watched {len(videos)} {noun}: {', '.join(described)}.")
    return " ".join(said)


def _describe_video(data: bytes) -> str:
    container = "MP4" if data[4:8] == b"ftyp" else "WebM" if data.startswith(b"\x1a\x45\xdf\xa3") else "other"
    return f"{len(data):,} bytes of {container}"


SUMMARY_CHARS = 1600


def _asks_for_summary(req: ChatRequest, last_user_text: str) -> bool:
    first = req.messages[0] if req.messages else {}
    system = str(first.get("content") or "") if first.get("role") == "system" else ""
    return last_user_text.startswith("Summarize") or system.startswith("Summarize")


async def default_reply(req: ChatRequest, file_bytes: Callable[[str], bytes | None]) -> Reply:
    if req.messages[-1].get("role") == "tool":
        return Reply(content=_tool_results(req))
    prefix = partial_prefix(req)
    if prefix is not None:
        # Like the model, continue the text itself: the answer (to whichever question) that it is the start of.
        for message in reversed(req.messages):
            match = LEN_PATTERN.search(user_text(message)) if message.get("role") == "user" else None
            whole = long_text(int(match.group(1))) if match else ""
            if whole.startswith(prefix):
                return Reply(content=whole)
        return Reply(content=prefix + " (and that is all).")
    user = last_user(req)
    text = user_text(user) if user else ""
    if _asks_for_summary(req, text):
        # About what a model writes when asked for at most 300 words.
        return Reply(content="Summary: " + long_text(SUMMARY_CHARS))
    if req.body.get("tool_choice") == "none":
        return Reply(content=f"Echo: {text}")
    if req.web_search and "search" in text.lower():
        searches = sum(
            1
            for m in req.messages
            for c in m.get("tool_calls") or []
            if (c.get("function") or {}).get("name") == WEB_SEARCH
        )
        arguments = json.dumps(search_arguments(text, searches), separators=(",", ":"))
        return Reply(tool_calls=[{"name": WEB_SEARCH, "arguments": arguments, "type": "builtin_function"}])
    calls = _requested_calls(text, req.function_names)
    if calls:
        return Reply(tool_calls=calls)
    if "web_search" in req.function_names and "search" in text.lower():
        return Reply(tool_calls=[{"name": "web_search", "arguments": {"query": text}}])
    if user is not None:
        description = await describe_images(user, file_bytes)
        if description is not None:
            return Reply(content=description)
    match = LEN_PATTERN.search(text)
    if match:
        return Reply(content=long_text(int(match.group(1))))
    return Reply(content=f"Echo: {text}")
