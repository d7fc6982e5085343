"""TokenBucketBudget: refill, reserve for finals, 429 penalties, FIFO waiters with finals first."""

from __future__ import annotations

import asyncio

import pytest

from bot.budget import LocalBudgets, TokenBucketBudget, UnlimitedBudget
from bot.metrics import Metrics, budget_family
from tests.surface_fake import ManualClock


async def take_all(budget: TokenBucketBudget, *, final: bool = False) -> int:
    taken = 0
    while await budget.try_acquire(final=final):
        taken += 1
        assert taken < 10_000
    return taken


async def test_burst_then_refill_at_rate() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=2.0, burst=5, clock=clock)
    assert await take_all(budget) == 5
    assert budget.next_available_in() == pytest.approx(0.5)
    clock.advance(0.25)
    assert not await budget.try_acquire()
    clock.advance(0.25)
    assert await budget.try_acquire()
    clock.advance(100)
    assert await take_all(budget) == 5  # refill is capped at the burst


async def test_reserve_is_only_for_final_writes() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=1.0, burst=4, reserve=2, clock=clock)
    assert await take_all(budget) == 2  # interim writes leave the reserve alone
    assert not await budget.try_acquire()
    assert budget.next_available_in() == pytest.approx(1.0)
    assert budget.next_available_in(final=True) == 0.0
    assert await budget.try_acquire(final=True)
    assert await budget.try_acquire(final=True)
    assert not await budget.try_acquire(final=True)
    assert budget.next_available_in(final=True) == pytest.approx(1.0)
    assert budget.next_available_in() == pytest.approx(3.0)


async def test_penalize_blocks_everyone_until_retry_after() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=10.0, burst=10, reserve=1, clock=clock)
    await budget.penalize(2.0)
    assert not await budget.try_acquire()
    assert not await budget.try_acquire(final=True)
    assert budget.next_available_in(final=True) == pytest.approx(2.0)
    clock.advance(1.99)
    assert not await budget.try_acquire(final=True)
    clock.advance(0.01)
    assert await budget.try_acquire(final=True)
    # 2 s of refill at 10/s is capped at the burst; one went to the final, one stays in reserve.
    assert await take_all(budget) == 8
    clock.advance(100)
    await budget.penalize(0.5)
    await budget.penalize(0.1)  # a shorter penalty does not shorten the longer one
    assert budget.next_available_in() == pytest.approx(0.5)


async def test_bucket_restarts_empty_after_a_penalty() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=4.0, burst=8, clock=clock)
    await budget.penalize(0.5)
    clock.advance(0.5)
    assert await take_all(budget) == 2  # 0.5 s of refill at 4/s, not the full burst


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucketBudget(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucketBudget(rate=1, burst=0)
    with pytest.raises(ValueError):
        TokenBucketBudget(rate=1, burst=2, reserve=2)


async def test_acquire_waiters_are_served_in_arrival_order() -> None:
    budget = TokenBucketBudget(rate=400.0, burst=1)
    assert await budget.try_acquire()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await budget.acquire()
        order.append(n)

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(waiter(n)))
        await asyncio.sleep(0)  # let it queue before the next one arrives
    # A queued waiter is never overtaken by try_acquire.
    assert not await budget.try_acquire()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == list(range(6))


async def test_final_waiters_go_before_interim_waiters() -> None:
    budget = TokenBucketBudget(rate=200.0, burst=3, reserve=1)
    assert await take_all(budget, final=True) == 3
    order: list[str] = []

    async def waiter(name: str, final: bool) -> None:
        await budget.acquire(final=final)
        order.append(name)

    tasks = [asyncio.create_task(waiter("interim-1", False))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(waiter("interim-2", False)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(waiter("final-1", True)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(waiter("final-2", True)))
    await asyncio.sleep(0)
    assert not await budget.try_acquire(final=True)  # final-1 and final-2 are queued first
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["final-1", "final-2", "interim-1", "interim-2"]


async def test_cancelled_waiter_leaves_the_queue() -> None:
    budget = TokenBucketBudget(rate=200.0, burst=1)
    assert await budget.try_acquire()
    first = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    second = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 5)
    assert first.cancelled()


async def test_acquire_waits_out_a_penalty() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=1000.0, burst=5, clock=clock)
    await budget.penalize(0.02)
    task = asyncio.create_task(budget.acquire(final=True))
    await asyncio.sleep(0.005)
    assert not task.done()  # the fake clock has not moved: still penalized
    clock.advance(0.02)
    await asyncio.wait_for(task, 5)


async def test_unlimited_budget_grants_everything_but_honours_penalties() -> None:
    clock = ManualClock()
    budget = UnlimitedBudget(clock=clock)
    assert all([await budget.try_acquire() for _ in range(1000)])
    await budget.acquire(final=True)
    await budget.penalize(1.0)
    assert not await budget.try_acquire()
    assert budget.next_available_in() == pytest.approx(1.0)
    clock.advance(1.0)
    assert await budget.try_acquire()


@pytest.mark.parametrize(("key", "family"), [
    ("slack:T0FAKE0001:chat.update", "slack:chat.update"),
    ("slack:T0FAKE0001:chat.postMessage:C0GENERAL1", "slack:chat.postMessage"),
    ("discord:channel:1234567890123", "discord:channel"),
    ("discord:global", "discord:global"),
])
def test_budget_waits_are_labelled_without_ids(key: str, family: str) -> None:
    assert budget_family(key) == family


async def test_a_write_that_queued_is_observed_with_its_wait() -> None:
    metrics = Metrics()
    budget = LocalBudgets(metrics=metrics).bucket("slack:T0FAKE0001:chat.update", rate=20.0, burst=1)
    await budget.acquire()  # from the burst: no wait, nothing observed
    labels = {"budget": "slack:chat.update"}
    assert metrics.registry.get_sample_value("kimibot_budget_wait_seconds_count", labels) in (None, 0)
    await budget.acquire()  # queues about 1/20 s for the refill
    assert metrics.registry.get_sample_value("kimibot_budget_wait_seconds_count", labels) == 1
    assert metrics.registry.get_sample_value("kimibot_budget_wait_seconds_sum", labels) > 0.02
