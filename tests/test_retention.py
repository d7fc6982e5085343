"""Retention and data rights on the real database (SQLite, and PostgreSQL in CI's second leg): old data is
deleted in batches with usage kept as daily aggregates; `forget` deletes a person's data after a confirmation;
`kimibot export` writes a person's data, a conversation or everything as JSON Lines."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bot.access import AccessPolicy
from bot.config import AccessConfig
from bot.types import ConversationKey
from storage.models import AttachmentRow, ConversationRow, MessageRow, ProcessedEventRow, UsageRow
from storage.records import UsageRecord
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import build_harness

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)


async def count(store: Store, column: object, *where: object) -> int:
    async with store.engine.connect() as connection:
        return int(await connection.scalar(select(func.count(column)).where(*where)) or 0)  # type: ignore[arg-type]


async def backdate(store: Store, model: type, when: datetime, *where: object, column: str = "created_at") -> None:
    """Make rows old: the only way to get data of last month into a test database."""
    async with store.engine.begin() as connection:
        await connection.execute(update(model).where(*where).values({column: when}))  # type: ignore[arg-type]


def usage(user: str, cost: float, conversation_id: int | None = None) -> UsageRecord:
    return UsageRecord(conversation_id=conversation_id, platform="slack", workspace="T1", user=user,
                       model="kimi-k2.6", prompt_tokens=100, cached_tokens=10, completion_tokens=50,
                       web_search_calls=1, cost_usd=cost, latency_ms=1000)


async def test_retention_deletes_old_data_in_batches_and_keeps_usage_totals(store: Store) -> None:
    old_thread = await store.get_or_create_conversation(ConversationKey("slack", "T1", "C1", "old"))
    mixed = await store.get_or_create_conversation(ConversationKey("slack", "T1", "C1", "mixed"))
    shared_image = await store.put_attachment(b"\x89PNG shared", mime="image/png")
    old_image = await store.put_attachment(b"\x89PNG old only", mime="image/png")
    await store.add_messages(old_thread.id, [{"role": "user", "text": f"old {i}", "author_id": "U1"}
                                             for i in range(7)])
    await store.add_messages(mixed.id, [{"role": "user", "text": "old question", "media_ids": [old_image]},
                                        {"role": "assistant", "text": "old answer"}])
    await backdate(store, MessageRow, OLD)
    await backdate(store, ConversationRow, OLD, column="updated_at")
    await store.add_messages(mixed.id, [{"role": "user", "text": "new question", "media_ids": [shared_image]}])
    await store.set_summary(mixed.id, "summary quoting the old question", 2)
    await store.claim_event("slack", ["old-event"])
    await backdate(store, ProcessedEventRow, OLD)
    await store.claim_event("slack", ["new-event"])
    for cost in (0.01, 0.02, 0.03):
        await store.record_usage(usage("U1", cost, old_thread.id))
    await store.record_usage(usage("U2", 0.5))
    await backdate(store, UsageRow, OLD)
    await store.record_usage(usage("U1", 0.04))
    spent_before = (await store.usage_summary(platform="slack", user="U1")).cost_usd

    deleted = await store.purge_older_than(NOW - timedelta(days=30), batch=3)

    assert deleted.messages == 9 and deleted.events == 1 and deleted.conversations == 1
    assert deleted.attachments == 1 and deleted.usage_rolled_up == 2
    assert [m.text for m in await store.history(mixed.id)] == ["new question"]
    assert await store.get_conversation_by_id(old_thread.id) is None
    assert (await store.get_conversation_by_id(mixed.id)).summary is None  # it quoted deleted messages
    assert await store.get_attachment(shared_image) is not None and await store.get_attachment(old_image) is None
    assert await store.claimed_keys("slack", ["old-event", "new-event"]) == {"new-event"}
    # Three old rows of U1 became one for that day; U2's single row and the new one stay as they were.
    assert await count(store, UsageRow.id) == 3
    after = await store.usage_summary(platform="slack", user="U1")
    assert after.cost_usd == spent_before and after.prompt_tokens == 400
    again = await store.purge_older_than(NOW - timedelta(days=30))
    assert again.total == 0  # nothing left to do: a second run changes nothing


def code_in(text: str) -> str:
    match = re.search(r"confirm ([0-9a-f]{6})`", text)
    assert match, text
    return match.group(1)


async def test_forget_deletes_a_persons_data_after_a_confirmation(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store)
    try:
        await h.ask("my own thread", thread="mine")
        await h.ask("my second question", thread="mine")
        await h.ask("a shared thread", thread="shared")
        await h.ask("someone else here", thread="shared", user="U2")
        await h.ask("only U2", thread="theirs", user="U2")
        shared = await store.get_conversation(ConversationKey("test", "W1", "C1", "shared"))
        assert shared is not None
        await store.set_summary(shared.id, "U1 said: a shared thread", 1)

        _, asked = await h.ask("!forget", thread="elsewhere")
        prompt = asked.visible_messages()[0]
        assert "permanently deletes your 3 stored messages" in prompt
        _, wrong = await h.ask("!forget confirm 000000", thread="elsewhere")
        assert wrong.visible_messages()[0].startswith("That confirmation code is wrong or expired.")
        _, by_other = await h.ask(f"!forget confirm {code_in(prompt)}", thread="elsewhere", user="U2")
        assert "wrong or expired" in by_other.visible_messages()[0]  # a code is only good for whoever asked
        assert await store.count_user_messages("test", "W1", "U1") == 3

        _, done = await h.ask(f"!forget confirm {code_in(prompt)}", thread="elsewhere")
        assert done.visible_messages()[0].startswith("Deleted your data in this workspace: 5 messages, 1 conversations")
        assert await store.count_user_messages("test", "W1", "U1") == 0
        assert await store.get_conversation(ConversationKey("test", "W1", "C1", "mine")) is None
        left = [(m.role, m.text) for m in await store.history(shared.id)]
        assert ("user", "a shared thread") not in left and ("user", "someone else here") in left
        assert (await store.get_conversation_by_id(shared.id)).summary is None
        theirs = await store.get_conversation(ConversationKey("test", "W1", "C1", "theirs"))
        assert theirs is not None and len(await store.history(theirs.id)) == 2
    finally:
        await h.engine.shutdown()


async def test_only_admins_forget_someone_else(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store)
    admins = AccessPolicy(AccessConfig(admins=["ADMIN"]))
    try:
        await h.ask("U2's question", user="U2")
        surface = h.surface()
        await h.engine.handle(h.message("!forget user U2", thread="x"), surface, access=admins)
        assert surface.visible_messages()[0] == "Only admins can delete someone else's data."
        surface = h.surface()
        await h.engine.handle(h.message("!forget user <@U2>", thread="x", user="ADMIN"), surface, access=admins)
        prompt = surface.visible_messages()[0]
        assert "`U2`'s 1 stored messages" in prompt
        surface = h.surface()
        await h.engine.handle(h.message(f"!forget user U2 confirm {code_in(prompt)}", thread="x", user="ADMIN"),
                              surface, access=admins)
        assert surface.visible_messages()[0].startswith("Deleted `U2`'s data")
        assert await store.count_user_messages("test", "W1", "U2") == 0
        assert await count(store, AttachmentRow.id) == 0
    finally:
        await h.engine.shutdown()


async def run_export(db_url: str, tmp_path: Path, *args: str) -> list[dict[str, object]]:
    config = tmp_path / "kimibot.toml"
    config.write_text(f'[storage]\nurl = "{db_url}"\n')
    out = tmp_path / "export.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--config", str(config), "export", *args, "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert b"exported" in stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


async def test_export_writes_a_persons_data_or_a_conversation_as_json_lines(
        kimi: FakeKimi, store: Store, db_url: str, tmp_path: Path) -> None:
    h = await build_harness(kimi, store)
    try:
        await h.ask("U1 asks about ünïcode", thread="a")
        await h.ask("U2 asks too", thread="a", user="U2")
        await h.ask("U2 alone", thread="b", user="U2")
    finally:
        await h.engine.shutdown()
    image = await store.put_attachment(b"\x89PNG bytes", mime="image/png", filename="shot.png")
    a = await store.get_conversation(ConversationKey("test", "W1", "C1", "a"))
    assert a is not None
    await store.add_messages(a.id, [{"role": "user", "text": "with a file", "author_id": "U1", "media_ids": [image]}])

    mine = await run_export(db_url, tmp_path, "--user", "U1", "--platform", "test", "--workspace", "W1")
    kinds = [r["type"] for r in mine]
    assert kinds.count("conversation") == 1  # only where U1 wrote
    texts = [r["text"] for r in mine if r["type"] == "message"]
    assert texts == ["U1 asks about ünïcode", "with a file"]  # their messages, not others' or the answers
    assert {r["user"] for r in mine if r["type"] == "usage"} == {"U1"}
    files = [r for r in mine if r["type"] == "attachment"]
    assert len(files) == 1 and files[0]["filename"] == "shot.png" and "data" not in files[0]

    whole = await run_export(db_url, tmp_path, "--conversation", str(a.id))
    assert [r["type"] for r in whole].count("message") == 5  # two questions, two answers, the file message
    assert all(r["conversation_id"] == a.id for r in whole if r["type"] == "message")
    everything = await run_export(db_url, tmp_path)
    assert [r["type"] for r in everything].count("conversation") == 2
