"""The Web API front door: request parsing, auth, scopes, fault injection, rate limits and the call log."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.slack_rate import RateLimiter
from tests.fakes.slack_state import JSON, Channel, Message, SlackState, Workspace

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A `{"ok": false, "error": ...}` answer (HTTP 200, as Slack does for API-level errors)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass(slots=True)
class WebOptions:
    # Slack closes idle streams after an undocumented period (~5 min reported); None disables expiry.
    stream_idle_timeout: float | None = 300.0
    # The 2025 "non-Marketplace" rule caps replies/history `limit` at 15; None = the normal max of 1000.
    replies_limit_cap: int | None = None
    # How a refused file download looks: "html" (200 login page) or "redirect" (302 to the login page).
    file_denied_mode: str = "html"
    # The newest docs make chat.startStream's thread_ts optional; slack_sdk always sends it.
    stream_requires_thread_ts: bool = True
    status_timeout: float = 120.0
    # Files go out the way a CDN sends them: many small writes with pauses, so a reader that takes one
    # buffered read gets a fraction of the file. "length" sends Content-Length; "chunked" omits it.
    file_chunk_bytes: int = 16 * 1024
    file_chunk_delay: float = 0.0005
    file_transfer: str = "length"
    # The app has Slack's agent surface (assistant.threads.* beyond setStatus answer `not_agent_app` otherwise).
    agent_app: bool = True
    # Subscribed to message_stream_stopped: required for `is_stoppable` streams.
    stream_stop_subscribed: bool = True


@dataclass(slots=True)
class Call:
    method: str
    params: JSON
    at: float
    status: int
    ok: bool
    error: str | None
    team_id: str | None
    injected: bool = False


@dataclass(slots=True)
class Fault:
    error: str
    status: int
    retry_after: int | None
    # Not JSON at all: what a proxy, a load balancer or an outage page answers instead of Slack.
    raw_body: str | None = None


@dataclass(slots=True)
class CallContext:
    method: str
    params: JSON
    ws: Workspace
    root: str
    response_headers: dict[str, str] = field(default_factory=dict)

    def str_param(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        return str(value)

    def required(self, name: str) -> str:
        value = self.str_param(name)
        if value is None:
            # Slack's name for a missing required argument is specific per field; these match the docs.
            raise ApiError(
                {"channel": "channel_not_found", "ts": "message_not_found"}.get(name, "invalid_arguments")
            )
        return value

    def json_param(self, name: str) -> Any:
        """Form bodies carry blocks/chunks/metadata as JSON strings; JSON bodies carry them as values."""
        value = self.params.get(name)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ApiError(f"invalid_{name}") from exc
        return value

    def bool_param(self, name: str) -> bool:
        value = self.params.get(name)
        if isinstance(value, str):
            return value.lower() in {"1", "true", "yes"}
        return bool(value)

    def require_scope(self, *any_of: str) -> None:
        if not any(s in self.ws.scopes for s in any_of):
            raise ApiError("missing_scope", needed=",".join(any_of), provided=",".join(self.ws.scopes))


Handler = Callable[[CallContext], Awaitable[JSON]]
# (kind, message now, message before) for "post", "update" and "delete"; used to echo events to the app.
ChangeListener = Callable[[str, Message, Message | None], None]


class WebApi:
    """Serves `/api/{method}`; method handlers live in slack_web_chat and slack_web_read."""

    def __init__(self, state: SlackState, limiter: RateLimiter, options: WebOptions) -> None:
        self.state = state
        self.limiter = limiter
        self.options = options
        self.handlers: dict[str, Handler] = {}
        self.calls: list[Call] = []
        self.rate_limited_count = 0
        self._faults: dict[str, deque[Fault]] = {}
        self.listeners: list[ChangeListener] = []
        self.root = ""  # "http://127.0.0.1:PORT/", set once the server is listening

    def fail_next(self, method: str, error: str, status: int, retry_after: int | None, times: int,
                  raw_body: str | None = None) -> None:
        queue = self._faults.setdefault(method, deque())
        for _ in range(times):
            queue.append(Fault(error, status, retry_after, raw_body))

    def notify(self, kind: str, msg: Message, before: Message | None = None) -> None:
        for listener in self.listeners:
            listener(kind, msg, before)

    def channel(self, ctx: CallContext, channel_id: str | None) -> Channel:
        """Resolve a conversation id the way chat.* do, including posting to a user id (the bot's DM)."""
        if channel_id and channel_id.startswith(("U", "W")):
            for ch in self.state.channels.values():
                if ch.is_im and ch.user == channel_id and ch.team_id == ctx.ws.team_id:
                    return ch
        ch = self.state.channels.get(channel_id or "")
        if ch is None or ch.team_id != ctx.ws.team_id:
            raise ApiError("channel_not_found")
        return ch

    async def _params(self, request: web.Request) -> JSON:
        params: JSON = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    def _reply(self, body: JSON, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    def _log(
        self, method: str, params: JSON, status: int, body: JSON, ws: Workspace | None, injected: bool = False
    ) -> None:
        ok = bool(body.get("ok"))
        error = None if ok else str(body.get("error"))
        if status == 429:
            self.rate_limited_count += 1
        self.calls.append(
            Call(method, params, time.time(), status, ok, error, ws.team_id if ws else None, injected)
        )
        log.debug("fake slack call", extra={"method": method, "status": status, "error": error})

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        ws = self.state.workspace_for_token(str(token)) if token else None

        queue = self._faults.get(method)
        if queue:
            fault = queue.popleft()
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            body = {"ok": False, "error": fault.error}
            self._log(method, params, fault.status, body, ws, injected=True)
            if fault.raw_body is not None:
                return web.Response(text=fault.raw_body, status=fault.status, content_type="text/html",
                                    headers=headers)
            return self._reply(body, fault.status, headers)

        if not token:
            return self._finish(method, params, {"ok": False, "error": "not_authed"}, ws)
        if ws is None:
            return self._finish(method, params, {"ok": False, "error": "invalid_auth"}, ws)
        handler = self.handlers.get(method)
        if handler is None:
            return self._finish(method, params, {"ok": False, "error": "unknown_method"}, ws)

        channel = params.get("channel") or params.get("channel_id")
        retry_after = self.limiter.check(ws.team_id, method, str(channel) if channel else None)
        if retry_after is not None:
            body = {"ok": False, "error": "ratelimited"}
            self._log(method, params, 429, body, ws)
            return self._reply(body, 429, {"Retry-After": str(retry_after)})

        ctx = CallContext(method, params, ws, self.root)
        try:
            body = await handler(ctx)
        except ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
        return self._finish(method, params, body, ws, ctx.response_headers)

    def _finish(
        self,
        method: str,
        params: JSON,
        body: JSON,
        ws: Workspace | None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self._log(method, params, 200, body, ws)
        return self._reply(body, 200, headers)
