"""Conversations: race-safe get-or-create, settings, reset, summaries, message references, restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.types import ConversationKey
from storage.models import MessageRow
from storage.store import UNSET, Store, UsageRecord

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")


async def test_get_or_create_returns_the_same_conversation(store: Store) -> None:
    assert await store.get_conversation(KEY) is None
    created = await store.get_or_create_conversation(KEY)
    again = await store.get_or_create_conversation(KEY)
    assert again == created
    assert created.key == KEY
    assert created.model is created.thinking is created.system_prompt is created.summary is None
    assert (created.reset_seq, created.summary_upto_seq) == (0, 0)
    assert created.created_at.utcoffset() == timedelta(0)
    assert await store.get_conversation(KEY) == created
    assert await store.get_conversation_by_id(created.id) == created
    assert await store.get_conversation_by_id(created.id + 1000) is None
    other = await store.get_or_create_conversation(ConversationKey("slack", "T1", "C1", "other-thread"))
    assert other.id != created.id


async def test_concurrent_creators_in_two_processes_get_one_conversation(
    store: Store, second_store: Store
) -> None:
    keys = [ConversationKey("discord", "G1", "C9", f"thread-{i}") for i in range(5)]
    calls = [s.get_or_create_conversation(k) for k in keys for s in (store, second_store) * 2]
    results = await asyncio.gather(*calls)
    ids_by_key: dict[ConversationKey, set[int]] = {}
    for conversation in results:
        ids_by_key.setdefault(conversation.key, set()).add(conversation.id)
    assert set(ids_by_key) == set(keys)
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    assert len({next(iter(ids)) for ids in ids_by_key.values()}) == len(keys)


async def test_update_settings_changes_only_what_is_given(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    updated = await store.update_settings(conversation.id, model="kimi-k2.5", thinking=False)
    assert (updated.model, updated.thinking, updated.system_prompt) == ("kimi-k2.5", False, None)
    updated = await store.update_settings(conversation.id, system_prompt="Be terse.")
    assert (updated.model, updated.thinking, updated.system_prompt) == ("kimi-k2.5", False, "Be terse.")
    updated = await store.update_settings(conversation.id, model=None, thinking=UNSET)
    assert (updated.model, updated.thinking, updated.system_prompt) == (None, False, "Be terse.")
    assert await store.get_conversation_by_id(conversation.id) == updated
    with pytest.raises(LookupError):
        await store.update_settings(conversation.id + 1000, model="x")


async def _count_messages(store: Store, conversation_id: int) -> int:
    async with store.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(MessageRow).where(MessageRow.conversation_id == conversation_id)
        )
    return int(count or 0)


async def test_reset_keeps_rows_but_history_starts_afresh(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    for text in ("one", "two", "three"):
        await store.add_message(conversation.id, role="user", text=text)
    await store.set_summary(conversation.id, "they counted", upto_seq=2)
    summarised = await store.get_conversation_by_id(conversation.id)
    assert summarised is not None
    assert (summarised.summary, summarised.summary_upto_seq) == ("they counted", 2)

    await store.reset_conversation(conversation.id)

    after = await store.get_conversation_by_id(conversation.id)
    assert after is not None
    assert (after.reset_seq, after.summary, after.summary_upto_seq) == (3, None, 0)
    assert await store.history(conversation.id) == []
    assert await _count_messages(store, conversation.id) == 3
    fresh = await store.add_message(conversation.id, role="user", text="four")
    assert fresh.seq == 4
    assert [m.text for m in await store.history(conversation.id)] == ["four"]
    await store.reset_conversation(conversation.id)  # resetting twice keeps moving forward
    assert await store.history(conversation.id) == []
    assert await _count_messages(store, conversation.id) == 4
    with pytest.raises(LookupError):
        await store.reset_conversation(conversation.id + 1000)


async def test_platform_message_links_are_idempotent(store: Store) -> None:
    conversation = await store.get_or_create_conversation(KEY)
    other = await store.get_or_create_conversation(ConversationKey("discord", "G", "C", "T"))
    await store.link_platform_message(conversation.id, "discord", "111")
    await store.link_platform_message(conversation.id, "discord", "111")
    await store.link_platform_message(other.id, "discord", "111")  # first link wins
    await store.link_platform_message(other.id, "discord", "222")
    assert await store.conversation_for_platform_message("discord", "111") == conversation
    assert await store.conversation_for_platform_message("discord", "222") == other
    assert await store.conversation_for_platform_message("slack", "111") is None
    assert await store.conversation_for_platform_message("discord", "333") is None
    with pytest.raises(LookupError):
        await store.link_platform_message(other.id + 1000, "discord", "444")


async def test_data_survives_closing_and_reopening(db_url: str) -> None:
    first = await Store.open(db_url)
    try:
        conversation = await first.get_or_create_conversation(KEY)
        await first.update_settings(conversation.id, model="kimi-k2.5")
        message = await first.add_message(
            conversation.id, role="assistant", text="partial", status="streaming", platform_message_ids=["m1"]
        )
        image_id = await first.put_attachment(b"\x89PNG...", mime="image/png", width=2, height=3)
        await first.link_platform_message(conversation.id, "slack", "m1")
        assert await first.claim_event("slack", ["Ev1"])
        await first.record_usage(
            UsageRecord(conversation.id, "slack", "T1", "U1", "kimi-k2.5", 10, 2, 5, 1, 0.01, 900)
        )
    finally:
        await first.close()

    second = await Store.open(db_url)
    try:
        reopened = await second.get_conversation(KEY)
        assert reopened is not None and reopened.model == "kimi-k2.5"
        (restored,) = await second.history(conversation.id)
        assert (restored.id, restored.text, restored.status) == (message.id, "partial", "streaming")
        assert restored.platform_message_ids == ["m1"]
        attachment = await second.get_attachment(image_id)
        assert attachment is not None and attachment.data == b"\x89PNG..."
        assert await second.conversation_for_platform_message("slack", "m1") == reopened
        assert not await second.claim_event("slack", ["Ev1"])
        assert (await second.usage_summary(conversation_id=conversation.id)).calls == 1
    finally:
        await second.close()
