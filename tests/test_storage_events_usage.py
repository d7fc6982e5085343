"""Exactly-once event claims, content-addressed attachments and usage accounting."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.exc import StatementError

from bot.types import ConversationKey
from storage.models import utcnow
from storage.store import Store, UsageRecord, UsageSummary


async def test_claim_event_is_exactly_once_per_platform(store: Store) -> None:
    assert await store.claim_event("slack", ["Ev01"])
    assert not await store.claim_event("slack", ["Ev01"])
    assert await store.claim_event("discord", ["Ev01"])  # keys are per platform
    assert await store.claim_event("slack", [])  # nothing to dedupe on
    long_key = "C123:" + "9" * 400  # longer than the column: stored as a digest, still exactly once
    assert await store.claim_event("slack", [long_key])
    assert not await store.claim_event("slack", [long_key])
    assert await store.claim_event("slack", [long_key[:-1] + "8"])


async def test_claim_event_with_several_keys_is_all_or_nothing(store: Store) -> None:
    assert await store.claim_event("slack", ["event:Ev1", "msg:C1:1.0"])
    # The same message delivered again under a new event id (an app_mention and a message event, say).
    assert not await store.claim_event("slack", ["event:Ev2", "msg:C1:1.0"])
    # Refused claims record nothing: Ev2 is still unclaimed.
    assert await store.claim_event("slack", ["event:Ev2", "event:Ev2"])
    assert not await store.claim_event("slack", ["event:Ev1"])


async def test_concurrent_claims_from_two_processes_have_one_winner(
    store: Store, second_store: Store
) -> None:
    claims = [s.claim_event("slack", ["Ev-race"]) for s in (store, second_store) * 5]
    assert sorted(await asyncio.gather(*claims)) == [False] * 9 + [True]
    # Overlapping key sets in different orders: exactly one of them wins, and no deadlock.
    overlapping = [
        store.claim_event("discord", ["a", "b"]),
        second_store.claim_event("discord", ["b", "a"]),
        store.claim_event("discord", ["c", "b"]),
        second_store.claim_event("discord", ["b", "d"]),
    ]
    assert sum(await asyncio.gather(*overlapping)) == 1
    assert not await store.claim_event("discord", ["b"])


async def test_prune_events_forgets_old_claims(store: Store) -> None:
    assert await store.claim_event("slack", ["Ev1"])
    assert await store.claim_event("slack", ["Ev2", "Ev3"])
    assert await store.prune_events(timedelta(hours=1)) == 0
    assert await store.prune_events(timedelta(seconds=-60)) == 3  # cutoff in the future: everything is old
    assert await store.claim_event("slack", ["Ev1"])


async def test_attachments_are_deduplicated_by_content(store: Store, second_store: Store) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    first = await store.put_attachment(png, mime="image/png", width=64, height=32, source="slack:F1")
    assert await store.put_attachment(png, mime="image/png", width=64, height=32) == first
    other = await store.put_attachment(png + b"!", mime="image/png", width=64, height=32)
    assert other != first
    large = bytes(range(256)) * 4096  # over the inline-hash limit
    racing = await asyncio.gather(
        *(s.put_attachment(large, mime="image/jpeg", width=10, height=20) for s in (store, second_store) * 3)
    )
    assert len(set(racing)) == 1 and racing[0] not in (first, other)

    stored = await second_store.get_attachment(first)
    assert stored is not None
    assert (stored.id, stored.mime, stored.width, stored.height, stored.size) == (
        first,
        "image/png",
        64,
        32,
        len(png),
    )
    assert stored.data == png
    assert len(stored.sha256) == 64
    big = await store.get_attachment(racing[0])
    assert big is not None and big.data == large
    assert await store.get_attachment(max(first, other, racing[0]) + 1) is None


def _usage(
    conversation_id: int | None, workspace: str, user: str, cost: float, **kwargs: object
) -> UsageRecord:
    values: dict[str, object] = {
        "conversation_id": conversation_id, "platform": "slack", "workspace": workspace, "user": user,
        "model": "kimi-k2.5", "prompt_tokens": 100, "cached_tokens": 40, "completion_tokens": 20,
        "web_search_calls": 0, "cost_usd": cost, "latency_ms": 1200,
    }  # fmt: skip
    values.update(kwargs)
    return UsageRecord(**values)  # type: ignore[arg-type]


async def test_usage_summaries_by_conversation_user_and_workspace(store: Store) -> None:
    a = await store.get_or_create_conversation(ConversationKey("slack", "T1", "C1", "1.0"))
    b = await store.get_or_create_conversation(ConversationKey("slack", "T1", "C1", "2.0"))
    before = utcnow() - timedelta(seconds=1)
    await store.record_usage(_usage(a.id, "T1", "U1", 0.25, web_search_calls=2))
    await store.record_usage(_usage(a.id, "T1", "U2", 0.5, error="timeout"))
    await store.record_usage(_usage(b.id, "T1", "U1", 1.0, prompt_tokens=1000, cached_tokens=0))
    await store.record_usage(_usage(None, "T2", "U1", 2.0, platform="discord"))

    assert await store.usage_summary(conversation_id=a.id) == UsageSummary(2, 200, 80, 40, 2, 0.75)
    assert await store.usage_summary(user="U1") == UsageSummary(3, 1200, 80, 60, 2, 3.25)
    assert await store.usage_summary(workspace="T1") == UsageSummary(3, 1200, 80, 60, 2, 1.75)
    assert await store.usage_summary(platform="slack", user="U1") == UsageSummary(2, 1100, 40, 40, 2, 1.25)
    assert await store.usage_summary() == UsageSummary(4, 1300, 120, 80, 2, 3.75)
    assert (await store.usage_summary(since=before)).calls == 4
    assert await store.usage_summary(since=utcnow() + timedelta(hours=1)) == UsageSummary(0, 0, 0, 0, 0, 0.0)
    assert await store.usage_summary(user="nobody") == UsageSummary(0, 0, 0, 0, 0, 0.0)
    with pytest.raises(LookupError):
        await store.record_usage(_usage(b.id + 1000, "T1", "U1", 1.0))
    assert (await store.usage_summary()).calls == 4


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await store.usage_summary(since=utcnow().replace(tzinfo=None))
