"""Serialising an answer the way Kimi does: one JSON body, or SSE chunks (reference §3)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.kimi_responder import Answer

TOKEN_PATTERN = re.compile(r"\S+\s*|\s+")


def new_completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def split_tokens(text: str, size: int = 4) -> list[str]:
    """Short words are one token; longer words are cut into `size`-character pieces."""
    pieces: list[str] = []
    for word in TOKEN_PATTERN.findall(text):
        pieces.extend(word[i : i + size] for i in range(0, len(word), size))
    return pieces


@dataclass
class Pacing:
    """Time-to-first-token and token rate; waits end early when the server stops."""

    ttft: float
    tokens_per_second: float | None
    stopping: asyncio.Event

    async def wait(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return

    async def first_token(self) -> None:
        await self.wait(self.ttft)

    async def next_token(self) -> None:
        await self.wait(1 / self.tokens_per_second if self.tokens_per_second else 0)

    async def whole(self, tokens: int) -> None:
        await self.wait(self.ttft + (tokens / self.tokens_per_second if self.tokens_per_second else 0))


class StreamCut(Exception):
    """Raised to drop the connection mid-stream (fault injection)."""


def usage_body(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": cached,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


@dataclass
class Envelope:
    id: str
    model: str
    created: int
    fingerprint: str

    @classmethod
    def new(cls, model: str) -> Envelope:
        return cls(new_completion_id(), model, int(time.time()), f"fpv0_{secrets.token_hex(4)}")


def completion_body(env: Envelope, answer: Answer, usage: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.reasoning is not None:
        message["reasoning_content"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [{"index": i, **call} for i, call in enumerate(answer.tool_calls)]
    return {
        "id": env.id,
        "object": "chat.completion",
        "created": env.created,
        "model": env.model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
        "usage": usage,
        "system_fingerprint": env.fingerprint,
    }


class SseWriter:
    """Writes chat.completion.chunk events; counts content/tool chunks so a cut can happen after N."""

    def __init__(
        self, response: web.StreamResponse, env: Envelope, include_usage: bool, cut_after: int | None,
        stall: tuple[int, Callable[[], Awaitable[None]]] | None = None,
    ):
        self.response = response
        self.env = env
        self.include_usage = include_usage
        self.cut_after = cut_after
        # (after N counted deltas, wait): the upstream goes silent mid-answer, the connection left open.
        self.stall = stall
        self.deltas = 0

    async def event(self, payload: dict[str, Any] | str) -> None:
        if not isinstance(payload, str):
            payload = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        await self.response.write(f"data: {payload}\n\n".encode())

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        body: dict[str, Any] = {
            "id": self.env.id,
            "object": "chat.completion.chunk",
            "created": self.env.created,
            "model": self.env.model,
            "choices": [choice],
            "system_fingerprint": self.env.fingerprint,
        }
        if self.include_usage:
            body["usage"] = None
        return body

    async def delta(self, delta: dict[str, Any], *, counted: bool = True) -> None:
        # Reasoning chunks are not counted so a cut always lands inside the visible answer.
        if counted and self.cut_after is not None and self.deltas >= self.cut_after:
            raise StreamCut
        if counted and self.stall is not None and self.deltas == self.stall[0]:
            pause, self.stall = self.stall[1], None
            await pause()
        await self.event(self.chunk(delta))
        self.deltas += int(counted)


async def stream_answer(writer: SseWriter, answer: Answer, usage: dict[str, Any], pacing: Pacing,
                        marks: dict[str, float] | None = None) -> None:
    """Stream one answer; `marks` gets the monotonic times of the first and last content token (benchmarks)."""
    await writer.event(writer.chunk({"role": "assistant", "content": ""}))
    first = True
    for field_name, text in (("reasoning_content", answer.reasoning or ""), ("content", answer.content)):
        for piece in split_tokens(text):
            await (pacing.first_token() if first else pacing.next_token())
            first = False
            await writer.delta({field_name: piece}, counted=field_name == "content")
            if marks is not None and field_name == "content":
                marks.setdefault("first_content", time.monotonic())
                marks["last_content"] = time.monotonic()
    for index, call in enumerate(answer.tool_calls):
        function = call["function"]
        head = {
            "index": index,
            "id": call["id"],
            "type": call["type"],
            "function": {"name": function["name"]},
        }
        head["function"]["arguments"] = ""
        await (pacing.first_token() if first else pacing.next_token())
        first = False
        await writer.delta({"tool_calls": [head]})
        for piece in split_tokens(function["arguments"], size=8):
            await pacing.next_token()
            await writer.delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    if writer.cut_after is not None:
        raise StreamCut
    final = writer.chunk({}, answer.finish_reason)
    final["choices"][0]["usage"] = usage
    await writer.event(final)
    if writer.include_usage:
        extra = {key: value for key, value in final.items() if key != "choices"}
        extra["choices"] = []
        extra["usage"] = usage
        await writer.event(extra)
    await writer.event("[DONE]")
