"""👍/👎 under finished answers: the buttons, what a press does, and the reason form a 👎 opens.

The buttons are discord.py dynamic items (their custom id carries the rating and the answer's turn), so a press
is understood by any process at any time, not only by the one that posted the answer. The rating is stored at
the press; the reason form only adds to it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bot.feedback import THANKS, FeedbackBook, Press, button_value, parse_press
from storage.store import Rating

log = logging.getLogger(__name__)

PREFIX = "kimi:feedback:"
REASON_PREFIX = "kimi:feedback-reason:"
EMOJI = {Rating.UP: "👍", Rating.DOWN: "👎"}


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                     template=re.escape(PREFIX) + r"(?P<value>(?:up|down):\d{1,18})"):
    def __init__(self, press: Press) -> None:
        super().__init__(discord.ui.Button(style=discord.ButtonStyle.secondary, emoji=EMOJI[press.rating],
                                           custom_id=PREFIX + button_value(press.rating, press.turn_id)))
        self.press = press

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> FeedbackButton:
        press = parse_press(match["value"])
        if press is None:
            raise ValueError("feedback button of an unexpected shape")
        return cls(press)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        book = FeedbackBook(interaction.client.services.store)
        entry = await book.press(self.press, str(interaction.user.id))
        if entry is None:
            await interaction.response.send_message("That answer is no longer on record.", ephemeral=True)
        elif self.press.rating is Rating.DOWN:
            await interaction.response.send_modal(ReasonModal(book, self.press.turn_id))
        else:
            await interaction.response.send_message(THANKS[Rating.UP], ephemeral=True)


class ReasonModal(discord.ui.Modal, title="What was wrong with the answer?"):
    reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
        label="Reason (optional)", style=discord.TextStyle.paragraph, required=False, max_length=1000,
        placeholder="Wrong facts, missed the point, too long…")

    def __init__(self, book: FeedbackBook, turn_id: int) -> None:
        # No timeout: a timer per open form would outlive the client, and discord.py keeps one form per user and
        # custom id (a second 👎 on the same answer replaces the first), so dismissed forms cannot pile up.
        super().__init__(custom_id=f"{REASON_PREFIX}{turn_id}", timeout=None)
        self._book = book
        self._turn_id = turn_id

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self._book.reason(self._turn_id, str(interaction.user.id), self.reason.value or "")
        await interaction.response.send_message(THANKS[Rating.DOWN], ephemeral=True)


def feedback_view(turn_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for rating in Rating:
        view.add_item(FeedbackButton(Press(rating, turn_id)))
    return view
