"""The settings an answer runs with: the conversation's own, else its channel's (set by an admin with `channel`),
else the configuration's. One place, so answers, commands and `help` agree on what applies and why."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Config
from storage.store import ChannelSettings, Conversation

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
