"""Conversation commands (reset, model, think, system, usage, stop, help), from slash commands or `!` text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.access import AccessPolicy
from bot.channel_commands import ChannelCommand
from bot.config import Config, SearchBackend
from bot.feedback import FeedbackBook
from bot.forget import ForgetCommand
from bot.kimi import KimiClient
from bot.limits import SpendingLimits
from bot.models import ModelCatalog
from bot.scheduler import TurnScheduler
from bot.settings import MAX_SYSTEM_PROMPT, ChannelDefaults, Effective, effective
from bot.types import IncomingMessage
from bot.usage import format_summary
from storage.store import Store

NAMES = ("reset", "model", "think", "system", "usage", "stop", "help", "channel", "limits", "forget")
ALIASES = {"thinking": "think", "new": "reset", "clear": "reset", "cancel": "stop", "cost": "usage", "limit": "limits"}
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: str = ""


def parse_command(text: str, prefix: str = "!") -> Command | None:
    """`!reset`, `!model kimi-k2.6`, ... Unknown words after the prefix are ordinary messages."""
    stripped = text.strip()
    if not stripped.startswith(prefix):
        return None
    word, _, rest = stripped[len(prefix):].partition(" ")
    name = ALIASES.get(word.lower(), word.lower())
    if name not in NAMES:
        return None
    return Command(name, rest.strip())


def command_from_words(text: str) -> Command | None:
    """Slash-command text such as `reset` or `model kimi-k2.6`; None when it is a question to ask."""
    return parse_command("!" + text.strip()) if text.strip() else Command("help")


def help_text(prefix: str) -> str:
    p = prefix
    return "\n".join([
        "*kimibot* answers with Moonshot's Kimi. Mention me, reply in my threads, or DM me. Commands:",
        f"• `{p}reset`: start a fresh conversation here",
        f"• `{p}model [id]`: show or set the model (admins), e.g. `{p}model kimi-k2.6`",
        f"• `{p}think on|off`: turn Kimi's thinking on or off for this conversation",
        f"• `{p}system [text|reset]`: show or set this conversation's system prompt (admins)",
        f"• `{p}usage`: tokens and cost for this conversation, for you, and for this workspace",
        f"• `{p}channel [setting value]`: this channel's defaults (prompt, model, think, footer; admins set them)",
        f"• `{p}limits`: spending limits and what has been spent (admins: `{p}limits set ...`, `{p}limits lift ...`)",
        f"• `{p}forget`: delete everything you wrote here, after a confirmation (admins: `{p}forget user <id>`)",
        f"• `{p}stop`: stop the answer being written",
        f"• `{p}help`: this list",
    ])


class CommandHandler:
    def __init__(self, *, config: Config, store: Store, kimi: KimiClient, scheduler: TurnScheduler,
                 models: ModelCatalog, channels: ChannelDefaults, limits: SpendingLimits) -> None:
        self._config = config
        self._store = store
        self._kimi = kimi
        self._scheduler = scheduler
        self._models = models
        self._channel = ChannelCommand(config=config, store=store, models=models, channels=channels)
        self._limits = limits
        self._forget = ForgetCommand(store)

    async def run(self, message: IncomingMessage, command: Command, access: AccessPolicy,
                  prefix: str = "!") -> str:
        key = message.key
        if command.name == "help":
            return help_text(prefix)
        if command.name == "stop":
            return "Stopped." if self._scheduler.cancel(key) else "Nothing is being written right now."
        if command.name == "channel":
            return await self._channel.run(message, command.args, access, prefix)
        if command.name == "limits":
            return await self._limits.command(message, command.args, access, prefix)
        if command.name == "forget":
            return await self._forget.run(message, command.args, access, prefix)
        conversation = await self._store.get_or_create_conversation(key)
        if command.name == "reset":
            self._scheduler.cancel(key)
            await self._store.reset_conversation(conversation.id)
            return "Started a fresh conversation. Earlier messages stay in the log but are no longer sent to Kimi."
        if command.name == "usage":
            return await self._usage(message, conversation.id, admin=access.is_admin(message))
        applied = effective(conversation, await self._store.channel_settings(
            message.platform, message.workspace, message.channel), self._config, self._models.default)
        model, thinking = applied.model, applied.thinking
        if command.name == "model":
            available = self._available()
            if not command.args:
                origin = {"channel": " (this channel's default)", "default": ""}.get(applied.origin["model"], "")
                return (f"This conversation uses `{model}`{origin}. Admins can change it with `{prefix}model <id>`."
                        f"{available}")
            if not access.is_admin(message):
                return "Only admins can change the model."
            if not MODEL_ID.match(command.args):
                return f"`{command.args[:80]}` doesn't look like a model id (for example `kimi-k2.6`).{available}"
            if not self._models.allows(command.args):
                return f"`{command.args}` is not available to this Kimi account.{available}"
            await self._store.update_settings(conversation.id, model=command.args)
            return f"This conversation now uses `{command.args}`."
        if command.name == "think":
            return await self._think(conversation.id, command.args, model, thinking)
        return await self._system(message, conversation.id, command.args, applied, access)

    def _available(self) -> str:
        ids = self._models.ids()
        return f" Available: {', '.join(f'`{m}`' for m in ids)}." if ids else ""

    async def _think(self, conversation_id: int, args: str, model: str, thinking: bool) -> str:
        choice = args.lower()
        if choice not in ("on", "off"):
            return f"Thinking is {'on' if thinking else 'off'}. Use `think on` or `think off`."
        value = choice == "on"
        await self._store.update_settings(conversation_id, thinking=value)
        plan = self._kimi.plan(model, thinking=value, web_search=self._config.kimi.search is SearchBackend.BUILTIN)
        note = f" Note: {plan.note}." if plan.note else ""
        return f"Thinking is now {choice} for this conversation.{note}"

    async def _system(self, message: IncomingMessage, conversation_id: int, args: str, applied: Effective,
                      access: AccessPolicy) -> str:
        if not args:
            origin = {"conversation": "this conversation's", "channel": "this channel's"}.get(
                applied.origin["system_prompt"], "the default")
            return f"Using {origin} system prompt:\n> {applied.system_prompt[:1500]}"
        if not access.is_admin(message):
            return "Only admins can change the system prompt."
        if args.lower() in ("reset", "default"):
            await self._store.update_settings(conversation_id, system_prompt=None)
            return "This conversation is back on the default system prompt."
        if len(args) > MAX_SYSTEM_PROMPT:
            return f"That system prompt is {len(args):,} characters; the limit is {MAX_SYSTEM_PROMPT:,}."
        await self._store.update_settings(conversation_id, system_prompt=args)
        return "System prompt set for this conversation."

    async def _usage(self, message: IncomingMessage, conversation_id: int, *, admin: bool) -> str:
        since = datetime.now(UTC) - timedelta(days=30)
        here = await self._store.usage_summary(conversation_id=conversation_id)
        mine = await self._store.usage_summary(platform=message.platform, user=message.user, since=since)
        workspace = await self._store.usage_summary(platform=message.platform, workspace=message.workspace,
                                                    since=since)
        lines = [
            format_summary("This conversation", here),
            format_summary("You, last 30 days", mine),
            format_summary("This workspace, last 30 days", workspace),
        ]
        if admin:
            lines += await FeedbackBook(self._store).summary(message.platform, message.workspace, since=since)
        return "\n".join(lines)
