"""The platform-neutral engine: decides whether and how to answer, and owns every turn from receipt to its end.

A question is stored with its delivery's dedupe keys in one transaction (a durable turn, leased by this
process) before it is answered; turns run one at a time per conversation in arrival order. On shutdown the
engine lets answers finish within a grace period and leaves the rest, leases released, for the next process
(bot/leases.py resumes them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from bot.access import ALLOW_ALL, AccessPolicy
from bot.answer import Answer
from bot.attachments import AttachmentProcessor
from bot.commands import Command, CommandHandler, parse_command
from bot.compaction import Compactor
from bot.config import Config
from bot.context import utc_now
from bot.conversation_lease import ConversationLeases
from bot.intake import Intake, IntakeLost
from bot.kimi import Completion, KimiClient
from bot.limits import SpendingLimits
from bot.metrics import Metrics
from bot.models import ModelCatalog
from bot.replica import Replica
from bot.scheduler import Ticket, TurnScheduler
from bot.settings import ChannelDefaults
from bot.splitting import split_message
from bot.summarize import Summarizer
from bot.tools.registry import ToolRegistry
from bot.turn_work import Interruption, TurnWork, message_from_record
from bot.types import (
    BackfillItem,
    ConversationKey,
    IncomingMessage,
    RateLimited,
    ReplySurface,
    ReplyUnreachable,
    TurnOutcome,
    TurnResumer,
)
from storage.store import Conversation, Store, StoredTurn, TurnState, valid_text

log = logging.getLogger(__name__)

NOT_STORED = ("I could not save your message because my database is unavailable right now, so I cannot answer "
              "it. Please send it again in a few minutes.")
QUEUE_FULL = "I'm still working on earlier messages in this conversation. Please wait, or use `stop`."
EXPIRED_NOTICE = ("I was restarted and could not get back to this question in time, so it was not answered. "
                  "Please ask again.")


class Engine:
    def __init__(self, *, config: Config, store: Store, kimi: KimiClient, tools: ToolRegistry,
                 scheduler: TurnScheduler | None = None, clock: Callable[[], datetime] = utc_now,
                 replica: Replica | None = None, metrics: Metrics | None = None) -> None:
        self._config = config
        self.metrics = metrics or Metrics()
        self._store = store
        self._clock = clock
        self.replica = replica or Replica.here()
        self._scheduler = scheduler or TurnScheduler(config.bot.busy_policy, config.bot.max_queued)
        attachments = AttachmentProcessor(store=store, kimi=kimi, images=config.images, video=config.video,
                                          context=config.context)
        self._leases = ConversationLeases(store, self.replica, config.turns, clock)
        self.models = ModelCatalog(kimi, config.kimi)
        self.compactor = Compactor(config=config, store=store, kimi=kimi, models=self.models,
                                   summarizer=Summarizer(kimi, store, self._record_usage))
        self._answer = Answer(config=config, store=store, kimi=kimi, tools=tools, attachments=attachments,
                              compactor=self.compactor, leases=self._leases, models=self.models, clock=clock,
                              metrics=self.metrics)
        self.metrics.track_queue(self._scheduler.waiting_total)
        self.channels = ChannelDefaults(store)
        self.limits = SpendingLimits(store, config.limits, clock=clock)
        self._commands = CommandHandler(config=config, store=store, kimi=kimi, scheduler=self._scheduler,
                                        models=self.models, channels=self.channels, limits=self.limits)
        self._intake = Intake(store, config.turns, self.replica)
        self._works: dict[int, TurnWork] = {}
        self._resumers: dict[str, TurnResumer] = {}
        self.resumers_changed = asyncio.Event()
        self._resumes: set[asyncio.Task[None]] = set()
        self._drain: asyncio.Task[None] | None = None

    async def _record_usage(self, conversation: Conversation, message: IncomingMessage,
                            completion: Completion) -> None:
        # The summarizer is built before the Answer that records usage, so it calls back through here.
        await self._answer.record_usage(conversation, message, completion)

    @property
    def draining(self) -> bool:
        return self._drain is not None

    # -- receiving ------------------------------------------------------------------------------------

    def reserve(self, key: ConversationKey) -> Ticket:
        """A place in the conversation's queue, taken the moment a message arrives (before any await), so
        answers keep arrival order whatever the adapter looks up first. Pass it to `handle`."""
        return self._scheduler.reserve(key)

    def release(self, ticket: Ticket) -> None:
        self._scheduler.release(ticket)

    async def handle(self, message: IncomingMessage, surface: ReplySurface, *, access: AccessPolicy = ALLOW_ALL,
                     command_prefix: str = "!", ticket: Ticket | None = None) -> TurnOutcome | None:
        """Answer one incoming message. None when it was a duplicate delivery or the turn was stopped."""
        ticket = ticket if ticket is not None else self.reserve(message.key)
        # Lone surrogates (a platform's JSON may carry them as escapes) would be refused by the database.
        message = replace(message, text=valid_text(message.text), user_name=valid_text(message.user_name))
        try:
            return await self._handle(message, surface, access, command_prefix, ticket)
        except IntakeLost:
            return await self._say(surface, NOT_STORED, status="failed")
        finally:
            self._scheduler.release(ticket)

    async def _handle(self, message: IncomingMessage, surface: ReplySurface, access: AccessPolicy,
                      prefix: str, ticket: Ticket) -> TurnOutcome | None:
        keys = message.dedupe_keys or (f"{message.channel}:{message.message_id}",)
        decision = access.check(message)
        command = parse_command(message.text, prefix) if not message.attachments else None
        limit = self._config.context.max_message_chars
        reply: str | None = None
        if not decision.allowed:
            reply = decision.reason
        elif command is None and len(message.text) > limit:
            reply = (f"Your message is {len(message.text):,} characters long; I read at most {limit:,}. "
                     "Please shorten it, or attach it as a text file.")
        elif command is None and ticket.ahead > self._scheduler.max_queued:
            reply = QUEUE_FULL
        elif command is None:
            # Before the question becomes a turn: over a limit, nothing is asked of Kimi.
            reply = await self.limits.checked_refusal(message, prefix)
        if reply is not None or command is not None:
            self._scheduler.release(ticket)
            if not await self._intake.claim_keys(message, keys):
                return None
            if command is not None and reply is None:
                return await self.run_command(message, command, surface, access=access, prefix=prefix)
            return await self._say(surface, reply or "", status="refused")
        turn = await self._intake.receive(message, keys, hold=not self.draining)
        if turn is None:
            return None
        if self.draining:
            log.info("question stored for another process (shutting down)", extra={"turn": turn.id})
            return TurnOutcome(status="deferred", text="")
        return await self._run(ticket, TurnWork(turn, message, surface, command_prefix=prefix))

    async def _run(self, ticket: Ticket, work: TurnWork) -> TurnOutcome | None:
        self._works[work.turn.id] = work
        try:
            outcome = await self._scheduler.run(ticket, lambda: self._answer.run(work))
            self.metrics.answers.labels(work.message.platform, outcome.status if outcome else "stopped").inc()
        finally:
            self._works.pop(work.turn.id, None)
            if work.started and not self._scheduler.waiting(work.message.key) and not self.draining:
                # Nothing more to answer here in this process: other replicas may answer in it now.
                await self._bookkeep_release(work.turn.conversation_id)
        if outcome is None and not work.interruption and not self.draining and not work.started:
            # Stopped while it waited in the queue: it will never be answered.
            await self._intake.finish(work.turn.id, TurnState.STOPPED)
        return outcome

    async def _bookkeep_release(self, conversation_id: int) -> None:
        try:
            await self._leases.release(conversation_id)
        except Exception:  # it runs out by itself
            log.exception("releasing a conversation lease failed")

    async def run_command(self, message: IncomingMessage, command: Command, surface: ReplySurface, *,
                          access: AccessPolicy = ALLOW_ALL, prefix: str = "!") -> TurnOutcome:
        """Run a command routed by an adapter (slash command or `!` text) and post its reply."""
        log.info("command", extra={"command": command.name, "platform": message.platform})
        text = await self._commands.run(message, command, access, prefix)
        return await self._say(surface, text, status="command")

    # -- resuming -------------------------------------------------------------------------------------

    def register_resumer(self, platform: str, resumer: TurnResumer) -> None:
        """An adapter that can rebuild reply surfaces for `platform` lets this process resume its turns; the
        turn keeper sweeps at once, so a restarted process picks up what its predecessor left right away."""
        self._resumers[platform] = resumer
        self.resumers_changed.set()

    def unregister_resumer(self, platform: str, resumer: TurnResumer) -> None:
        if self._resumers.get(platform) is resumer:
            del self._resumers[platform]

    @property
    def resumable_platforms(self) -> list[str]:
        return sorted(self._resumers)

    def resume(self, turn: StoredTurn) -> None:
        """Answer a turn taken over from a dead or departed process, in its conversation's order."""
        q = turn.question
        key = ConversationKey(turn.platform, str(q.get("workspace")), str(q.get("channel")), str(q.get("thread")))
        ticket = self._scheduler.reserve(key)  # before any await: resumed turns keep their order
        self._spawn(self._resume(turn, ticket), f"resume-{turn.id}")

    def expire(self, turn: StoredTurn) -> None:
        """A turn too old to answer again: tell its asker, and close it."""
        self._spawn(self._expire(turn), f"expire-{turn.id}")

    def _spawn(self, coro: object, name: str) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        task.set_name(name)
        self._resumes.add(task)
        task.add_done_callback(self._resumes.discard)

    async def idle(self) -> None:
        """Wait until the resumed and expired turns in progress are done (tests, benchmarks)."""
        while self._resumes:
            await asyncio.gather(*list(self._resumes), return_exceptions=True)

    async def _resume(self, turn: StoredTurn, ticket: Ticket) -> None:
        try:
            resumer = self._resumers.get(turn.platform)
            if resumer is None or self.draining:
                await self._store.release_leases(self.replica.id, [turn.id])
                return
            log.info("resuming an unfinished turn", extra={"turn": turn.id, "platform": turn.platform,
                                                          "attempt": turn.attempts})
            self.metrics.resumed.inc()
            async with resumer.surface_for(turn) as surface:
                message = message_from_record(turn, resumer.attachments_for(turn))
                await self._run(ticket, TurnWork(turn, message, surface, resumed=True))
        except ReplyUnreachable as unreachable:
            await self._intake.finish(turn.id, TurnState.FAILED, error="reply place unreachable")
            log.warning("unfinished turn cannot be resumed: its answer has no way back to the user",
                        extra={"turn": turn.id, "platform": turn.platform, "why": str(unreachable)})
        except Exception:
            log.exception("resuming a turn failed", extra={"turn": turn.id})
        finally:
            self._scheduler.release(ticket)

    async def _expire(self, turn: StoredTurn) -> None:
        try:
            resumer = self._resumers.get(turn.platform)
            if resumer is not None:
                async with resumer.surface_for(turn) as surface:
                    await self._notice(surface, turn.platform_message_ids, EXPIRED_NOTICE)
            await self._intake.finish(turn.id, TurnState.EXPIRED, error="too old to resume")
            log.warning("unfinished turn expired", extra={"turn": turn.id, "platform": turn.platform})
        except Exception:
            log.exception("expiring a turn failed", extra={"turn": turn.id})

    # -- shutting down --------------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Stop starting turns; give running answers `grace` seconds; leave the rest for the next process.

        Idempotent: every adapter awaits the same drain."""
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_once(grace))
        await asyncio.shield(self._drain)

    async def _drain_once(self, grace: float) -> None:
        self._scheduler.hold_queued()
        running = self._scheduler.running()
        log.info("draining", extra={"answers_in_flight": len(running), "grace_s": grace})
        pending: set[asyncio.Task[object]] = set()
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
        for work in self._works.values():
            work.interruption = Interruption.SHUTDOWN
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, *self._resumes, return_exceptions=True)
        try:
            released = await self._store.release_leases(self.replica.id)
        except Exception:  # the leases run out by themselves; other processes resume the turns then
            log.exception("releasing turn leases failed")
            released = 0
        log.info("drained", extra={"finished": len(running) - len(pending), "left_for_resume": released})

    async def suspend(self, platform: str) -> None:
        """A platform adapter is going away outside a drain (it crashed and restarts): its answers stop now
        and are left, leases released, for the next sweep to resume once the platform is back."""
        works = [w for w in self._works.values() if w.message.platform == platform]
        if not works:
            return
        keys = {w.message.key for w in works}
        for work in works:
            work.interruption = Interruption.SHUTDOWN
        running = self._scheduler.running(keys)
        for key in keys:
            self._scheduler.cancel(key)
        await asyncio.gather(*running, return_exceptions=True)
        try:
            await self._store.release_leases(self.replica.id, [w.turn.id for w in works])
        except Exception:
            log.exception("releasing turn leases failed")
        log.warning("answers left for resumption", extra={"platform": platform, "count": len(works)})

    async def shutdown(self) -> None:
        """Stop at once (tests, the terminal chat): answers in flight are left for resumption."""
        await self.drain(0.0)

    # -- conversation facts adapters route on ----------------------------------------------------------

    async def answers_every_message(self, platform: str, workspace: str, channel: str) -> bool:
        """Whether an admin asked for answers to every message in this channel (`channel mentions optional`)."""
        return (await self.channels.get(platform, workspace, channel)).answer_without_mention is True

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
                 "author": item.author or None, "author_id": item.author_id or None,
                 "platform_message_ids": [item.message_id]}
                for item in items if item.text.strip()]
        await self._store.add_messages(conversation.id, rows)
        for item in items:
            await self._store.link_platform_message(conversation.id, key.platform, item.message_id)
        return len(rows)

    async def stop(self, message: IncomingMessage) -> bool:
        return self._scheduler.cancel(message.key)

    def stop_conversation(self, key: ConversationKey) -> bool:
        """Stop the answer being written in `key` (a platform's own Stop button), as the `stop` command does."""
        return self._scheduler.cancel(key)

    async def _say(self, surface: ReplySurface, text: str, *, status: str) -> TurnOutcome:
        ids: list[str] = []
        for chunk in split_message(text, surface.max_chars):
            ids.append(await _post_final(surface, chunk))
        return TurnOutcome(status=status, text=text, message_ids=ids)

    async def _notice(self, surface: ReplySurface, existing: list[str], text: str) -> None:
        if existing:
            await surface.edit_budget.acquire(final=True)
            await surface.edit(existing[0], text)
        else:
            await _post_final(surface, text)


async def _post_final(surface: ReplySurface, text: str, attempts: int = 5) -> str:
    for _ in range(attempts - 1):
        await surface.post_budget.acquire(final=True)
        try:
            return await surface.post(text)
        except RateLimited as limited:
            await surface.post_budget.penalize(limited.retry_after)
    await surface.post_budget.acquire(final=True)
    return await surface.post(text)
