"""Buttons and modals: the checks Discord makes on a message's components, a user pressing a button
(INTERACTION_CREATE type 3, with the message it sits on) and submitting the modal the bot opened in answer
(type 5, the inputs echoed in the shape the modal was sent in: action rows, or labels since 2025).
"""

from __future__ import annotations

from tests.fakes.discord_errors import ACTION_ROW, BUTTON
from tests.fakes.discord_interactions import InteractionRecord, Interactions
from tests.fakes.discord_messages import Messages
from tests.fakes.discord_payloads import Json
from tests.fakes.discord_state import FakeUser, StoredMessage

TEXT_INPUT, LABEL, MODAL_CALLBACK = 4, 18, 9


class Components:
    def __init__(self, interactions: Interactions, messages: Messages) -> None:
        self._interactions = interactions
        self._messages = messages

    async def press(self, message: StoredMessage, custom_id: str, *, user: FakeUser) -> InteractionRecord:
        """`user` presses the button `custom_id` on `message`; only a button the message shows can be pressed."""
        ids = [b.get("custom_id") for row in message.components for b in row.get("components", [])]  # type: ignore[attr-defined]
        if custom_id not in ids:
            raise LookupError(f"message {message.id} shows no button {custom_id!r} (it shows {ids})")
        data: Json = {"custom_id": custom_id, "component_type": BUTTON}
        return await self._interactions.dispatch(3, data, name=f"button {custom_id}", guild_id=message.guild_id,
                                                 channel_id=message.channel_id, user=user,
                                                 extra={"message": self._messages.payload(message)})

    @staticmethod
    def modal_of(record: InteractionRecord) -> Json | None:
        """The modal the bot answered `record` with, if it did."""
        for call in record.callbacks:
            if call.callback_type == MODAL_CALLBACK and call.status == 200 and call.body:
                return dict(call.body.get("data") or {})
        return None

    async def submit(self, record: InteractionRecord, values: dict[str, str], *, user: FakeUser) -> InteractionRecord:
        """`user` fills in the modal opened in answer to `record` with `values` (by input custom id) and sends it."""
        modal = self.modal_of(record)
        if modal is None:
            raise LookupError("the bot opened no modal in answer to that interaction")
        echoed: list[Json] = []
        for row in modal.get("components") or []:
            if row.get("type") == LABEL:
                field = dict(row["component"])
                echoed.append({"type": LABEL, "component": self._answer(field, values)})
            else:
                echoed.append({"type": ACTION_ROW,
                               "components": [self._answer(dict(f), values) for f in row.get("components", [])]})
        data: Json = {"custom_id": modal.get("custom_id"), "components": echoed}
        return await self._interactions.dispatch(5, data, name=f"modal {modal.get('custom_id')}",
                                                 guild_id=record.guild_id, channel_id=record.channel_id, user=user)

    @staticmethod
    def _answer(field: Json, values: dict[str, str]) -> Json:
        if field.get("type") != TEXT_INPUT:
            raise ValueError(f"this fake fills in text inputs only, not {field}")
        value = values.get(str(field["custom_id"]), "")
        if field.get("required", True) and not value:
            raise ValueError(f"Discord's client does not send a modal with the required {field['custom_id']} empty")
        return {"type": TEXT_INPUT, "custom_id": field["custom_id"], "value": value}
