import asyncio

import pytest

from bot.turns import QueueFull, TurnScheduler
from bot.types import ConversationKey

KEY = ConversationKey("console", "local", "me", "s")


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

    first = asyncio.create_task(scheduler.run(KEY, lambda: turn("a")))
    await asyncio.sleep(0)
    second = asyncio.create_task(scheduler.run(KEY, lambda: turn("b")))
    await asyncio.sleep(0.01)
    assert scheduler.busy(KEY)
    assert events == ["start a"]
    gate.set()
    assert await first == "a" and await second == "b"
    assert events == ["start a", "end a", "start b", "end b"]
    assert not scheduler.busy(KEY)


async def test_other_conversations_run_in_parallel() -> None:
    scheduler = TurnScheduler("queue")
    gate = asyncio.Event()
    other = ConversationKey("console", "local", "me", "other")

    async def blocked() -> str:
        await gate.wait()
        return "blocked"

    task = asyncio.create_task(scheduler.run(KEY, blocked))
    await asyncio.sleep(0)

    async def free() -> str:
        return "free"

    assert await scheduler.run(other, free) == "free"
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

    first = asyncio.create_task(scheduler.run(KEY, lambda: long_turn("a")))
    await asyncio.sleep(0)
    second = asyncio.create_task(scheduler.run(KEY, lambda: long_turn("b")))
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

    first = asyncio.create_task(scheduler.run(KEY, slow))
    await asyncio.sleep(0.01)
    assert await scheduler.run(KEY, quick) == "quick"
    assert await first is None


async def test_queue_limit() -> None:
    scheduler = TurnScheduler("queue", max_queued=1)
    gate = asyncio.Event()

    async def wait() -> None:
        await gate.wait()

    running = asyncio.create_task(scheduler.run(KEY, wait))
    await asyncio.sleep(0)
    queued = asyncio.create_task(scheduler.run(KEY, wait))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await scheduler.run(KEY, wait)
    gate.set()
    await asyncio.gather(running, queued)


async def test_shutdown_cancels_running_turns() -> None:
    scheduler = TurnScheduler("queue")

    async def forever() -> None:
        await asyncio.sleep(30)

    task = asyncio.create_task(scheduler.run(KEY, forever))
    await asyncio.sleep(0.01)
    await scheduler.shutdown()
    assert await task is None
