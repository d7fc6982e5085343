"""Slack's Socket Mode, served on the fake's aiohttp app: `apps.connections.open` and the websocket it hands out.

The app opens a connection with its app-level token (`xapp-…`), gets a one-use `ws://…/link/?ticket=…` URL,
receives a `hello` frame, then envelopes `{"envelope_id", "type", "payload", "accepts_response_payload"}` that
it must ack with `{"envelope_id": …}` (optionally `"payload"`) within 3 seconds. An unacked events_api
envelope is redelivered, if asked, with `retry_attempt` / `retry_reason` and a new envelope id (the event_id
inside stays the same; that envelope ids are per delivery is unconfirmed). `disconnect()` sends Slack's
`{"type": "disconnect", "reason": …}`, after which slack_sdk opens a new connection and closes the old one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.slack_state import JSON

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SocketOptions:
    app_tokens: dict[str, str]  # xapp token -> app id
    ack_timeout: float = 3.0
    redeliver: bool = False
    # Slack's Events API schedule: at once, after about a minute, after about five minutes.
    retry_delays: Sequence[float] = (0.0, 60.0, 300.0)
    connect_timeout: float = 10.0


@dataclass(slots=True)
class SocketAck:
    envelope_id: str
    elapsed: float  # seconds from sending the envelope to reading its ack
    acked_in_time: bool
    payload: JSON | None
    connection: int


@dataclass(slots=True)
class SocketDelivery:
    """One envelope sent over a websocket and what came back for it."""

    envelope: JSON
    connection: int
    ack: SocketAck | None = None

    @property
    def envelope_id(self) -> str:
        return str(self.envelope["envelope_id"])

    @property
    def payload(self) -> JSON:
        return dict(self.envelope["payload"])

    @property
    def acked_in_time(self) -> bool:
        return self.ack is not None and self.ack.acked_in_time


@dataclass(slots=True)
class Connection:
    number: int
    app_id: str
    ws: web.WebSocketResponse
    opened_at: float
    close_code: int | None = None  # 1000 when the app closed it, 1001 when the fake shut down
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class SocketModeServer:
    def __init__(self, options: SocketOptions) -> None:
        self.options = options
        self.root = ""  # "http://127.0.0.1:PORT/", set once the server is listening
        self.opened: list[str] = []  # app ids, one per successful apps.connections.open
        self.refused: list[str] = []  # the error of every refused apps.connections.open
        self._refusal = asyncio.Event()
        self.connections: list[Connection] = []
        self.deliveries: list[SocketDelivery] = []
        self.acks: list[SocketAck] = []
        self.unknown_acks: list[JSON] = []  # acks for envelope ids never sent on that connection
        self._tickets: dict[str, str] = {}
        self._pending: dict[str, tuple[SocketDelivery, float]] = {}
        self._acked: dict[str, asyncio.Future[SocketAck]] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()

    def routes(self) -> list[web.RouteDef]:
        # Registered before the generic /api/{method} route: an app token is not a workspace's bot token.
        return [web.post("/api/apps.connections.open", self.connections_open), web.get("/link/", self.link)]

    # --- the Web API method -----------------------------------------------------------------------

    async def connections_open(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token and request.can_read_body:
            token = str((await request.post()).get("token") or "")
        app_id = self.options.app_tokens.get(token)
        if app_id is None:
            error = "not_authed" if not token else "invalid_auth" if token.startswith("xapp-") \
                else "not_allowed_token_type"
            self.refused.append(error)
            self._refusal.set()
            return web.json_response({"ok": False, "error": error})
        ticket = secrets.token_hex(8)
        self._tickets[ticket] = app_id
        self.opened.append(app_id)
        ws_root = self.root.replace("http://", "ws://", 1)
        return web.json_response({"ok": True, "url": f"{ws_root}link/?ticket={ticket}&app_id={app_id}"})

    # --- the websocket --------------------------------------------------------------------------------

    async def link(self, request: web.Request) -> web.StreamResponse:
        app_id = self._tickets.pop(request.query.get("ticket", ""), None)
        if app_id is None:
            raise web.HTTPUnauthorized(text="invalid or used ticket")
        ws = web.WebSocketResponse(autoping=True)  # answers slack_sdk's "sdk-ping-pong:<t>" pings in kind
        await ws.prepare(request)
        conn = Connection(len(self.connections) + 1, app_id, ws, time.monotonic())
        self.connections.append(conn)
        live = sum(1 for c in self.connections if not c.ws.closed)
        await ws.send_json({
            "type": "hello",
            "num_connections": live,
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": app_id},
        })
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
        finally:
            conn.close_code = ws.close_code
            conn.closed.set()
            await self._notify()
        return ws

    def _on_text(self, conn: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            log.warning("fake socket mode: non-JSON frame", extra={"connection": conn.number})
            return
        envelope_id = str(message.get("envelope_id") or "") if isinstance(message, dict) else ""
        pending = self._pending.pop(envelope_id, None)
        if pending is None or pending[0].connection != conn.number:
            self.unknown_acks.append(message if isinstance(message, dict) else {"frame": message})
            return
        delivery, sent_at = pending
        elapsed = time.monotonic() - sent_at
        ack = SocketAck(envelope_id, elapsed, elapsed <= self.options.ack_timeout, message.get("payload"),
                        conn.number)
        delivery.ack = ack
        self.acks.append(ack)
        future = self._acked.get(envelope_id)
        if future is not None and not future.done():
            future.set_result(ack)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def live(self) -> list[Connection]:
        return [c for c in self.connections if not c.ws.closed]

    async def wait_connected(self, count: int = 1, limit: float | None = None) -> Connection:
        """Wait until `count` connections have been opened in total; returns the newest live one."""
        async with asyncio.timeout(limit or self.options.connect_timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.connections) >= count and bool(self.live()))
        return self.live()[-1]

    async def wait_refused(self, limit: float | None = None) -> str:
        """Wait for a refused apps.connections.open (say, a wrong app token); returns its error."""
        async with asyncio.timeout(limit or self.options.connect_timeout):
            await self._refusal.wait()
        return self.refused[-1]

    async def wait_ack(self, envelope_id: str, limit: float | None = None) -> SocketAck:
        """The ack of an envelope already sent, late or not."""
        async with asyncio.timeout(limit or self.options.connect_timeout):
            return await asyncio.shield(self._acked[envelope_id])

    async def wait_closed(self, conn: Connection, limit: float | None = None) -> None:
        async with asyncio.timeout(limit or self.options.connect_timeout):
            await conn.closed.wait()

    # --- delivery -------------------------------------------------------------------------------------

    async def send(
        self,
        kind: str,
        payload: JSON,
        *,
        accepts_response_payload: bool = False,
        envelope_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        redeliver: bool | None = None,
    ) -> SocketDelivery:
        """Send one envelope on the newest live connection and wait up to ack_timeout for its ack."""
        conn = await self.wait_connected()
        envelope: JSON = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or "timeout"
        delivery = SocketDelivery(envelope, conn.number)
        future: asyncio.Future[SocketAck] = asyncio.get_running_loop().create_future()
        self._acked[delivery.envelope_id] = future
        self._pending[delivery.envelope_id] = (delivery, time.monotonic())
        self.deliveries.append(delivery)
        await conn.ws.send_str(json.dumps(envelope))
        try:
            await asyncio.wait_for(asyncio.shield(future), self.options.ack_timeout)
        except TimeoutError:
            # A late ack is still recorded (acked_in_time False); only a redelivery makes it moot.
            again = self.options.redeliver if redeliver is None else redeliver
            if again and kind == "events_api" and retry_attempt is None:
                self._spawn(self._redeliver(kind, payload, accepts_response_payload))
        return delivery

    async def _redeliver(self, kind: str, payload: JSON, accepts_response_payload: bool) -> None:
        for attempt, delay in enumerate(self.options.retry_delays, start=1):
            await asyncio.sleep(delay)
            retry = await self.send(kind, payload, accepts_response_payload=accepts_response_payload,
                                    retry_attempt=attempt, retry_reason="timeout", redeliver=False)
            if retry.acked_in_time:
                return

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every live connection to go away, as Slack does before it recycles a server."""
        for conn in self.live():
            await conn.ws.send_json({"type": "disconnect", "reason": reason,
                                     "debug_info": {"host": "applink-fake"}})

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for conn in self.live():
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
