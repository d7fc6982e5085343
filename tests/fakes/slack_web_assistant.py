"""assistant.threads.setSuggestedPrompts and setTitle (reference/slack.md §1c), the assistant_thread_started event
of the split view, and the user's Stop on a stoppable native stream.

* setSuggestedPrompts (Tier 4, `assistant:write`): at most 4 prompts, each a title and a message; `thread_ts` is
  optional (agent view sets the prompts for the app's Messages tab). `not_agent_app` when the app has no agent
  surface (`WebOptions.agent_app`).
* setTitle (Tier 4, `assistant:write`): the thread must exist.
* Stop: a stream started with `is_stoppable` shows Stop; once pressed the stream is over (`stopped_by_user` on the
  next append) and apps subscribed to `message_stream_stopped` get that event.
"""

from __future__ import annotations

import time

from tests.fakes.slack_state import JSON, Message, SlackState
from tests.fakes.slack_web import ApiError, CallContext, WebApi

MAX_PROMPTS = 4


class AssistantMethods:
    def __init__(self, api: WebApi) -> None:
        self.api = api
        self.state: SlackState = api.state
        self.prompts: dict[tuple[str, str], list[JSON]] = {}  # (channel, thread_ts or "") -> newest prompts
        self.titles: dict[tuple[str, str], str] = {}
        api.handlers.update({"assistant.threads.setSuggestedPrompts": self.set_prompts,
                             "assistant.threads.setTitle": self.set_title})

    def _agent(self, ctx: CallContext) -> None:
        ctx.require_scope("assistant:write")
        if not self.api.options.agent_app:
            raise ApiError("not_agent_app")

    def _dm(self, ctx: CallContext) -> str:
        channel = ctx.str_param("channel_id")
        ch = self.state.channels.get(channel or "")
        if ch is None or ch.team_id != ctx.ws.team_id:
            raise ApiError("channel_not_found", detail="Invalid channel_id")
        return ch.id

    async def set_prompts(self, ctx: CallContext) -> JSON:
        self._agent(ctx)
        channel = self._dm(ctx)
        thread_ts = ctx.str_param("thread_ts")
        if thread_ts is not None and self.state.get(channel, thread_ts) is None:
            raise ApiError("invalid_thread_ts")
        prompts = ctx.json_param("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_PROMPTS or not all(
                isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            raise ApiError("invalid_arguments", response_metadata={"messages": ["prompts: 1-4 of title+message"]})
        self.prompts[(channel, thread_ts or "")] = prompts
        return {"ok": True}

    async def set_title(self, ctx: CallContext) -> JSON:
        self._agent(ctx)
        channel = self._dm(ctx)
        thread_ts = ctx.required("thread_ts")
        if self.state.get(channel, thread_ts) is None:
            raise ApiError("invalid_thread_ts")
        title = ctx.str_param("title")
        if not title:
            raise ApiError("invalid_arguments")
        self.titles[(channel, thread_ts)] = title
        return {"ok": True}

    def open_thread(self, team_id: str, dm: str, user: str, context_channel: str | None = None) -> JSON:
        """The user opens a new conversation in the split view: Slack makes the thread's root message and sends
        assistant_thread_started (bolt's recorded fixture shape)."""
        ws = self.state.workspaces[team_id]
        root = self.state.insert(Message(channel=dm, ts=self.state.new_ts(), team=team_id, text="New chat",
                                         user=ws.bot_user_id, bot_id=ws.bot_id, app_id=ws.app_id,
                                         subtype="assistant_app_thread"))
        context: JSON = {"channel_id": context_channel, "team_id": team_id, "enterprise_id": None} \
            if context_channel else {}
        return {"type": "assistant_thread_started",
                "assistant_thread": {"user_id": user, "context": context, "channel_id": dm, "thread_ts": root.ts},
                "event_ts": f"{time.time():.6f}"}

    def press_stop(self, channel: str, ts: str, user: str) -> JSON:
        """The user presses Stop on a stoppable stream; returns the message_stream_stopped event Slack sends."""
        msg = self.state.get(channel, ts)
        if msg is None or msg.stream is None or not msg.stream.stoppable or msg.stream.state != "streaming":
            raise LookupError(f"message {ts} shows no Stop button")
        msg.stream.state = "stopped_by_user"
        msg.record("stopped_by_user")
        return {"type": "message_stream_stopped", "channel": channel, "ts": ts, "user": user,
                "event_ts": f"{time.time():.6f}"}
