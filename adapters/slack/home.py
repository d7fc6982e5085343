"""The App Home tab: for everyone, their own usage this month and how to use kimibot; for admins also the
workspace's totals, its costliest channels and recent feedback. Read from storage and published with
views.publish when the user opens the tab (at most once per user every `min_interval` seconds)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack.errors import error_code
from bot.feedback import channel_ref, quote
from bot.usage import format_summary
from storage.store import Rating

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)

PLATFORM = "slack"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class AppHome:
    def __init__(self, adapter: SlackAdapter, *, min_interval: float = 10.0) -> None:
        self._adapter = adapter
        self._store = adapter.services.store
        self._min_interval = min_interval
        self._published: dict[tuple[str, str], float] = {}
        adapter.app.event("app_home_opened")(self._on_opened)

    async def _on_opened(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        user, team = event.get("user"), body.get("team_id")
        if not isinstance(user, str) or not isinstance(team, str):
            return
        if event.get("tab", "home") == "messages":  # the agent view's conversations live there
            await self._adapter.assistant.messages_tab_opened(team, str(event.get("channel") or ""), user)
            return
        now = time.monotonic()
        if now - self._published.get((team, user), -self._min_interval) < self._min_interval:
            return
        self._published[(team, user)] = now
        if len(self._published) > 10_000:
            self._published = {k: v for k, v in self._published.items() if now - v < self._min_interval}
        blocks = await self.blocks(team, user)
        await self._adapter.allowances.for_team(team).views.acquire()
        try:
            await self._adapter.client(team).views_publish(user_id=user, view={"type": "home", "blocks": blocks})
        except SlackApiError as error:
            log.warning("app home not published", extra={"error": error_code(error)})

    async def blocks(self, team: str, user: str) -> list[dict[str, Any]]:
        since = month_start(datetime.now(UTC))
        adapter = self._adapter
        command = adapter.config.slash_command
        mine = await self._store.usage_summary(platform=PLATFORM, workspace=team, user=user, since=since)
        services = adapter.services
        defaults = (f"*New conversations:* model `{services.engine.models.default}`, thinking "
                    f"{'on' if services.config.kimi.thinking else 'off'}"
                    f"{', a usage line under each answer' if services.config.bot.usage_footer else ''}. "
                    f"Each conversation (a thread, or a DM) can change its own with `model`, `think` and `system`; "
                    f"a channel's admins can set its defaults with `channel`.")
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": "Kimi in Slack"}},
            _section(format_summary("You, this month", mine)),
            _section(defaults),
            _section(f"*How to ask:* mention me in a channel or thread, message me here, or use `{command}`. "
                     f"In a conversation: `reset`, `model`, `think on|off`, `system`, `usage`, `stop`, `help` "
                     f"(as `{command} <command>` or `!<command>` in a thread). Rate answers with 👍/👎."),
        ]
        if not adapter.access.is_admin_user(user):
            return blocks
        workspace = await self._store.usage_summary(platform=PLATFORM, workspace=team, since=since)
        channels = await self._store.usage_by_channel(PLATFORM, team, since=since)
        counts = await self._store.feedback_counts(PLATFORM, team, since=since)
        recent = await self._store.recent_feedback(PLATFORM, team, limit=5)
        top = "\n".join(f"• {channel_ref(PLATFORM, c.channel)}: {c.answers} conversation"
                        f"{'s' if c.answers != 1 else ''}, ${c.cost_usd:.4f}" for c in channels) or "none yet"
        feedback = "\n".join(
            f"• {'👍' if e.rating is Rating.UP else '👎'} <@{e.user}> in {channel_ref(PLATFORM, e.channel)}"
            f"{': ' + quote(e.reason) if e.reason else ''}" for e in recent) or "none yet"
        blocks += [
            {"type": "divider"},
            {"type": "header", "text": {"type": "plain_text", "text": "Workspace (admins)"}},
            _section(format_summary("Everyone, this month", workspace)),
            _section(f"*Costliest channels this month:*\n{top}"),
            _section(f"*Feedback this month:* 👍 {counts.up} · 👎 {counts.down}\n*Latest:*\n{feedback}"),
        ]
        return blocks

