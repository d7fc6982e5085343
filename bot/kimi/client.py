"""Kimi over the openai SDK's AsyncOpenAI, with Kimi's rules applied in one place."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from bot.kimi.errors import KimiError, classify
from bot.kimi.events import (
    WEB_SEARCH,
    ChatRequest,
    Completion,
    KimiEvent,
    Quiet,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallStarted,
    Usage,
)
from bot.kimi.search import KimiSearchApi

log = logging.getLogger(__name__)

WEB_SEARCH_TOOL: dict[str, Any] = {"type": "builtin_function", "function": {"name": WEB_SEARCH}}
# K2.5 rejects a request whose assistant tool-call message lacks reasoning_content while thinking is on; this
# stands in for reasoning that was never recorded (turns made with thinking off).
REASONING_PLACEHOLDER = " "
# Retrying a rate limit only helps when Kimi says it clears soon; longer waits are the user's call.
MAX_RETRY_WAIT = 20.0
# The exact count is an optimisation: when it is slow, the guess decides.
COUNT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RequestPlan:
    thinking: bool
    web_search: bool
    note: str | None = None


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    type: str = "function"
    name: str = ""
    arguments: str = ""


class KimiClient:
    def __init__(self, *, api_key: str, base_url: str, timeout: float = 300.0, connect_timeout: float = 10.0,
                 max_retries: int = 2, web_search_needs_thinking_off: tuple[str, ...] = ("kimi-k2.5",),
                 first_token_timeout: float = 20.0, idle_timeout: float = 30.0,
                 still_working_after: float = 5.0) -> None:
        # The SDK's own retries are off: it would retry quota errors and replay half-streamed answers.
        self._sdk = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )
        self._max_retries = max_retries
        # `timeout` bounds one HTTP read; these bound silence on the stream, which is what users wait through.
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._still_working_after = still_working_after
        self._search_conflicts = frozenset(web_search_needs_thinking_off)

    async def aclose(self) -> None:
        await self._sdk.close()

    async def list_models(self) -> list[dict[str, Any]]:
        """`GET /v1/models` with Kimi's extra fields (context_length, supports_*), as plain dicts."""
        try:
            page = await self._sdk.models.list()
        except openai.OpenAIError as exc:
            raise classify(exc, model="models", endpoint="models") from exc
        return [item.model_dump() for item in page.data]

    async def count_tokens(self, model: str, messages: list[dict[str, Any]], *, thinking: bool) -> int:
        """Kimi's own count of a prompt's messages (`POST /v1/tokenizers/estimate-token-count`, reference §6.1).
        Tools are left out: whether the endpoint takes or counts them is unconfirmed."""
        body = {"model": model, "messages": _wire_messages(messages, thinking=thinking)}
        try:
            async with asyncio.timeout(COUNT_TIMEOUT):
                response = await self._sdk.post("/tokenizers/estimate-token-count", body=body,
                                                cast_to=httpx.Response)
        except openai.OpenAIError as exc:
            raise classify(exc, model=model, endpoint="tokenizers") from exc
        except TimeoutError as exc:
            raise KimiError("timeout", model=model, detail="token count timed out") from exc
        try:
            total = response.json()["data"]["total_tokens"]
        except (ValueError, KeyError, TypeError) as exc:
            raise KimiError("bad_request", model=model, detail="token count without data.total_tokens") from exc
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise KimiError("bad_request", model=model, detail="token count is not a count")
        return total

    def search_api(self) -> KimiSearchApi:
        """Kimi's search and fetch endpoints on this client's connection, key and timeouts."""
        return KimiSearchApi(self._sdk)

    def plan(self, model: str, *, thinking: bool, web_search: bool) -> RequestPlan:
        """Resolve thinking vs $web_search (`web_search`: the built-in is wanted): K2.5 cannot search while
        thinking; the user's choice of thinking wins."""
        if web_search and thinking and model in self._search_conflicts:
            return RequestPlan(thinking=True, web_search=False,
                               note=f"web search is unavailable on {model} while thinking is on")
        return RequestPlan(thinking=thinking, web_search=web_search)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        tools = list(request.tools)
        if request.web_search:
            tools.append(WEB_SEARCH_TOOL)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": _wire_messages(request.messages, thinking=request.thinking),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": request.max_tokens,
            # No temperature / top_p / n / penalties: K2.5 fixes them and rejects any value.
            "extra_body": {"thinking": {"type": "enabled" if request.thinking else "disabled"}},
        }
        if tools:
            kwargs["tools"] = tools
            if request.tool_choice is not None:
                kwargs["tool_choice"] = request.tool_choice
        if request.cache_key is not None:
            kwargs["extra_body"]["prompt_cache_key"] = request.cache_key
        return kwargs

    async def stream(self, request: ChatRequest) -> AsyncIterator[KimiEvent]:
        """Stream one call. Retries (with backoff) only failures that happen before any output and can clear."""
        attempt = 0
        while True:
            emitted = False
            try:
                async for event in self._stream_once(request):
                    emitted = emitted or not isinstance(event, Quiet)
                    yield event
                return
            except KimiError as error:
                if emitted or not error.retryable or attempt >= self._max_retries:
                    raise
                wait = error.retry_after if error.retry_after is not None else 0.5 * 2**attempt
                if wait > MAX_RETRY_WAIT:
                    raise
                attempt += 1
                log.warning("kimi call failed, retrying", extra={
                    "kind": error.kind, "status": error.status, "attempt": attempt, "wait_s": round(wait, 2)})
                await asyncio.sleep(wait + random.uniform(0, 0.25))

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[KimiEvent]:
        started = time.monotonic()
        content: list[str] = []
        reasoning: list[str] = []
        calls: dict[int, _PartialCall] = {}
        usage = Usage()
        finish_reason: str | None = None
        done = False
        try:
            try:
                stream = await asyncio.wait_for(self._sdk.chat.completions.create(**self._body(request)),
                                                timeout=self._first_token_timeout)
            except TimeoutError:
                raise KimiError("timeout", detail=f"no response in {self._first_token_timeout:g} s",
                                model=request.model) from None
            async with stream:
                async for chunk in self._watch(stream, started + self._first_token_timeout):
                    if isinstance(chunk, Quiet):
                        yield chunk
                        continue
                    top_usage = getattr(chunk, "usage", None)
                    if top_usage is not None:
                        usage = _usage(top_usage)
                    for choice in chunk.choices:
                        delta = choice.delta
                        piece = getattr(delta, "reasoning_content", None) if delta else None
                        if piece:
                            reasoning.append(piece)
                            yield ReasoningDelta(piece)
                        if delta is not None and delta.content:
                            content.append(delta.content)
                            yield TextDelta(delta.content)
                        for call in (delta.tool_calls or []) if delta else []:
                            partial = calls.setdefault(call.index, _PartialCall())
                            if call.id:
                                partial.id = call.id
                            if call.type:
                                partial.type = call.type
                            if call.function is not None and call.function.name:
                                partial.name = call.function.name
                                yield ToolCallStarted(partial.name)
                            if call.function is not None and call.function.arguments:
                                partial.arguments += call.function.arguments
                        choice_usage = getattr(choice, "usage", None)
                        if choice_usage:
                            usage = _usage(choice_usage)
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
                done = True
        except openai.OpenAIError as exc:
            error = classify(exc, model=request.model)
            if (content or reasoning or calls) and error.kind in ("connection", "timeout"):
                error = KimiError("stream_cut", detail=error.detail, model=request.model)
            raise error from exc
        except httpx.HTTPError as exc:
            raise KimiError("stream_cut", detail=type(exc).__name__, model=request.model) from exc
        except TimeoutError:
            # Silence past the first-token or idle timeout: before any output a retry may help; after, it is cut.
            kind = "stream_cut" if (content or reasoning or calls) else "timeout"
            raise KimiError(kind, detail="Kimi went silent", model=request.model) from None
        if not done or finish_reason is None:
            # The SDK ends quietly when the connection closes without [DONE]; an answer without a finish reason
            # was cut, and showing it as complete would mislead the user.
            raise KimiError("stream_cut", detail="stream ended without a finish reason", model=request.model)
        if finish_reason == "content_filter":
            raise KimiError("content_filter", detail="finish_reason content_filter", model=request.model)
        yield Completion(
            content="".join(content),
            reasoning="".join(reasoning) if reasoning else None,
            tool_calls=[ToolCall(id=c.id or f"call_{i}", name=c.name, arguments=c.arguments or "{}", type=c.type)
                        for i, c in sorted(calls.items())],
            finish_reason=finish_reason,
            usage=usage,
            latency_ms=int((time.monotonic() - started) * 1000),
            model=request.model,
            thinking=request.thinking,
        )

    async def _watch(self, stream: AsyncIterator[Any], first_deadline: float) -> AsyncIterator[Any]:
        """The stream's chunks, with a Quiet marker every `still_working_after` seconds of silence; raises
        TimeoutError when the first chunk misses `first_deadline` or later ones leave a gap over `idle_timeout`."""
        iterator = stream.__aiter__()
        deadline = first_deadline
        quiet_since = time.monotonic()
        notice_at = quiet_since + self._still_working_after
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(iterator.__anext__())
                wait = max(0.0, min(deadline, notice_at) - time.monotonic())
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if done:
                    finished, pending = pending, None
                    try:
                        chunk = finished.result()
                    except StopAsyncIteration:
                        return
                    yield chunk
                    quiet_since = time.monotonic()
                    deadline = quiet_since + self._idle_timeout
                    notice_at = quiet_since + self._still_working_after
                    continue
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError
                if now >= notice_at:
                    yield Quiet(now - quiet_since)
                    notice_at = now + self._still_working_after
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def extract_file(self, filename: str, data: bytes) -> str:
        """Kimi's file-extract: upload, read the extracted text, delete the upload."""
        file_id = await self.upload_file(filename, data, purpose="file-extract")
        try:
            response = await self._sdk.files.content(file_id)
            return _extracted_text(response.text)
        except openai.OpenAIError as exc:
            raise classify(exc, model="file", endpoint="files") from exc
        finally:
            await self.delete_file(file_id)

    async def upload_file(self, filename: str, data: bytes, *, purpose: str) -> str:
        """Upload to Kimi's file store (`purpose`: file-extract, image or video); the file's id."""
        # The SDK's multipart writer reads a file object or bytes; downloads arrive as bytearrays.
        payload = data if isinstance(data, bytes) else bytes(data)
        try:
            uploaded = await self._sdk.files.create(file=(filename, payload), purpose=purpose)  # type: ignore[arg-type]
        except openai.OpenAIError as exc:
            raise classify(exc, model="file", endpoint="files") from exc
        return uploaded.id

    async def delete_file(self, file_id: str) -> bool:
        """Delete an upload; False (logged) when Kimi would not. Uploads count against the account's 1,000-file
        and 10 GB limits, so a failed delete is worth an operator's look but not a user's error."""
        try:
            await self._sdk.files.delete(file_id)
        except openai.OpenAIError as exc:
            log.warning("could not delete a file upload", extra={"file_id": file_id, "error": type(exc).__name__})
            return False
        return True


def _extracted_text(body: str) -> str:
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return body
    if isinstance(parsed, dict) and isinstance(parsed.get("content"), str):
        return parsed["content"]
    return body


def _usage(raw: Any) -> Usage:
    data = raw if isinstance(raw, dict) else raw.model_dump() if hasattr(raw, "model_dump") else {}
    details = data.get("prompt_tokens_details") or {}
    cached = data.get("cached_tokens")
    if cached is None and isinstance(details, dict):
        cached = details.get("cached_tokens")
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        cached_tokens=int(cached or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
    )


def _wire_messages(messages: list[dict[str, Any]], *, thinking: bool) -> list[dict[str, Any]]:
    """Apply Kimi's history rules: reasoning kept on tool-call messages when thinking, dropped elsewhere."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") != "assistant":
            out.append(message)
            continue
        fixed = dict(message)
        if thinking and fixed.get("tool_calls"):
            if not fixed.get("reasoning_content"):
                fixed["reasoning_content"] = REASONING_PLACEHOLDER
        else:
            fixed.pop("reasoning_content", None)
        out.append(fixed)
    return out
