"""A busy or unreachable database: a question that arrives meanwhile is held and answered once the database is
back; one that is being answered is shown complete at once, its bookkeeping written later, never an error.

SQLite: another process holds the write lock for 10 s (twice the busy timeout). PostgreSQL: the server is cut
off for 10 s by a proxy in front of it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.engine import make_url

from bot.answer import INTERNAL_ERROR
from bot.types import ConversationKey
from storage.retry import RetryPolicy
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.tcp_proxy import TcpProxy
from tests.fixtures.db import sqlite_locked
from tests.fixtures.engine import Harness, build_harness
from tests.surface_fake import FakeSurface

OUTAGE = 10.0
sqlite_only = pytest.mark.skipif(bool(os.environ.get("KIMIBOT_TEST_POSTGRES_URL")), reason="a SQLite file's lock")
postgres_only = pytest.mark.skipif(not os.environ.get("KIMIBOT_TEST_POSTGRES_URL"), reason="a PostgreSQL server")


async def assert_answered_once(h: Harness, outcome: object, surface: FakeSurface, question: str,
                               thread: str = "t1") -> None:
    assert getattr(outcome, "status", None) == "complete"
    assert surface.visible_messages() == [f"Echo: {question}"]
    assert INTERNAL_ERROR not in surface.visible_text()
    conversation = await h.store.get_conversation(h.message(question, thread=thread).key)
    assert conversation is not None
    history = await h.store.history(conversation.id)
    assert [(m.role, m.text, m.status) for m in history] == [("user", question, "complete"),
                                                             ("assistant", f"Echo: {question}", "complete")]
    summary = await h.store.usage_summary(conversation_id=conversation.id)
    assert summary.calls == 1


async def question_during_outage(h: Harness, outage: Callable[[], Awaitable[None]], question: str) -> None:
    surface = h.surface()
    asked = asyncio.create_task(h.engine.handle(h.message(question), surface))
    await outage()
    outcome = await asyncio.wait_for(asked, 60)
    await assert_answered_once(h, outcome, surface, question)


async def answer_during_outage(h: Harness, kimi: FakeKimi, start_outage: Callable[[], Awaitable[None]],
                               end_outage: Callable[[], Awaitable[None]]) -> None:
    kimi.tokens_per_second = 20
    question = "one two three four five six seven eight nine ten"
    surface = h.surface()
    asked = asyncio.create_task(h.engine.handle(h.message(question, thread="during"), surface))
    await surface.wait_until(lambda: "Echo: one" in surface.visible_text(), within=10)
    await start_outage()
    # The answer reaches the user whole while the database is still away: only bookkeeping waits for it.
    await surface.wait_until(lambda: surface.visible_text() == f"Echo: {question}", within=OUTAGE - 2)
    assert not asked.done()
    await end_outage()
    outcome = await asyncio.wait_for(asked, 60)
    await assert_answered_once(h, outcome, surface, question, thread="during")
    assert await h.store.unfinished_turns(["test"], not_owned_by="nobody") == []  # closed once the database took it


@sqlite_only
@pytest.mark.timeout(90)
async def test_sqlite_locked_by_another_process_before_a_question(harness: Harness, db_url: str) -> None:
    started = time.monotonic()
    async with sqlite_locked(db_url, OUTAGE):
        await question_during_outage(harness, lambda: asyncio.sleep(0), "are you there?")
    assert time.monotonic() - started >= OUTAGE - 1  # it really waited out the lock, and then answered


@sqlite_only
@pytest.mark.timeout(90)
async def test_sqlite_locked_by_another_process_during_an_answer(harness: Harness, kimi: FakeKimi,
                                                                 db_url: str) -> None:
    holder: list[asyncio.Task[None]] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with sqlite_locked(db_url, OUTAGE):
            release.set()

    async def start() -> None:
        holder.append(asyncio.create_task(hold()))
        await release.wait()

    async def end() -> None:
        await holder[0]

    await answer_during_outage(harness, kimi, start, end)


@postgres_only
@pytest.mark.timeout(120)
async def test_postgresql_unreachable_for_ten_seconds(kimi: FakeKimi, db_url: str) -> None:
    url = make_url(db_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        store = await Store.open(url.set(port=proxy.port).render_as_string(hide_password=False))
        h = await build_harness(kimi, store)
        try:
            await h.ask("warm up", thread="warm-up")  # the pool holds connections when the cut comes

            async def outage() -> None:
                proxy.cut()
                await asyncio.sleep(OUTAGE)
                proxy.restore()

            await question_during_outage(h, outage, "still there after the outage?")
            assert proxy.refused > 0

            async def cut() -> None:
                proxy.cut()

            async def restore() -> None:
                await asyncio.sleep(OUTAGE - 2)
                proxy.restore()

            h.counter += 100  # new message ids: the second question lives in a conversation of its own
            await answer_during_outage(h, kimi, cut, restore)
        finally:
            await h.engine.shutdown()
            await h.client.aclose()
            await store.close()


async def test_cancelled_writes_leave_no_lock_behind(db_url: str) -> None:
    """A user's stop or a shutdown cancels answers mid-write; the transaction must still end cleanly, or an
    abandoned SQLite connection keeps the write lock and every later write waits out the busy timeout."""
    store = await Store.open(db_url, retry=RetryPolicy(window=1.0))
    try:
        conversation = await store.get_or_create_conversation(ConversationKey("test", "W", "C", "t"))
        for i in range(150):
            write = asyncio.create_task(store.add_message(conversation.id, role="user", text=f"cut {i}"))
            await asyncio.sleep(0.001 * (i % 4))
            write.cancel()
        started = time.monotonic()
        await store.add_message(conversation.id, role="user", text="after the cancellations")
        assert time.monotonic() - started < 4  # not a busy timeout (5 s) waited out
        # Cancelled writes are not torn: each either landed whole (they finish on their own) or not at all.
        texts = [m.text for m in await store.history(conversation.id)]
        assert "after the cancellations" in texts and all(t.startswith(("cut ", "after")) for t in texts)
    finally:
        await store.close()
