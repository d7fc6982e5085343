"""The discord.py client: intents, shards, endpoints from config, command sync, and turn tasks.

It is always an AutoShardedClient: with `shard_ids`/`shard_count` set, several processes split the guilds
(Discord routes each guild to shard `(guild_id >> 22) % shard_count`, DMs to shard 0) and share one database,
whose processed-events table answers each message once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from adapters.discord import incoming as conv
from adapters.discord.ask_about import ask_about_menu
from adapters.discord.catch_up import SETTLE_SECONDS, CatchUp
from adapters.discord.commands import KimiGroup, SlashHandler
from adapters.discord.events import MessageRouter
from adapters.discord.feedback import FeedbackButton
from adapters.discord.http_metrics import http_trace
from adapters.discord.resume import DiscordResumer
from adapters.discord.surface import ChannelBudgets
from adapters.downloads import Downloads
from bot.access import AccessPolicy
from bot.app import Services
from bot.config import DiscordConfig
from bot.scheduler import Ticket

log = logging.getLogger(__name__)

INTENT_MISSING = (
    "discord: Discord refused the Message Content intent (gateway close 4014). Enable it at "
    "https://discord.com/developers/applications → your application → Bot → Privileged Gateway Intents → "
    "MESSAGE CONTENT INTENT, save, and start kimibot again."
)


def intents() -> discord.Intents:
    """Guilds, guild and DM messages, and MESSAGE_CONTENT (privileged) so thread follow-ups need no mention."""
    wanted = discord.Intents.default()
    wanted.message_content = True
    # Roles arrive with each message's member object; the member list itself is not needed.
    wanted.members = False
    wanted.presences = False
    return wanted


@contextlib.contextmanager
def discord_endpoints(api_url: str, gateway_url: str) -> Iterator[None]:
    """Points discord.py's REST base and gateway at the configured hosts (a proxy, or a test fake).

    discord.py has no constructor option for them: these two class attributes are its only hard-coded hosts.
    """
    route, socket = discord.http.Route, discord.gateway.DiscordWebSocket
    saved = (route.BASE, socket.DEFAULT_GATEWAY)
    route.BASE = api_url.rstrip("/")
    socket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        route.BASE, socket.DEFAULT_GATEWAY = saved


def well_formed_interaction(data: Any) -> bool:
    """An application command interaction's `data` as Discord documents it: a name, options as a tree."""
    if not isinstance(data, dict) or data.get("type") != 2:
        return True  # not an application command: discord.py reads the rest defensively enough
    command = data.get("data")

    def options_ok(options: Any, depth: int = 0) -> bool:
        return depth < 4 and isinstance(options, list) and all(
            isinstance(o, dict) and isinstance(o.get("name"), str) and options_ok(o.get("options", []), depth + 1)
            for o in options)

    return (isinstance(command, dict) and isinstance(command.get("name"), str)
            and options_ok(command.get("options", [])) and isinstance(command.get("resolved", {}), dict))


class KimiDiscordClient(discord.AutoShardedClient):
    def __init__(self, services: Services, *, guild_ready_timeout: float = 2.0, identify_delay: float = 5.0,
                 clock: Callable[[], datetime] = discord.utils.utcnow, catch_up_settle: float = SETTLE_SECONDS,
                 **options: Any) -> None:
        config = services.config.discord
        if config.shard_ids is not None and config.shard_count is None:
            raise ValueError("discord.shard_ids needs discord.shard_count")
        super().__init__(intents=intents(), shard_ids=config.shard_ids, shard_count=config.shard_count,
                         guild_ready_timeout=guild_ready_timeout, chunk_guilds_at_startup=False,
                         max_ratelimit_timeout=30.0, allowed_mentions=discord.AllowedMentions.none(),
                         **{"http_trace": http_trace(services.engine.metrics), **options})
        self.config: DiscordConfig = config
        self.services = services
        self.clock = clock
        self._identify_delay = identify_delay
        access = AccessPolicy(config.access)
        self.budgets = ChannelBudgets(limit=config.message_rate_limit, window=config.message_rate_window,
                                      source=services.budgets.budgets)
        self.downloads = Downloads(source="Discord")
        self.router = MessageRouter(engine=services.engine, config=config, access=access, budgets=self.budgets,
                                    downloads=self.downloads, partial_channel=self.get_partial_messageable)
        self.resumer = DiscordResumer(self)
        self.skipped_events = 0
        self._guard_parsers()
        handler = SlashHandler(engine=services.engine, access=access, budgets=self.budgets,
                               group=config.command_name, downloads=self.downloads, clock=clock)
        self.tree = app_commands.CommandTree(self)
        # Installed to a server, and (user_install) to people's own accounts: then /kimi and "Ask Kimi" work in
        # any DM or group DM, answered through the interaction alone.
        installs = app_commands.AppInstallationType(guild=True, user=config.user_install)
        contexts = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=config.user_install)
        self.tree.add_command(KimiGroup(handler, name=config.command_name, installs=installs, contexts=contexts))
        self.tree.add_command(ask_about_menu(handler, installs=installs, contexts=contexts))
        self.tree.error(self._on_command_error)
        self._turns: set[asyncio.Task[Any]] = set()
        self.turns_finished = 0
        self._turn_done = asyncio.Condition()
        self.catch_up = CatchUp(self, settle=catch_up_settle)

    def _guard_parsers(self) -> None:
        """One gateway event discord.py cannot parse (Discord added, renamed or dropped a field) must not end
        the connection, and with it the process: it is logged as one record and skipped.

        discord.py has no option for this; its parsers are plain callables in the connection state's table,
        which the gateway looks up per event, so each is wrapped once here."""
        parsers: dict[str, Callable[[Any], None]] = self._connection.parsers

        def guard(event: str, parse: Callable[[Any], None]) -> Callable[[Any], None]:
            def guarded(data: Any) -> None:
                try:
                    parse(data)
                except Exception as error:
                    self.skipped_events += 1
                    self.services.engine.metrics.rejected.labels(conv.PLATFORM, "unparseable").inc()
                    ids = {k: data.get(k) for k in ("id", "channel_id", "guild_id")} if isinstance(data, dict) else {}
                    log.error("discord event skipped: discord.py could not parse it", extra={
                        "event": event, **{k: str(v) for k, v in ids.items() if v is not None},
                        "error": f"{type(error).__name__}: {error}"})
                    log.debug("unparsed event detail", exc_info=True)
            return guarded

        for event, parse in list(parsers.items()):
            parsers[event] = guard(event, parse)
        # discord.py's command tree reads an application command's data without checking its shape, in a task
        # of its own, where an error only ends up as "Task exception was never retrieved".
        interaction = parsers.get("INTERACTION_CREATE")
        if interaction is not None:
            def checked(data: Any) -> None:
                if not well_formed_interaction(data):
                    raise ValueError("application command data of an unexpected shape")
                interaction(data)
            parsers["INTERACTION_CREATE"] = guard("INTERACTION_CREATE", checked)

    async def setup_hook(self) -> None:
        self.services.engine.register_resumer(conv.PLATFORM, self.resumer)
        self.add_dynamic_items(FeedbackButton)
        if self.shard_count is None:
            # Resolved here rather than by discord.py so the configured gateway URL is the one used.
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        await self.sync_commands()

    async def sync_commands(self) -> None:
        try:
            if not self.config.sync_guilds:
                synced = await self.tree.sync()
                log.info("slash commands synced globally", extra={"commands": len(synced)})
                return
            for guild_id in self.config.sync_guilds:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("slash commands synced to guild", extra={"guild": guild_id, "commands": len(synced)})
        except discord.HTTPException as error:
            # Mentions and DMs still work; the usual cause is an invite without the applications.commands scope.
            log.error("slash command sync failed; re-invite the bot with the applications.commands scope",
                      extra={"status": error.status, "code": error.code})

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # Discord lets one shard identify per 5 s (max_concurrency 1); tests run a fake without that limit.
        if not initial and self._identify_delay > 0:
            await asyncio.sleep(self._identify_delay)

    async def on_message(self, message: discord.Message) -> None:
        me = self.user
        try:
            if me is None or message.author.id == me.id:
                return  # every message the bot writes comes back over the gateway too
            ticket = self.router.reserve(message)  # before any await: answers keep the order messages arrived in
        except Exception as error:  # a payload discord.py parsed but left incomplete
            log.error("handling a Discord message failed", extra={
                "message_id": message.id, "error": f"{type(error).__name__}: {error}"})
            self._count_turn()
            return
        task = asyncio.create_task(self._turn(message, me, ticket), name="kimibot-discord-turn")
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    def _count_turn(self) -> None:
        self.turns_finished += 1
        self._turn_done_nowait()

    def _turn_done_nowait(self) -> None:
        async def notify() -> None:
            async with self._turn_done:
                self._turn_done.notify_all()

        task = asyncio.ensure_future(notify())
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def _on_command_error(self, interaction: discord.Interaction,
                                error: app_commands.AppCommandError) -> None:
        """A slash command that failed says so to its user (privately) instead of "did not respond"."""
        log.error("slash command failed", extra={"interaction": interaction.id,
                                                 "error": f"{type(error).__name__}: {error}"})
        text = "Something went wrong on my side with this command. The error was logged; please try again."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except (discord.HTTPException, ValueError, TypeError) as failed:
            log.info("could not tell the user about a failed command", extra={"error": type(failed).__name__})

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        # discord.py's default prints the handler's arguments' repr paths; one record, no message content.
        log.exception("discord event handler failed", extra={"event": event_method})

    async def _turn(self, message: discord.Message, me: discord.ClientUser, ticket: Ticket | None) -> None:
        try:
            await self.router.on_message(message, me, ticket)
        except Exception:
            log.exception("handling a Discord message failed", extra={"message_id": message.id})
        finally:
            async with self._turn_done:
                self.turns_finished += 1
                self._turn_done.notify_all()

    async def on_ready(self) -> None:
        log.info("discord ready", extra={"guilds": len(self.guilds), "shards": self.shard_count})
        self.catch_up.start()  # a new session: what was said while the bot was away

    def track(self, task: asyncio.Task[Any]) -> None:
        """Background work that close() cancels and awaits with the turns."""
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def wait_for_turns(self, count: int) -> None:
        """Returns once `count` delivered messages have been handled (answered, refused or ignored)."""
        async with self._turn_done:
            await self._turn_done.wait_for(lambda: self.turns_finished >= count)

    async def stop_intake(self) -> None:
        """Disconnect from the gateway (no new messages) while REST stays up for the answers in flight."""
        for shard in self.shards.values():
            await shard.disconnect()

    async def close(self) -> None:
        # After a drain nothing is left; after a crash, answers in flight are left for resumption.
        self.services.engine.unregister_resumer(conv.PLATFORM, self.resumer)
        await self.services.engine.suspend(conv.PLATFORM)
        turns = list(self._turns)
        for task in turns:
            task.cancel()
        if turns:
            await asyncio.gather(*turns, return_exceptions=True)
        await self.downloads.aclose()
        await super().close()
