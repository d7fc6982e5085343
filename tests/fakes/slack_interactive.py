"""Interactivity: views.open and views.publish as Slack checks them, and the payloads Slack POSTs when a user
presses a button in a message (block_actions) or submits a modal (view_submission), signed and form-encoded
(`payload=<json>`) like every interactive request.

A trigger id is good for one views.open within 3 seconds of the interaction that issued it
(`expired_trigger_id`, `exchanged_trigger_id`); a button can be pressed only if the message shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.slack_events import Delivery, EventSender
from tests.fakes.slack_payloads import Payloads
from tests.fakes.slack_state import JSON, Message, SlackState
from tests.fakes.slack_web import ApiError, CallContext, WebApi

TRIGGER_TTL = 3.0
MAX_VIEW_BLOCKS = 100
MAX_TITLE = 24


@dataclass(slots=True)
class OpenedView:
    id: str
    team_id: str
    user: str
    view: JSON
    at: float = field(default_factory=time.time)


class ViewMethods:
    def __init__(self, api: WebApi) -> None:
        self.state: SlackState = api.state
        self._triggers: dict[str, tuple[str, float]] = {}  # trigger id -> (user, issued at)
        self.opened: list[OpenedView] = []
        self.home: dict[str, list[JSON]] = {}  # user -> every home view published for them, oldest first
        api.handlers.update({"views.open": self.open, "views.publish": self.publish})

    def issue_trigger(self, user: str) -> str:
        trigger = EventSender.trigger_id()
        self._triggers[trigger] = (user, time.monotonic())
        return trigger

    async def open(self, ctx: CallContext) -> JSON:
        trigger = ctx.str_param("trigger_id")
        issued = self._triggers.get(trigger or "")
        if issued is None:
            raise ApiError("invalid_trigger_id")
        user, at = issued
        if at < 0:
            raise ApiError("exchanged_trigger_id")
        if time.monotonic() - at > TRIGGER_TTL:
            raise ApiError("expired_trigger_id")
        view = self._view(ctx, "modal")
        self._triggers[trigger or ""] = (user, -1.0)
        opened = OpenedView(self.state.new_id("V"), ctx.ws.team_id, user, view)
        self.opened.append(opened)
        return {"ok": True, "view": {**view, "id": opened.id, "team_id": ctx.ws.team_id, "state": {"values": {}}}}

    async def publish(self, ctx: CallContext) -> JSON:
        user = ctx.str_param("user_id")
        if user is None or user not in self.state.users:
            raise ApiError("user_not_found")
        view = self._view(ctx, "home")
        self.home.setdefault(user, []).append(view)
        return {"ok": True, "view": {**view, "id": self.state.new_id("V"), "team_id": ctx.ws.team_id}}

    @staticmethod
    def _view(ctx: CallContext, kind: str) -> JSON:
        view = ctx.json_param("view")
        if not isinstance(view, dict) or view.get("type") != kind:
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"view.type must be {kind}"]})
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
            raise ApiError("invalid_arguments", response_metadata={"messages": ["view.blocks: 0-100 blocks"]})
        if kind == "modal":
            title = (view.get("title") or {}).get("text", "")
            if not title or len(title) > MAX_TITLE:
                raise ApiError("invalid_arguments",
                               response_metadata={"messages": [f"title must be 1-{MAX_TITLE} characters"]})
            if any(b.get("type") == "input" for b in blocks) and not view.get("submit"):
                raise ApiError("invalid_arguments", response_metadata={"messages": ["inputs need a submit"]})
        return view


class Interactive:
    """Sends what a user's clicks make Slack send to the app's interactivity Request URL."""

    def __init__(self, state: SlackState, sender: EventSender, views: ViewMethods, payloads: Payloads) -> None:
        self._state = state
        self._sender = sender
        self._views = views
        self._payloads = payloads

    def _user(self, user_id: str) -> JSON:
        user = self._state.users[user_id]
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": user.team_id}

    def _team(self, team_id: str) -> JSON:
        ws = self._state.workspaces[team_id]
        return {"id": ws.team_id, "domain": ws.domain}

    async def _send(self, url: str, payload: JSON) -> Delivery:
        return await self._sender.send_interactive(url, payload)

    async def press_feedback(self, url: str, msg: Message, *, user: str, positive: bool) -> Delivery:
        """`user` presses the thumbs-up (positive) or thumbs-down of the feedback_buttons `msg` shows."""
        for block in msg.blocks or []:
            for element in block.get("elements", []) if block.get("type") == "context_actions" else []:
                if element.get("type") == "feedback_buttons":
                    button = element["positive_button" if positive else "negative_button"]
                    action = {"type": "feedback_buttons", "action_id": element["action_id"],
                              "block_id": block.get("block_id") or self._state.new_id("blk"),
                              "value": button["value"], "action_ts": f"{time.time():.6f}"}
                    return await self._send(url, self._block_actions(msg, user, action))
        raise LookupError(f"message {msg.ts} shows no feedback buttons")

    def _block_actions(self, msg: Message, user: str, action: JSON) -> JSON:
        ws = self._state.workspaces[msg.team]
        container = {"type": "message", "message_ts": msg.ts, "channel_id": msg.channel, "is_ephemeral": False}
        if msg.thread_ts:
            container["thread_ts"] = msg.thread_ts
        channel = self._state.channels[msg.channel]
        return {
            "type": "block_actions", "user": self._user(user), "api_app_id": ws.app_id,
            "token": "verification-token", "container": container,
            "trigger_id": self._views.issue_trigger(user), "team": self._team(msg.team), "enterprise": None,
            "is_enterprise_install": False, "channel": {"id": channel.id, "name": channel.name},
            "message": {"type": "message", "ts": msg.ts, "text": msg.text, "user": msg.user,
                        "bot_id": msg.bot_id, "blocks": msg.blocks or []},
            "state": {"values": {}}, "response_url": f"https://hooks.slack.invalid/actions/{ws.team_id}/x",
            "actions": [action],
        }

    async def message_shortcut(self, url: str, msg: Message, *, user: str, callback_id: str) -> Delivery:
        """`user` picks a message shortcut from `msg`'s "…" menu (a message_action payload)."""
        ws = self._state.workspaces[msg.team]
        channel = self._state.channels[msg.channel]
        message = {k: v for k, v in self._payloads.render(msg).items()
                   if k not in ("channel", "channel_type", "event_ts", "team")}
        payload = {"type": "message_action", "token": "verification-token", "action_ts": f"{time.time():.6f}",
                   "team": self._team(msg.team), "user": self._user(user),
                   "channel": {"id": channel.id, "name": channel.name or "directmessage"},
                   "is_enterprise_install": False, "enterprise": None, "callback_id": callback_id,
                   "trigger_id": self._views.issue_trigger(user), "message_ts": msg.ts, "message": message,
                   "response_url": f"https://hooks.slack.invalid/actions/{ws.team_id}/shortcut"}
        return await self._send(url, payload)

    async def submit(self, url: str, opened: OpenedView, values: dict[str, str]) -> Delivery:
        """The user fills in the inputs of an opened modal (by action id) and presses its submit button."""
        state: dict[str, Any] = {}
        for block in opened.view.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            value = values.get(element["action_id"])
            if not value and not block.get("optional", False):
                raise ValueError(f"Slack's client does not submit with the required {element['action_id']} empty")
            state[block.get("block_id", element["action_id"])] = {
                element["action_id"]: {"type": element["type"], "value": value or None}}
        view = {**opened.view, "id": opened.id, "team_id": opened.team_id, "state": {"values": state},
                "hash": f"{int(time.time())}.abc", "app_id": self._state.workspaces[opened.team_id].app_id}
        payload = {"type": "view_submission", "team": self._team(opened.team_id), "user": self._user(opened.user),
                   "api_app_id": view["app_id"], "token": "verification-token",
                   "trigger_id": self._views.issue_trigger(opened.user), "view": view, "response_urls": [],
                   "is_enterprise_install": False, "enterprise": None}
        return await self._send(url, payload)
