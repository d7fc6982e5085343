"""Commands through the engine: what they change in storage and in the next Kimi request."""

import asyncio

from bot.access import AccessPolicy
from bot.config import AccessConfig
from bot.engine import Engine
from bot.scheduler import TurnScheduler
from bot.summarize import INSTRUCTION
from bot.tools.registry import ToolRegistry
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import DEFAULT_TOOLS, Harness, build_harness


async def test_model_think_and_system_change_the_next_request(harness: Harness) -> None:
    _, surface = await harness.ask("!model kimi-k2.5")
    assert "kimi-k2.5" in surface.visible_text()
    await harness.ask("!think on")
    await harness.ask("!system You are a pirate. Today is {date}.")
    await harness.ask("hello")
    request = harness.kimi.requests[-1]
    assert request["model"] == "kimi-k2.5"
    assert request["thinking"] == {"type": "enabled"}
    assert request["messages"][0]["content"].startswith("You are a pirate. Today is ")
    # The search tools work while thinking, on every model.
    assert {"web_search", "open_url"} <= {t.get("function", {}).get("name") for t in request["tools"]}


async def test_thinking_on_k25_drops_the_builtin_web_search_and_says_so(kimi: FakeKimi, store: Store) -> None:
    harness = await build_harness(kimi, store, kimi={"search": "builtin", "model": "kimi-k2.5"})
    try:
        _, surface = await harness.ask("!think on")
        assert "web search is unavailable" in surface.visible_text()
        await harness.ask("hello")
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()
    request = harness.kimi.requests[-1]
    assert request["thinking"] == {"type": "enabled"}
    assert all(t.get("function", {}).get("name") != "$web_search" for t in request["tools"])


async def test_k26_searches_while_thinking_with_the_builtin_too(kimi: FakeKimi, store: Store) -> None:
    harness = await build_harness(kimi, store, kimi={"search": "builtin", "model": "kimi-k2.6", "thinking": True})
    try:
        await harness.ask("hello")
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()
    assert any(t.get("function", {}).get("name") == "$web_search" for t in kimi.requests[-1]["tools"])


async def test_settings_are_per_conversation(harness: Harness) -> None:
    await harness.ask("!model kimi-k2.5", thread="a")
    await harness.ask("hi", thread="b")
    assert harness.kimi.requests[-1]["model"] == "kimi-k2.6"
    await harness.ask("hi", thread="a")
    assert harness.kimi.requests[-1]["model"] == "kimi-k2.5"


async def test_non_admins_cannot_change_model_or_system_prompt(harness: Harness) -> None:
    access = AccessPolicy(AccessConfig(admins=["boss"]))
    surface = harness.surface()
    await harness.engine.handle(harness.message("!model kimi-k2.6"), surface, access=access)
    assert "Only admins" in surface.visible_text()
    surface = harness.surface()
    await harness.engine.handle(harness.message("!system be rude"), surface, access=access)
    assert "Only admins" in surface.visible_text()
    surface = harness.surface()
    await harness.engine.handle(harness.message("!model kimi-k2.6", user="boss"), surface, access=access)
    assert "now uses" in surface.visible_text()


async def test_refused_users_get_a_clear_answer_and_kimi_is_not_called(harness: Harness) -> None:
    access = AccessPolicy(AccessConfig(allow_users=["someone-else"]))
    surface = harness.surface()
    outcome = await harness.engine.handle(harness.message("hi"), surface, access=access)
    assert outcome is not None and outcome.status == "refused"
    assert "allowed users" in surface.visible_text()
    assert not harness.kimi.requests


async def test_reset_keeps_the_log_but_starts_afresh(harness: Harness) -> None:
    await harness.ask("remember 7")
    await harness.ask("!reset")
    await harness.ask("what number?")
    assert [m["content"] for m in harness.kimi.requests[-1]["messages"][1:]] == ["what number?"]
    conversation = await harness.store.get_or_create_conversation(harness.message("").key)
    assert conversation.reset_seq > 0


async def test_usage_and_help(harness: Harness) -> None:
    await harness.ask("hello")
    _, surface = await harness.ask("!usage")
    text = surface.visible_text()
    assert "This conversation:* 1 call" in text and "You, last 30 days:* 1 call" in text
    _, surface = await harness.ask("!help")
    assert "!reset" in surface.visible_text() and "!stop" in surface.visible_text()


async def test_unknown_bang_words_are_ordinary_messages(harness: Harness) -> None:
    _, surface = await harness.ask("!important: the build is red")
    assert surface.visible_text() == "Echo: !important: the build is red"


async def test_full_queue_is_refused_clearly(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store)
    engine = Engine(config=h.config, store=store, kimi=h.client, tools=ToolRegistry.from_specs(DEFAULT_TOOLS),
                    scheduler=TurnScheduler("queue", max_queued=1))
    kimi.tokens_per_second = 100
    slow = [asyncio.create_task(engine.handle(h.message("[[len=400]] a"), h.surface())) for _ in range(2)]
    await asyncio.sleep(0.05)
    surface = h.surface()
    outcome = await engine.handle(h.message("third"), surface)
    assert outcome is not None and outcome.status == "refused" and "still working" in surface.visible_text()
    await asyncio.gather(*slow)
    kimi.tokens_per_second = None
    await h.client.aclose()


async def test_summary_failure_falls_back_to_leaving_turns_out(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, context={"max_prompt_tokens": 1200})
    kimi.fail_next("server", when=is_summary_request)
    key = h.message("").key
    for index in range(8):
        before = await store.get_or_create_conversation(key)
        outcome, surface = await h.ask(f"fact {index}: " + "lorem ipsum " * 60)
        assert outcome.status == "complete"
        if "left out" in surface.visible_text():
            break
    else:
        raise AssertionError("the thread never outgrew the budget")
    after = await store.get_or_create_conversation(key)
    assert (after.summary, after.summary_upto_seq) == (before.summary, before.summary_upto_seq)
    # Nothing was lost for good: the next turn summarizes them after all.
    _, surface = await h.ask("what do you know?")
    assert "summarized" in surface.visible_text()
    await h.client.aclose()


def is_summary_request(body: dict[str, object]) -> bool:
    messages = body.get("messages")
    return isinstance(messages, list) and bool(messages) and messages[-1].get("content") == INSTRUCTION
