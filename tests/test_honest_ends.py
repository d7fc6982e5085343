"""Answers cut by the output limit say so, and `continue` carries them on (partial mode, else a follow-up)."""

from __future__ import annotations

from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fakes.kimi_responder import long_text
from tests.fixtures.engine import build_harness

LIMIT = 256  # output tokens; the fake counts 4 characters per token, so about 1,000 characters an answer


async def test_a_cut_answer_says_so_and_continue_finishes_it_in_partial_mode(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"max_output_tokens": LIMIT})
    try:
        _, surface = await h.ask("[[len=2500]] explain everything")
        shown = surface.visible_text()
        assert "hit the output limit (256 tokens)" in shown and "Reply `continue`" in shown
        pieces = [shown.split("\n\n_This answer hit")[0]]
        for _ in range(5):
            _, surface = await h.ask("continue")
            request = kimi.requests[-1]["messages"]
            assert request[-1]["role"] == "assistant" and request[-1]["partial"] is True
            # The answer so far, joined from its parts, is the prefix; no "continue" is sent.
            assert not any(m.get("content") == "continue" for m in request)
            assert request[-1]["content"] == "".join(pieces)
            shown = surface.visible_text()
            assert shown.startswith("…")
            pieces.append(shown.removeprefix("…").split("\n\n_This answer hit")[0])
            if "hit the output limit" not in shown:
                break
        assert "".join(pieces) == long_text(2500)
        conversation = await store.get_conversation(h.message("").key)
        assert conversation is not None
        statuses = [m.status for m in await store.history(conversation.id) if m.role == "assistant"]
        assert statuses and set(statuses) == {"complete"}  # every cut part was carried on
    finally:
        await h.engine.shutdown()
        await h.client.aclose()


async def test_thinking_that_uses_the_whole_budget_says_so_and_offers_a_way_out(kimi: FakeKimi,
                                                                               store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"max_output_tokens": LIMIT, "thinking": True})
    kimi.enqueue(Reply(content="the answer", reasoning="hmm " * 2000))
    try:
        outcome, surface = await h.ask("a hard question")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    shown = surface.visible_text()
    assert outcome.status == "complete"
    assert "used the whole output budget (256 tokens) thinking" in shown
    assert "`!think off`" in shown and "continue" in shown
    assert "_(no answer)_" not in shown


async def test_continue_with_thinking_on_is_a_plain_follow_up(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"max_output_tokens": LIMIT, "thinking": True})
    kimi.enqueue(Reply(content="part one " * 200, reasoning="short"))
    try:
        _, surface = await h.ask("tell me")
        assert "hit the output limit" in surface.visible_text()
        await h.ask("continue")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    last = kimi.requests[-1]["messages"]
    assert not any(m.get("partial") for m in last)
    assert last[-1]["role"] == "user" and "Continue exactly where" in last[-1]["content"]


async def test_continue_after_a_whole_answer_is_an_ordinary_message(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store)
    try:
        await h.ask("hello")
        outcome, _ = await h.ask("continue")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    assert outcome.text == "Echo: continue"
