"""Per-channel defaults set by admins (`channel` command): one row per platform, workspace and channel."""

from __future__ import annotations

from sqlalchemy import Select, select

from storage.base import StoreBase
from storage.models import ChannelSettingsRow, utcnow
from storage.records import UNSET, ChannelSettings, _Unset, valid_optional


class ChannelOps(StoreBase):
    async def channel_settings(self, platform: str, workspace: str, channel: str) -> ChannelSettings:
        async with self._sessions() as session:
            row = await session.scalar(self._channel_row(platform, workspace, channel))
            return _settings(row) if row is not None else ChannelSettings()

    async def update_channel_settings(
        self, platform: str, workspace: str, channel: str, *, updated_by: str,
        model: str | _Unset | None = UNSET, thinking: bool | _Unset | None = UNSET,
        system_prompt: str | _Unset | None = UNSET, usage_footer: bool | _Unset | None = UNSET,
        answer_without_mention: bool | _Unset | None = UNSET,
    ) -> ChannelSettings:
        """Change a channel's defaults; UNSET leaves one alone, None restores the configured default."""
        values = {"platform": platform, "workspace": workspace, "channel": channel, "updated_by": updated_by,
                  "updated_at": utcnow()}
        async with self._sessions() as session:
            await session.execute(self._insert_ignoring(ChannelSettingsRow, ("platform", "workspace", "channel"),
                                                        values))
            row = await session.scalar(self._channel_row(platform, workspace, channel).with_for_update())
            if row is None:
                raise RuntimeError("channel settings vanished right after they were stored")
            if model is not UNSET:
                row.model = model
            if thinking is not UNSET:
                row.thinking = thinking
            if system_prompt is not UNSET:
                row.system_prompt = valid_optional(system_prompt)
            if usage_footer is not UNSET:
                row.usage_footer = usage_footer
            if answer_without_mention is not UNSET:
                row.answer_without_mention = answer_without_mention
            row.updated_by = updated_by
            await session.commit()
            return _settings(row)

    @staticmethod
    def _channel_row(platform: str, workspace: str, channel: str) -> Select[tuple[ChannelSettingsRow]]:
        return select(ChannelSettingsRow).where(ChannelSettingsRow.platform == platform,
                                                ChannelSettingsRow.workspace == workspace,
                                                ChannelSettingsRow.channel == channel)


def _settings(row: ChannelSettingsRow) -> ChannelSettings:
    return ChannelSettings(model=row.model, thinking=row.thinking, system_prompt=row.system_prompt,
                           usage_footer=row.usage_footer, answer_without_mention=row.answer_without_mention,
                           updated_by=row.updated_by)
