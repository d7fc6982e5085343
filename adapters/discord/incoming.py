"""Discord objects → the core's IncomingMessage pieces: text, attachments, roles and the places access checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import discord

from adapters.downloads import Downloads
from bot.types import IncomingAttachment, IncomingMessage

PLATFORM = "discord"
DM_WORKSPACE = "@me"
DM_THREAD = "dm"
THREAD_NAME_MAX = 90
QUOTE_MAX = 4000


@dataclass(frozen=True, slots=True)
class Place:
    """Where a conversation lives (its key) and the extra ids the access rules may match."""

    workspace: str
    channel: str
    thread: str
    parents: tuple[str, ...] = ()
    is_dm: bool = False


USER_REF = re.compile(r"<@!?(\d+)>")
ROLE_REF = re.compile(r"<@&(\d+)>")
CHANNEL_REF = re.compile(r"<#(\d+)>")
EMOJI_REF = re.compile(r"<a?:(\w+):\d+>")
TIME_REF = re.compile(r"<t:(-?\d+)(?::[tTdDfFR])?>")


def is_own_role(role: discord.Role, me: discord.abc.User) -> bool:
    """The managed role Discord gives the bot in each guild (autocomplete offers it for "@Kimi")."""
    tags = role.tags
    return tags is not None and tags.bot_id == me.id


def mentions_me(message: discord.Message, me: discord.abc.User) -> bool:
    """Mentioned by name (or by the ping a reply adds), or through the bot's own managed role."""
    return (any(user.id == me.id for user in message.mentions)
            or any(is_own_role(role, me) for role in message.role_mentions))


def readable(message: discord.Message, me: discord.abc.User) -> str:
    """The message as people read it: the bot's own mention removed, other users, roles and channels by name
    (Kimi cannot look up `<#123>`), custom emoji as `:name:`, timestamps as dates."""
    return readable_content(message.content, me, guild=message.guild,
                            users={u.id: u.display_name for u in message.mentions})


def readable_content(content: str, me: discord.abc.User, *, guild: discord.Guild | None,
                     users: dict[int, str] | None = None) -> str:
    users = users or {}

    def user(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id == me.id:
            return ""
        member = guild.get_member(user_id) if guild is not None else None
        name = users.get(user_id) or (member.display_name if member is not None else None)
        return f"@{name}" if name else "@unknown-user"

    def role(match: re.Match[str]) -> str:
        found = guild.get_role(int(match.group(1))) if guild is not None else None
        if found is not None and is_own_role(found, me):
            return ""
        return f"@{found.name}" if found is not None else "@unknown-role"

    def channel(match: re.Match[str]) -> str:
        found = guild.get_channel_or_thread(int(match.group(1))) if guild is not None else None
        return f"#{found.name}" if found is not None else "#unknown-channel"

    def when(match: re.Match[str]) -> str:
        try:
            return datetime.fromtimestamp(int(match.group(1)), UTC).strftime("%Y-%m-%d %H:%M UTC")
        except (OverflowError, OSError, ValueError):
            return match.group(0)

    text = USER_REF.sub(user, content)
    text = ROLE_REF.sub(role, text)
    text = CHANNEL_REF.sub(channel, text)
    text = EMOJI_REF.sub(lambda m: f":{m.group(1)}:", text)
    text = TIME_REF.sub(when, text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def thread_name(text: str, fallback: str = "Kimi") -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = re.sub(r"<[@#][!&]?\d+>", "", first).strip()
    if not first:
        return fallback
    return first if len(first) <= THREAD_NAME_MAX else first[:THREAD_NAME_MAX - 1].rstrip() + "…"


def attachment(item: discord.Attachment, downloads: Downloads) -> IncomingAttachment:
    """A file on a message, fetched from its CDN link (to the end, bounded) only if it is going to be read."""
    return IncomingAttachment(filename=item.filename, mime=item.content_type, size=item.size,
                              fetch=lambda: downloads.get(item.url), source=f"discord:{item.id}", ref=item.url)


def role_ids(author: discord.abc.User) -> frozenset[str]:
    roles = getattr(author, "roles", None) or []
    return frozenset(str(role.id) for role in roles)


def place_of(channel: discord.abc.Messageable | discord.abc.GuildChannel | discord.Thread | None,
             guild: discord.Guild | None, *, thread: str | None = None) -> Place:
    """The conversation place for `channel`: a thread keys on (parent, thread); `thread` names a channel turn."""
    channel_id = getattr(channel, "id", 0)
    if guild is None:
        return Place(DM_WORKSPACE, str(channel_id), DM_THREAD, is_dm=True)
    if isinstance(channel, discord.Thread):
        parent = channel.parent
        category = getattr(parent, "category_id", None)
        parents = tuple(str(i) for i in (channel.id, category) if i)
        return Place(str(guild.id), str(channel.parent_id), str(channel.id), parents)
    category = getattr(channel, "category_id", None)
    return Place(str(guild.id), str(channel_id), thread or str(channel_id),
                 tuple(str(i) for i in (category,) if i))


def incoming(place: Place, *, message_id: int, author: discord.abc.User, text: str,
             attachments: tuple[IncomingAttachment, ...] = (), mentioned: bool, dedupe_key: str,
             actual: Place | None = None, reply: dict[str, Any] | None = None) -> IncomingMessage:
    """`actual` is where the message was written when `place` is a conversation continued from elsewhere."""
    parents = place.parents
    if actual is not None:
        parents = tuple(dict.fromkeys((actual.channel, *actual.parents, *parents)))
    return IncomingMessage(
        platform=PLATFORM, workspace=place.workspace, channel=place.channel, thread=place.thread,
        message_id=str(message_id), user=str(author.id), text=text, attachments=attachments,
        mentioned=mentioned, is_dm=place.is_dm, user_name=author.display_name, roles=role_ids(author),
        parent_channels=parents, dedupe_keys=(dedupe_key,), reply=reply or {},
    )


def quoted(reference: discord.Message, me: discord.abc.User) -> str:
    """The message a user replied to when asking the bot about someone else's message."""
    body = readable(reference, me)
    if not body:
        return ""
    body = body if len(body) <= QUOTE_MAX else body[:QUOTE_MAX] + "…"
    lines = "\n".join(f"> {line}" for line in body.splitlines())
    return f"{reference.author.display_name} wrote:\n{lines}"
