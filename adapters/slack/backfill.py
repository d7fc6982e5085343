"""A thread the bot is mentioned in for the first time: its recent discussion, read once and stored.

conversations.replies lists a thread oldest first, a page at a time. The question is about what was said last,
so the reader pages to the end and keeps the thread's first message (its topic) and the newest messages before
the mention, within `backfill_limit`; what it left out is said in the answer's footer. It runs only for a
mention that passed the access check, under a claim of its own, so retries, twin deliveries and replicas read
the thread once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import error_code
from adapters.slack.events import PLATFORM, SlackEvent, backfill_role, without_own_mention
from adapters.slack.names import SlackNames
from bot.engine import Engine
from bot.types import BackfillItem, ConversationKey, WriteBudget
from storage.store import Store

log = logging.getLogger(__name__)

PAGE = 200
MAX_PAGES = 20
TIME_LIMIT = 15.0  # seconds of paging before the answer goes ahead with what was read
TWIN_WINDOW = 120.0
ANSWERABLE = ("", "file_share", "thread_broadcast", "bot_message")


class ThreadReader:
    def __init__(self, *, client: Callable[[str], AsyncWebClient], engine: Engine, store: Store, names: SlackNames,
                 budget: Callable[[str], WriteBudget], limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client  # team id -> that workspace's client
        self._engine = engine
        self._store = store
        self._names = names
        self._budget = budget  # team id -> that workspace's conversations.replies allowance
        self._limit = limit
        self._clock = clock
        # Readings by thread, kept a while after they finish so a late twin delivery still gets the note.
        self._reading: dict[ConversationKey, tuple[asyncio.Future[str | None], float]] = {}

    async def read_once(self, ev: SlackEvent, bot_user_id: str | None, bot_id: str | None) -> str | None:
        """Store the thread's earlier messages (once); returns a footer note when some were left out.

        A mention's twin delivery (app_mention and message) waits for the same reading and gets its note:
        whichever of the two wins the turn, its answer says what was left out."""
        key = ConversationKey(PLATFORM, ev.team, ev.channel, ev.key_thread)
        now = self._clock()
        self._reading = {k: v for k, v in self._reading.items() if v[1] > now}  # a twin comes within seconds
        entry = self._reading.get(key)
        if entry is None:
            entry = self._reading[key] = (asyncio.ensure_future(self._read(key, ev, bot_user_id, bot_id)),
                                          now + TWIN_WINDOW)
        return await asyncio.shield(entry[0])

    async def _read(self, key: ConversationKey, ev: SlackEvent, bot_user_id: str | None,
                    bot_id: str | None) -> str | None:
        if await self._engine.has_history(key):
            return None
        if not await self._store.claim_event(PLATFORM, (f"backfill:{ev.channel}:{ev.thread_ts}",)):
            return None
        first, newest, skipped, complete = await self._page(ev)
        kept = ([first] if first is not None else []) + list(newest)
        items = [await self._item(ev.team, m, bot_user_id, bot_id) for m in kept]
        stored = await self._engine.backfill(key, [i for i in items if i is not None])
        log.info("thread backfilled", extra={"messages": stored, "left_out": skipped, "complete": complete})
        if not complete:
            return "I could read only part of this thread's earlier messages."
        if skipped:
            return (f"This thread is long: I read its first message and the {len(newest)} most recent ones, "
                    f"and left out {skipped} in between.")
        return None

    async def _page(self, ev: SlackEvent) -> tuple[dict[str, Any] | None, deque[dict[str, Any]], int, bool]:
        """(first message, newest before the mention, how many earlier ones were dropped, read to the end)."""
        newest: deque[dict[str, Any]] = deque(maxlen=max(1, self._limit - 1))
        first: dict[str, Any] | None = None
        dropped = 0
        cursor: str | None = None
        started = self._clock()
        for _ in range(MAX_PAGES):
            await self._budget(ev.team).acquire(final=True)
            try:
                response = await self._client(ev.team).conversations_replies(
                    channel=ev.channel, ts=ev.thread_ts or ev.ts, limit=min(PAGE, self._limit + 1),
                    cursor=cursor or None)
            except Exception as error:  # read what we could; the answer goes ahead
                log.warning("thread backfill failed", extra={"error": error_code(error)})
                return first, newest, dropped, False
            for m in response.get("messages") or []:
                if not isinstance(m, dict) or _ts(m) >= _ts_of(ev.ts) or _ts(m) <= 0:
                    continue
                if first is None:
                    first = m
                    continue
                if len(newest) == newest.maxlen:
                    dropped += 1
                newest.append(m)
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not response.get("has_more") or not cursor:
                return first, newest, dropped, True
            if self._clock() - started > TIME_LIMIT:
                break
        return first, newest, dropped, False

    async def _item(self, team: str, m: dict[str, Any], bot_user_id: str | None,
                    bot_id: str | None) -> BackfillItem | None:
        if str(m.get("subtype") or "") not in ANSWERABLE:
            return None
        role = backfill_role(m, bot_user_id=bot_user_id, bot_id=bot_id)
        text = await self._names.readable(team, without_own_mention(str(m.get("text") or ""), bot_user_id))
        if role == "user" and m.get("files"):
            files = ", ".join(str(f.get("name") or "file") for f in m["files"] if isinstance(f, dict))
            text = f"{text}\n[shared files: {files}]".strip()
        author = ""
        if role == "user":
            author = await self._names.user(team, str(m.get("user") or "")) or str(m.get("username") or "")
        return BackfillItem(role=role, text=text, message_id=str(m.get("ts")), author=author,
                            author_id=str(m.get("user") or "") if role == "user" else "")


def _ts(message: dict[str, Any]) -> float:
    return _ts_of(message.get("ts"))


def _ts_of(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
