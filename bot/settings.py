"""The settings an answer runs with: the conversation's own, else its channel's (set by an admin with `channel`),
else the configuration's. One place, so answers, commands and `help` agree on what applies and why."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Config
from storage.store import ChannelSettings, Conversation, Store

MAX_SYSTEM_PROMPT = 8000  # characters, for a conversation's or a channel's prompt


@dataclass(frozen=True, slots=True)
class Effective:
    model: str
    thinking: bool
    system_prompt: str  # the template; {date} is filled in per answer
    usage_footer: bool
    # Where each value comes from, for the commands that show them: "conversation", "channel" or "default".
    origin: dict[str, str]


def effective(conversation: Conversation, channel: ChannelSettings, config: Config, default_model: str) -> Effective:
    def pick(own: object, channel_value: object, default: object, name: str) -> object:
        if own is not None:
            origin[name] = "conversation"
            return own
        if channel_value is not None:
            origin[name] = "channel"
            return channel_value
        origin[name] = "default"
        return default

    origin: dict[str, str] = {}
    model = pick(conversation.model, channel.model, default_model, "model")
    thinking = pick(conversation.thinking, channel.thinking, config.kimi.thinking, "thinking")
    prompt = pick(conversation.system_prompt, channel.system_prompt, config.bot.system_prompt, "system_prompt")
    footer = pick(None, channel.usage_footer, config.bot.usage_footer, "usage_footer")
    return Effective(model=str(model), thinking=bool(thinking), system_prompt=str(prompt), usage_footer=bool(footer),
                     origin=origin)


class ChannelDefaults:
    """Channel settings for questions asked of every message (does this channel want answers without a mention?),
    cached for `ttl` seconds: a busy channel costs one read per `ttl`, and an admin's change reaches the other
    replicas within it (this process forgets its copy at once)."""

    def __init__(self, store: Store, *, ttl: float = 30.0, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._cached: OrderedDict[tuple[str, str, str], tuple[float, ChannelSettings]] = OrderedDict()

    async def get(self, platform: str, workspace: str, channel: str) -> ChannelSettings:
        where = (platform, workspace, channel)
        hit = self._cached.get(where)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        settings = await self._store.channel_settings(*where)
        self._cached[where] = (self._clock(), settings)
        self._cached.move_to_end(where)
        while len(self._cached) > self._capacity:
            self._cached.popitem(last=False)
        return settings

    def forget(self, platform: str, workspace: str, channel: str) -> None:
        self._cached.pop((platform, workspace, channel), None)
