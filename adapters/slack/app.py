"""Bolt wiring: listeners for mentions, messages and the slash command, routed to the engine.

Bolt acks events at once (process_before_response off), so every answer runs in a task the adapter owns.
Exactly-once is the engine's claim of every delivery's dedupe keys (event id and channel:ts), stored with the
turn; a thread is backfilled under its own claim so that even retries and replicas read it with
conversations.replies only once. Each answer task reserves its place in its conversation's queue before its
first await, so two quick messages are answered in the order they arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.ask_about import AskAbout
from adapters.slack.assistant import SlackAssistant
from adapters.slack.backfill import ThreadReader
from adapters.slack.clients import SlackClients
from adapters.slack.commands import SlashCommands
from adapters.slack.events import PLATFORM, SlackEvent, ignore_reason, incoming, parse_event, without_own_mention
from adapters.slack.feedback import SlackFeedback
from adapters.slack.files import SlackFiles
from adapters.slack.home import AppHome
from adapters.slack.http_gate import MAX_BODY_BYTES, RequestGate
from adapters.slack.limits import AllowanceRegistry, SlackLimits
from adapters.slack.names import SlackNames
from adapters.slack.oauth import SlackInstalls
from adapters.slack.resume import SlackResumer
from adapters.slack.surface import SlackSurface
from bot.access import AccessPolicy
from bot.app import Services
from bot.scheduler import Ticket
from bot.types import ConversationKey, WriteBudget

log = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[None]]


class SlackAdapter:
    def __init__(self, services: Services, *, limits: SlackLimits | None = None) -> None:
        self.services = services
        self.config = cfg = services.config.slack
        secret = cfg.signing_secret.get_secret_value() if cfg.signing_secret else None
        # Bolt's loggers copy their level from the logger given here when they are made (from the root's
        # otherwise), so this is what keeps its INFO lines (request bodies among them) out of the log.
        bolt_logger = logging.getLogger("slack_bolt")
        # One bot token, or (with [slack.oauth]) each workspace's own, stored when it installed the app.
        self.installs = SlackInstalls(cfg.oauth, services.store.engine, bolt_logger) if cfg.oauth.enabled else None
        oauth: dict[str, Any] = {}
        if self.installs is not None:
            self.clients = SlackClients(cfg.api_url, find_token=self.installs.find_token)
            oauth = {"oauth_settings": self.installs.settings, "authorize": self.installs.authorize}
        elif cfg.bot_token is not None:
            self.clients = SlackClients.single(cfg.bot_token.get_secret_value(), cfg.api_url)
        else:
            raise ValueError("slack.bot_token is not set")
        self.app = AsyncApp(client=self.clients.app_client, signing_secret=secret,
                            request_verification_enabled=secret is not None, logger=bolt_logger, **oauth)
        if self.installs is not None:
            self.installs.listen(self.app, self.clients)
        self.app.use(self._remember_workspace)
        # HTTP mode needs the signing secret (runner.check_config); Socket Mode connections are authenticated.
        metrics = services.engine.metrics
        self.gate = RequestGate(secret, on_refused=lambda status: metrics.rejected.labels(PLATFORM, str(status)).inc()
                                ) if secret else None
        base = limits or SlackLimits()
        if cfg.rate_scale != 1.0:
            base = SlackLimits(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                                  "time_scale": base.time_scale * cfg.rate_scale})
        self.allowances = AllowanceRegistry(base, services.budgets.budgets)
        self.access = AccessPolicy(cfg.access)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.deliveries = 0  # listener invocations, for health checks and tests that wait on them
        self.draining = False
        self.connected = False  # listening (HTTP) or connected (Socket Mode): for /readyz
        self.resumer = SlackResumer(self)
        self.commands = SlashCommands(self)
        self.names = SlackNames(self.client, self._lookup_budgets)
        self.reader = ThreadReader(client=self.client, engine=services.engine, store=services.store, names=self.names,
                                   budget=lambda team: self.allowances.for_team(team).replies,
                                   limit=cfg.backfill_limit)
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self.app.command(cfg.slash_command)(self._on_command)
        self.feedback = SlackFeedback(self)
        self.assistant = SlackAssistant(self, route=self._on_event)
        self.home = AppHome(self)
        self.ask_about = AskAbout(self)

    def client(self, team: str) -> AsyncWebClient:
        """The workspace's Web API client for reads and one-off posts (raises NotInstalled if it has none)."""
        return self.clients.get(team).client

    async def _remember_workspace(self, context: Any, next_: Callable[[], Awaitable[Any]]) -> Any:
        """Every authorized request brings its workspace's bot token (one, or the one its install stored)."""
        if context.team_id and context.bot_token:
            self.clients.remember(context.team_id, context.bot_token)
        return await next_()

    def _lookup_budgets(self, team: str) -> tuple[WriteBudget, WriteBudget]:
        allowances = self.allowances.for_team(team)
        return allowances.user_lookup, allowances.channel_lookup

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._session

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("slack handler failed", exc_info=task.exception())

    async def idle(self) -> None:
        """Wait until every answer in flight has finished (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.allowances.drain(grace=60.0)  # deferred stream stops

    async def aclose(self, grace: float = 5.0) -> None:
        """Close after the engine has drained (or, after a crash, once this platform's answers are left for
        resumption): what is still running then is event intake, which finishes quickly."""
        await self.services.engine.suspend(PLATFORM)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.allowances.drain(grace)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def web_app(self, path: str = "/slack/events") -> web.Application:
        """HTTP mode: requests checked by the gate (adapters/slack/http_gate.py), then by Bolt, on `path`; and
        /healthz for load balancers."""
        async def events(request: web.Request) -> web.StreamResponse:
            if self.gate is None:
                return web.json_response({"ok": False, "error": "no signing secret configured"}, status=401)
            admitted = await self.gate.admit(request)
            if isinstance(admitted, web.Response):
                return admitted
            try:
                bolt_request = AsyncBoltRequest(body=admitted.body, query=request.query_string,
                                                headers=dict(request.headers))
                return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))
            except Exception as error:  # Bolt reads fields by assumed types; a payload of other shapes is refused
                return self.gate.refuse(request, 400, f"payload Bolt cannot read ({type(error).__name__})")

        async def healthz(request: web.Request) -> web.Response:
            # Draining: a load balancer stops sending here, while events that still arrive are stored for others.
            body = {"ok": not self.draining, "draining": self.draining, "answers_in_flight": len(self._tasks)}
            return web.json_response(body, status=503 if self.draining else 200)

        # The gate answers 413 itself; aiohttp's own limit is only the backstop for bodies without a length.
        application = web.Application(client_max_size=MAX_BODY_BYTES)
        application.add_routes([web.post(path, events), web.get("/healthz", healthz), *self.install_routes()])
        return application

    def install_routes(self) -> list[web.RouteDef]:
        """/slack/install and /slack/oauth_redirect when installs go through OAuth (none otherwise)."""
        return self.installs.routes(self.app) if self.installs is not None else []

    # -- surfaces -------------------------------------------------------------------------------------

    @staticmethod
    def reply_address(team: str, channel: str, thread_ts: str | None, recipient: str | None,
                      assistant: bool = False) -> dict[str, Any]:
        """Where an answer goes, stored with its turn: `surface(**address)` rebuilds it after a restart."""
        return {"team": team, "channel": channel, "thread_ts": thread_ts, "recipient": recipient,
                "assistant": assistant}

    def surface(self, team: str, channel: str, thread_ts: str | None, recipient: str | None,
                assistant: bool = False) -> SlackSurface:
        """`assistant`: a conversation in the agent surface (a DM thread), with its loading messages, streaming
        mode and Stop button."""
        cfg = self.config
        helper = cfg.assistant if assistant and cfg.assistant.enabled and thread_ts else None
        key = ConversationKey(PLATFORM, team, channel, thread_ts or "")
        return SlackSurface(client=self.clients.get(team).write_client, allowances=self.allowances.for_team(team),
                            channel=channel, thread_ts=thread_ts, team_id=team, recipient=recipient,
                            streaming=helper.streaming if helper else cfg.streaming, text_format=cfg.text_format,
                            max_chars=cfg.max_message_chars, overflow=cfg.overflow, assistant=helper is not None,
                            loading_messages=helper.loading_messages if helper else (), stops=self.assistant.stops,
                            stop_turn=lambda: self.services.engine.stop_conversation(key),
                            metrics=self.services.engine.metrics)

    # -- events ---------------------------------------------------------------------------------------

    async def _on_event(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        self.deliveries += 1
        reason = ignore_reason(event, bot_user_id=context.bot_user_id, bot_id=context.bot_id,
                               ignore_bots=self.config.access.ignore_bots)
        if reason is not None:
            log.debug("slack event ignored", extra={"reason": reason})
            return
        # A mention arrives as app_mention and as message (when subscribed to both); either may come alone (an
        # install without app_mention, a lost delivery). Both are handled: the shared channel:ts key answers once.
        ev = parse_event(body, event, context.bot_user_id, dm_threads=self.config.dm_threads)
        scopes = getattr(context.authorize_result, "bot_scopes", None) if context.authorize_result else None
        # The queue place is taken here, in delivery order, before the task's first await.
        ticket = self.services.engine.reserve(ConversationKey(PLATFORM, ev.team, ev.channel, ev.key_thread))
        self.spawn(self._answer(ev, context.bot_user_id, context.bot_id, scopes, ticket), name="slack-answer")

    def files(self, team: str) -> SlackFiles:
        clients = self.clients.get(team)
        return SlackFiles(client=clients.client, session=self.session, token=clients.token,
                          api_url=self.config.api_url)

    async def _answer(self, ev: SlackEvent, bot_user_id: str | None, bot_id: str | None,
                      scopes: list[str] | None, ticket: Ticket) -> None:
        engine = self.services.engine
        try:
            thread = ev.key_thread
            if not ev.is_dm and not ev.mentioned and await engine.answers_every_message(PLATFORM, ev.team,
                                                                                         ev.channel):
                ev = replace(ev, mentioned=True)  # an admin set `channel mentions optional` here
            if not ev.is_dm and not ev.mentioned:
                if not ev.in_thread:
                    return
                if not await engine.has_history(ConversationKey(PLATFORM, ev.team, ev.channel, thread)):
                    # With reply_in = "channel" the user may reply in the thread of the bot's own answer.
                    other = await engine.conversation_of(PLATFORM, ev.thread_ts or "")
                    if other is None or other.channel != ev.channel:
                        return
                    thread = other.thread
                    engine.release(ticket)
                    ticket = engine.reserve(ConversationKey(PLATFORM, ev.team, ev.channel, thread))
            text = await self.names.readable(ev.team, without_own_mention(ev.text, bot_user_id))
            reply_thread = ev.reply_thread(self.config.reply_in)
            assistant = ev.is_dm and reply_thread is not None
            message = incoming(ev, thread=thread, text=text, user_name=await self.names.user(ev.team, ev.user),
                               reply=self.reply_address(ev.team, ev.channel, reply_thread, ev.user, assistant))
            notes: tuple[str, ...] = ()
            if ev.mentioned and ev.in_thread and not ev.is_dm and self.access.check(message).allowed:
                note = await self.reader.read_once(ev, bot_user_id, bot_id)
                notes = (note,) if note else ()
            attachments = await self.files(ev.team).attachments(ev.files, scopes) if ev.files else ()
            message = replace(message, attachments=attachments, notes=notes)
            surface = self.surface(ev.team, ev.channel, reply_thread, ev.user, assistant)
            if assistant and reply_thread and not await engine.has_history(message.key):
                await self.assistant.title(ev.team, ev.channel, reply_thread, text)
            try:
                await engine.handle(message, surface, access=self.access, command_prefix="!", ticket=ticket)
            finally:
                surface.release()
        finally:
            engine.release(ticket)

    # -- slash command ----------------------------------------------------------------------------------

    async def _on_command(self, ack: Ack, command: dict[str, Any], respond: Any, context: Any) -> None:
        await ack()  # within Slack's 3 s, before anything slow
        self.deliveries += 1
        self.spawn(self.commands.run(command, respond), name="slack-command")
