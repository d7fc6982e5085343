"""One turn at a time per conversation, in reservation (arrival) order; stop, restart, hold and queue limits."""

import asyncio
from collections.abc import Awaitable, Callable

from bot.scheduler import TurnScheduler
from bot.types import ConversationKey

KEY = ConversationKey("console", "local", "me", "s")


def run(scheduler: TurnScheduler, key: ConversationKey, turn: Callable[[], Awaitable[object]]) -> asyncio.Task[object]:
    ticket = scheduler.reserve(key)
    return asyncio.create_task(scheduler.run(ticket, turn))


async def test_one_turn_at_a_time_in_order() -> None:
    scheduler = TurnScheduler("queue")
    events: list[str] = []
    gate = asyncio.Event()

    async def turn(name: str) -> str:
        events.append(f"start {name}")
        if name == "a":
            await gate.wait()
        events.append(f"end {name}")
        return name

    first = run(scheduler, KEY, lambda: turn("a"))
    second = run(scheduler, KEY, lambda: turn("b"))
    await asyncio.sleep(0.01)
    assert scheduler.busy(KEY)
    assert events == ["start a"]
    gate.set()
    assert await first == "a" and await second == "b"
    assert events == ["start a", "end a", "start b", "end b"]
    assert not scheduler.busy(KEY)


async def test_reservation_order_wins_over_the_order_turns_are_handed_in() -> None:
    """A message that finishes its lookups first still waits for the one that arrived before it."""
    scheduler = TurnScheduler("queue")
    events: list[str] = []
    early, late = scheduler.reserve(KEY), scheduler.reserve(KEY)
    assert (early.ahead, late.ahead) == (0, 1)

    async def turn(name: str) -> str:
        events.append(name)
        return name

    second = asyncio.create_task(scheduler.run(late, lambda: turn("late")))
    await asyncio.sleep(0.01)
    assert events == []  # the early ticket has not run yet, so the late one waits
    first = asyncio.create_task(scheduler.run(early, lambda: turn("early")))
    assert await first == "early" and await second == "late"
    assert events == ["early", "late"]


async def test_a_released_ticket_lets_the_next_one_go() -> None:
    scheduler = TurnScheduler("queue")
    duplicate, real = scheduler.reserve(KEY), scheduler.reserve(KEY)

    async def turn() -> str:
        return "answered"

    task = asyncio.create_task(scheduler.run(real, turn))
    await asyncio.sleep(0.01)
    assert not task.done()
    scheduler.release(duplicate)
    assert await task == "answered"
    assert not scheduler.busy(KEY)


async def test_other_conversations_run_in_parallel() -> None:
    scheduler = TurnScheduler("queue")
    gate = asyncio.Event()
    other = ConversationKey("console", "local", "me", "other")

    async def blocked() -> str:
        await gate.wait()
        return "blocked"

    async def free() -> str:
        return "free"

    task = run(scheduler, KEY, blocked)
    await asyncio.sleep(0)
    assert await run(scheduler, other, free) == "free"
    gate.set()
    assert await task == "blocked"


async def test_stop_cancels_running_and_drops_queued() -> None:
    scheduler = TurnScheduler("queue")
    cleaned: list[str] = []

    async def long_turn(name: str) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cleaned.append(name)
            raise
        return name

    first = run(scheduler, KEY, lambda: long_turn("a"))
    second = run(scheduler, KEY, lambda: long_turn("b"))
    await asyncio.sleep(0.01)
    assert scheduler.cancel(KEY)
    assert await first is None
    assert await second is None
    assert cleaned == ["a"]
    assert not scheduler.cancel(KEY)


async def test_restart_policy_cancels_the_running_turn() -> None:
    scheduler = TurnScheduler("restart")

    async def slow() -> str:
        await asyncio.sleep(30)
        return "slow"

    async def quick() -> str:
        return "quick"

    first = run(scheduler, KEY, slow)
    await asyncio.sleep(0.01)
    assert await run(scheduler, KEY, quick) == "quick"
    assert await first is None


async def test_tickets_count_the_turns_ahead() -> None:
    scheduler = TurnScheduler("queue", max_queued=1)
    tickets = [scheduler.reserve(KEY) for _ in range(3)]
    assert [t.ahead for t in tickets] == [0, 1, 2]
    assert tickets[2].ahead > scheduler.max_queued  # the engine refuses this one
    for ticket in tickets:
        scheduler.release(ticket)
    assert not scheduler.busy(KEY)


async def test_hold_queued_lets_running_turns_finish_but_starts_no_more() -> None:
    scheduler = TurnScheduler("queue")
    gate = asyncio.Event()

    async def running() -> str:
        await gate.wait()
        return "finished"

    async def queued() -> str:
        return "should not run"

    first = run(scheduler, KEY, running)
    second = run(scheduler, KEY, queued)
    await asyncio.sleep(0.01)
    scheduler.hold_queued()
    assert len(scheduler.running()) == 1
    gate.set()
    assert await first == "finished"
    assert await second is None


async def test_shutdown_cancels_running_turns() -> None:
    scheduler = TurnScheduler("queue")

    async def forever() -> None:
        await asyncio.sleep(30)

    task = run(scheduler, KEY, forever)
    await asyncio.sleep(0.01)
    await scheduler.shutdown()
    assert await task is None


async def test_a_second_stop_does_not_cut_the_first_ones_clean_up_short() -> None:
    scheduler = TurnScheduler("queue")
    cleaned = asyncio.Event()
    started = asyncio.Event()

    async def turn() -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # writing "Stopped." and closing the turn take a moment
            cleaned.set()
            raise
        return "never"

    running = run(scheduler, KEY, turn)
    await started.wait()
    assert scheduler.cancel(KEY)
    await asyncio.sleep(0.01)
    assert scheduler.cancel(KEY)  # still reported as stopping
    assert await running is None
    assert cleaned.is_set()
