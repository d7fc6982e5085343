"""Per-channel defaults (`channel`) and the usage footer, through the engine and a real store."""

from __future__ import annotations

from bot.access import AccessPolicy
from bot.config import AccessConfig
from bot.settings import ChannelDefaults
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import Harness, build_harness


async def text(harness: Harness, line: str, **kw: object) -> str:
    _, surface = await harness.ask(line, **kw)  # type: ignore[arg-type]
    return surface.visible_text()


async def test_channel_defaults_apply_to_its_conversations_and_a_conversations_own_win(harness: Harness) -> None:
    kimi = harness.kimi
    assert "configured defaults" in await text(harness, "!channel")
    assert "System prompt set" in await text(harness, "!channel prompt You triage incidents. Today is {date}.")
    assert "now use `kimi-k2.5`" in await text(harness, "!channel model kimi-k2.5")
    assert "think is on" in await text(harness, "!channel think on")
    await harness.ask("first thread", thread="a")
    first = kimi.requests[-1]
    assert first["model"] == "kimi-k2.5" and first["thinking"] == {"type": "enabled"}
    assert first["messages"][0]["content"].startswith("You triage incidents. Today is ")
    # Another thread of the same channel gets them too; a conversation's own choice wins.
    await harness.ask("!model kimi-k2.6", thread="b")
    await harness.ask("second thread", thread="b")
    assert kimi.requests[-1]["model"] == "kimi-k2.6"
    assert "(this channel's default)" in await text(harness, "!model", thread="a")
    assert "this channel's system prompt" in await text(harness, "!system", thread="a")
    # Another channel is untouched.
    await harness.ask("elsewhere", channel="C2")
    assert kimi.requests[-1]["model"] == "kimi-k2.6" and kimi.requests[-1]["thinking"] == {"type": "disabled"}
    shown = await text(harness, "!channel")
    assert "model: `kimi-k2.5`" in shown and "thinking: on" in shown
    assert "back on the configured defaults" in await text(harness, "!channel reset")
    await harness.ask("after reset", thread="a")
    assert kimi.requests[-1]["model"] == "kimi-k2.6"


async def test_only_admins_change_a_channel_but_anyone_may_look(harness: Harness) -> None:
    access = AccessPolicy(AccessConfig(admins=["boss"]))

    async def as_user(user: str, line: str) -> str:
        surface = harness.surface()
        await harness.engine.handle(harness.message(line, user=user), surface, access=access)
        return surface.visible_text()

    assert "Only admins" in await as_user("intern", "!channel footer on")
    assert "configured defaults" in await as_user("intern", "!channel")
    assert "footer is on" in await as_user("boss", "!channel footer on")
    assert "I don't know the channel setting `colour`" in await as_user("boss", "!channel colour blue")
    assert "on`, `off` or `default`" in await as_user("boss", "!channel think maybe")
    assert "every message" in await as_user("boss", "!channel mentions optional")
    assert "mentions: optional" in await as_user("intern", "!channel")


async def test_the_usage_footer_shows_what_an_answer_took(kimi: FakeKimi, store: Store) -> None:
    harness = await build_harness(kimi, store, bot={"usage_footer": True})
    try:
        await harness.ask("first")
        said = await text(harness, "second")
        assert "tokens (" in said and "% of the prompt cached)" in said and "$0.0" in said
        await harness.ask("!channel footer off")
        assert "tokens (" not in await text(harness, "third")
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()


async def test_other_replicas_see_a_channel_change_within_the_cache_time(store: Store) -> None:
    now = [0.0]
    cached = ChannelDefaults(store, ttl=30.0, clock=lambda: now[0])
    assert (await cached.get("slack", "T1", "C1")).answer_without_mention is None
    # Another replica's admin changes the channel; this process reads it again only after the cache time.
    await store.update_channel_settings("slack", "T1", "C1", updated_by="U1", answer_without_mention=True)
    assert (await cached.get("slack", "T1", "C1")).answer_without_mention is None
    now[0] = 31.0
    assert (await cached.get("slack", "T1", "C1")).answer_without_mention is True
    await store.update_channel_settings("slack", "T1", "C1", updated_by="U1", answer_without_mention=False)
    cached.forget("slack", "T1", "C1")  # what this process's own `channel` command does
    assert (await cached.get("slack", "T1", "C1")).answer_without_mention is False
