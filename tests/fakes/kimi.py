"""A wire-level fake of Moonshot's Kimi API (OpenAI-compatible), for tests, manual runs and benchmarks.

The real openai SDK talks to it over HTTP on 127.0.0.1. Protocol details follow
/work/shared/reference/kimi-api.md; helpers live in tests/fakes/kimi_*.py:

* kimi_validate: K2.5 request rules and their 400/404 errors
* kimi_responder: `Reply` (scripted answers) and the deterministic default responder
* kimi_wire: JSON / SSE serialisation and pacing
* kimi_tokens: the documented token estimate (usage, context limit, prefix-cache hits)
* kimi_files: the Files API

Standalone: `python -m tests.fakes.kimi --port 8765 --ttft 0.3 --tps 60`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.kimi_errors import (
    FAULT_KINDS,
    IMMEDIATE_FAULTS,
    Fault,
    KimiError,
    auth_error,
    invalid,
    model_not_found,
)
from tests.fakes.kimi_files import MAX_FILE_BYTES, FakeFile, FileStore
from tests.fakes.kimi_responder import Answer, Reply, default_reply, resolve
from tests.fakes.kimi_tokens import PrefixCache, completion_tokens, prompt_tokens
from tests.fakes.kimi_tools import ToolsApi
from tests.fakes.kimi_validate import DEFAULT_MAX_TOKENS, ChatRequest, check_media, parse_chat_request
from tests.fakes.kimi_wire import (
    Envelope,
    Pacing,
    SseWriter,
    StreamCut,
    completion_body,
    stream_answer,
    usage_body,
)

__all__ = ["DEFAULT_MAX_TOKENS", "FakeFile", "FakeKimi", "Reply"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MODEL_CREATED = 1769500000
MAX_BODY_BYTES = 100 * 1024 * 1024


class FakeKimi:
    """Fake Kimi server. Use `async with FakeKimi() as kimi:` and point AsyncOpenAI at `kimi.base_url`.

    `requests` holds every authenticated /chat/completions body in arrival order; `files` every upload.
    `ttft`, `tokens_per_second` and `balance` may be changed while running.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-test",
        models: Iterable[str] = ("kimi-k2.5", "kimi-k2.6"),
        retired: Iterable[str] = ("kimi-k2-thinking",),
        blind_to_video: Iterable[str] = (),
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        context_window: int = 262144,
        host: str = "127.0.0.1",
        port: int = 0,
        max_file_bytes: int = MAX_FILE_BYTES,
        balance: float = 49.58894,
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
        self.retired = tuple(retired)
        self.blind_to_video = tuple(blind_to_video)
        self.ttft = ttft
        self.tokens_per_second = tokens_per_second
        self.context_window = context_window
        self.balance = balance
        self.requests: list[dict[str, Any]] = []
        # (request body, usage object) of every answered chat request; the estimate endpoint's request bodies.
        self.served: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.token_counts: list[dict[str, Any]] = []
        # (answer content, {"first_content": t, "last_content": t}) per streamed answer, for benchmarks.
        self.stream_marks: list[tuple[str, dict[str, float]]] = []
        self._host = host
        self._port = port
        self._replies: deque[Reply] = deque()
        self._faults: deque[Fault] = deque()
        self._cache = PrefixCache()
        self._files = FileStore(max_file_bytes)
        self.tools = ToolsApi()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle --

    async def start(self) -> None:
        # Kimi takes request bodies up to 100 MB (images ride inline as base64); aiohttp's default is 1 MB.
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        app.on_response_prepare.append(self._add_headers)
        app.add_routes(
            [
                web.post("/v1/chat/completions", self._chat),
                web.get("/v1/models", self._list_models),
                web.post("/v1/tokenizers/estimate-token-count", self._estimate),
                *self.tools.routes(),
                web.get("/v1/users/me/balance", self._balance),
                *self._files.routes(),
            ]
        )
        self._stopping.clear()
        # Handlers end promptly on stop (pacing and "hang" watch _stopping), so a short grace period suffices.
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"
        logger.info("fake kimi started", extra={"base_url": self.base_url})

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKimi:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- scripting --

    def enqueue(self, reply: Reply) -> None:
        """Answer the next valid chat request with `reply` (FIFO, before the default responder)."""
        self._replies.append(reply)

    def fail_next(self, kind: str, count: int = 1, *, when: Callable[[dict[str, Any]], bool] | None = None,
                  **kw: Any) -> None:
        """Fail the next `count` chat requests. kinds: auth, not_found, rate_limit (retry_after=1), quota,
        overloaded, server, content_filter, context, cut (after_chunks=3 content/tool-call chunks; reasoning
        chunks are not counted), hang (connection accepted, no answer until stop()), stall (after_chunks=3,
        then silence for `seconds`, default until stop(), the connection left open); `message=` overrides the
        error text. With `when`, only requests whose JSON body it accepts take the fault."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        self._faults.extend(Fault(kind, dict(kw), when) for _ in range(count))

    def _take_fault(self, body: Any) -> Fault | None:
        for fault in self._faults:
            if fault.when is None or (isinstance(body, dict) and fault.when(body)):
                self._faults.remove(fault)
                return fault
        return None

    @property
    def files(self) -> list[FakeFile]:
        return self._files.uploads

    # -- plumbing --

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
                raise auth_error()
            return await handler(request)
        except KimiError as exc:
            logger.debug("fake kimi error", extra={"status": exc.status, "error_type": exc.error_type})
            return exc.response()

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        request_id = secrets.token_hex(16)
        response.headers["Msh-Request-Id"] = request_id
        response.headers["x-trace-id"] = request_id

    def _pacing(self) -> Pacing:
        return Pacing(self.ttft, self.tokens_per_second, self._stopping)

    @staticmethod
    async def _json(request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError as exc:
            raise invalid("Invalid request: body is not valid JSON") from exc

    # -- chat completions --

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        self.requests.append(body)
        fault = self._take_fault(body)
        if fault is not None and fault.kind in IMMEDIATE_FAULTS:
            raise fault.error(model=str(body.get("model")), window=self.context_window, requested=0)
        if fault is not None and fault.kind == "hang":
            await self._stopping.wait()
            raise KimiError(503, "server shutting down", "server_error")
        req = parse_chat_request(body, models=self.models, retired=self.retired, window=self.context_window)
        check_media(req, lambda file_id: self._files.data(file_id) is not None,
                    [m for m in self.models if m not in self.blind_to_video])
        reply = self._replies.popleft() if self._replies else await default_reply(req, self._files.data)
        answer = resolve(reply, req)
        cut = int(fault.kw.get("after_chunks", 3)) if fault is not None and fault.kind == "cut" \
            else reply.cut_after_chunks
        stall = (int(fault.kw.get("after_chunks", 3)), float(fault.kw.get("seconds", 1e9))) \
            if fault is not None and fault.kind == "stall" else None
        usage = self._usage(req, answer)
        self.served.append((body, usage))
        env = Envelope.new(req.model)
        logger.debug(
            "fake kimi answer",
            extra={"model": req.model, "stream": req.stream, "finish_reason": answer.finish_reason},
        )
        if req.stream:
            return await self._stream(request, env, req, answer, usage, cut, stall)
        if cut is not None:
            self._drop(request)
            return web.Response()
        await self._pacing().whole(usage["completion_tokens"])
        return web.json_response(completion_body(env, answer, usage))

    def _usage(self, req: ChatRequest, answer: Answer) -> dict[str, Any]:
        reply = answer.reply
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else req.prompt_tokens
        completion = reply.completion_tokens
        if completion is None:
            completion = completion_tokens(answer.content, answer.reasoning, answer.tool_calls)
        cached = self._cache.cached_tokens(req.messages, req.tools, req.cache_key)
        cached = reply.cached_tokens if reply.cached_tokens is not None else min(cached, prompt)
        return usage_body(prompt, completion, cached)

    async def _stream(
        self,
        request: web.Request,
        env: Envelope,
        req: ChatRequest,
        answer: Answer,
        usage: dict[str, Any],
        cut: int | None,
        stall: tuple[int, float] | None = None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        pacing = self._pacing()
        pause = (stall[0], lambda: pacing.wait(stall[1])) if stall is not None else None
        writer = SseWriter(response, env, req.include_usage, cut, pause)
        marks: dict[str, float] = {}
        self.stream_marks.append((answer.content, marks))
        try:
            await stream_answer(writer, answer, usage, self._pacing(), marks)
            await response.write_eof()
        except StreamCut:
            self._drop(request)
        except ConnectionResetError:
            logger.debug("fake kimi client went away mid-stream")
        return response

    @staticmethod
    def _drop(request: web.Request) -> None:
        """Close the socket without finishing the HTTP body, like a dropped upstream connection."""
        if request.transport is not None:
            request.transport.abort()

    # -- other routes --

    async def _list_models(self, request: web.Request) -> web.Response:
        data = [
            {
                "id": model,
                "object": "model",
                "created": MODEL_CREATED,
                "owned_by": "moonshot",
                "context_length": self.context_window,
                "supports_image_in": True,
                "supports_video_in": model not in self.blind_to_video,
                "supports_reasoning": True,
            }
            for model in self.models
            if model not in self.retired
        ]
        return web.json_response({"object": "list", "data": data})

    async def _estimate(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        self.token_counts.append(body)
        model = body.get("model") if isinstance(body, dict) else None
        if model not in self.models or model in self.retired:
            raise model_not_found(str(model))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise invalid("Invalid request: messages must not be empty")
        return web.json_response({"data": {"total_tokens": prompt_tokens(messages, body.get("tools"))}})

    async def _balance(self, request: web.Request) -> web.Response:
        data = {"available_balance": self.balance, "voucher_balance": 0.0, "cash_balance": self.balance}
        return web.json_response({"code": 0, "data": data, "scode": "0x0", "status": True})


async def _serve(args: argparse.Namespace) -> None:
    kimi = FakeKimi(
        api_key=args.api_key, ttft=args.ttft, tokens_per_second=args.tps, host=args.host, port=args.port
    )
    await kimi.start()
    print(f"fake Kimi listening on {kimi.base_url} (api key: {args.api_key}); Ctrl-C to stop", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await kimi.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake Kimi API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--tps", type=float, default=None, help="tokens per second (default: unpaced)")
    parser.add_argument("--api-key", default="sk-test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
