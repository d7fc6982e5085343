"""The slash command: `/kimi <question>` gets a visible parent message and an answer streamed into its thread;
`/kimi reset | model | think | system | usage | stop | help` go to the engine and answer privately.

Slash commands cannot be used in threads, so a subcommand applies to the conversation of the place it was
typed: the DM's top-level conversation, or the channel's own (thread-less) conversation. Inside threads the
same commands work as `!reset` and friends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack.errors import error_code
from adapters.slack.events import PLATFORM
from adapters.slack.render import escape
from bot.budget import UnlimitedBudget
from bot.commands import command_from_words
from bot.types import AnswerControls, IncomingMessage

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)

CANNOT_POST = ("I can't post in this conversation. Invite me with `/invite @kimibot`, or ask me in a DM.")


class RespondSurface:
    """Private replies through the command's response_url (Slack allows 5 per command, for 30 minutes).

    A response_url that refuses (expired, used up, a proxy in the way) does not swallow the reply: it goes out
    as an ephemeral message instead, and the failure is logged."""

    max_chars = 3000

    def __init__(self, respond: Any, *, client: Any = None, channel: str = "", user: str = "") -> None:
        self._respond = respond
        self._client = client
        self._channel = channel
        self._user = user
        self.edit_budget = UnlimitedBudget()
        self.post_budget = UnlimitedBudget()
        self.sent: list[str] = []

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        self.sent.append(text)
        try:
            response = await self._respond(text=text, response_type="ephemeral")
            status = getattr(response, "status_code", 200)
        except Exception as error:  # the webhook client raises for connection failures
            status, body = 0, type(error).__name__
        else:
            body = str(getattr(response, "body", ""))[:40]
        if status == 200:
            return ""
        log.warning("slash command reply refused by its response_url", extra={"status": status, "error": body})
        if self._client is not None and self._channel:
            try:
                await self._client.chat_postEphemeral(channel=self._channel, user=self._user, text=text)
            except Exception as error:
                log.warning("slash command reply not delivered", extra={"error": error_code(error)})
        return ""

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        await self.post(text)

    async def set_status(self, status: str | None) -> None:
        return None


class SlashCommands:
    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter

    async def run(self, command: dict[str, Any], respond: Any) -> None:
        adapter = self.adapter
        team = str(command.get("team_id") or "")
        channel = str(command.get("channel_id") or "")
        user = str(command.get("user_id") or "")
        text = str(command.get("text") or "").strip()
        is_dm = channel.startswith("D")
        prefix = f"{adapter.config.slash_command} "
        subcommand = command_from_words(text)
        base: dict[str, Any] = {"platform": PLATFORM, "workspace": team, "channel": channel, "user": user,
                                "user_name": str(command.get("user_name") or user), "is_dm": is_dm,
                                "mentioned": True}
        if subcommand is not None:
            message = IncomingMessage(**base, thread="dm" if is_dm else "channel",
                                      message_id=str(command.get("trigger_id") or ""), text=text)
            surface = RespondSurface(respond, client=adapter.client(team), channel=channel, user=user)
            decision = adapter.access.check(message)
            if not decision.allowed:
                await surface.post(decision.reason)
                return
            await adapter.services.engine.run_command(message, subcommand, surface, access=adapter.access,
                                                      prefix=prefix)
            return
        probe = IncomingMessage(**base, thread="", message_id="", text=text)
        decision = adapter.access.check(probe)
        if not decision.allowed:
            await respond(text=decision.reason, response_type="ephemeral")
            return
        allowances = adapter.allowances.for_team(team)
        await allowances.post(channel).acquire(final=True)
        quoted = "\n".join(f"> {escape(line)}" for line in text.splitlines()[:20])
        try:
            parent = await adapter.client(team).chat_postMessage(
                channel=channel, text=f"<@{user}> asked with `{adapter.config.slash_command}`:\n{quoted}")
        except SlackApiError as error:
            log.info("slash command parent not posted", extra={"error": error_code(error)})
            await respond(text=CANNOT_POST, response_type="ephemeral")
            return
        parent_ts = str(parent["ts"])
        trigger = str(command.get("trigger_id") or parent_ts)
        message = IncomingMessage(**base, thread=parent_ts, message_id=parent_ts, text=text,
                                  dedupe_keys=(f"command:{trigger}", f"{channel}:{parent_ts}"),
                                  reply=adapter.reply_address(team, channel, parent_ts, user))
        surface = adapter.surface(team, channel, parent_ts, user)
        try:
            await adapter.services.engine.handle(message, surface, access=adapter.access, command_prefix=prefix)
        finally:
            surface.release()
