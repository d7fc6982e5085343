"""Slack ids → names, so Kimi reads "[Ada] what is #deploys about?" instead of "<@U0123> what is <#C0456>?".

`users.info` (Tier 4, users:read) and `conversations.info` (Tier 3, *:read) are asked once per id per hour; a
refusal (missing scope, unknown id) falls back to the id and is remembered too. Lookups of one id that overlap
share one call, and every call waits for its workspace's allowance: fifty mentions at once by one person used to
send fifty users.info calls and draw a burst of 429s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import error_code
from adapters.slack.render import unescape
from bot.types import WriteBudget

log = logging.getLogger(__name__)

TTL = 3600.0
MAX_ENTRIES = 5000

USER_REF = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
CHANNEL_REF = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
SPECIAL_REF = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
GROUP_REF = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
DATE_REF = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
LINK_REF = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")


class _Cache:
    """Names by id for an hour, with one lookup in flight per id."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._names: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._asking: dict[str, asyncio.Future[str]] = {}

    async def get(self, key: str, lookup: Callable[[], Awaitable[str]]) -> str:
        cached = self._names.get(key)
        if cached is not None and cached[1] > self._clock():
            self._names.move_to_end(key)
            return cached[0]
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(lookup())
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        name = await asyncio.shield(asking)
        self._names[key] = (name, self._clock() + TTL)
        self._names.move_to_end(key)
        while len(self._names) > MAX_ENTRIES:
            self._names.popitem(last=False)
        return name


class SlackNames:
    def __init__(self, client: Callable[[str], AsyncWebClient],
                 allowances: Callable[[str], tuple[WriteBudget, WriteBudget]], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client  # team id -> that workspace's client
        self._allowances = allowances  # team id -> (users.info budget, conversations.info budget)
        self._users = _Cache(clock)
        self._channels = _Cache(clock)

    async def user(self, team_id: str, user_id: str) -> str:
        if not user_id:
            return ""
        return await self._users.get(user_id, lambda: self._user(team_id, user_id))

    async def channel(self, team_id: str, channel_id: str) -> str:
        return await self._channels.get(channel_id, lambda: self._channel(team_id, channel_id))

    async def readable(self, team_id: str, text: str) -> str:
        """Message text as people read it: users, channels, groups, dates and links by name; escapes undone.
        (The bot's own mention is removed before this.)"""
        users = {m.group(1) for m in USER_REF.finditer(text) if not m.group(2)}
        channels = {m.group(1) for m in CHANNEL_REF.finditer(text) if not m.group(2)}
        names = dict(zip(users, await asyncio.gather(*(self.user(team_id, u) for u in users)), strict=True))
        rooms = dict(zip(channels, await asyncio.gather(*(self.channel(team_id, c) for c in channels)), strict=True))
        text = USER_REF.sub(lambda m: f"@{m.group(2) or names.get(m.group(1), m.group(1))}", text)
        text = CHANNEL_REF.sub(lambda m: f"#{m.group(2) or rooms.get(m.group(1), m.group(1))}", text)
        text = SPECIAL_REF.sub(lambda m: f"@{m.group(1)}", text)
        text = GROUP_REF.sub(lambda m: m.group(2) or "@group", text)
        text = DATE_REF.sub(lambda m: m.group(1), text)
        text = LINK_REF.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
        return unescape(text)

    async def _user(self, team_id: str, user_id: str) -> str:
        await self._allowances(team_id)[0].acquire(final=True)
        try:
            response = await self._client(team_id).users_info(user=user_id)
            user = response.get("user") or {}
            profile = user.get("profile") or {}
            return str(profile.get("display_name") or profile.get("real_name") or user.get("real_name")
                       or user.get("name") or user_id)
        except Exception as error:  # a name is a nicety: any failure falls back to the id
            log.info("user name unavailable", extra={"error": error_code(error)})
            return user_id

    async def _channel(self, team_id: str, channel_id: str) -> str:
        await self._allowances(team_id)[1].acquire(final=True)
        try:
            response = await self._client(team_id).conversations_info(channel=channel_id)
            channel = response.get("channel") or {}
            return str(channel.get("name") or ("a direct message" if channel.get("is_im") else channel_id))
        except Exception as error:
            log.info("channel name unavailable", extra={"error": error_code(error)})
            return channel_id
