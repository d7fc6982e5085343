"""The platform-neutral engine: decides whether and how to answer an incoming message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from bot.access import ALLOW_ALL, AccessPolicy
from bot.answer import Answer
from bot.attachments import AttachmentProcessor
from bot.commands import Command, CommandHandler, parse_command
from bot.config import Config
from bot.context import utc_now
from bot.kimi import Completion, KimiClient
from bot.splitting import split_message
from bot.summarize import Summarizer
from bot.tools.registry import ToolRegistry
from bot.turns import QueueFull, TurnScheduler
from bot.types import BackfillItem, ConversationKey, IncomingMessage, RateLimited, ReplySurface, TurnOutcome
from storage.store import Conversation, Store

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, *, config: Config, store: Store, kimi: KimiClient, tools: ToolRegistry,
                 scheduler: TurnScheduler | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self._config = config
        self._store = store
        self._scheduler = scheduler or TurnScheduler(config.bot.busy_policy, config.bot.max_queued)
        attachments = AttachmentProcessor(store=store, kimi=kimi, images=config.images, context=config.context)
        self._answer = Answer(config=config, store=store, kimi=kimi, tools=tools, attachments=attachments,
                              summarizer=Summarizer(kimi, store, self._record_usage), clock=clock)
        self._commands = CommandHandler(config=config, store=store, kimi=kimi, scheduler=self._scheduler)

    async def _record_usage(self, conversation: Conversation, message: IncomingMessage,
                            completion: Completion) -> None:
        # The summarizer is built before the Answer that records usage, so it calls back through here.
        await self._answer.record_usage(conversation, message, completion)

    async def handle(self, message: IncomingMessage, surface: ReplySurface, *, access: AccessPolicy = ALLOW_ALL,
                     command_prefix: str = "!") -> TurnOutcome | None:
        """Answer one incoming message. None when it was a duplicate delivery or the turn was stopped."""
        keys = message.dedupe_keys or (f"{message.channel}:{message.message_id}",)
        if not await self._store.claim_event(message.platform, keys):
            log.info("duplicate delivery ignored",
                     extra={"platform": message.platform, "message_id": message.message_id})
            return None
        decision = access.check(message)
        if not decision.allowed:
            return await self._say(surface, decision.reason, status="refused")
        command = parse_command(message.text, command_prefix)
        if command is not None and not message.attachments:
            return await self.run_command(message, command, surface, access=access, prefix=command_prefix)
        limit = self._config.context.max_message_chars
        if len(message.text) > limit:
            return await self._say(surface, (
                f"Your message is {len(message.text):,} characters long; I read at most {limit:,}. "
                "Please shorten it, or attach it as a text file."), status="refused")
        queued = self._scheduler.busy(message.key)
        try:
            return await self._scheduler.run(message.key, lambda: self._answer.run(message, surface, queued=queued))
        except QueueFull:
            return await self._say(surface, "I'm still working on earlier messages in this conversation. "
                                            "Please wait, or use `stop`.", status="refused")

    async def run_command(self, message: IncomingMessage, command: Command, surface: ReplySurface, *,
                          access: AccessPolicy = ALLOW_ALL, prefix: str = "!") -> TurnOutcome:
        """Run a command routed by an adapter (slash command or `!` text) and post its reply."""
        log.info("command", extra={"command": command.name, "platform": message.platform})
        text = await self._commands.run(message, command, access, prefix)
        return await self._say(surface, text, status="command")

    async def has_history(self, key: ConversationKey) -> bool:
        """Whether the bot already keeps this conversation (adapters: answer follow-ups without a mention)."""
        conversation = await self._store.get_conversation(key)
        return conversation is not None and await self._store.has_messages(conversation.id)

    async def conversation_of(self, platform: str, platform_message_id: str) -> ConversationKey | None:
        """The conversation a platform message belongs to (a reply to the bot continues it)."""
        conversation = await self._store.conversation_for_platform_message(platform, platform_message_id)
        return conversation.key if conversation is not None else None

    async def backfill(self, key: ConversationKey, items: Sequence[BackfillItem]) -> int:
        """Store the earlier messages of a thread the bot was just brought into; only into an empty conversation."""
        conversation = await self._store.get_or_create_conversation(key)
        if not items or await self._store.has_messages(conversation.id):
            return 0
        rows = [{"role": item.role if item.role in ("user", "assistant") else "user", "text": item.text,
                 "author": item.author or None, "platform_message_ids": [item.message_id]}
                for item in items if item.text.strip()]
        await self._store.add_messages(conversation.id, rows)
        for item in items:
            await self._store.link_platform_message(conversation.id, key.platform, item.message_id)
        return len(rows)

    async def stop(self, message: IncomingMessage) -> bool:
        return self._scheduler.cancel(message.key)

    async def shutdown(self) -> None:
        await self._scheduler.shutdown()

    async def _say(self, surface: ReplySurface, text: str, *, status: str) -> TurnOutcome:
        ids: list[str] = []
        for chunk in split_message(text, surface.max_chars):
            ids.append(await _post_final(surface, chunk))
        return TurnOutcome(status=status, text=text, message_ids=ids)


async def _post_final(surface: ReplySurface, text: str, attempts: int = 5) -> str:
    for _ in range(attempts - 1):
        await surface.post_budget.acquire(final=True)
        try:
            return await surface.post(text)
        except RateLimited as limited:
            surface.post_budget.penalize(limited.retry_after)
    await surface.post_budget.acquire(final=True)
    return await surface.post(text)
