"""Who may talk to the bot, and who may change its model and system prompt."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import AccessConfig
from bot.types import IncomingMessage


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class AccessPolicy:
    def __init__(self, config: AccessConfig) -> None:
        self._config = config

    def check(self, message: IncomingMessage) -> Decision:
        c = self._config
        if message.user in c.block_users:
            return Decision(False, "You are not allowed to use this bot.")
        if message.is_dm and not c.allow_dms:
            return Decision(False, "Direct messages are turned off for this bot; mention it in a channel instead.")
        if c.allow_workspaces and message.workspace not in c.allow_workspaces and not message.is_dm:
            return Decision(False, "This bot is not enabled in this workspace.")
        if c.allow_channels and not message.is_dm:
            places = {message.channel, *message.parent_channels}
            if not places & set(c.allow_channels):
                return Decision(False, "This bot is not enabled in this channel.")
        if c.allow_users or c.allow_roles:
            by_user = message.user in c.allow_users
            by_role = bool(message.roles & set(c.allow_roles))
            if not (by_user or by_role):
                return Decision(False, "You are not on this bot's list of allowed users.")
        return Decision(True)

    def is_admin(self, message: IncomingMessage) -> bool:
        return self.is_admin_user(message.user, message.roles)

    def is_admin_user(self, user: str, roles: frozenset[str] = frozenset()) -> bool:
        admins = self._config.admins
        # No admin list means a small team's install where everyone may change settings.
        return not admins or user in admins or bool(roles & set(admins))


ALLOW_ALL = AccessPolicy(AccessConfig())
