"""The fake Discord's world: users, guilds, channels, threads, stored messages and what the bot did to them.

Everything here is plain data plus lookups; HTTP and websocket code lives in the other discord_* modules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1420070400000

# Gateway intents the fake reasons about (gateway.mdx "List of Intents").
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT
ALL_KNOWN_INTENTS = (1 << 26) - 1

# Channel types (channel.mdx).
CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_GROUP_DM = 3
CHANNEL_PUBLIC_THREAD = 11
THREAD_TYPES = frozenset({10, 11, 12})

# Message types and flags (message.mdx).
MESSAGE_DEFAULT = 0
MESSAGE_REPLY = 19
MESSAGE_CHAT_INPUT_COMMAND = 20
FLAG_HAS_THREAD = 1 << 5
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

EVERYONE_PERMISSIONS = "2248473465835073"


class FakeClock:
    """Monotonic time that tests may push forward, so deadlines (3 s ack, 15 min token) need no sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self._offset

    def wall(self) -> float:
        return time.time() + self._offset

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def advance(self, seconds: float) -> None:
        self._offset += seconds


class Snowflakes:
    """Time-based snowflakes, so discord.py's `created_at` (and an interaction's expiry) look real."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._last_ts = 0
        self._increment = 0

    def next(self, *, shard: tuple[int, int] | None = None) -> int:
        ts = max(int(self._clock.wall() * 1000) - DISCORD_EPOCH_MS, self._last_ts)
        if shard is not None:
            shard_id, count = shard
            # guild_id >> 22 is the timestamp, so nudging it picks the shard (gateway.mdx "Sharding Formula").
            ts += (shard_id - ts % count) % count
        if ts == self._last_ts:
            self._increment += 1
            if self._increment > 0xFFF:
                ts += shard[1] if shard else 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ts = ts
        return (ts << 22) | (1 << 17) | self._increment


def shard_for_guild(guild_id: int, shard_count: int) -> int:
    return (guild_id >> 22) % shard_count


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: str = EVERYONE_PERMISSIONS
    position: int = 0
    # A bot's own role, made by Discord when the bot joins a guild: managed, tagged with the bot's id.
    bot_id: int | None = None


@dataclass
class FakeMember:
    user: FakeUser
    joined_at: datetime
    roles: list[int] = field(default_factory=list)
    nick: str | None = None


@dataclass
class FakeChannel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    parent_id: int | None = None
    position: int = 0
    owner_id: int | None = None
    recipients: list[FakeUser] = field(default_factory=list)
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_message_id: int | None = None

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: list[FakeRole] = field(default_factory=list)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class FakeFile:
    """An attachment a test hands to the fake; its bytes are served from the fake's CDN route."""

    filename: str
    data: bytes
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    description: str | None = None


@dataclass
class CdnObject:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class MessageVersion:
    content: str
    embeds: list[dict[str, object]]
    attachments: list[dict[str, object]]
    flags: int
    at: datetime
    source: str  # "create", "edit" or "interaction"


@dataclass
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str
    timestamp: datetime
    embeds: list[dict[str, object]] = field(default_factory=list)
    attachments: list[dict[str, object]] = field(default_factory=list)
    mention_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    type: int = MESSAGE_DEFAULT
    flags: int = 0
    tts: bool = False
    components: list[dict[str, object]] = field(default_factory=list)
    reference: dict[str, object] | None = None
    nonce: str | int | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    edited_timestamp: datetime | None = None
    thread_id: int | None = None
    deleted: bool = False
    versions: list[MessageVersion] = field(default_factory=list)

    def record_version(self, at: datetime, source: str) -> None:
        self.versions.append(
            MessageVersion(
                content=self.content,
                embeds=list(self.embeds),
                attachments=list(self.attachments),
                flags=self.flags,
                at=at,
                source=source,
            )
        )

    @property
    def text(self) -> str:
        """What a reader sees: the content, or the embed descriptions when a bot answers in embeds."""
        if self.content:
            return self.content
        return "\n".join(str(e.get("description", "")) for e in self.embeds if e.get("description"))


@dataclass(frozen=True)
class ThreadRecord:
    thread_id: int
    parent_id: int
    name: str
    starter_message_id: int | None
    auto_archive_duration: int
    at: datetime


@dataclass(frozen=True)
class TypingRecord:
    channel_id: int
    at: datetime


@dataclass
class DiscordWorld:
    """Mutable model of everything the fake serves, with a small default server built by `build_default`."""

    clock: FakeClock
    ids: Snowflakes
    bot: FakeUser
    users: dict[int, FakeUser] = field(default_factory=dict)
    guilds: dict[int, FakeGuild] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    channel_messages: dict[int, list[int]] = field(default_factory=dict)
    cdn: dict[int, CdnObject] = field(default_factory=dict)
    threads_created: list[ThreadRecord] = field(default_factory=list)
    typing_calls: list[TypingRecord] = field(default_factory=list)
    global_commands: list[dict[str, object]] = field(default_factory=list)
    guild_commands: dict[int, list[dict[str, object]]] = field(default_factory=dict)

    @property
    def application_id(self) -> int:
        return self.bot.id

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> FakeUser:
        user = FakeUser(id=self.ids.next(), username=username, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, owner: FakeUser, shard: tuple[int, int] | None = None) -> FakeGuild:
        guild = FakeGuild(id=self.ids.next(shard=shard), name=name, owner_id=owner.id)
        guild.roles.append(FakeRole(id=guild.id, name="@everyone"))
        self.guilds[guild.id] = guild
        # Discord gives an invited bot a managed role of its own name; autocomplete offers it for "@Kimi".
        managed = FakeRole(id=self.ids.next(), name=self.bot.username, position=1, bot_id=self.bot.id)
        guild.roles.append(managed)
        self.add_member(guild.id, self.bot, roles=[managed.id])
        self.add_member(guild.id, owner)
        return guild

    def bot_role(self, guild_id: int) -> FakeRole:
        return next(r for r in self.guilds[guild_id].roles if r.bot_id == self.bot.id)

    def add_member(self, guild_id: int, user: FakeUser, *, roles: list[int] | None = None) -> FakeMember:
        member = FakeMember(user=user, joined_at=self.clock.utcnow(), roles=list(roles or []))
        self.guilds[guild_id].members[user.id] = member
        self.users.setdefault(user.id, user)
        return member

    def add_role(self, guild_id: int, name: str) -> FakeRole:
        guild = self.guilds[guild_id]
        role = FakeRole(id=self.ids.next(), name=name, position=len(guild.roles))
        guild.roles.append(role)
        return role

    def add_text_channel(self, guild_id: int, name: str) -> FakeChannel:
        guild = self.guilds[guild_id]
        channel = FakeChannel(
            id=self.ids.next(),
            type=CHANNEL_TEXT,
            name=name,
            guild_id=guild_id,
            position=len(guild.channel_ids),
        )
        return self._register_channel(channel)

    def add_thread(
        self, parent_id: int, name: str, *, owner: FakeUser, thread_id: int | None = None
    ) -> FakeChannel:
        parent = self.channels[parent_id]
        channel = FakeChannel(
            id=thread_id or self.ids.next(),
            type=CHANNEL_PUBLIC_THREAD,
            name=name,
            guild_id=parent.guild_id,
            parent_id=parent_id,
            owner_id=owner.id,
            created_at=self.clock.utcnow(),
        )
        return self._register_channel(channel)

    def add_dm_channel(self, user: FakeUser) -> FakeChannel:
        for channel in self.channels.values():
            if channel.type == CHANNEL_DM and channel.recipients and channel.recipients[0].id == user.id:
                return channel
        return self._register_channel(
            FakeChannel(id=self.ids.next(), type=CHANNEL_DM, name=None, recipients=[user])
        )

    def add_group_dm(self, owner: FakeUser, *others: FakeUser) -> FakeChannel:
        """A group DM of people (the bot is not in it: it can only be reached through a user install)."""
        return self._register_channel(FakeChannel(id=self.ids.next(), type=CHANNEL_GROUP_DM, name=None,
                                                  recipients=[owner, *others], owner_id=owner.id))

    def _register_channel(self, channel: FakeChannel) -> FakeChannel:
        self.channels[channel.id] = channel
        self.channel_messages.setdefault(channel.id, [])
        if channel.guild_id is not None:
            self.guilds[channel.guild_id].channel_ids.append(channel.id)
        return channel

    def guild_threads(self, guild_id: int) -> list[FakeChannel]:
        ids = self.guilds[guild_id].channel_ids
        return [self.channels[i] for i in ids if self.channels[i].is_thread and not self.channels[i].archived]

    def guild_channels(self, guild_id: int) -> list[FakeChannel]:
        return [self.channels[i] for i in self.guilds[guild_id].channel_ids if not self.channels[i].is_thread]

    def store_message(self, message: StoredMessage, *, source: str = "create") -> StoredMessage:
        message.record_version(message.timestamp, source)
        self.messages[message.id] = message
        self.channel_messages.setdefault(message.channel_id, []).append(message.id)
        self.channels[message.channel_id].last_message_id = message.id
        return message

    def messages_in(self, channel_id: int, *, include_deleted: bool = False) -> list[StoredMessage]:
        found = (self.messages[i] for i in self.channel_messages.get(channel_id, []))
        return [m for m in found if include_deleted or not m.deleted]

    def member(self, guild_id: int | None, user_id: int) -> FakeMember | None:
        if guild_id is None or guild_id not in self.guilds:
            return None
        return self.guilds[guild_id].members.get(user_id)


@dataclass(frozen=True)
class DefaultIds:
    """The ids of the default world, so tests can address it without searching."""

    guild_id: int
    channel_id: int
    thread_id: int
    dm_channel_id: int
    user: FakeUser


def build_default_world(clock: FakeClock, *, bot_name: str = "fakebot") -> tuple[DiscordWorld, DefaultIds]:
    ids = Snowflakes(clock)
    bot = FakeUser(id=ids.next(), username=bot_name, bot=True)
    world = DiscordWorld(clock=clock, ids=ids, bot=bot, users={bot.id: bot})
    alice = world.add_user("alice", global_name="Alice")
    guild = world.add_guild("Fake Guild", owner=alice)
    general = world.add_text_channel(guild.id, "general")
    thread = world.add_thread(general.id, "screenshot help", owner=alice)
    dm = world.add_dm_channel(alice)
    return world, DefaultIds(guild.id, general.id, thread.id, dm.id, alice)
