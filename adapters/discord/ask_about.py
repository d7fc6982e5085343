"""Apps → "Ask Kimi" on any message: a message context-menu command that asks for the question in a modal and
answers through the interaction, quoting the message (its attachments included).

The answer is a conversation of its own, keyed by the message asked about; replies to the answer continue it
like any reply to the bot. It works wherever the command is offered, including a group DM of a user who
installed kimibot to their account, where the bot itself has no access: everything goes through the
interaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from adapters.discord import incoming as conv

if TYPE_CHECKING:
    from adapters.discord.commands import SlashHandler

MENU_NAME = "Ask Kimi"
QUOTE_LINES = 20
QUOTE_CHARS = 3000


class AskModal(discord.ui.Modal, title="Ask Kimi about this message"):
    question: discord.ui.TextInput[AskModal] = discord.ui.TextInput(
        label="Your question", style=discord.TextStyle.paragraph, max_length=3000,
        placeholder="What would you like to know about it?")

    def __init__(self, handler: SlashHandler, message: discord.Message) -> None:
        # discord.py keeps one open form per user and custom id: one per message asked about.
        super().__init__(custom_id=f"kimi:ask-about:{message.id}", timeout=None)
        self._handler = handler
        self._message = message

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self._handler.ask_about(interaction, self._message, self.question.value)


def about_text(message: discord.Message, question: str) -> str:
    body = (message.content or "").strip()[:QUOTE_CHARS]
    quote = "\n".join(f"> {line}" for line in body.splitlines()[:QUOTE_LINES]) or "> (no text)"
    return f"About this message from {message.author.display_name}:\n{quote}\n\n{question.strip()}"


def ask_about_menu(handler: SlashHandler, *, installs: app_commands.AppInstallationType,
                   contexts: app_commands.AppCommandContext) -> app_commands.ContextMenu:
    async def open_form(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_modal(AskModal(handler, message))

    return app_commands.ContextMenu(name=MENU_NAME, callback=open_form, type=discord.AppCommandType.message,
                                    allowed_installs=installs, allowed_contexts=contexts)


def place_about(interaction: discord.Interaction[Any], message: discord.Message) -> conv.Place:
    """A conversation of its own per message asked about, in the channel (or DM) it was asked in."""
    thread = f"about-{message.id}"
    if interaction.guild_id is None:
        return conv.Place(conv.DM_WORKSPACE, str(interaction.channel_id), thread, is_dm=True)
    return conv.Place(str(interaction.guild_id), str(interaction.channel_id), thread)
