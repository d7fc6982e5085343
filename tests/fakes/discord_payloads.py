"""JSON payloads in the exact shapes discord.py 2.7.1 parses (reference discord.md Appendix A).

discord.py parses dispatches without a safety net, so every key it indexes directly is always present here.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.discord_state import (
    CHANNEL_DM,
    CHANNEL_GROUP_DM,
    EVERYONE_PERMISSIONS,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeUser,
    StoredMessage,
    iso,
)

Json = dict[str, Any]


def user_payload(user: FakeUser) -> Json:
    data: Json = {
        "id": str(user.id),
        "username": user.username,
        "discriminator": "0",
        "global_name": user.global_name,
        "avatar": None,
        "public_flags": 0,
    }
    if user.bot:
        data["bot"] = True
    return data


def member_payload(member: FakeMember, *, with_user: bool = True, permissions: str | None = None) -> Json:
    data: Json = {
        "roles": [str(r) for r in member.roles],
        "joined_at": iso(member.joined_at),
        "nick": member.nick,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "premium_since": None,
        "avatar": None,
        "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user_payload(member.user)
    if permissions is not None:
        data["permissions"] = permissions
    return data


def channel_payload(channel: FakeChannel, *, bot: FakeUser | None = None) -> Json:
    if channel.type == CHANNEL_DM:
        return {
            "id": str(channel.id),
            "type": CHANNEL_DM,
            "last_message_id": _opt_id(channel.last_message_id),
            "recipients": [user_payload(u) for u in channel.recipients],
            "flags": 0,
        }
    if channel.type == CHANNEL_GROUP_DM:
        return {"id": str(channel.id), "type": CHANNEL_GROUP_DM, "name": channel.name, "icon": None,
                "owner_id": _opt_id(channel.owner_id), "last_message_id": _opt_id(channel.last_message_id),
                "recipients": [user_payload(u) for u in channel.recipients], "flags": 0}
    if channel.is_thread:
        return thread_payload(channel)
    return {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [],
        "parent_id": _opt_id(channel.parent_id),
        "topic": None,
        "nsfw": False,
        "rate_limit_per_user": 0,
        "last_message_id": _opt_id(channel.last_message_id),
        "flags": 0,
    }


def thread_payload(thread: FakeChannel, *, message_count: int = 0) -> Json:
    return {
        "id": str(thread.id),
        "type": thread.type,
        "guild_id": str(thread.guild_id),
        "parent_id": str(thread.parent_id),
        "owner_id": str(thread.owner_id),
        "name": thread.name,
        "last_message_id": _opt_id(thread.last_message_id),
        "message_count": message_count,
        "member_count": 1,
        "total_message_sent": message_count,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": thread.archived,
            "auto_archive_duration": thread.auto_archive_duration,
            "archive_timestamp": iso(thread.created_at),
            "locked": thread.locked,
            "create_timestamp": iso(thread.created_at),
        },
    }


def guild_create_payload(
    guild: FakeGuild,
    channels: list[FakeChannel],
    threads: list[FakeChannel],
    thread_message_counts: dict[int, int],
    *,
    bot: FakeUser,
    include_all_members: bool,
) -> Json:
    # Without GUILD_MEMBERS Discord only sends the bot's own member, but member_count stays the real total.
    members = [m for m in guild.members.values() if include_all_members or m.user.id == bot.id]
    me = guild.members[bot.id]
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "unavailable": False,
        "member_count": len(guild.members),
        "large": False,
        "joined_at": iso(me.joined_at),
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "max_members": 500000,
        "vanity_url_code": None,
        "application_id": None,
        "roles": [
            {
                "id": str(r.id),
                "name": r.name,
                "permissions": r.permissions,
                "position": r.position,
                "color": 0,
                "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                "hoist": False,
                "managed": r.bot_id is not None,
                "mentionable": False,
                "icon": None,
                "unicode_emoji": None,
                "flags": 0,
                **({"tags": {"bot_id": str(r.bot_id)}} if r.bot_id is not None else {}),
            }
            for r in guild.roles
        ],
        "channels": [channel_payload(c) for c in channels],
        "threads": [thread_payload(t, message_count=thread_message_counts.get(t.id, 0)) for t in threads],
        "members": [member_payload(m) for m in members],
        "presences": [],
        "voice_states": [],
        "emojis": [],
        "stickers": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "features": [],
        "preferred_locale": "en-US",
    }


def attachment_payload(attachment_id: int, base_url: str, channel_id: int, file: Any, size: int) -> Json:
    url = f"{base_url}/cdn/attachments/{channel_id}/{attachment_id}/{file.filename}"
    data: Json = {
        "id": str(attachment_id),
        "filename": file.filename,
        "size": size,
        # Real CDN links are signed and expire; the query mimics that so URL-parsing code sees the real shape.
        "url": f"{url}?ex=1&is=1&hm=fake&",
        "proxy_url": f"{url}?ex=1&is=1&hm=fake&proxy=1&",
    }
    if file.content_type:
        data["content_type"] = file.content_type
    if file.width is not None and file.height is not None:
        data["width"], data["height"] = file.width, file.height
    if file.description:
        data["description"] = file.description
    return data


def message_payload(
    msg: StoredMessage,
    *,
    users: dict[int, FakeUser],
    member_of: Any,
    referenced: StoredMessage | None = None,
    thread: FakeChannel | None = None,
    include_reference: bool = True,
) -> Json:
    """A message object; `member_of(guild_id, user_id)` returns a FakeMember or None."""
    data: Json = {
        "id": str(msg.id),
        "channel_id": str(msg.channel_id),
        "type": msg.type,
        "flags": msg.flags,
        "tts": msg.tts,
        "pinned": False,
        "mention_everyone": msg.mention_everyone,
        "timestamp": iso(msg.timestamp),
        "edited_timestamp": iso(msg.edited_timestamp) if msg.edited_timestamp else None,
        "author": user_payload(msg.author),
        "content": msg.content,
        "mentions": [],
        "mention_roles": [str(r) for r in msg.mention_role_ids],
        "attachments": list(msg.attachments),
        "embeds": list(msg.embeds),
        "components": list(msg.components),
    }
    if msg.guild_id is not None:
        data["guild_id"] = str(msg.guild_id)
        author_member = member_of(msg.guild_id, msg.author.id)
        if author_member is not None and msg.webhook_id is None:
            data["member"] = member_payload(author_member, with_user=False)
    for uid in msg.mention_ids:
        mentioned: Json = user_payload(users[uid])
        member = member_of(msg.guild_id, uid)
        if member is not None:
            mentioned["member"] = member_payload(member, with_user=False)
        data["mentions"].append(mentioned)
    if msg.nonce is not None:
        data["nonce"] = msg.nonce
    if msg.webhook_id is not None:
        data["webhook_id"] = str(msg.webhook_id)
    if msg.application_id is not None:
        data["application_id"] = str(msg.application_id)
    if msg.reference is not None and include_reference:
        data["message_reference"] = msg.reference
        if referenced is None:
            data["referenced_message"] = None
        else:
            data["referenced_message"] = message_payload(
                referenced, users=users, member_of=member_of, include_reference=False
            )
    if thread is not None:
        data["thread"] = thread_payload(thread)
    return data


def app_info_payload(bot: FakeUser, owner: FakeUser) -> Json:
    return {
        "id": str(bot.id),
        "name": bot.username,
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": user_payload(owner),
        "flags": 0,
        "team": None,
        "summary": "",
        "rpc_origins": [],
        "interactions_endpoint_url": None,
        "bot": user_payload(bot),
    }


def interaction_member_payload(member: FakeMember) -> Json:
    return member_payload(member, permissions=EVERYONE_PERMISSIONS)


def error_body(code: int, message: str, errors: Json | None = None) -> Json:
    body: Json = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def field_error(code: str, message: str) -> Json:
    return {"_errors": [{"code": code, "message": message}]}


def _opt_id(value: int | None) -> str | None:
    return None if value is None else str(value)
