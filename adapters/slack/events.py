"""Slack event payloads → facts the adapter routes on, and the conversation key table.

Key table (docs/ARCHITECTURE.md): a channel mention is (slack, team, channel, thread_ts or the mention's ts);
a DM is (slack, team, D-channel, thread_ts or its own ts), or with `dm_threads` off (slack, team, D-channel, thread_ts
or "dm").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.types import IncomingAttachment, IncomingMessage

PLATFORM = "slack"
# Subtypes that carry something a user said; edits, deletions, joins and the like are not turns.
ANSWERABLE_SUBTYPES = frozenset({"", "file_share", "thread_broadcast"})


@dataclass(frozen=True, slots=True)
class SlackEvent:
    kind: str  # "app_mention" or "message"
    team: str
    channel: str
    ts: str
    thread_ts: str | None
    user: str
    text: str
    event_id: str
    is_dm: bool
    mentioned: bool
    files: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # A top-level DM starts a conversation of its own, answered in its thread (Slack's agent view).
    dm_threads: bool = False

    @property
    def in_thread(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def key_thread(self) -> str:
        if self.is_dm and not self.dm_threads:
            return self.thread_ts if self.in_thread and self.thread_ts else "dm"
        return self.thread_ts if self.in_thread and self.thread_ts else self.ts

    def reply_thread(self, reply_in: str) -> str | None:
        """Where the answer goes: a thread ts, or None for the channel itself."""
        if self.in_thread:
            return self.thread_ts
        if self.is_dm:
            return self.ts if self.dm_threads else None
        if reply_in == "channel":
            return None
        return self.ts

    @property
    def dedupe_keys(self) -> tuple[str, ...]:
        # The event id catches retries; channel:ts catches the same message arriving as app_mention and message.
        keys = [f"{self.channel}:{self.ts}"]
        if self.event_id:
            keys.insert(0, f"event:{self.event_id}")
        return tuple(keys)


def ignore_reason(event: dict[str, Any], *, bot_user_id: str | None, bot_id: str | None,
                  ignore_bots: bool) -> str | None:
    """Why an event is not a turn, or None when it may be one."""
    subtype = str(event.get("subtype") or "")
    if subtype not in ANSWERABLE_SUBTYPES:
        return f"subtype {subtype}"
    if event.get("hidden"):
        return "hidden"
    if (bot_user_id and event.get("user") == bot_user_id) or (bot_id and event.get("bot_id") == bot_id):
        return "own message"
    if ignore_bots and (event.get("bot_id") or subtype == "bot_message"):
        return "bot message"
    if not event.get("user") or not event.get("channel") or not event.get("ts"):
        return "incomplete"
    return None


def mention_pattern(bot_user_id: str | None) -> re.Pattern[str] | None:
    return re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*") if bot_user_id else None


def without_own_mention(text: str, bot_user_id: str | None) -> str:
    """Drop the bot's own mention; other references are turned into names by adapters/slack/names.py."""
    pattern = mention_pattern(bot_user_id)
    return (pattern.sub("", text) if pattern is not None else text).strip()


def parse_event(body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None, *,
                dm_threads: bool = False) -> SlackEvent:
    channel = str(event.get("channel") or "")
    text = str(event.get("text") or "")
    pattern = mention_pattern(bot_user_id)
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    return SlackEvent(
        kind=str(event.get("type") or "message"),
        team=str(body.get("team_id") or event.get("team") or ""),
        channel=channel,
        ts=str(event.get("ts") or ""),
        thread_ts=str(event["thread_ts"]) if event.get("thread_ts") else None,
        user=str(event.get("user") or ""),
        text=text,
        event_id=str(body.get("event_id") or ""),
        is_dm=is_dm,
        mentioned=event.get("type") == "app_mention" or bool(pattern and pattern.search(text)),
        files=tuple(f for f in event.get("files") or () if isinstance(f, dict)),
        dm_threads=dm_threads,
    )


def incoming(ev: SlackEvent, *, thread: str, text: str, attachments: tuple[IncomingAttachment, ...] = (),
             user_name: str = "", reply: dict[str, Any] | None = None,
             notes: tuple[str, ...] = ()) -> IncomingMessage:
    """`text`: the message as people read it (own mention removed, references by name)."""
    return IncomingMessage(
        platform=PLATFORM, workspace=ev.team, channel=ev.channel, thread=thread, message_id=ev.ts,
        user=ev.user, text=text, attachments=attachments, mentioned=ev.mentioned, is_dm=ev.is_dm,
        user_name=user_name or ev.user, dedupe_keys=ev.dedupe_keys, reply=reply or {}, notes=notes,
    )


def backfill_role(message: dict[str, Any], *, bot_user_id: str | None, bot_id: str | None) -> str:
    own = (bot_id and message.get("bot_id") == bot_id) or (bot_user_id and message.get("user") == bot_user_id)
    return "assistant" if own else "user"
