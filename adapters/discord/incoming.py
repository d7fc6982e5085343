"""Discord objects → the core's IncomingMessage pieces: text, attachments, roles and the places access checks."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from bot.attachments import AttachmentError
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


def strip_mention(content: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", "", content).strip()


def explicitly_mentions(content: str, bot_id: int) -> bool:
    """A written @mention, as opposed to the ping a reply adds (both put the bot in `mentions`)."""
    return re.search(rf"<@!?{bot_id}>", content) is not None


def thread_name(text: str, fallback: str = "Kimi") -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = re.sub(r"<[@#][!&]?\d+>", "", first).strip()
    if not first:
        return fallback
    return first if len(first) <= THREAD_NAME_MAX else first[:THREAD_NAME_MAX - 1].rstrip() + "…"


def attachment(item: discord.Attachment) -> IncomingAttachment:
    return IncomingAttachment(filename=item.filename, mime=item.content_type, size=item.size,
                              fetch=guarded(item.read), source=f"discord:{item.id}", ref=item.url)


def guarded(read: Callable[[], Awaitable[bytes]]) -> Callable[[], Awaitable[bytes]]:
    """A download whose failures become the sentence the user reads."""
    async def fetch() -> bytes:
        try:
            return await read()
        except discord.HTTPException as error:
            raise AttachmentError(f"Discord did not let me download it (HTTP {error.status}).") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise AttachmentError("I could not download it from Discord; please try again.") from error

    return fetch


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


def quoted(reference: discord.Message) -> str:
    """The message a user replied to when asking the bot about someone else's message."""
    body = reference.content.strip()
    if not body:
        return ""
    body = body if len(body) <= QUOTE_MAX else body[:QUOTE_MAX] + "…"
    lines = "\n".join(f"> {line}" for line in body.splitlines())
    return f"{reference.author.display_name} wrote:\n{lines}"
