"""Turns outlive their process: taken over after a crash, handed over on shutdown, stopped only by users.

Engine-level: real stores (SQLite or PostgreSQL), the fake Kimi, and a FakeSurface standing for the platform
channel both "processes" write to. The process-level versions (SIGKILL, SIGTERM, a locked SQLite file) are in
test_faults_process.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from bot.answer import RESTARTED_NOTE, STOPPED_NOTE, SUSPENDED_NOTE
from bot.engine import EXPIRED_NOTICE, Engine
from bot.leases import TurnKeeper
from bot.replica import Replica
from bot.turn_work import question_record
from bot.types import IncomingAttachment, ReplySurface, ReplyUnreachable, ResumedTurn
from storage.models import utcnow
from storage.store import Store, StoredTurn, TurnState
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fixtures.engine import Harness, build_harness
from tests.surface_fake import FakeSurface


class ChannelResumer:
    """Every resumed turn writes to the same FakeSurface: the platform channel, as both processes see it."""

    def __init__(self, surface: FakeSurface) -> None:
        self.surface = surface

    @contextlib.asynccontextmanager
    async def surface_for(self, turn: ResumedTurn) -> AsyncIterator[ReplySurface]:
        yield self.surface

    def attachments_for(self, turn: ResumedTurn) -> tuple[IncomingAttachment, ...]:
        return ()


async def left_behind(h: Harness, surface: FakeSurface, text: str, *, shown: str | None = None,
                      owner: str = "gone-host/1/0000", age: timedelta = timedelta(0)) -> StoredTurn:
    """The database state a process leaves when it dies mid-answer: a leased turn, maybe a message shown."""
    message = h.message(text)
    turn = await h.store.claim_turn("test", [f"key:{message.message_id}"], key=message.key,
                                    question=question_record(message), reply={}, owner=owner,
                                    lease_until=utcnow() - timedelta(seconds=1) - age)
    assert turn is not None
    if shown is not None:
        await h.store.begin_answer(turn.id, turn.conversation_id, {"role": "user", "text": text})
        await h.store.set_turn_messages(turn.id, [await surface.post(shown)])
    return turn


def keeper_for(h: Harness, engine: Engine | None = None) -> TurnKeeper:
    return TurnKeeper(store=h.store, engine=engine or h.engine, config=h.config.turns)


async def state(store: Store, turn: StoredTurn) -> TurnState:
    stored = await store.get_turn(turn.id)
    assert stored is not None
    return stored.state


async def test_a_turn_left_by_a_dead_process_is_answered_again_in_its_own_message(harness: Harness) -> None:
    surface = FakeSurface()
    turn = await left_behind(harness, surface, "what is up", shown="Half an ans")
    harness.engine.register_resumer("test", ChannelResumer(surface))
    assert await keeper_for(harness).sweep() == 1
    await harness.engine.idle()
    assert surface.order == ["m1"]  # no second reply: the first one was rewritten
    assert surface.messages["m1"].startswith("Echo: what is up") and RESTARTED_NOTE in surface.messages["m1"]
    assert await state(harness.store, turn) is TurnState.DONE
    history = await harness.store.history(turn.conversation_id)
    assert [(m.role, m.text) for m in history] == [("user", "what is up"), ("assistant", "Echo: what is up")]
    assert len(harness.kimi.requests) == 1
    assert await keeper_for(harness).sweep() == 0  # done turns are never taken again


async def test_a_turn_that_never_started_is_answered_with_a_new_message(harness: Harness) -> None:
    surface = FakeSurface()
    turn = await left_behind(harness, surface, "queued when it died")
    harness.engine.register_resumer("test", ChannelResumer(surface))
    await keeper_for(harness).sweep()
    await harness.engine.idle()
    assert surface.visible_messages()[0].startswith("Echo: queued when it died")
    assert await state(harness.store, turn) is TurnState.DONE


async def test_replicas_sweeping_at_once_answer_each_turn_once(kimi: FakeKimi, store: Store,
                                                              second_store: Store) -> None:
    first, second = await build_harness(kimi, store, host="a"), await build_harness(kimi, second_store, host="b")
    surface = FakeSurface()
    turns = [await left_behind(first, surface, f"question {i}") for i in range(4)]
    for h in (first, second):
        h.engine.register_resumer("test", ChannelResumer(surface))
    try:
        taken = await asyncio.gather(keeper_for(first).sweep(), keeper_for(second).sweep())
        await asyncio.gather(first.engine.idle(), second.engine.idle())
        assert sum(taken) == 4
        assert sorted(surface.visible_messages()) == sorted(f"Echo: question {i}" + f"\n\n_{RESTARTED_NOTE}_"
                                                            for i in range(4))
        assert len(kimi.requests) == 4
        assert {await state(store, t) for t in turns} == {TurnState.DONE}
    finally:
        for h in (first, second):
            await h.engine.shutdown()
            await h.client.aclose()


async def test_a_live_lease_is_not_taken_and_a_dead_local_one_is(harness: Harness) -> None:
    surface = FakeSurface()
    here = harness.engine.replica
    live = await left_behind(harness, surface, "someone is on it", owner=f"{here.host}/1/abcd")
    await harness.store.renew_leases(f"{here.host}/1/abcd", utcnow() + timedelta(seconds=60))
    gone = Replica(here.host, 999_999_999, "dead")  # a pid that cannot exist on this host
    dead = await left_behind(harness, surface, "its process is gone", owner=gone.id)
    await harness.store.renew_leases(gone.id, utcnow() + timedelta(seconds=60))
    harness.engine.register_resumer("test", ChannelResumer(surface))
    # pid 1 is alive on this host, so that lease stands until it runs out; the dead pid's is taken at once.
    assert await keeper_for(harness).sweep() == 1
    await harness.engine.idle()
    assert await state(harness.store, dead) is TurnState.DONE
    assert await state(harness.store, live) is TurnState.RECEIVED


async def test_a_turn_too_old_to_resume_gets_a_notice_instead(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, turns={"resume_within_seconds": 0.05})
    surface = FakeSurface()
    try:
        turn = await left_behind(h, surface, "ancient question", shown="Partial")
        await asyncio.sleep(0.1)
        h.engine.register_resumer("test", ChannelResumer(surface))
        await keeper_for(h).sweep()
        await h.engine.idle()
        assert surface.visible_messages() == [EXPIRED_NOTICE]
        assert await state(store, turn) is TurnState.EXPIRED
        assert kimi.requests == []
    finally:
        await h.engine.shutdown()
        await h.client.aclose()


async def test_shutdown_lets_quick_answers_finish_and_hands_slow_ones_to_the_next_process(
        kimi: FakeKimi, store: Store, second_store: Store) -> None:
    first, second = await build_harness(kimi, store, host="a"), await build_harness(kimi, second_store, host="b")
    kimi.tokens_per_second = 40
    surfaces = [FakeSurface(id_prefix=f"c{i}-") for i in range(3)]
    quick = first.surface()
    try:
        answers = [asyncio.create_task(first.engine.handle(first.message(f"[[len=400]] slow {i}", thread=f"t{i}"),
                                                           surfaces[i])) for i in range(3)]
        short = asyncio.create_task(first.engine.handle(first.message("hi", thread="tq"), quick))
        await asyncio.gather(*(s.wait_until(lambda s=s: "Paragraph 1" in s.visible_text()) for s in surfaces))
        await first.engine.drain(grace=0.3)
        assert all(outcome is None for outcome in await asyncio.gather(*answers))
        assert (await short).status == "complete"  # finished within the grace period
        for s in surfaces:
            assert SUSPENDED_NOTE in s.visible_text()
        unfinished = await store.unfinished_turns(["test"], not_owned_by="nobody")
        assert len(unfinished) == 3 and {t.lease_owner for t in unfinished} == {None}

        # The next process (another replica, or the same one after the deploy) completes them in place.
        kimi.tokens_per_second = None
        by_thread = {t.question["thread"]: s for t, s in zip(sorted(unfinished, key=lambda t: t.question["thread"]),
                                                            surfaces, strict=True)}

        class PerThread(ChannelResumer):
            @contextlib.asynccontextmanager
            async def surface_for(self, turn: ResumedTurn) -> AsyncIterator[ReplySurface]:
                yield by_thread[turn.question["thread"]]

        second.engine.register_resumer("test", PerThread(quick))
        assert await keeper_for(second).sweep() == 3
        await second.engine.idle()
        whole = long_text(400)
        for s in surfaces:
            assert len(s.order) == 1, s.visible_messages()
            assert s.visible_messages()[0] == f"{whole}\n\n_{RESTARTED_NOTE}_"
        assert len(kimi.requests) == 3 + 1 + 3  # three cut short, the quick one, three answered again
        assert await store.unfinished_turns(["test"], not_owned_by="nobody") == []
    finally:
        for h in (first, second):
            await h.engine.shutdown()
            await h.client.aclose()


async def test_a_users_stop_is_final_and_never_resumed(harness: Harness) -> None:
    harness.kimi.tokens_per_second = 30
    surface = harness.surface()
    question = harness.message("[[len=600]] long")
    task = asyncio.create_task(harness.engine.handle(question, surface))
    await surface.wait_until(lambda: "Paragraph 1" in surface.visible_text())
    assert await harness.engine.stop(question)
    assert await task is None
    assert surface.visible_text().endswith(STOPPED_NOTE)
    (turn,) = await stored_turns(harness.store)
    assert turn.state is TurnState.STOPPED
    harness.engine.register_resumer("test", ChannelResumer(surface))
    assert await keeper_for(harness).sweep() == 0


async def stored_turns(store: Store) -> list[StoredTurn]:
    from sqlalchemy import select

    from storage.models import TurnRow
    from storage.records import turn_from_row

    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(TurnRow.id))).scalars().all()
    turns = [await store.get_turn(i) for i in rows]
    del turn_from_row
    return [t for t in turns if t is not None]


async def test_two_replicas_never_answer_in_one_conversation_at_once(kimi: FakeKimi, store: Store,
                                                                     second_store: Store) -> None:
    """A load balancer sends two messages of one thread to two processes: each answer reads its own question."""
    first, second = await build_harness(kimi, store, host="a"), await build_harness(kimi, second_store, host="b")
    kimi.tokens_per_second = 50
    try:
        surfaces = [first.surface(), second.surface()]
        asked = [first.engine.handle(first.message("first question"), surfaces[0]),
                 second.engine.handle(second.message("second question", message_id="other"), surfaces[1])]
        outcomes = await asyncio.gather(*asked)
        assert sorted(o.text for o in outcomes) == ["Echo: first question", "Echo: second question"]
        started = sorted(kimi.stream_marks, key=lambda m: m[1]["first_content"])
        assert started[0][1]["last_content"] <= started[1][1]["first_content"]  # one after the other
    finally:
        for h in (first, second):
            await h.engine.shutdown()
            await h.client.aclose()


class UnreachableResumer(ChannelResumer):
    @contextlib.asynccontextmanager
    async def surface_for(self, turn: ResumedTurn) -> AsyncIterator[ReplySurface]:
        raise ReplyUnreachable("only the first attempt's interaction token could reach it")
        yield self.surface  # pragma: no cover


async def test_a_turn_whose_reply_place_is_unreachable_ends_failed_once(harness: Harness) -> None:
    surface = FakeSurface()
    turn = await left_behind(harness, surface, "asked in a group DM")
    harness.engine.register_resumer("test", UnreachableResumer(surface))
    assert await keeper_for(harness).sweep() == 1
    await harness.engine.idle()
    assert await state(harness.store, turn) is TurnState.FAILED
    assert await keeper_for(harness).sweep() == 0  # not taken again and again
    assert harness.kimi.requests == [] and surface.order == []
