"""A wire-level fake of Discord (gateway websocket, REST, interactions, CDN) for the real discord.py 2.7.1.

One aiohttp server on 127.0.0.1 serves `/api/v10/...`, the gateway at `/gateway` and attachment bytes at
`/cdn/...`. discord.py is pointed at it only through `Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY`
(see `redirect_discord_py`); nothing else in discord.py is touched.

The pieces live in discord_state (the world), discord_payloads (JSON shapes), discord_gateway, discord_rest
(front door: auth, call log, faults, rate limits), discord_ratelimit, discord_messages and
discord_interactions.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from typing import Any, Self

import discord.gateway
import discord.http
import yarl
from aiohttp import web

from tests.fakes.discord_components import Components
from tests.fakes.discord_errors import DiscordHTTPError
from tests.fakes.discord_gateway import Gateway, GatewayConfig, GatewaySession
from tests.fakes.discord_interactions import InteractionConfig, InteractionRecord, Interactions
from tests.fakes.discord_messages import Messages
from tests.fakes.discord_payloads import Json, thread_payload
from tests.fakes.discord_ratelimit import RateLimitConfig, RateLimiter
from tests.fakes.discord_rest import API_PREFIX, CallRecord, FrontDoor, MiscRoutes
from tests.fakes.discord_state import (
    INTENT_GUILD_MEMBERS,
    INTENT_MESSAGE_CONTENT,
    FakeChannel,
    FakeClock,
    FakeFile,
    FakeGuild,
    FakeUser,
    StoredMessage,
    ThreadRecord,
    TypingRecord,
    build_default_world,
)

__all__ = [
    "CallRecord",
    "DiscordHTTPError",
    "FakeDiscord",
    "FakeFile",
    "FakeUser",
    "InteractionConfig",
    "InteractionRecord",
    "RateLimitConfig",
    "StoredMessage",
    "redirect_discord_py",
]

log = logging.getLogger(__name__)


@contextmanager
def redirect_discord_py(api_base: str, gateway_url: str) -> Iterator[None]:
    """Points discord.py's two hard-coded hosts at the fake, restoring them afterwards.

    They are process-global class attributes, so only one fake can be the target at a time.
    """
    route, ws = discord.http.Route, discord.gateway.DiscordWebSocket
    saved = (route.BASE, ws.DEFAULT_GATEWAY)
    route.BASE = api_base
    ws.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        route.BASE, ws.DEFAULT_GATEWAY = saved


class FakeDiscord:
    """The whole fake: start it, redirect discord.py with `redirect()`, drive it and inspect what it saw.

    The default world has one guild (`guild_id`) with #general (`channel_id`), a public thread under it
    (`thread_id`), the bot (`bot_user`, also the application) and a human `user` who has a DM channel
    (`dm_channel_id`). Route keys in `calls` and `fail_next` use discord.py's `Route.key` format.
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        privileged_intents: int = INTENT_MESSAGE_CONTENT | INTENT_GUILD_MEMBERS,
        rate_limits: RateLimitConfig | None = None,
        interactions: InteractionConfig | None = None,
        recommended_shards: int = 1,
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.token = token
        self.recommended_shards = recommended_shards
        self.clock = FakeClock()
        self.world, defaults = build_default_world(self.clock)
        self.guild_id, self.channel_id, self.thread_id = (
            defaults.guild_id,
            defaults.channel_id,
            defaults.thread_id,
        )
        self.dm_channel_id, self.user = defaults.dm_channel_id, defaults.user
        self._waiters: list[asyncio.Future[None]] = []
        self._port = 0
        self.gateway = Gateway(
            self.world,
            GatewayConfig(
                token=token,
                privileged_intents=privileged_intents,
                heartbeat_interval_ms=heartbeat_interval_ms,
            ),
            self._notify,
        )
        self.rate_limits = RateLimiter(rate_limits or RateLimitConfig(), self.clock)
        self.front_door = FrontDoor(
            token=token, limiter=self.rate_limits, clock=self.clock, notify=self._notify
        )
        self._messages = Messages(self.world, self.gateway, lambda: self.base_url)
        self.interactions = Interactions(
            self.world, self.gateway, self._messages, interactions or InteractionConfig(), self._notify
        )
        self.components = Components(self.interactions, self._messages)
        self._misc = MiscRoutes(
            self.world,
            self.user.id,
            lambda: self.gateway_url,
            lambda: self.recommended_shards,
            self._session_start_limit,
        )
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def bot_user(self) -> FakeUser:
        return self.world.bot

    @property
    def application_id(self) -> int:
        return self.world.application_id

    async def start(self) -> Self:
        app = web.Application(middlewares=[self.front_door.middleware], client_max_size=30 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        self._misc.add_routes(app, API_PREFIX)
        self._messages.add_routes(app, API_PREFIX)
        self.interactions.add_routes(app, API_PREFIX)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        self.gateway.url = self.gateway_url
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.debug("fake discord listening", extra={"port": self._port})
        return self

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def redirect(self) -> AbstractContextManager[None]:
        """Context manager that points discord.py at this fake (see `redirect_discord_py`)."""
        return redirect_discord_py(self.api_base, self.gateway_url)

    def _session_start_limit(self) -> Json:
        cfg = self.gateway.config
        return {
            "total": cfg.session_start_total,
            "remaining": cfg.session_start_remaining,
            "reset_after": 14_400_000,
            "max_concurrency": 1,
        }

    # --- waiting ------------------------------------------------------------------------------------------
    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Returns once `predicate()` holds; it is re-checked after every request and gateway change."""
        async with asyncio.timeout(within):
            while not predicate():
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut

    # --- driving the bot ----------------------------------------------------------------------------------
    def payload_of(self, message: StoredMessage) -> Json:
        """The MESSAGE_CREATE payload of a stored message, as the gateway sends it (to build altered ones)."""
        return self._messages.payload(message)

    async def dispatch_message(
        self,
        channel_id: int | None = None,
        content: str = "",
        *,
        author: FakeUser | None = None,
        mentions: Sequence[FakeUser] = (),
        reply_to: int | None = None,
        mention_replied_user: bool = True,
        attachments: Sequence[FakeFile] = (),
        embeds: Sequence[Json] = (),
    ) -> StoredMessage:
        """A user posts a message: it is stored, then MESSAGE_CREATE goes to the session owning its guild.

        Mentions are parsed from `<@id>` in `content` (plus `mentions`); a reply pings the replied-to author
        unless `mention_replied_user` is False. Sessions without MESSAGE_CONTENT get the blanked version.
        """
        channel = self.world.channels[channel_id or self.channel_id]
        body: Json = {"content": content, "embeds": list(embeds)}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to)}
            body["allowed_mentions"] = {"replied_user": mention_replied_user}
        msg = await self._messages.create(channel, author or self.user, body, attachments, dispatch=False)
        msg.mention_ids.extend(u.id for u in mentions if u.id not in msg.mention_ids)
        await self.gateway.dispatch("MESSAGE_CREATE", self._messages.payload(msg), guild_id=msg.guild_id)
        return msg

    async def invoke_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user: FakeUser | None = None,
        attachments: Mapping[str, FakeFile] | None = None,
        require_registered: bool = True,
        user_install: bool = False,
    ) -> InteractionRecord:
        """Sends INTERACTION_CREATE for `/name` ("group sub" for subcommands); defaults to #general.

        Pass `guild_id=None` together with a DM `channel_id` for a DM invocation.
        """
        channel = self.world.channels[channel_id or self.channel_id]
        return await self.interactions.invoke_command(
            name,
            options,
            guild_id=channel.guild_id if guild_id is None else guild_id,
            channel_id=channel.id,
            user=user or self.user,
            attachments=attachments,
            require_registered=require_registered,
            user_install=user_install,
        )

    async def invoke_message_command(self, name: str, message: StoredMessage, *, user: FakeUser | None = None,
                                     user_install: bool = False) -> InteractionRecord:
        """Apps → `name` on `message` (a message context-menu command)."""
        return await self.interactions.invoke_message_command(name, message, user=user or self.user,
                                                               user_install=user_install)

    def add_group_dm(self, *people: FakeUser) -> FakeChannel:
        """A group DM of `people` (the first owns it); the bot is not in it."""
        return self.world.add_group_dm(people[0], *people[1:])

    async def post_unseen(self, channel_id: int, content: str, *, author: FakeUser | None = None,
                          files: Sequence[FakeFile] = ()) -> StoredMessage:
        """A message the bot cannot see (no gateway event): in a group DM, say."""
        return await self._messages.create(self.world.channels[channel_id], author or self.user,
                                           {"content": content}, files, dispatch=False)

    async def force_reconnect(self, shard_id: int = 0, *, redeliver_message_ids: Sequence[int] = ()) -> None:
        await self.gateway.force_reconnect(shard_id, redeliver_message_ids=redeliver_message_ids)

    def outage(self, shard_id: int = 0) -> AbstractAsyncContextManager[GatewaySession]:
        """Drops the shard's connection and holds reconnects until the block exits; then it RESUMEs."""
        return self.gateway.outage(shard_id)

    def fail_next(
        self, route_key: str, status: int, code: int = 0, message: str | None = None, **kwargs: Any
    ) -> None:
        """Injects an error on the next request to `route_key` (discord.py's Route.key format)."""
        self.front_door.fail_next(route_key, status, code, message, **kwargs)

    # --- world building -------------------------------------------------------------------------------------
    def add_user(self, username: str, *, bot: bool = False, guild_id: int | None = None) -> FakeUser:
        user = self.world.add_user(username, bot=bot)
        self.world.add_member(guild_id or self.guild_id, user)
        return user

    def add_guild(self, name: str, *, shard: tuple[int, int] | None = None) -> FakeGuild:
        """A new guild with a #general channel; `shard=(id, count)` picks an id that lands on that shard."""
        guild = self.world.add_guild(name, owner=self.user, shard=shard)
        self.world.add_text_channel(guild.id, "general")
        return guild

    def add_text_channel(self, name: str, *, guild_id: int | None = None) -> FakeChannel:
        return self.world.add_text_channel(guild_id or self.guild_id, name)

    def add_thread(self, name: str, *, parent_id: int | None = None) -> FakeChannel:
        """World building before a client connects; use `open_thread` once one is connected."""
        return self.world.add_thread(parent_id or self.channel_id, name, owner=self.user)

    async def open_thread(
        self, name: str, *, parent_id: int | None = None, owner: FakeUser | None = None
    ) -> FakeChannel:
        """A user opens a public thread while clients are connected; THREAD_CREATE goes out as on Discord."""
        thread = self.world.add_thread(parent_id or self.channel_id, name, owner=owner or self.user)
        created = {**thread_payload(thread), "newly_created": True}
        await self.gateway.dispatch("THREAD_CREATE", created, guild_id=thread.guild_id)
        return thread

    # --- inspection -----------------------------------------------------------------------------------------
    def messages(self, channel_id: int, *, include_deleted: bool = False) -> list[StoredMessage]:
        return self.world.messages_in(channel_id, include_deleted=include_deleted)

    def bot_messages(self, channel_id: int) -> list[StoredMessage]:
        return [m for m in self.messages(channel_id) if m.author.id == self.world.bot.id]

    def message(self, message_id: int) -> StoredMessage:
        return self.world.messages[message_id]

    def final_text(self, channel_id: int, message_id: int) -> str:
        """The message's text after every edit (embed descriptions when the content is empty)."""
        msg = self.world.messages[message_id]
        if msg.channel_id != channel_id:
            raise LookupError(f"message {message_id} is in channel {msg.channel_id}, not {channel_id}")
        return msg.text

    @property
    def threads_created(self) -> list[ThreadRecord]:
        return self.world.threads_created

    @property
    def typing_calls(self) -> list[TypingRecord]:
        return self.world.typing_calls

    @property
    def calls(self) -> list[CallRecord]:
        return self.front_door.calls

    def calls_to(self, route_key: str) -> list[CallRecord]:
        return [c for c in self.calls if c.route_key == route_key]

    @property
    def rate_limited_count(self) -> int:
        return self.rate_limits.rate_limited_count

    @property
    def sessions(self) -> list[GatewaySession]:
        return list(self.gateway.sessions.values())

    @property
    def global_commands(self) -> list[Json]:
        return self.world.global_commands

    def guild_commands(self, guild_id: int) -> list[Json]:
        return self.world.guild_commands.get(guild_id, [])
