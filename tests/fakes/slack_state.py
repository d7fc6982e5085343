"""In-memory Slack workspace state: workspaces, users, channels, files, messages with every version."""

from __future__ import annotations

import itertools
import mimetypes
import time
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass(slots=True)
class Workspace:
    team_id: str
    name: str
    domain: str
    bot_token: str
    scopes: list[str]
    bot_user_id: str
    bot_id: str
    app_id: str
    bot_name: str = "kimibot"


@dataclass(slots=True)
class User:
    id: str
    team_id: str
    name: str
    real_name: str
    is_bot: bool = False
    tz: str = "Europe/Berlin"
    locale: str = "en-US"

    def to_json(self, include_locale: bool = False) -> JSON:
        data: JSON = {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": self.real_name,
                "display_name": self.name,
                "image_72": f"https://avatars.example/{self.id}_72.png",
                "team": self.team_id,
            },
        }
        if include_locale:
            data["locale"] = self.locale
        return data


@dataclass(slots=True)
class Channel:
    id: str
    team_id: str
    name: str
    is_im: bool = False
    is_private: bool = False
    is_member: bool = True
    user: str | None = None  # the human on the other side of a DM
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def channel_type(self) -> str:
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    @property
    def history_scope(self) -> str:
        return {"im": "im:history", "group": "groups:history"}.get(self.channel_type, "channels:history")

    def to_json(self) -> JSON:
        data: JSON = {
            "id": self.id,
            "created": self.created,
            "is_archived": False,
            "is_channel": not self.is_im and not self.is_private,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_mpim": False,
            "is_private": self.is_private or self.is_im,
            "is_member": self.is_member,
            "context_team_id": self.team_id,
        }
        if self.is_im:
            data["user"] = self.user
        else:
            data["name"] = self.name
            data["name_normalized"] = self.name
        return data


@dataclass(slots=True)
class SlackFile:
    id: str
    team_id: str
    name: str
    mimetype: str
    content: bytes
    user: str
    bot_can_access: bool = True
    channels: list[str] = field(default_factory=list)
    thumbs: dict[int, bytes] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def filetype(self) -> str:
        ext = mimetypes.guess_extension(self.mimetype) or ""
        return ext.lstrip(".") or "binary"

    def url(self, root: str, kind: str = "private") -> str:
        base = f"{root}files-pri/{self.team_id}-{self.id}"
        return f"{base}/download/{self.name}" if kind == "download" else f"{base}/{self.name}"

    def to_json(self, root: str) -> JSON:
        data: JSON = {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.name,
            "mimetype": self.mimetype,
            "filetype": self.filetype,
            "pretty_type": self.filetype.upper(),
            "user": self.user,
            "editable": False,
            "size": len(self.content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": self.url(root),
            "url_private_download": self.url(root, "download"),
            "permalink": f"{root}files/{self.user}/{self.id}/{self.name}",
            "channels": list(self.channels),
            "groups": [],
            "ims": [],
            "has_rich_preview": False,
        }
        for size in sorted(self.thumbs):
            data[f"thumb_{size}"] = f"{root}files-tmb/{self.team_id}-{self.id}/thumb_{size}/{self.name}"
        return data


@dataclass(slots=True)
class Version:
    """One state of a message; `source` says which call produced it (post, update, stream_append, ...)."""

    text: str
    blocks: list[JSON] | None
    at: float
    source: str


@dataclass(slots=True)
class StreamState:
    state: str  # "streaming" or "stopped"
    recipient_user_id: str | None
    recipient_team_id: str | None
    started_at: float
    last_activity: float
    chunks: list[JSON] = field(default_factory=list)
    appends: int = 0
    stoppable: bool = False  # shows Slack's Stop button


@dataclass(slots=True)
class Message:
    channel: str
    ts: str
    team: str
    text: str
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    blocks: list[JSON] | None = None
    metadata: JSON | None = None
    files: list[str] = field(default_factory=list)
    subtype: str | None = None
    username: str | None = None
    deleted: bool = False
    versions: list[Version] = field(default_factory=list)
    stream: StreamState | None = None

    @property
    def edited(self) -> bool:
        return len(self.versions) > 1

    def record(self, source: str) -> None:
        blocks = [dict(b) for b in self.blocks] if self.blocks is not None else None
        self.versions.append(Version(self.text, blocks, time.time(), source))


class SlackState:
    """Everything the fake knows; tests read it directly or through the facade's helpers."""

    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.tokens: dict[str, str] = {}
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.files: dict[str, SlackFile] = {}
        self.messages: dict[str, dict[str, Message]] = {}
        # (channel, thread_ts) -> [(status, time)]; "" marks a clear.
        self.statuses: dict[tuple[str, str], list[tuple[str, float]]] = {}
        self._last_ts_us = 0
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):09d}"

    def new_ts(self) -> str:
        """Strictly increasing "<unix>.<6 digits>" like Slack's message ts."""
        now_us = int(time.time() * 1_000_000)
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def workspace_for_token(self, token: str) -> Workspace | None:
        team = self.tokens.get(token)
        return self.workspaces.get(team) if team else None

    def insert(self, msg: Message, source: str = "post") -> Message:
        msg.record(source)
        self.messages.setdefault(msg.channel, {})[msg.ts] = msg
        if msg.thread_ts and msg.thread_ts != msg.ts:
            parent = self.get(msg.channel, msg.thread_ts)
            if parent is not None and parent.thread_ts is None:
                parent.thread_ts = parent.ts  # Slack marks a message as a thread parent once it has a reply
        return msg

    def get(self, channel: str, ts: str) -> Message | None:
        msg = self.messages.get(channel, {}).get(ts)
        return None if msg is None or msg.deleted else msg

    def channel_messages(self, channel: str) -> list[Message]:
        return sorted(
            (m for m in self.messages.get(channel, {}).values() if not m.deleted), key=lambda m: float(m.ts)
        )

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Parent first, then replies in ts order (what conversations.replies returns)."""
        parent = self.get(channel, thread_ts)
        replies = [
            m for m in self.channel_messages(channel) if m.thread_ts == thread_ts and m.ts != thread_ts
        ]
        return ([parent] if parent else []) + replies

    def message_json(self, msg: Message, root: str) -> JSON:
        data: JSON = {"type": "message", "ts": msg.ts, "text": msg.text, "team": msg.team}
        if msg.user:
            data["user"] = msg.user
        if msg.subtype:
            data["subtype"] = msg.subtype
        if msg.bot_id:
            data["bot_id"] = msg.bot_id
            ws = self.workspaces.get(msg.team)
            if ws and ws.bot_id == msg.bot_id:
                data["app_id"] = ws.app_id
                data["bot_profile"] = {
                    "id": ws.bot_id,
                    "app_id": ws.app_id,
                    "name": ws.bot_name,
                    "team_id": ws.team_id,
                    "deleted": False,
                }
        if msg.username:
            data["username"] = msg.username
        if msg.blocks is not None:
            data["blocks"] = msg.blocks
        if msg.files:
            data["files"] = [self.files[f].to_json(root) for f in msg.files if f in self.files]
            data["upload"] = False
        if msg.thread_ts:
            data["thread_ts"] = msg.thread_ts
            if msg.thread_ts == msg.ts:
                replies = self.thread(msg.channel, msg.ts)[1:]
                data["reply_count"] = len(replies)
                data["reply_users"] = sorted({r.user for r in replies if r.user})
                data["reply_users_count"] = len(data["reply_users"])
                if replies:
                    data["latest_reply"] = replies[-1].ts
            else:
                parent = self.get(msg.channel, msg.thread_ts)
                if parent and parent.user:
                    data["parent_user_id"] = parent.user
        if msg.edited and msg.stream is None:
            data["edited"] = {"user": msg.user or "", "ts": f"{msg.versions[-1].at:.6f}"}
        return data
