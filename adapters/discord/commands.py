"""Slash commands: one `/kimi` group (ask, reset, model, think, system, usage, channel, limits, forget, stop,
help).

One group reads best in Discord's picker: typing `/kimi` lists every action together, under the bot's name, and
generic words such as `/reset` or `/help` cannot collide with other bots' commands. Every command is deferred
before any I/O (Discord wants the first response within 3 s), then answered through the core.

Which conversation a command acts on: in a thread or DM, the one there; in a channel, the user's own slash
conversation in that channel (replies to its answers continue it, like any bot message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import discord
from discord import app_commands

from adapters.discord import incoming as conv
from adapters.discord.ask_about import about_text, place_about
from adapters.discord.interaction_surface import InteractionSurface
from adapters.discord.surface import ChannelBudgets
from adapters.downloads import Downloads
from bot.access import AccessPolicy
from bot.commands import Command
from bot.engine import Engine
from bot.types import IncomingAttachment, IncomingMessage

log = logging.getLogger(__name__)

PROMPT_MAX = 6000  # Discord's limit for a string option


class SlashHandler:
    """What each command does; the group below only declares the options Discord shows."""

    def __init__(self, *, engine: Engine, access: AccessPolicy, budgets: ChannelBudgets, group: str,
                 downloads: Downloads, clock: Callable[[], datetime] = discord.utils.utcnow) -> None:
        self._engine = engine
        self._downloads = downloads
        self._access = access
        self._budgets = budgets
        self._prefix = f"/{group} "
        self._clock = clock

    def _message(self, interaction: discord.Interaction, text: str,
                 attachments: tuple[IncomingAttachment, ...] = (), reply: dict[str, Any] | None = None
                 ) -> IncomingMessage:
        channel, guild = interaction.channel, interaction.guild
        if interaction.guild_id is None:
            place = conv.Place(conv.DM_WORKSPACE, str(interaction.channel_id), conv.DM_THREAD, is_dm=True)
        elif isinstance(channel, discord.Thread):
            place = conv.place_of(channel, guild) if guild is not None else conv.Place(
                str(interaction.guild_id), str(channel.parent_id), str(channel.id), (str(channel.id),))
        else:
            category = getattr(channel, "category_id", None)
            place = conv.Place(str(interaction.guild_id), str(interaction.channel_id), f"u{interaction.user.id}",
                               tuple(str(i) for i in (category,) if i))
        return conv.incoming(place, message_id=interaction.id, author=interaction.user, text=text,
                             attachments=attachments, mentioned=True, dedupe_key=f"interaction:{interaction.id}",
                             reply=reply)

    async def _refused(self, interaction: discord.Interaction, message: IncomingMessage) -> bool:
        decision = self._access.check(message)
        if decision.allowed:
            return False
        # Said privately and at once: within the 3-second window, no defer needed.
        await interaction.response.send_message(decision.reason, ephemeral=True)
        return True

    async def ask(self, interaction: discord.Interaction, prompt: str, image: discord.Attachment | None) -> None:
        files = (conv.attachment(image, self._downloads),) if image is not None else ()
        surface = InteractionSurface(interaction, self._budgets, clock=self._clock)
        message = self._message(interaction, prompt, files, reply=surface.address())
        if await self._refused(interaction, message):
            return
        await interaction.response.defer(thinking=True)
        await self._engine.handle(message, surface, access=self._access, command_prefix=self._prefix)

    async def ask_about(self, interaction: discord.Interaction, message: discord.Message, question: str) -> None:
        """The "Ask Kimi" form was sent: answer through the interaction, quoting `message` and its files."""
        files = tuple(conv.attachment(a, self._downloads) for a in message.attachments)
        surface = InteractionSurface(interaction, self._budgets, clock=self._clock)
        incoming = conv.incoming(place_about(interaction, message), message_id=interaction.id, author=interaction.user,
                                 text=about_text(message, question), attachments=files, mentioned=True,
                                 dedupe_key=f"interaction:{interaction.id}", reply=surface.address())
        if await self._refused(interaction, incoming):
            return
        await interaction.response.defer(thinking=True)
        await self._engine.handle(incoming, surface, access=self._access, command_prefix=self._prefix)

    async def command(self, interaction: discord.Interaction, name: str, args: str = "", *,
                      private: bool = False) -> None:
        message = self._message(interaction, f"{self._prefix}{name} {args}".strip())
        if await self._refused(interaction, message):
            return
        await interaction.response.defer(thinking=True, ephemeral=private)
        surface = InteractionSurface(interaction, self._budgets, ephemeral=private, clock=self._clock)
        await self._engine.run_command(message, Command(name, args.strip()), surface, access=self._access,
                                       prefix=self._prefix)


class KimiGroup(app_commands.Group):
    def __init__(self, handler: SlashHandler, *, name: str, installs: app_commands.AppInstallationType,
                 contexts: app_commands.AppCommandContext) -> None:
        super().__init__(name=name, description="Ask Kimi, and manage this conversation",
                         allowed_installs=installs, allowed_contexts=contexts)
        self.handler = handler

    @app_commands.command(name="ask", description="Ask Kimi a question, optionally about an image or file")
    @app_commands.describe(prompt="Your question", image="A screenshot, image, text file or PDF to ask about")
    async def ask(self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, PROMPT_MAX],
                  image: discord.Attachment | None = None) -> None:
        await self.handler.ask(interaction, prompt, image)

    @app_commands.command(name="reset", description="Start a fresh conversation here")
    async def reset(self, interaction: discord.Interaction) -> None:
        await self.handler.command(interaction, "reset")

    @app_commands.command(name="model", description="Show or set the model (admins), e.g. kimi-k2.6")
    @app_commands.describe(model="Model id; leave empty to see the current one")
    async def model(self, interaction: discord.Interaction, model: str | None = None) -> None:
        await self.handler.command(interaction, "model", model or "")

    @app_commands.command(name="think", description="Turn Kimi's thinking on or off for this conversation")
    async def think(self, interaction: discord.Interaction, mode: Literal["on", "off"] | None = None) -> None:
        await self.handler.command(interaction, "think", mode or "")

    @app_commands.command(name="system", description="Show or set this conversation's system prompt (admins)")
    @app_commands.describe(prompt="New system prompt, or 'reset' for the default; empty to show it")
    async def system(self, interaction: discord.Interaction,
                     prompt: app_commands.Range[str, 1, PROMPT_MAX] | None = None) -> None:
        await self.handler.command(interaction, "system", prompt or "")

    @app_commands.command(name="usage", description="Tokens and cost: this conversation, you, this server")
    async def usage(self, interaction: discord.Interaction) -> None:
        await self.handler.command(interaction, "usage", private=True)

    @app_commands.command(name="channel", description="This channel's defaults: prompt, model, think, footer, mentions")
    @app_commands.describe(setting="What to change (admins); leave empty to see the defaults",
                           value="The new value, or 'default'")
    async def channel(self, interaction: discord.Interaction,
                      setting: Literal["prompt", "model", "think", "footer", "mentions", "reset"] | None = None,
                      value: app_commands.Range[str, 1, PROMPT_MAX] | None = None) -> None:
        await self.handler.command(interaction, "channel", " ".join(part for part in (setting, value) if part))

    @app_commands.command(name="limits", description="Spending limits; admins set, lift or restore them")
    @app_commands.describe(action="lift, restore, set or unset (admins); leave empty to see the limits",
                           scope="Whose limits", user="The user, for lift/restore of scope user",
                           period="For set/unset: per day or per month",
                           amount="For set: $2, 5 usd, 200k tokens, or off")
    async def limits(self, interaction: discord.Interaction,
                     action: Literal["lift", "restore", "set", "unset"] | None = None,
                     scope: Literal["user", "channel", "workspace"] | None = None,
                     user: discord.User | None = None, period: Literal["day", "month"] | None = None,
                     amount: app_commands.Range[str, 1, 32] | None = None) -> None:
        if action in ("set", "unset"):
            parts = (action, scope, period, amount if action == "set" else None)
        else:
            parts = (action, scope, str(user.id) if user else None)
        await self.handler.command(interaction, "limits", " ".join(part for part in parts if part), private=True)

    @app_commands.command(name="forget", description="Delete what you wrote here, after a confirmation (admins: "
                                                     "someone's data)")
    @app_commands.describe(confirm="The code the first step gave you", user="Admins: whose data to delete")
    async def forget(self, interaction: discord.Interaction, confirm: app_commands.Range[str, 1, 16] | None = None,
                     user: discord.User | None = None) -> None:
        args = " ".join(part for part in (f"user {user.id}" if user else None,
                                          f"confirm {confirm}" if confirm else None) if part)
        await self.handler.command(interaction, "forget", args, private=True)

    @app_commands.command(name="stop", description="Stop the answer being written here")
    async def stop(self, interaction: discord.Interaction) -> None:
        await self.handler.command(interaction, "stop")

    @app_commands.command(name="help", description="What Kimi can do here")
    async def help(self, interaction: discord.Interaction) -> None:
        await self.handler.command(interaction, "help", private=True)
