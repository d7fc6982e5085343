"""Slack's agent surface: the app in the top bar and split view, each conversation its own thread.

Bolt's `AsyncAssistant` middleware recognises the surface's events: a new conversation
(`assistant_thread_started`) gets the configured suggested prompts; a user's message in a DM thread is routed to
the adapter's ordinary answer path (every DM thread is a conversation of its own). The agent view, which has no
thread-started event, gets the prompts when the user opens the Messages tab. Titles (from a conversation's first
question) and prompts come from the workspace's assistant allowance; a workspace whose app or plan lacks the
surface (`not_agent_app`, a missing scope) is noted once and asked no more.

Stop: answers stream with `is_stoppable`; Slack then shows Stop, sends `message_stream_stopped` when it is
pressed and refuses further appends with `stopped_by_user`. Either one ends the answer like `stop`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError

from adapters.slack.errors import error_code

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)

MAX_TITLE = 80
MAX_PROMPTS = 4  # Slack shows at most four
# Errors meaning "this workspace has no agent surface": asking again cannot help.
UNSUPPORTED = frozenset({"not_agent_app", "missing_scope", "not_allowed_token_type", "unknown_method",
                         "feature_not_enabled"})


class StopButtons:
    """Open stoppable streams, by channel and message ts, and how to stop the answer each belongs to."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Callable[[], object]] = {}

    def register(self, channel: str, ts: str, stop: Callable[[], object]) -> None:
        self._open[(channel, ts)] = stop

    def unregister(self, channel: str, ts: str) -> None:
        self._open.pop((channel, ts), None)

    def press(self, channel: str, ts: str) -> bool:
        stop = self._open.pop((channel, ts), None)
        if stop is None:
            return False
        stop()
        return True


class SlackAssistant:
    def __init__(self, adapter: SlackAdapter, route: Callable[..., Any]) -> None:
        self._adapter = adapter
        self._config = adapter.config.assistant
        self._route = route
        self._unsupported: set[str] = set()  # workspaces without the agent surface
        self._prompted: dict[tuple[str, str], float] = {}
        self.stops = StopButtons()
        assistant = AsyncAssistant(logger=logging.getLogger("slack_bolt.Assistant"))
        assistant.thread_started(self._on_started)
        # Bolt's default saves the context in the bot's first reply (conversations.history + chat.update per
        # change); kimibot does not read it back, so it is not kept.
        assistant.thread_context_changed(self._ignore)
        assistant.user_message(self._on_user_message)
        adapter.app.use(assistant)
        adapter.app.event("message_stream_stopped")(self._on_stream_stopped)

    @property
    def prompts(self) -> list[dict[str, str]]:
        return [p.model_dump() for p in self._config.suggested_prompts]

    async def _on_started(self, body: dict[str, Any], payload: dict[str, Any],
                          set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        self._adapter.deliveries += 1
        team = str(body.get("team_id") or "")
        if not self._config.enabled or not self.prompts or team in self._unsupported:
            return
        thread = payload.get("assistant_thread") if isinstance(payload.get("assistant_thread"), dict) else {}
        context = thread.get("context") if isinstance(thread.get("context"), dict) else {}
        prompts = self.prompts_for(context.get("channel_id"))
        if prompts and await self._budget(team):
            await self._call(team, "prompts", set_suggested_prompts(prompts=prompts))

    def prompts_for(self, channel: object) -> list[dict[str, str]]:
        """The configured prompts; opened beside a channel (Slack gives it as the thread's context), the channel
        prompts first, naming it (`{channel}` becomes a reference Kimi reads as the channel's name)."""
        if not isinstance(channel, str) or not channel.startswith(("C", "G")):
            return self.prompts[:MAX_PROMPTS]
        named = [{"title": p.title, "message": p.message.replace("{channel}", f"<#{channel}>")}
                 for p in self._config.channel_prompts]
        return [*named, *self.prompts][:MAX_PROMPTS]

    async def _ignore(self) -> None:
        return None

    async def _on_user_message(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        await self._route(body, event, context)

    async def messages_tab_opened(self, team: str, dm: str, user: str) -> None:
        """Agent view: no thread-started event, so the prompts are set for the Messages tab when it opens (at
        most once a minute per user)."""
        if not self._config.enabled or not self.prompts or team in self._unsupported or not dm:
            return
        now = time.monotonic()
        if now - self._prompted.get((team, user), -60.0) < 60.0:
            return
        self._prompted[(team, user)] = now
        if len(self._prompted) > 10_000:
            self._prompted = {k: v for k, v in self._prompted.items() if now - v < 60.0}
        if await self._budget(team):
            await self._call(team, "prompts", self._adapter.client(team).assistant_threads_setSuggestedPrompts(
                channel_id=dm, prompts=self.prompts))

    async def title(self, team: str, channel: str, thread_ts: str, question: str) -> None:
        """Name a new conversation after its first question (shown in the agent surface's history)."""
        if not self._config.enabled or team in self._unsupported or not question.strip():
            return
        title = " ".join(question.split())
        title = title if len(title) <= MAX_TITLE else title[:MAX_TITLE - 1].rstrip() + "…"
        if await self._budget(team):
            await self._call(team, "title", self._adapter.client(team).assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread_ts, title=title))

    async def _budget(self, team: str) -> bool:
        # Cosmetic calls: never queued behind a busy workspace's allowance.
        return await self._adapter.allowances.for_team(team).assistant.try_acquire()

    async def _call(self, team: str, what: str, request: Any) -> None:
        try:
            await request
        except SlackApiError as error:
            code = error_code(error)
            if code in UNSUPPORTED:
                self._unsupported.add(team)
                log.info("slack agent surface unavailable in this workspace; using plain DMs",
                         extra={"team": team, "error": code})
            else:
                log.info("slack assistant call failed", extra={"what": what, "error": code})

    async def _on_stream_stopped(self, event: dict[str, Any]) -> None:
        # The event's shape is not in Slack's reference yet: read the fields defensively.
        message = event.get("message") if isinstance(event.get("message"), dict) else {}
        channel = event.get("channel") or event.get("channel_id") or message.get("channel")
        ts = event.get("ts") or event.get("message_ts") or message.get("ts")
        if isinstance(channel, str) and isinstance(ts, str):
            self.stops.press(channel, ts)
