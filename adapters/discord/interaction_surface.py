"""A ReplySurface over a deferred slash-command interaction.

The deferred "is thinking…" message is the status until text arrives; the first message edits it
(`edit_original_response`), longer answers continue in followups. An interaction token lives 15 minutes: close
to that, writes move to the bot's own channel endpoints so a long answer (many tool rounds) still completes.
Where the bot has no channel endpoints (a user install used in a group DM or a server the bot is not in), the
answer stays on the token: when it runs out, one last followup says so, and nothing is sent to a channel the
bot cannot reach.
Interaction webhooks have their own per-token bucket (and skip the global limit), so each interaction gets its
own budget; after the hand-over the channel's shared budget applies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import discord

from adapters.discord.feedback import feedback_view
from adapters.discord.surface import (
    DISCORD_OPTIONS,
    MAX_CHARS,
    NO_PINGS,
    ChannelBudgets,
    call_discord,
)
from bot.budget import TokenBucketBudget
from bot.types import AnswerControls, WriteBudget

log = logging.getLogger(__name__)

OUT_OF_TIME = ("⚠️ Discord gives an answer here 15 minutes, and this one ran out of time. Ask again, perhaps in "
               "smaller steps, to get the rest.")


MAX_FOLLOWUPS = 5
CUT_AT_FIVE = "⚠️ Discord lets me send only five follow-up messages here, so the answer stops. Ask me to go on."


class FollowupLimit(RuntimeError):
    """The answer has used every followup Discord allows a user-installed app in this place."""


class OutOfTime(RuntimeError):
    """The interaction token is spent and the bot has no other way into this channel."""


def channel_reachable(interaction: discord.Interaction[Any]) -> bool:
    """Whether the bot's own channel endpoints work here: a server it was added to, or its own DM, and not a
    group DM or server reached only through someone's user install."""
    if interaction.guild_id is not None:
        return interaction.is_guild_integration()
    context = interaction.context
    return bool(context.dm_channel) and not context.private_channel

# The interaction webhook bucket observed as 5 per 2 s: burst 2 + 1.5/s * 2 s stays within it.
TOKEN_RATE, TOKEN_BURST = 1.5, 2
# Writes switch to the channel this long before the token expires, leaving room for a slow request.
EXPIRY_MARGIN = timedelta(seconds=60)


class InteractionSurface:
    max_chars = MAX_CHARS
    publish_options = DISCORD_OPTIONS

    def __init__(self, interaction: discord.Interaction, budgets: ChannelBudgets, *, ephemeral: bool = False,
                 clock: Callable[[], datetime] = discord.utils.utcnow) -> None:
        self._interaction = interaction
        self._budgets = budgets
        self._ephemeral = ephemeral
        self._clock = clock
        self._token_budget = TokenBucketBudget(rate=TOKEN_RATE, burst=TOKEN_BURST, reserve=1)
        self._original: int | None = None
        self.via_channel: list[int] = []
        self.reachable = channel_reachable(interaction)
        self._out_of_time = False
        self._followups = 0

    def _expiring(self) -> bool:
        # Ephemeral messages exist only through the token, so there is nothing to hand over.
        return (not self._ephemeral and self.reachable
                and self._clock() >= self._interaction.expires_at - EXPIRY_MARGIN)

    async def _check_time(self) -> None:
        """Unreachable channel, token nearly spent: say so once in a last followup, then write no more."""
        if self.reachable or self._clock() < self._interaction.expires_at - EXPIRY_MARGIN:
            return
        if not self._out_of_time:
            self._out_of_time = True
            log.warning("answer cut by the 15-minute interaction limit where the bot has no channel access")
            await call_discord(self._interaction.followup.send(OUT_OF_TIME, ephemeral=self._ephemeral,
                                                               allowed_mentions=NO_PINGS))
        raise OutOfTime

    @property
    def edit_budget(self) -> WriteBudget:
        if self._expiring() and self._interaction.channel_id is not None:
            return self._budgets.for_channel(self._interaction.channel_id)
        return self._token_budget

    @property
    def post_budget(self) -> WriteBudget:
        return self.edit_budget

    def _channel(self) -> discord.abc.Messageable | None:
        channel = self._interaction.channel
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        await self._check_time()
        interaction = self._interaction
        channel = self._channel()
        extra = {"view": feedback_view(controls.turn_id)} if controls is not None else {}
        if self._expiring() and channel is not None:
            await self._budgets.global_requests.acquire(final=True)
            sent = await call_discord(channel.send(text, allowed_mentions=NO_PINGS, **extra))
            self.via_channel.append(sent.id)
            return str(sent.id)
        if self._original is None:
            message = await call_discord(interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS,
                                                                            **extra))
            self._original = message.id
            return str(message.id)
        if not self.reachable:
            text = self._within_followup_limit(text)
        followup = await call_discord(interaction.followup.send(text, wait=True, ephemeral=self._ephemeral,
                                                                allowed_mentions=NO_PINGS, **extra))
        self._followups += 1
        return str(followup.id)

    def _within_followup_limit(self, text: str) -> str:
        """Discord allows a user-installed app five followups where it is not a member: the fifth says that the
        answer is cut there, and there is no sixth."""
        if self._followups >= MAX_FOLLOWUPS:
            raise FollowupLimit
        if self._followups == MAX_FOLLOWUPS - 1:
            log.warning("answer cut at Discord's five followups for a user-installed app")
            return text[:MAX_CHARS - len(CUT_AT_FIVE) - 2].rstrip() + "\n\n" + CUT_AT_FIVE
        return text

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        await self._check_time()
        interaction = self._interaction
        channel = self._channel()
        extra = {"view": feedback_view(controls.turn_id)} if controls is not None else {}
        if self._expiring() and channel is not None:
            partial = channel.get_partial_message(int(message_id))  # type: ignore[attr-defined]
            await self._budgets.global_requests.acquire(final=True)
            await call_discord(partial.edit(content=text, allowed_mentions=NO_PINGS, **extra))
            self.via_channel.append(int(message_id))
        elif int(message_id) == self._original:
            await call_discord(interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS, **extra))
        else:
            await call_discord(interaction.followup.edit_message(int(message_id), content=text,
                                                                 allowed_mentions=NO_PINGS, **extra))

    async def set_status(self, status: str | None) -> None:
        """The deferred response already shows "<bot> is thinking…" until the first text."""

    def address(self) -> dict[str, Any]:
        """A resumed answer cannot use this interaction's token (another process, or expired): it goes to the
        channel instead."""
        return {"channel_id": str(self._interaction.channel_id), "interaction": str(self._interaction.id),
                "reachable": self.reachable}

    async def close(self) -> None:
        """Nothing to release; present so callers treat every surface alike."""
