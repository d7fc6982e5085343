"""`channel`: an admin gives one channel its own defaults (system prompt, model, thinking, usage footer) for every
conversation in it; a conversation's own settings still win. Without arguments it shows what applies there."""

from __future__ import annotations

from bot.access import AccessPolicy
from bot.config import Config
from bot.models import ModelCatalog
from bot.settings import MAX_SYSTEM_PROMPT, ChannelDefaults
from bot.types import IncomingMessage
from storage.store import UNSET, ChannelSettings, Store

SETTINGS = ("prompt", "model", "think", "footer", "mentions", "reset")
_SWITCH = {"on": True, "off": False, "default": None, "reset": None}
# `mentions optional`: every message in the channel is answered, not only mentions.
_MENTIONS = {"optional": True, "required": False, "default": None, "reset": None}


def channel_help(prefix: str) -> str:
    p = f"{prefix}channel"
    return (f"`{p}` shows this channel's defaults. Admins: `{p} prompt <text>`, `{p} model <id>`, "
            f"`{p} think on|off`, `{p} footer on|off` (cost line under answers), `{p} mentions optional|required` "
            f"(answer every message here, or only mentions); `default` as the value, or "
            f"`{p} reset`, goes back to the configured defaults.")


class ChannelCommand:
    def __init__(self, *, config: Config, store: Store, models: ModelCatalog, channels: ChannelDefaults) -> None:
        self._config = config
        self._store = store
        self._models = models
        self._channels = channels

    async def run(self, message: IncomingMessage, args: str, access: AccessPolicy, prefix: str) -> str:
        where = (message.platform, message.workspace, message.channel)
        try:
            return await self._run(message, args, access, prefix, where)
        finally:
            self._channels.forget(*where)

    async def _run(self, message: IncomingMessage, args: str, access: AccessPolicy, prefix: str,
                   where: tuple[str, str, str]) -> str:
        setting, _, value = args.strip().partition(" ")
        setting, value = setting.lower(), value.strip()
        if not setting:
            return self._describe(await self._store.channel_settings(*where), prefix)
        if setting not in SETTINGS:
            return f"I don't know the channel setting `{setting[:40]}`. {channel_help(prefix)}"
        if not access.is_admin(message):
            return "Only admins can change this channel's defaults."
        by = message.user
        if setting == "reset":
            await self._store.update_channel_settings(*where, updated_by=by, model=None, thinking=None,
                                                      system_prompt=None, usage_footer=None,
                                                      answer_without_mention=None)
            return "This channel is back on the configured defaults."
        if setting == "prompt":
            if not value:
                return f"Give the prompt: `{prefix}channel prompt <text>` (or `default`)."
            if len(value) > MAX_SYSTEM_PROMPT:
                return f"That system prompt is {len(value):,} characters; the limit is {MAX_SYSTEM_PROMPT:,}."
            prompt = None if value.lower() in ("default", "reset") else value
            await self._store.update_channel_settings(*where, updated_by=by, system_prompt=prompt)
            return "System prompt set for new and existing conversations in this channel." if prompt else \
                "This channel is back on the default system prompt."
        if setting == "model":
            if not value:
                return f"Give the model: `{prefix}channel model <id>` (or `default`)."
            model = None if value.lower() in ("default", "reset") else value
            if model is not None and not self._models.allows(model):
                ids = ", ".join(f"`{m}`" for m in self._models.ids())
                return f"`{model[:80]}` is not available to this Kimi account. Available: {ids}."
            await self._store.update_channel_settings(*where, updated_by=by, model=model)
            return f"Conversations in this channel now use `{model or self._models.default}` unless they chose one."
        if setting == "mentions":
            mentions = _MENTIONS.get(value.lower(), UNSET)
            if mentions is UNSET:
                return f"Use `{prefix}channel mentions optional`, `required` or `default`."
            await self._store.update_channel_settings(*where, updated_by=by, answer_without_mention=mentions)
            return ("I now answer every message in this channel." if mentions else
                    "I now answer only mentions in this channel.")
        switch = _SWITCH.get(value.lower(), UNSET)
        if switch is UNSET:
            return f"Use `{prefix}channel {setting} on`, `off` or `default`."
        if setting == "think":
            await self._store.update_channel_settings(*where, updated_by=by, thinking=switch)
        else:
            await self._store.update_channel_settings(*where, updated_by=by, usage_footer=switch)
        return f"Done: {setting} is {'the default' if switch is None else value.lower()} in this channel."

    def _describe(self, current: ChannelSettings, prefix: str) -> str:
        if current.empty:
            return f"This channel uses the configured defaults. {channel_help(prefix)}"
        lines = ["This channel's defaults:"]
        if current.system_prompt is not None:
            lines.append(f"• system prompt: {current.system_prompt[:300]}")
        if current.model is not None:
            lines.append(f"• model: `{current.model}`")
        if current.thinking is not None:
            lines.append(f"• thinking: {'on' if current.thinking else 'off'}")
        if current.usage_footer is not None:
            lines.append(f"• cost line under answers: {'on' if current.usage_footer else 'off'}")
        if current.answer_without_mention is not None:
            lines.append(f"• mentions: {'optional' if current.answer_without_mention else 'required'}")
        lines.append(channel_help(prefix))
        return "\n".join(lines)
