"""Ratings of answers: what a button press means, storing it, and what admins read back.

Adapters put a reference to the answer's turn on its buttons (`button_value`); a press comes back with that
value and the presser's id. The rating is stored at the press, so a reason form the user dismisses loses
nothing but the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from storage.store import FeedbackEntry, Rating, Store

log = logging.getLogger(__name__)

THANKS = {Rating.UP: "Thanks, glad it helped.", Rating.DOWN: "Thanks for telling me; admins see this."}


@dataclass(frozen=True, slots=True)
class Press:
    rating: Rating
    turn_id: int


def button_value(rating: Rating, turn_id: int) -> str:
    return f"{rating.value}:{turn_id}"


def parse_press(value: object) -> Press | None:
    """The press a button value stands for; None for anything else (an old or forged value)."""
    if not isinstance(value, str):
        return None
    rating, _, turn = value.partition(":")
    if rating not in {r.value for r in Rating} or not turn.isdigit() or len(turn) > 18:
        return None
    return Press(Rating(rating), int(turn))


class FeedbackBook:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def press(self, press: Press, user: str) -> FeedbackEntry | None:
        entry = await self._store.record_feedback(press.turn_id, user, press.rating)
        if entry is None:
            log.info("feedback for an unknown answer ignored", extra={"turn": press.turn_id})
        else:
            log.info("feedback", extra={"turn": press.turn_id, "rating": press.rating.value,
                                        "platform": entry.platform})
        return entry

    async def reason(self, turn_id: int, user: str, reason: str) -> bool:
        return bool(reason.strip()) and await self._store.set_feedback_reason(turn_id, user, reason)

    async def summary(self, platform: str, workspace: str, *, since: datetime, limit: int = 3) -> list[str]:
        """Lines for admins: counts since `since` and the newest thumbs-down reasons."""
        counts = await self._store.feedback_counts(platform, workspace, since=since)
        total = counts.up + counts.down
        if not total:
            return ["Feedback, last 30 days: none yet."]
        lines = [f"Feedback, last 30 days: 👍 {counts.up} · 👎 {counts.down} ({100 * counts.up // total}% positive)"]
        recent = [e for e in await self._store.recent_feedback(platform, workspace, limit=20)
                  if e.rating is Rating.DOWN][:limit]
        lines += [f"• 👎 in {channel_ref(platform, e.channel)}: {quote(e.reason) if e.reason else '(no reason)'}"
                  for e in recent]
        return lines


def channel_ref(platform: str, channel: str) -> str:
    if platform == "slack" and channel.startswith("D"):
        return "a direct message"
    return f"<#{channel}>" if platform in ("slack", "discord") else channel


def quote(reason: str, limit: int = 200) -> str:
    flat = " ".join(reason.split())
    return f"“{flat[:limit]}{'…' if len(flat) > limit else ''}”"
