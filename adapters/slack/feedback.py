"""Slack's rating buttons under answers (feedback_buttons in a context_actions block): a press is stored at
once; a 👎 also opens a short optional form (views.open, within the press's 3-second trigger) for the reason."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack.errors import error_code
from adapters.slack.render import FEEDBACK_ACTION
from bot.feedback import FeedbackBook, parse_press
from storage.store import Rating

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)

REASON_CALLBACK = "kimi_feedback_reason"
REASON_FIELD = "reason"
Ack = Any


def reason_form(turn_id: int) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": REASON_CALLBACK, "private_metadata": str(turn_id),
        "title": {"type": "plain_text", "text": "What went wrong?"},
        "submit": {"type": "plain_text", "text": "Send"}, "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [{"type": "input", "block_id": REASON_FIELD, "optional": True,
                    "label": {"type": "plain_text", "text": "Tell the admins why (optional)"},
                    "element": {"type": "plain_text_input", "action_id": REASON_FIELD, "multiline": True,
                                "max_length": 1000}}],
    }


class SlackFeedback:
    def __init__(self, adapter: SlackAdapter) -> None:
        self._adapter = adapter
        self._book = FeedbackBook(adapter.services.store)
        adapter.app.action(FEEDBACK_ACTION)(self._on_press)
        adapter.app.view(REASON_CALLBACK)(self._on_reason)

    async def _on_press(self, ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        press = parse_press(action.get("value"))
        user = (body.get("user") or {}).get("id")
        if press is None or not isinstance(user, str):
            log.info("feedback press of an unexpected shape ignored")
            return
        entry = await self._book.press(press, user)
        trigger = body.get("trigger_id")
        if entry is None or press.rating is not Rating.DOWN or not isinstance(trigger, str):
            return
        team = (body.get("team") or {}).get("id") or entry.workspace
        budget = self._adapter.allowances.for_team(team).views
        if not await budget.try_acquire(final=True):
            return  # the trigger lasts 3 s: a form that cannot open now never can; the rating is kept
        try:
            await self._adapter.client(team).views_open(trigger_id=trigger, view=reason_form(press.turn_id))
        except SlackApiError as error:
            log.info("feedback form not opened", extra={"error": error_code(error)})

    async def _on_reason(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        turn = str(view.get("private_metadata") or "")
        field = ((view.get("state") or {}).get("values") or {}).get(REASON_FIELD) or {}
        reason = (field.get(REASON_FIELD) or {}).get("value")
        if isinstance(user, str) and turn.isdigit() and isinstance(reason, str):
            await self._book.reason(int(turn), user, reason)
