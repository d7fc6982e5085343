"""Messages: seq allocation (also across processes), tool rounds stored verbatim, updates, interruption."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

import pytest

from bot.types import ConversationKey
from storage.store import Store

KEY = ConversationKey("discord", "G1", "C1", "T1")

TOOL_CALLS = [
    {
        "id": "call_0",
        "type": "function",
        "function": {
            "name": "$web_search",
            "arguments": '{"search_result": {"search_id": "abc"}, "n": 1.50}',
        },
    },
    {
        "index": 1,
        "id": "functions.get_weather:1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Zürich", "units": ["°C", null]}'},
        "extra": {"nested": [1, 2.5, True, None, "ünïcode ✓"]},
    },
]


async def test_add_and_history_round_trip_every_field(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    image_id = await store.put_attachment(b"img", mime="image/png", width=1, height=1)
    user = await store.add_message(
        conversation.id, role="user", text="what is this?", media_ids=[image_id], author="U1",
        platform_message_ids=("111",),
    )  # fmt: skip
    assistant = await store.add_message(
        conversation.id, role="assistant", text="", tool_calls=copy.deepcopy(TOOL_CALLS),
        reasoning="I should search.", prompt_tokens=120, completion_tokens=30,
    )  # fmt: skip
    assert (user.seq, assistant.seq) == (1, 2)
    assert user.media_ids == [image_id] and user.platform_message_ids == ["111"]
    assert (user.status, user.tool_calls, user.tool_call_id, user.reasoning) == ("complete", None, None, None)
    assert user.created_at.utcoffset() == timedelta(0)

    history = await store.history(conversation.id)
    assert history == [user, assistant]
    assert history[1].tool_calls == TOOL_CALLS
    assert (history[1].reasoning, history[1].prompt_tokens, history[1].completion_tokens) == (
        "I should search.",
        120,
        30,
    )
    assert history[0].author == "U1"


async def test_tool_round_is_stored_in_one_write_with_consecutive_seqs(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    await store.add_message(conversation.id, role="user", text="weather?")
    stored = await store.add_messages(
        conversation.id,
        [
            {"role": "assistant", "tool_calls": TOOL_CALLS, "reasoning": "need data"},
            {"role": "tool", "tool_call_id": "call_0", "tool_name": "$web_search", "text": '{"a": 1}'},
            {
                "role": "tool",
                "tool_call_id": "functions.get_weather:1",
                "tool_name": "get_weather",
                "text": "9°C",
            },
        ],
    )
    assert [m.seq for m in stored] == [2, 3, 4]
    history = await store.history(conversation.id)
    assert [(m.role, m.tool_call_id, m.tool_name) for m in history] == [
        ("user", None, None),
        ("assistant", None, None),
        ("tool", "call_0", "$web_search"),
        ("tool", "functions.get_weather:1", "get_weather"),
    ]
    assert history[1].tool_calls == TOOL_CALLS
    assert await store.add_messages(conversation.id, []) == []


async def test_invalid_messages_store_nothing(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    with pytest.raises(ValueError, match="role"):
        await store.add_message(conversation.id, role="robot", text="x")
    with pytest.raises(ValueError, match="status"):
        await store.add_message(conversation.id, role="user", text="x", status="done")
    with pytest.raises(TypeError, match="colour"):
        await store.add_messages(conversation.id, [{"role": "user"}, {"role": "user", "colour": "red"}])
    with pytest.raises(LookupError):  # the foreign key is enforced (SQLite too)
        await store.add_message(conversation.id + 1000, role="user", text="orphan")
    assert await store.history(conversation.id) == []


async def test_update_message_changes_only_given_fields(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    message = await store.add_message(conversation.id, role="assistant", status="streaming", reasoning="hmm")
    await store.update_message(message.id, text="Hello wor", platform_message_ids=["p1"])
    await store.update_message(
        message.id, text="Hello world", status="complete", platform_message_ids=["p1", "p2"],
        prompt_tokens=50, completion_tokens=7,
    )  # fmt: skip
    (updated,) = await store.history(conversation.id)
    assert (updated.text, updated.status, updated.reasoning) == ("Hello world", "complete", "hmm")
    assert updated.platform_message_ids == ["p1", "p2"]
    assert (updated.prompt_tokens, updated.completion_tokens, updated.error) == (50, 7, None)

    await store.update_message(message.id, tool_calls=TOOL_CALLS)
    assert (await store.history(conversation.id))[0].tool_calls == TOOL_CALLS
    await store.update_message(message.id, tool_calls=None, reasoning=None, status="failed", error="boom")
    (cleared,) = await store.history(conversation.id)
    assert (cleared.tool_calls, cleared.reasoning, cleared.status, cleared.error) == (
        None,
        None,
        "failed",
        "boom",
    )
    assert cleared.text == "Hello world"

    with pytest.raises(ValueError):
        await store.update_message(message.id, status="finished")
    with pytest.raises(LookupError):
        await store.update_message(message.id + 1000, text="x")


async def test_concurrent_writers_in_two_processes_never_share_a_seq(
    store: Store, second_store: Store
) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    writers = [store, second_store] * 8
    results = await asyncio.gather(
        *(s.add_message(conversation.id, role="user", text=f"m{i}") for i, s in enumerate(writers))
    )
    batches = await asyncio.gather(
        *(
            s.add_messages(
                conversation.id, [{"role": "assistant", "text": f"b{i}a"}, {"role": "tool", "text": f"b{i}b"}]
            )
            for i, s in enumerate([store, second_store] * 2)
        )
    )
    seqs = [m.seq for m in results] + [m.seq for batch in batches for m in batch]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    for batch in batches:  # messages of one batch keep their order
        assert batch[0].seq < batch[1].seq
    history = await second_store.history(conversation.id)
    assert [m.seq for m in history] == sorted(seqs)
    assert {m.text for m in history} == {m.text for m in results} | {m.text for b in batches for m in b}


async def test_has_messages_follows_reset(store: Store) -> None:
    conversation = await store.get_or_create_conversation(ConversationKey("slack", "T", "C", "1.0"))
    assert not await store.has_messages(conversation.id)
    await store.add_message(conversation.id, role="user", text="hi")
    assert await store.has_messages(conversation.id)
    await store.reset_conversation(conversation.id)
    assert not await store.has_messages(conversation.id)
    assert not await store.has_messages(conversation.id + 1000)
