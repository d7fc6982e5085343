"""User ids → display names, so Kimi reads "[Ada] …" in shared threads instead of "[U0123ABCD] …".

`users.info` (Tier 4, scope users:read) is asked once per user per hour; a refusal (missing scope, unknown
user) falls back to the id and is remembered too, so a workspace without the scope costs one call per user.
Lookups of one user that overlap share one call, and every call waits for the workspace's Tier-4 allowance:
fifty mentions at once by one person used to send fifty users.info calls and draw a burst of 429s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.surface import error_code
from bot.types import WriteBudget

log = logging.getLogger(__name__)

TTL = 3600.0
MAX_ENTRIES = 5000


class PeopleDirectory:
    def __init__(self, client: AsyncWebClient, allowance: Callable[[str], WriteBudget], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._allowance = allowance  # team id -> that workspace's users.info budget
        self._clock = clock
        self._names: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._asking: dict[str, asyncio.Future[str]] = {}

    async def name(self, team_id: str, user_id: str) -> str:
        if not user_id:
            return ""
        cached = self._names.get(user_id)
        if cached is not None and cached[1] > self._clock():
            self._names.move_to_end(user_id)
            return cached[0]
        asking = self._asking.get(user_id)
        if asking is None:
            asking = self._asking[user_id] = asyncio.ensure_future(self._lookup(team_id, user_id))
            asking.add_done_callback(lambda _: self._asking.pop(user_id, None))
        name = await asyncio.shield(asking)
        self._names[user_id] = (name, self._clock() + TTL)
        self._names.move_to_end(user_id)
        while len(self._names) > MAX_ENTRIES:
            self._names.popitem(last=False)
        return name

    async def _lookup(self, team_id: str, user_id: str) -> str:
        await self._allowance(team_id).acquire(final=True)
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as error:
            log.info("user name unavailable", extra={"error": error_code(error)})
            return user_id
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        return str(profile.get("display_name") or profile.get("real_name") or user.get("real_name")
                   or user.get("name") or user_id)
