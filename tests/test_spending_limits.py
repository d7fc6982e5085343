"""Spending limits: checked before the question becomes a Kimi call; the reply names the limit and when it resets;
admins see them and lift one scope's limits for the rest of the month."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.access import AccessPolicy
from bot.config import AccessConfig, ConfigError, LimitPeriod, LimitScope, SpendingLimit, load_config
from bot.limits import SpendingLimits, _parse_amount, period_bounds
from bot.types import IncomingMessage
from storage.store import Store, StoreUnavailable
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import build_harness

CHEAP = 1e-9  # any answer costs more than this


async def test_a_user_over_their_daily_limit_gets_told_and_kimi_is_not_asked(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, limits=[{"scope": "user", "period": "day", "usd": CHEAP}])
    try:
        await h.ask("first question")
        assert len(kimi.requests) == 1
        outcome, surface = await h.ask("second question", thread="t2")
        assert outcome is not None and outcome.status == "refused"
        assert len(kimi.requests) == 1, "Kimi was asked although the limit was reached"
        said = surface.visible_messages()[0]
        assert said.startswith("You have reached the daily Kimi spending limit of $0.000000 ($0.00")
        assert "It resets at 00:00 UTC, in " in said and "`!limits lift user <user id>`" in said
        await h.ask("someone else asks", thread="t3", user="U2")  # another user's own limit is untouched
        assert len(kimi.requests) == 2
    finally:
        await h.engine.shutdown()


async def test_a_channels_token_limit_applies_to_everyone_in_it_and_admins_can_lift_it(kimi: FakeKimi,
                                                                                       store: Store) -> None:
    h = await build_harness(kimi, store, limits=[{"scope": "channel", "period": "month", "tokens": 1}])
    try:
        await h.ask("first", channel="C1")
        _, refused = await h.ask("second", channel="C1", user="U2", thread="t2")
        assert refused.visible_messages()[0].startswith("This channel has reached the monthly Kimi spending limit "
                                                        "of 1 tokens")
        await h.ask("elsewhere", channel="C2", thread="t3")
        assert len(kimi.requests) == 2
        surface = h.surface()
        admins_only = AccessPolicy(AccessConfig(admins=["ADMIN"]))
        await h.engine.handle(h.message("!limits lift channel", channel="C1", user="U2", thread="t4"), surface,
                              access=admins_only)
        assert surface.visible_messages()[0] == "Only admins can change spending limits."
        _, shown = await h.ask("!limits", channel="C1", thread="t5")
        assert "per channel per month: 1 tokens; this channel: " in shown.visible_messages()[0]
    finally:
        await h.engine.shutdown()


async def test_lift_and_restore(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, limits=[{"scope": "user", "period": "month", "usd": CHEAP}])
    try:
        await h.ask("first")
        _, lifted = await h.ask("!limits lift user U1", thread="t2")  # no admin list: everyone is an admin
        assert lifted.visible_messages()[0].startswith("Spending limits for that user are lifted until ")
        await h.ask("after the lift", thread="t3")
        assert len(kimi.requests) == 2
        _, shown = await h.ask("!limits", thread="t4")
        assert "(lifted until " in shown.visible_messages()[0]
        _, restored = await h.ask("!limits restore user U1", thread="t5")
        assert restored.visible_messages()[0] == "Limits restored."
        _, refused = await h.ask("once more", thread="t6")
        assert refused.visible_messages()[0].startswith("You have reached the monthly")
        assert len(kimi.requests) == 2
    finally:
        await h.engine.shutdown()


async def test_admins_set_their_workspaces_own_limits_in_place_of_the_configured_ones(kimi: FakeKimi,
                                                                                     store: Store) -> None:
    h = await build_harness(kimi, store, limits=[{"scope": "user", "period": "day", "usd": 100.0}])
    try:
        await h.ask("first")
        _, said = await h.ask("!limits set user day 1 tokens", thread="t2")  # no admin list: everyone is one
        assert said.visible_messages()[0] == "Limit set: 1 tokens per user per day in this workspace."
        _, refused = await h.ask("second", thread="t3")
        assert refused.visible_messages()[0].startswith("You have reached the daily Kimi spending limit of 1 tokens")
        assert len(kimi.requests) == 1
        _, shown = await h.ask("!limits", thread="t4")
        assert "per user per day: 1 tokens; you: " in shown.visible_messages()[0]
        assert "(set in this workspace)" in shown.visible_messages()[0]
        assert "$100.00" not in shown.visible_messages()[0]  # replaced, not added
        other = await build_harness(kimi, store, host="other-host",
                                    limits=[{"scope": "user", "period": "day", "usd": 100.0}])
        try:  # another replica reads the workspace's limits from the database
            _, elsewhere = await other.ask("from another process", thread="t5", message_id="m-other")
            assert elsewhere.visible_messages()[0].startswith("You have reached the daily")
        finally:
            await other.engine.shutdown()
        _, off = await h.ask("!limits set user day off", thread="t6")
        assert off.visible_messages()[0] == "No daily limit per user in this workspace now."
        await h.ask("no limit now", thread="t7")
        assert len(kimi.requests) == 2
        _, back = await h.ask("!limits unset user day", thread="t8")
        assert back.visible_messages()[0] == "Back to the configured limit for that scope and period."
        _, bad = await h.ask("!limits set user day lots", thread="t9")
        assert "`!limits set user|channel|workspace day|month <amount>`" in bad.visible_messages()[0]
    finally:
        await h.engine.shutdown()


@pytest.mark.parametrize(("text", "expected"), [
    ("$2", (2.0, None)), ("2.5 usd", (2.5, None)), ("3$", (3.0, None)), ("200k tokens", (None, 200_000)),
    ("1.5m tokens", (None, 1_500_000)), ("500 tokens", (None, 500)), ("0 usd", (None, None)), ("lots", (None, None)),
])
def test_amounts_admins_type(text: str, expected: tuple[float | None, int | None]) -> None:
    assert _parse_amount(text) == expected


def test_periods_are_utc_days_and_months() -> None:
    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert period_bounds(now, LimitPeriod.DAY) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period_bounds(now, LimitPeriod.MONTH) == (datetime(2026, 12, 1, tzinfo=UTC),
                                                     datetime(2027, 1, 1, tzinfo=UTC))


def test_a_limit_in_two_units_is_a_config_error_naming_it(tmp_path: object) -> None:
    path = tmp_path / "kimibot.toml"  # type: ignore[operator]
    path.write_text('[[limits]]\nscope = "user"\nperiod = "day"\nusd = 1.0\ntokens = 5\n')
    with pytest.raises(ConfigError, match=r"limits\.0"):
        load_config(path, env={})


class UnreachableSpend:
    """A store whose usage cannot be read (the database is down past its retry window)."""

    async def lifted_until(self, *args: object) -> None:
        return None

    async def spent(self, *args: object, **kwargs: object) -> tuple[float, int]:
        raise StoreUnavailable("spent: OperationalError")


async def test_a_database_that_cannot_say_what_was_spent_does_not_cost_the_question(
        caplog: pytest.LogCaptureFixture) -> None:
    limits = SpendingLimits(UnreachableSpend(), [SpendingLimit(scope=LimitScope.USER, period=LimitPeriod.DAY,  # type: ignore[arg-type]
                                                               usd=CHEAP)])
    message = IncomingMessage(platform="test", workspace="W1", channel="C1", thread="t", message_id="m1", user="U1",
                              text="hello")
    assert await limits.checked_refusal(message) is None
    assert "spending limits not checked; answering anyway" in caplog.text
