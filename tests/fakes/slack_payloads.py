"""Events API payloads shaped like reference/slack.md §2-3 (bolt's own fixtures and the docs examples).

Builders that describe a user doing something (posting, editing, deleting) also change the fake's state, so
the Web API agrees with the events: conversations.replies returns the message an event announced.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Sequence

from tests.fakes.slack_state import JSON, Message, SlackState, Workspace

_ID_CHARS = string.ascii_uppercase + string.digits


def _rich_text(text: str) -> list[JSON]:
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_hex(2),
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


class Payloads:
    def __init__(self, state: SlackState, root: str, default_team: str) -> None:
        self.state = state
        self.root = root
        self.default_team = default_team
        self.verification_token = "fake-verification-token"

    def _ws(self, team_id: str | None) -> Workspace:
        return self.state.workspaces[team_id or self.default_team]

    def new_event_id(self) -> str:
        return "Ev" + "".join(secrets.choice(_ID_CHARS) for _ in range(10))

    def envelope(self, event: JSON, team_id: str | None = None, event_id: str | None = None) -> JSON:
        ws = self._ws(team_id)
        channel = event.get("channel") or event.get("channel_id") or ws.team_id
        return {
            "token": self.verification_token,
            "team_id": ws.team_id,
            "context_team_id": ws.team_id,
            "context_enterprise_id": None,
            "api_app_id": ws.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or self.new_event_id(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": ws.team_id,
                    "user_id": ws.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "authed_users": [ws.bot_user_id],
            "is_ext_shared_channel": False,
            "event_context": f"4-{event.get('type', 'event')}-{ws.team_id}-{channel}",
        }

    # --- rendering stored messages -------------------------------------------------------------------

    def _channel_type(self, channel: str) -> str:
        ch = self.state.channels.get(channel)
        return ch.channel_type if ch else "channel"

    def render(self, msg: Message, event_type: str = "message") -> JSON:
        """The inner `event` for a stored message, as message.* / app_mention deliver it."""
        event: JSON = {
            "type": event_type,
            "text": msg.text,
            "ts": msg.ts,
            "team": msg.team,
            "channel": msg.channel,
            "event_ts": msg.ts,
        }
        if msg.bot_id:
            event["bot_id"] = msg.bot_id
            stored = self.state.message_json(msg, self.root)
            for key in ("app_id", "bot_profile"):
                if key in stored:
                    event[key] = stored[key]
            if msg.subtype:
                event["subtype"] = msg.subtype
            if msg.username:
                event["username"] = msg.username
            if msg.user:
                event["user"] = msg.user
        else:
            event["user"] = msg.user
            event["client_msg_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{msg.channel}/{msg.ts}"))
            event["blocks"] = msg.blocks or _rich_text(msg.text)
        if msg.files:
            event["files"] = [self.state.files[f].to_json(self.root) for f in msg.files]
            event["upload"] = False
            event["display_as_bot"] = False
            if event_type == "message":
                event["subtype"] = "file_share"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            event["thread_ts"] = msg.thread_ts
            parent = self.state.get(msg.channel, msg.thread_ts)
            if parent is not None and parent.user:
                event["parent_user_id"] = parent.user
        if event_type == "message":
            event["channel_type"] = self._channel_type(msg.channel)
        return event

    # --- user actions -----------------------------------------------------------------------------------

    def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: Sequence[str] = (),
        ts: str | None = None,
    ) -> Message:
        ch = self.state.channels[channel]
        msg = Message(
            channel=channel,
            ts=ts or self.state.new_ts(),
            team=ch.team_id,
            text=text,
            user=user,
            thread_ts=thread_ts,
            files=list(files),
        )
        msg.blocks = _rich_text(text)
        for file_id in files:
            f = self.state.files[file_id]
            if channel not in f.channels:
                f.channels.append(channel)
        return self.state.insert(msg, "post")

    def app_mention(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, files: Sequence[str] = ()
    ) -> JSON:
        """Store a user message that mentions the bot and return the `app_mention` event for it.

        Slack also delivers a `message` event for the same message (other event_id): `message_for(...)`.
        """
        bot = self.state.workspaces[self.state.channels[channel].team_id].bot_user_id
        if f"<@{bot}>" not in text:
            text = f"<@{bot}> {text}"
        msg = self.post_as_user(channel, user, text, thread_ts=thread_ts, files=files)
        return self.render(msg, "app_mention")

    def message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, files: Sequence[str] = ()
    ) -> JSON:
        """A user message in a channel, thread or DM (file_share when files are attached)."""
        return self.render(self.post_as_user(channel, user, text, thread_ts=thread_ts, files=files))

    def message_for(self, channel: str, ts: str) -> JSON:
        msg = self.state.messages[channel][ts]
        return self.render(msg)

    def bot_message(
        self,
        channel: str,
        text: str,
        *,
        bot_id: str = "B0OTHERBOT",
        username: str = "otherbot",
        thread_ts: str | None = None,
    ) -> JSON:
        """A legacy integration's post (subtype bot_message, no user)."""
        ch = self.state.channels[channel]
        msg = Message(
            channel=channel,
            ts=self.state.new_ts(),
            team=ch.team_id,
            text=text,
            bot_id=bot_id,
            thread_ts=thread_ts,
            subtype="bot_message",
            username=username,
        )
        return self.render(self.state.insert(msg, "post"))

    def snapshot(self, msg: Message) -> JSON:
        """A message as it appears inside message_changed/message_deleted (no channel_type)."""
        rendered = self.render(msg)
        rendered.pop("channel_type", None)
        return rendered

    def changed_event(self, msg: Message, previous: JSON) -> JSON:
        current = self.snapshot(msg)
        current["edited"] = {"user": msg.user or msg.bot_id, "ts": self.state.new_ts()}
        event_ts = self.state.new_ts()
        return {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "message": current,
            "previous_message": previous,
            "channel": msg.channel,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": self._channel_type(msg.channel),
        }

    def deleted_event(self, msg: Message, previous: JSON) -> JSON:
        event_ts = self.state.new_ts()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "deleted_ts": msg.ts,
            "previous_message": previous,
            "channel": msg.channel,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": self._channel_type(msg.channel),
        }

    def message_changed(self, channel: str, ts: str, new_text: str) -> JSON:
        """A user edits their message (or Slack re-renders one); hidden, carries both versions."""
        msg = self.state.messages[channel][ts]
        previous = self.snapshot(msg)
        msg.text = new_text
        if not msg.bot_id:
            msg.blocks = _rich_text(new_text)
        msg.record("user_edit")
        return self.changed_event(msg, previous)

    def message_deleted(self, channel: str, ts: str) -> JSON:
        msg = self.state.messages[channel][ts]
        previous = self.snapshot(msg)
        msg.deleted = True
        return self.deleted_event(msg, previous)
