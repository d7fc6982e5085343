"""The fake gateway websocket: HELLO, IDENTIFY/READY/GUILD_CREATE, heartbeats, RESUME with replay, sharding.

Each IDENTIFY makes a session that logs every dispatch it was owed, connected or not, so a RESUME replays
exactly what the client missed. Dispatches are tailored per session: intents filter events, and without the
MESSAGE_CONTENT intent message bodies are blanked as Discord does (gateway.mdx "Message Content Intent").
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_payloads import Json, guild_create_payload, member_payload, user_payload
from tests.fakes.discord_state import (
    ALL_KNOWN_INTENTS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    DiscordWorld,
    shard_for_guild,
)

log = logging.getLogger(__name__)

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_RECONNECT = 0, 1, 2, 6, 7
OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 8, 9, 10, 11
MESSAGE_EVENTS = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"})
GUILD_EVENTS = frozenset(
    {"GUILD_CREATE", "THREAD_CREATE", "THREAD_UPDATE", "CHANNEL_CREATE", "CHANNEL_UPDATE"}
)


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    event: str
    data: Json


@dataclass
class GatewaySession:
    session_id: str
    shard_id: int
    shard_count: int
    intents: int
    identify: Json
    ws: web.WebSocketResponse | None = None
    seq: int = 0
    log: list[LoggedEvent] = field(default_factory=list)
    resumable: bool = True
    resumes: int = 0
    last_replay: list[LoggedEvent] = field(default_factory=list)
    redeliver_message_ids: list[int] = field(default_factory=list)
    guilds_sent: list[int] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.ws.closed

    def owns(self, guild_id: int | None) -> bool:
        if guild_id is None:  # DMs arrive on shard 0 (gateway.mdx "Sharding")
            return self.shard_id == 0
        return shard_for_guild(guild_id, self.shard_count) == self.shard_id

    def events(self, name: str) -> list[Json]:
        return [e.data for e in self.log if e.event == name]


@dataclass
class GatewayConfig:
    token: str
    privileged_intents: int = INTENT_MESSAGE_CONTENT | INTENT_GUILD_MEMBERS
    heartbeat_interval_ms: int = 41250
    session_start_total: int = 1000
    session_start_remaining: int = 1000


class Gateway:
    def __init__(self, world: DiscordWorld, config: GatewayConfig, notify: Callable[[], None]) -> None:
        self._world = world
        self.config = config
        self._notify = notify
        self.url = ""  # set once the server has a port; READY's resume_gateway_url points back here
        self.sessions: dict[str, GatewaySession] = {}
        self.identify_payloads: list[Json] = []
        self.close_codes: list[int] = []
        self.heartbeats = 0
        self._connections: set[web.WebSocketResponse] = set()
        self._open = asyncio.Event()
        self._open.set()

    # --- websocket endpoint -------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self._connections.add(ws)
        session: GatewaySession | None = None
        try:
            await self._open.wait()  # an outage holds new connections before HELLO
            hello = {"heartbeat_interval": self.config.heartbeat_interval_ms}
            await ws.send_str(json.dumps({"op": OP_HELLO, "d": hello, "s": None, "t": None}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                session = await self._on_frame(ws, session, payload)
                if ws.closed:
                    break
        finally:
            self._connections.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
                # A client that closes with 1000/1001 ends its session; anything else may RESUME.
                if ws.close_code in (1000, 1001):
                    session.resumable = False
            self._notify()
        return ws

    async def _on_frame(
        self, ws: web.WebSocketResponse, session: GatewaySession | None, payload: Json
    ) -> GatewaySession | None:
        op, data = payload.get("op"), payload.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeats += 1
            await ws.send_str(json.dumps({"op": OP_HEARTBEAT_ACK}))
        elif op == OP_IDENTIFY:
            if session is not None:
                await self._close(ws, 4005, "Already authenticated.")
                return session
            return await self._identify(ws, data)
        elif op == OP_RESUME:
            return await self._resume(ws, data)
        elif op == OP_REQUEST_MEMBERS and session is not None:
            await self._send_member_chunks(session, data)
        elif op not in (3, 4):  # presence and voice updates are accepted and ignored
            await self._close(ws, 4001, "Unknown opcode.")
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> GatewaySession | None:
        self.identify_payloads.append(data)
        intents = int(data.get("intents", 0))
        shard_id, shard_count = data.get("shard") or [0, 1]
        if data.get("token") != self.config.token:
            await self._close(ws, 4004, "Authentication failed.")
            return None
        if intents & ~ALL_KNOWN_INTENTS:
            await self._close(ws, 4013, "Invalid intent(s).")
            return None
        if intents & PRIVILEGED_INTENTS & ~self.config.privileged_intents:
            await self._close(ws, 4014, "Disallowed intent(s).")
            return None
        if shard_count < 1 or not 0 <= shard_id < shard_count:
            await self._close(ws, 4010, "Invalid shard.")
            return None
        self.config.session_start_remaining -= 1
        session = GatewaySession(
            session_id=uuid.uuid4().hex,
            shard_id=shard_id,
            shard_count=shard_count,
            intents=intents,
            identify=data,
        )
        self.sessions[session.session_id] = session
        guilds = [g for g in self._world.guilds.values() if session.owns(g.id)]
        async with session.lock:
            session.ws = ws
            ready: Json = {
                "v": 10,
                "user": user_payload(self._world.bot),
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self.url,
                "application": {"id": str(self._world.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "geo_ordered_rtc_regions": [],
                "_trace": ["fake-discord"],
            }
            if "shard" in data:
                ready["shard"] = [shard_id, shard_count]
            await self._emit(session, "READY", ready)
            if intents & INTENT_GUILDS:
                for guild in guilds:
                    await self._emit(session, "GUILD_CREATE", self._guild_create(guild.id, intents))
                    session.guilds_sent.append(guild.id)
        log.debug("gateway identify", extra={"shard": shard_id, "shards": shard_count, "intents": intents})
        self._notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> GatewaySession | None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or not session.resumable or data.get("token") != self.config.token:
            await ws.send_str(json.dumps({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None}))
            return None
        previous = session.ws
        if previous is not None and previous is not ws and not previous.closed:
            await previous.close(code=4000, message=b"Session resumed elsewhere.")
        async with session.lock:
            session.ws = ws
            for message_id in session.redeliver_message_ids:
                # At-least-once delivery: a fresh copy of an event the client has already seen.
                original = next(
                    (
                        e
                        for e in reversed(session.log)
                        if e.event == "MESSAGE_CREATE" and e.data["id"] == str(message_id)
                    ),
                    None,
                )
                if original is not None:
                    session.seq += 1
                    session.log.append(LoggedEvent(session.seq, original.event, original.data))
            session.redeliver_message_ids.clear()
            client_seq = int(data.get("seq") or 0)
            session.last_replay = [e for e in session.log if e.seq > client_seq]
            # Counted before sending, so a test that saw a replayed event also sees the resume.
            session.resumes += 1
            for entry in session.last_replay:
                await self._send(ws, entry)
            await self._emit(session, "RESUMED", {"_trace": ["fake-discord"]})
        self._notify()
        return session

    async def _send_member_chunks(self, session: GatewaySession, data: Json) -> None:
        raw = data.get("guild_id")
        guild_ids = raw if isinstance(raw, list) else [raw]
        for gid in guild_ids:
            guild = self._world.guilds.get(int(gid))
            if guild is None:
                continue
            chunk = {
                "guild_id": str(guild.id),
                "members": [member_payload(m) for m in guild.members.values()],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "nonce": data.get("nonce"),
            }
            async with session.lock:
                await self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _guild_create(self, guild_id: int, intents: int) -> Json:
        world = self._world
        threads = world.guild_threads(guild_id)
        counts = {t.id: len(world.messages_in(t.id)) for t in threads}
        return guild_create_payload(
            world.guilds[guild_id],
            world.guild_channels(guild_id),
            threads,
            counts,
            bot=world.bot,
            include_all_members=bool(intents & INTENT_GUILD_MEMBERS),
        )

    # --- dispatching ----------------------------------------------------------------------------------------
    async def dispatch(self, event: str, data: Json, *, guild_id: int | None) -> list[GatewaySession]:
        """Sends (or, while disconnected, logs for RESUME) one event to every session owed it."""
        delivered = []
        for session in list(self.sessions.values()):
            if not session.resumable or not session.owns(guild_id):
                continue
            tailored = self._tailor(session, event, data, guild_id)
            if tailored is None:
                continue
            async with session.lock:
                await self._emit(session, event, tailored)
            delivered.append(session)
        self._notify()
        return delivered

    def _tailor(self, session: GatewaySession, event: str, data: Json, guild_id: int | None) -> Json | None:
        if event in MESSAGE_EVENTS:
            needed = INTENT_GUILD_MESSAGES if guild_id is not None else INTENT_DIRECT_MESSAGES
            if not session.intents & needed:
                return None
            if event == "MESSAGE_CREATE":
                # Tolerant of payloads a test deliberately breaks: the gateway forwards what it is given.
                raw_channel = data.get("channel_id")
                channel = self._world.channels.get(int(raw_channel)) if str(raw_channel).isdigit() else None
                data = {**data, "channel_type": channel.type if channel else 0}  # gateway-only field
            if event != "MESSAGE_DELETE":
                return visible_message(data, bot_id=self._world.bot.id, intents=session.intents)
        if event in GUILD_EVENTS and not session.intents & INTENT_GUILDS:
            return None
        return data

    async def _emit(self, session: GatewaySession, event: str, data: Json) -> None:
        """Caller holds session.lock, which keeps sequence numbers in wire order."""
        session.seq += 1
        entry = LoggedEvent(session.seq, event, data)
        session.log.append(entry)
        if session.connected:
            assert session.ws is not None
            await self._send(session.ws, entry)

    @staticmethod
    async def _send(ws: web.WebSocketResponse, entry: LoggedEvent) -> None:
        frame = {"op": OP_DISPATCH, "t": entry.event, "s": entry.seq, "d": entry.data}
        # A socket closing underneath us is fine: the event stays in the session log for RESUME.
        with suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(frame))

    async def _close(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        self.close_codes.append(code)
        await ws.close(code=code, message=reason.encode())

    # --- controls for tests -------------------------------------------------------------------------------
    def live_session(self, shard_id: int = 0) -> GatewaySession:
        candidates = [s for s in self.sessions.values() if s.resumable and s.shard_id == shard_id]
        if not candidates:
            raise LookupError(f"no live gateway session for shard {shard_id}")
        return candidates[-1]

    async def force_reconnect(self, shard_id: int = 0, *, redeliver_message_ids: Sequence[int] = ()) -> None:
        """Sends op 7 RECONNECT; on RESUME the listed MESSAGE_CREATEs are delivered once more."""
        session = self.live_session(shard_id)
        session.redeliver_message_ids.extend(redeliver_message_ids)
        async with session.lock:
            if session.ws is not None:
                with suppress(ConnectionError, RuntimeError):
                    await session.ws.send_str(
                        json.dumps({"op": OP_RECONNECT, "d": None, "s": None, "t": None})
                    )

    async def invalidate_session(self, shard_id: int = 0) -> None:
        """op 9 with d=false: the client must start over with IDENTIFY."""
        session = self.live_session(shard_id)
        session.resumable = False
        if session.ws is not None:
            frame = {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None}
            with suppress(ConnectionError, RuntimeError):
                await session.ws.send_str(json.dumps(frame))

    @asynccontextmanager
    async def outage(self, shard_id: int = 0) -> AsyncIterator[GatewaySession]:
        """Drops the shard's socket (close 4000, resumable) and holds reconnects until the block ends."""
        session = self.live_session(shard_id)
        self._open.clear()
        try:
            async with session.lock:
                ws, session.ws = session.ws, None
            if ws is not None:
                await self._close(ws, 4000, "Unknown error.")
            yield session
        finally:
            self._open.set()

    async def close_all(self) -> None:
        self._open.set()
        for ws in list(self._connections):
            with suppress(ConnectionError, RuntimeError):
                await ws.close(code=1001, message=b"Fake Discord shutting down.")


def visible_message(data: Json, *, bot_id: int, intents: int) -> Json:
    """Applies the MESSAGE_CONTENT rules: the bot's own messages, DMs and mentions of the bot keep content."""
    if intents & INTENT_MESSAGE_CONTENT:
        return data
    author_id = (data.get("author") or {}).get("id")
    mentioned = any(m.get("id") == str(bot_id) for m in data.get("mentions") or [])
    if author_id == str(bot_id) or "guild_id" not in data or mentioned:
        return data
    blanked: dict[str, Any] = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
    blanked.pop("poll", None)
    if isinstance(data.get("referenced_message"), dict):
        blanked["referenced_message"] = visible_message(
            data["referenced_message"], bot_id=bot_id, intents=intents
        )
    return blanked
