"""Spending limits, checked before every question: a user, channel or workspace over its daily or monthly cap
gets a reply naming the limit and when it resets, and no Kimi call. Admins see them (`limits`), lift one scope's
limits for the rest of the month (`limits lift user <id>|channel|workspace`, `limits restore ...`) and set their
workspace's own (`limits set <scope> <period> <amount>|off`, `limits unset <scope> <period>`), which replace the
configuration's for that scope and period. A workspace's limits are read once per CACHE_SECONDS per process, so
a limit set on one replica applies on the others within that time."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bot.access import AccessPolicy
from bot.config import LimitPeriod, LimitScope, SpendingLimit
from bot.context import utc_now
from bot.types import IncomingMessage
from storage.store import Store

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
_USD = re.compile(r"^(?:\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:\$|usd|dollars?))$")
_TOKENS = re.compile(r"^(\d+(?:\.\d+)?)\s*([km]?)\s*tokens?$")
SET_USAGE = ("`{p}limits set user|channel|workspace day|month <amount>`, the amount as `$2`, `5 usd`, "
             "`200k tokens` or `off`; `{p}limits unset <scope> <period>` goes back to the configured one.")

WHOSE = {LimitScope.USER: "You have", LimitScope.CHANNEL: "This channel has",
         LimitScope.WORKSPACE: "This workspace has"}


def period_bounds(now: datetime, period: LimitPeriod) -> tuple[datetime, datetime]:
    """The current UTC day or month: when it began and when it resets."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is LimitPeriod.DAY:
        return day, day + timedelta(days=1)
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def _amount(limit: SpendingLimit, value: float) -> str:
    if limit.usd is None:
        return f"{int(value):,} tokens"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.6f}"


def _until(reset: datetime, now: datetime) -> str:
    left = reset - now
    hours, minutes = divmod(int(left.total_seconds()) // 60, 60)
    when = reset.strftime("%H:%M UTC") if left < timedelta(days=1) else reset.strftime("%Y-%m-%d %H:%M UTC")
    return f"{when}, in {hours} h {minutes} min" if hours < 48 else when


class SpendingLimits:
    def __init__(self, store: Store, limits: Sequence[SpendingLimit], *,
                 clock: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._configured = list(limits)
        self._clock = clock
        self._monotonic = monotonic
        # (platform, workspace) -> (read at, [(limit, set by the workspace's admins)])
        self._cache: dict[tuple[str, str], tuple[float, list[tuple[SpendingLimit, bool]]]] = {}

    async def limits_for(self, platform: str, workspace: str) -> list[tuple[SpendingLimit, bool]]:
        """The limits that apply in a workspace: the configured ones, each replaced by what its admins set for
        the same scope and period; with whether the workspace set it."""
        now = self._monotonic()
        cached = self._cache.get((platform, workspace))
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        rows = await self._store.workspace_limits(platform, workspace)
        replaced = {(scope, period) for scope, period, _, _ in rows}
        limits = [(lim, False) for lim in self._configured if (lim.scope.value, lim.period.value) not in replaced]
        limits += [(SpendingLimit(scope=LimitScope(scope), period=LimitPeriod(period), usd=usd, tokens=tokens), True)
                   for scope, period, usd, tokens in rows if usd is not None or tokens is not None]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(platform, workspace)] = (now, limits)
        return limits

    @staticmethod
    def _subject(message: IncomingMessage, scope: LimitScope) -> str:
        return {LimitScope.USER: message.user, LimitScope.CHANNEL: message.channel,
                LimitScope.WORKSPACE: message.workspace}[scope]

    async def _use(self, message: IncomingMessage, limit: SpendingLimit, now: datetime) -> tuple[float, datetime]:
        start, reset = period_bounds(now, limit.period)
        usd, tokens = await self._store.spent(
            message.platform, message.workspace, since=start,
            user=message.user if limit.scope is LimitScope.USER else None,
            channel=message.channel if limit.scope is LimitScope.CHANNEL else None)
        return (usd if limit.usd is not None else tokens), reset

    async def checked_refusal(self, message: IncomingMessage, prefix: str = "!") -> str | None:
        """refusal(), except that a database that cannot say what was spent does not cost the question: it is
        answered (a limit is a guard on spending, not a reason to lose what was asked), and the operator is told."""
        try:
            return await self.refusal(message, prefix)
        except Exception as error:
            log.warning("spending limits not checked; answering anyway", extra={"error": type(error).__name__})
            return None

    async def refusal(self, message: IncomingMessage, prefix: str = "!") -> str | None:
        """Why `message` may not be answered now, or None."""
        now = self._clock()
        lifted: dict[LimitScope, bool] = {}
        for limit, _ in await self.limits_for(message.platform, message.workspace):
            if limit.scope not in lifted:
                lifted[limit.scope] = await self._store.lifted_until(
                    message.platform, message.workspace, limit.scope.value,
                    self._subject(message, limit.scope)) is not None
            if lifted[limit.scope]:
                continue
            used, reset = await self._use(message, limit, now)
            cap = limit.usd if limit.usd is not None else float(limit.tokens or 0)
            if used >= cap:
                return (f"{WHOSE[limit.scope]} reached the {'daily' if limit.period is LimitPeriod.DAY else 'monthly'}"
                        f" Kimi spending limit of {_amount(limit, cap)} ({_amount(limit, used)} used). It resets at "
                        f"{_until(reset, now)}. An admin can lift it with `{prefix}limits lift {limit.scope.value}"
                        f"{' <user id>' if limit.scope is LimitScope.USER else ''}`.")
        return None

    async def describe(self, message: IncomingMessage) -> str:
        limits = await self.limits_for(message.platform, message.workspace)
        if not limits:
            return ("No spending limits apply here (`[[limits]]` in kimibot.toml; admins: `limits set ...`).")
        now = self._clock()
        lines = ["*Spending limits* (UTC days and months):"]
        for limit, set_here in limits:
            used, _ = await self._use(message, limit, now)
            cap = limit.usd if limit.usd is not None else float(limit.tokens or 0)
            lifted = await self._store.lifted_until(message.platform, message.workspace, limit.scope.value,
                                                    self._subject(message, limit.scope))
            note = (" (set in this workspace)" if set_here else "") + (
                f" (lifted until {lifted:%Y-%m-%d %H:%M} UTC)" if lifted else "")
            whose = {LimitScope.USER: "you", LimitScope.CHANNEL: "this channel",
                     LimitScope.WORKSPACE: "this workspace"}[limit.scope]
            lines.append(f"• per {limit.scope.value} per {limit.period.value}: {_amount(limit, cap)}; {whose}: "
                         f"{_amount(limit, used)}{note}")
        return "\n".join(lines)

    async def command(self, message: IncomingMessage, args: str, access: AccessPolicy, prefix: str) -> str:
        words = args.split()
        if not words:
            return await self.describe(message)
        action = words[0].lower()
        if action not in ("lift", "restore", "set", "unset") or len(words) < 2:
            return (f"`{prefix}limits` shows the limits; admins: `{prefix}limits lift user <id>|channel|workspace`"
                    f" (until the month ends), `{prefix}limits restore ...`, " + SET_USAGE.format(p=prefix))
        if not access.is_admin(message):
            return "Only admins can change spending limits."
        if action in ("set", "unset"):
            return await self._set(message, action, words[1:], prefix)
        try:
            scope = LimitScope(words[1].lower())
        except ValueError:
            return "Which limits? `user <id>`, `channel` (this one) or `workspace`."
        if scope is LimitScope.USER and len(words) < 3:
            return f"Whose? `{prefix}limits {action} user <user id>`."
        subject = words[2].strip("<@>") if scope is LimitScope.USER else self._subject(message, scope)
        if action == "restore":
            done = await self._store.restore_limits(message.platform, message.workspace, scope.value, subject)
            return "Limits restored." if done else "Those limits were not lifted."
        until = period_bounds(self._clock(), LimitPeriod.MONTH)[1]
        await self._store.lift_limits(message.platform, message.workspace, scope.value, subject, until=until,
                                      lifted_by=message.user)
        return f"Spending limits for that {scope.value} are lifted until {until:%Y-%m-%d} 00:00 UTC."

    async def _set(self, message: IncomingMessage, action: str, words: list[str], prefix: str) -> str:
        try:
            scope, period = LimitScope(words[0].lower()), LimitPeriod(words[1].lower())
        except (IndexError, ValueError):
            return SET_USAGE.format(p=prefix)
        where = (message.platform, message.workspace)
        if action == "unset":
            done = await self._store.unset_workspace_limit(*where, scope.value, period.value)
            self._cache.pop(where, None)
            return ("Back to the configured limit for that scope and period." if done
                    else "This workspace had not set that limit.")
        amount = " ".join(words[2:]).lower()
        usd, tokens = _parse_amount(amount)
        if usd is None and tokens is None and amount not in ("off", "none"):
            return SET_USAGE.format(p=prefix)
        await self._store.set_workspace_limit(*where, (scope.value, period.value, usd, tokens),
                                              set_by=message.user)
        self._cache.pop(where, None)
        log.info("spending limit set", extra={"scope": scope.value, "period": period.value,
                                               "usd": usd, "tokens": tokens})
        if usd is None and tokens is None:
            return (f"No {'daily' if period is LimitPeriod.DAY else 'monthly'} limit per {scope.value} in this "
                    "workspace now.")
        shown = f"${usd:,.2f}" if usd is not None else f"{tokens:,} tokens"
        return f"Limit set: {shown} per {scope.value} per {period.value} in this workspace."


def _parse_amount(text: str) -> tuple[float | None, int | None]:
    """`$2`, `2.5 usd`, `200k tokens`, `1m tokens` -> (usd, tokens); (None, None) when it is neither (or 0)."""
    usd = _USD.match(text)
    if usd is not None:
        value = float(usd.group(1) or usd.group(2))
        return (value, None) if value > 0 else (None, None)
    tokens = _TOKENS.match(text)
    if tokens is not None:
        value = int(float(tokens.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[tokens.group(2)])
        return (None, value) if value > 0 else (None, None)
    return None, None
