"""Turns in storage: stored with their dedupe keys in one transaction, leased, taken over exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.types import ConversationKey
from storage.models import utcnow
from storage.store import Store, StoredTurn, TurnState

KEY = ConversationKey("slack", "T1", "C1", "1.0")


async def claim(store: Store, keys: list[str], *, owner: str | None = "a/1/x",
                lease: timedelta = timedelta(seconds=30)) -> StoredTurn | None:
    return await store.claim_turn("slack", keys, key=KEY, question={"text": "hi", "message_id": keys[0]},
                                  reply={"channel": "C1"}, owner=owner,
                                  lease_until=utcnow() + lease if owner else None)


async def test_a_turn_is_stored_with_its_keys_and_a_duplicate_stores_nothing(store: Store) -> None:
    turn = await claim(store, ["event:Ev1", "C1:1.0"])
    assert turn is not None and turn.state is TurnState.RECEIVED and turn.question["text"] == "hi"
    # The same message again under another event id (app_mention + message): one key seen, nothing stored.
    assert await claim(store, ["event:Ev2", "C1:1.0"]) is None
    assert await store.claim_event("slack", ["event:Ev2"])  # the duplicate's keys were rolled back
    conversation = await store.get_conversation(KEY)
    assert conversation is not None and conversation.id == turn.conversation_id


async def test_answer_rows_are_created_once_and_reused_on_resume(store: Store) -> None:
    turn = await claim(store, ["k1"])
    assert turn is not None
    first = await store.begin_answer(turn.id, turn.conversation_id,
                                     {"role": "user", "text": "question", "platform_message_ids": ["1.0"]})
    await store.update_message(first.id, text="partial answer")
    stored = await store.get_turn(turn.id)
    assert stored is not None and stored.state is TurnState.ANSWERING and stored.question_row_id is not None
    # The resumed attempt does not store the question again and streams into the same row, emptied.
    again = await store.begin_answer(turn.id, turn.conversation_id, {"role": "user", "text": "question"})
    assert again.id == first.id and again.text == ""
    history = await store.history(turn.conversation_id)
    assert [(m.role, m.status) for m in history] == [("user", "complete"), ("assistant", "streaming")]


async def test_finish_turn_closes_it_and_writes_the_answer_in_one_step(store: Store) -> None:
    turn = await claim(store, ["k1"])
    assert turn is not None
    row = await store.begin_answer(turn.id, turn.conversation_id, {"role": "user", "text": "q"})
    await store.finish_turn(turn.id, TurnState.DONE, answer_row_id=row.id, platform_message_ids=["m1"],
                            answer={"text": "the answer", "status": "complete", "platform_message_ids": ["m1"]})
    done = await store.get_turn(turn.id)
    assert done is not None and done.state is TurnState.DONE and done.lease_owner is None
    assert done.platform_message_ids == ["m1"]
    assert [m.text for m in await store.history(turn.conversation_id)] == ["q", "the answer"]
    assert await store.unfinished_turns(["slack"], not_owned_by="nobody") == []


async def test_leases_renew_release_and_are_taken_over_once(store: Store, second_store: Store) -> None:
    live = await claim(store, ["k1"], owner="a/1/x")
    dead = await claim(store, ["k2"], owner="b/2/y", lease=timedelta(seconds=-1))
    assert live is not None and dead is not None
    assert await store.renew_leases("a/1/x", utcnow() + timedelta(seconds=60)) == 1
    seen = await store.unfinished_turns(["slack"], not_owned_by="c/3/z")
    assert [t.id for t in seen] == [live.id, dead.id]
    by_id = {t.id: t for t in seen}
    # Two processes race for the expired turn: exactly one wins.
    results = await asyncio.gather(store.take_turn(by_id[dead.id], "c/3/z", utcnow() + timedelta(seconds=30)),
                                   second_store.take_turn(by_id[dead.id], "d/4/w", utcnow() + timedelta(seconds=30)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].attempts == 1
    # A renewal between a sweep's read and its take makes the take fail: the holder is alive.
    await store.renew_leases("a/1/x", utcnow() + timedelta(seconds=90))
    assert await second_store.take_turn(by_id[live.id], "d/4/w", utcnow()) is None
    assert await store.release_leases("a/1/x") == 1
    released = await store.get_turn(live.id)
    assert released is not None and released.lease_owner is None and released.lease_until is None
    assert released.state is TurnState.RECEIVED
