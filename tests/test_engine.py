"""The engine end to end: fake Kimi over HTTP, a real store, a fake surface with platform limits."""

import asyncio
import io
import json

from PIL import Image

from bot.types import IncomingAttachment
from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fixtures.engine import Harness, build_harness


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def file(name: str, data: bytes, mime: str | None) -> IncomingAttachment:
    async def fetch() -> bytes:
        return data

    return IncomingAttachment(filename=name, mime=mime, size=len(data), fetch=fetch)


async def history(h: Harness, thread: str = "t1") -> list:
    conversation = await h.store.get_or_create_conversation(h.message("", thread=thread).key)
    return await h.store.history(conversation.id)


async def test_answer_is_streamed_stored_and_costed(harness: Harness) -> None:
    outcome, surface = await harness.ask("hello kimi")
    assert outcome.status == "complete"
    assert surface.visible_text() == "Echo: hello kimi"
    assert not surface.violations and not surface.rate_limited
    rows = await history(harness)
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "complete")]
    assert rows[1].text == "Echo: hello kimi" and rows[1].platform_message_ids == outcome.message_ids
    usage = await harness.store.usage_summary(platform="test", user="U1")
    assert usage.calls == 1 and usage.prompt_tokens > 0 and usage.cost_usd > 0
    first = harness.kimi.requests[0]
    system = first["messages"][0]
    assert system["role"] == "system" and "Today is" in system["content"] and "{date}" not in system["content"]
    assert first["model"] == "kimi-k2.6"


async def test_multi_turn_history_is_sent(harness: Harness) -> None:
    await harness.ask("my name is Ada")
    await harness.ask("what is my name?")
    sent = harness.kimi.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "my name is Ada" and sent[2]["content"] == "Echo: my name is Ada"


async def test_duplicate_delivery_is_answered_once(harness: Harness) -> None:
    message = harness.message("only once", dedupe_keys=("evt-1", "C1:1.0"))
    retry = harness.message("only once", dedupe_keys=("evt-2", "C1:1.0"))
    first = await harness.engine.handle(message, harness.surface())
    second = await harness.engine.handle(retry, harness.surface())
    assert first is not None and second is None
    assert len(harness.kimi.requests) == 1


async def test_custom_tool_call_is_run_stored_and_shown(harness: Harness) -> None:
    outcome, surface = await harness.ask('call current_time {"timezone": "Asia/Tokyo"}')
    assert outcome.status == "complete"
    assert surface.visible_text().startswith("Tool current_time returned: ")
    assert "+09:00" in surface.visible_text() or "JST" in surface.visible_text()
    assert any(s and "current_time" in s for s in surface.statuses) or any(
        "current_time" in r.text for r in surface.records if r.text)
    rows = await history(harness)
    assert [r.role for r in rows] == ["user", "assistant", "tool", "assistant"]
    assert rows[1].tool_calls and rows[1].tool_calls[0]["function"]["name"] == "current_time"
    assert rows[2].tool_call_id == rows[1].tool_calls[0]["id"]
    await harness.ask("thanks")
    sent = harness.kimi.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]


async def test_builtin_web_search_is_echoed_and_billed(kimi: FakeKimi, store: Store) -> None:
    harness = await build_harness(kimi, store, kimi={"search": "builtin"})
    try:
        _, surface = await harness.ask("search the web for the kimibot release")
    finally:
        await harness.engine.shutdown()
        await harness.client.aclose()
    assert surface.visible_text().startswith("Web search result for:")
    usage = await harness.store.usage_summary(platform="test", user="U1")
    assert usage.calls == 2 and usage.web_search_calls == 1 and usage.cost_usd >= 0.005
    echo = harness.kimi.requests[1]["messages"][-1]
    assert echo["role"] == "tool" and json.loads(echo["content"])["search_result"]


async def test_failing_and_hanging_tools_do_not_break_the_answer(harness: Harness) -> None:
    outcome, _ = await harness.ask("call explode and call hang")
    assert outcome.status == "complete"
    results = [m for m in harness.kimi.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(results) == 2
    assert "boom" in results[0]["content"]
    assert "timed out" in results[1]["content"].lower() or "timeout" in results[1]["content"].lower()


async def test_tool_output_is_capped(harness: Harness) -> None:
    await harness.ask("call chatty")
    [result] = [m for m in harness.kimi.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(result["content"]) < 1000


async def test_screenshot_is_normalized_and_sent(harness: Harness) -> None:
    outcome, surface = await harness.ask("what is this?", attachments=(file("shot.png", png(4000, 1000), "image/png"),))
    assert outcome.status == "complete"
    assert "2048x512" in surface.visible_text()
    rows = await history(harness)
    assert len(rows[0].media_ids) == 1
    stored = await harness.store.get_attachment(rows[0].media_ids[0])
    assert stored is not None and (stored.width, stored.height) == (2048, 512)
    # Kimi is stateless: the picture is sent again on the next turn.
    await harness.ask("and the colour?")
    sent = harness.kimi.requests[-1]["messages"][1]["content"]
    assert any(part["type"] == "image_url" for part in sent)


async def test_corrupt_image_and_unsupported_file_get_clear_answers(harness: Harness) -> None:
    outcome, surface = await harness.ask("", attachments=(file("broken.png", b"\x89PNG\r\n\x1a\nnope", "image/png"),))
    assert outcome.status == "refused"
    assert "broken.png" in surface.visible_text()
    assert not harness.kimi.requests
    outcome, surface = await harness.ask("look", attachments=(file("a.zip", b"PK\x03\x04", "application/zip"),))
    assert outcome.status == "complete"
    assert "a.zip" in surface.visible_text() and "PDF" in surface.visible_text()


async def test_text_and_pdf_files_are_read(harness: Harness) -> None:
    pdf = (b"%PDF-1.4\n1 0 obj<<>>stream\nBT (Quarterly revenue grew) Tj ET\nendstream\nendobj\n%%EOF")
    await harness.ask("summarize", attachments=(file("notes.txt", b"ship on friday", "text/plain"),
                                                file("report.pdf", pdf, "application/pdf")))
    sent = harness.kimi.requests[-1]["messages"][-1]["content"]
    assert "ship on friday" in sent and "Quarterly revenue grew" in sent
    assert harness.kimi.files  # the PDF went through Kimi's file-extract


async def test_huge_message_is_refused_without_calling_kimi(harness: Harness) -> None:
    outcome, surface = await harness.ask("x" * 1_000_000)
    assert outcome.status == "refused"
    assert "1,000,000" in surface.visible_text()
    assert not harness.kimi.requests


async def test_empty_message_gets_a_prompt(harness: Harness) -> None:
    outcome, surface = await harness.ask("   ")
    assert outcome.status == "refused" and "empty" in surface.visible_text()


async def test_kimi_failure_mid_stream_is_shown_and_stored_as_failed(harness: Harness) -> None:
    harness.kimi.enqueue(Reply(content="The first part arrives and then the line goes dead.", cut_after_chunks=3))
    outcome, surface = await harness.ask("tell me")
    assert outcome.status == "failed" and outcome.error == "stream_cut"
    visible = surface.visible_text()
    assert "cut off" in visible
    rows = await history(harness)
    assert rows[-1].status == "failed" and rows[-1].error == "stream_cut"
    assert rows[-1].text and rows[-1].text in visible
    # The user's question is kept, and the next turn still works.
    outcome, surface = await harness.ask("again")
    assert outcome.status == "complete"


async def test_bad_key_is_explained(kimi, store: Store) -> None:
    h = await build_harness(kimi, store)
    kimi.fail_next("auth")
    outcome, surface = await h.ask("hi")
    assert outcome.status == "failed" and "API key" in surface.visible_text()
    await h.client.aclose()


async def test_stop_keeps_what_was_shown(kimi, store: Store) -> None:
    h = await build_harness(kimi, store)
    kimi.tokens_per_second = 40
    surface = h.surface()
    task = asyncio.create_task(h.engine.handle(h.message("[[len=3000]] go"), surface))
    await surface.wait_until(lambda: len(surface.visible_text()) > 20)
    stop_surface = h.surface()
    await h.engine.handle(h.message("!stop"), stop_surface)
    outcome = await task
    assert outcome is None
    assert stop_surface.visible_text() == "Stopped."
    assert surface.visible_text().rstrip().endswith("_Stopped._")
    rows = await history(h)
    assert rows[-1].status == "interrupted" and rows[-1].text
    assert rows[-1].text in surface.visible_text()
    kimi.tokens_per_second = None
    await h.client.aclose()


async def test_messages_during_a_turn_are_queued_in_order(harness: Harness) -> None:
    first = asyncio.create_task(harness.ask("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(harness.ask("second"))
    (o1, _), (o2, _) = await asyncio.gather(first, second)
    assert o1.status == o2.status == "complete"
    sent = harness.kimi.requests[-1]["messages"]
    assert [m.get("content") for m in sent[1:]] == ["first", "Echo: first", "second"]


async def test_history_survives_a_restart(kimi, db_url: str) -> None:
    store = await Store.open(db_url)
    h = await build_harness(kimi, store)
    await h.ask("remember the number 42")
    await h.client.aclose()
    await store.close()
    reopened = await Store.open(db_url)
    h2 = await build_harness(kimi, reopened)
    await h2.ask("which number?")
    sent = kimi.requests[-1]["messages"]
    assert sent[1]["content"] == "remember the number 42"
    await h2.client.aclose()
    await reopened.close()


async def test_long_history_is_summarized_and_the_user_is_told(kimi, store: Store) -> None:
    h = await build_harness(kimi, store, context={"max_prompt_tokens": 1200})
    told = []
    for index in range(6):
        _, surface = await h.ask(f"fact {index}: " + "lorem ipsum " * 60)
        told.append("summarized" in surface.visible_text())
    await h.ask("what do you know?")
    assert any(told) and not all(told)
    conversation = await store.get_or_create_conversation(h.message("").key)
    assert conversation.summary and conversation.summary_upto_seq > 0
    sent = kimi.requests[-1]["messages"]
    assert sent[1]["role"] == "system" and "Summary" in sent[1]["content"]
    await h.client.aclose()


async def test_trimming_without_summaries_says_so(kimi, store: Store) -> None:
    h = await build_harness(kimi, store, context={"max_prompt_tokens": 1200, "summarize": False})
    told = []
    for index in range(6):
        _, surface = await h.ask(f"fact {index}: " + "lorem ipsum " * 60)
        told.append("left out" in surface.visible_text())
    await h.ask("what do you know?")
    assert any(told)
    assert all(m["role"] != "system" or "Summary" not in m["content"] for m in kimi.requests[-1]["messages"])
    await h.client.aclose()


async def test_long_answer_is_split_without_breaking_code(harness: Harness) -> None:
    surface = harness.surface(max_chars=2000)
    outcome = await harness.engine.handle(harness.message("[[len=10000]] code please"), surface)
    assert outcome.status == "complete"
    messages = surface.visible_messages()
    assert len(messages) >= 5
    assert all(len(m) <= 2000 and m.count("```") % 2 == 0 for m in messages)


async def test_backfill_of_a_joined_thread_is_stored_once_and_sent(harness: Harness) -> None:
    from bot.types import BackfillItem

    key = harness.message("", thread="joined").key
    assert not await harness.engine.has_history(key)
    items = [BackfillItem("user", "the deploy failed at step 3", "1.1", "alice"),
             BackfillItem("assistant", "which step?", "1.2", "otherbot")]
    assert await harness.engine.backfill(key, items) == 2
    assert await harness.engine.backfill(key, items) == 0
    assert await harness.engine.has_history(key)
    await harness.ask("why did it fail?", thread="joined")
    sent = harness.kimi.requests[-1]["messages"]
    assert sent[1]["content"].endswith("the deploy failed at step 3")
    assert await harness.engine.conversation_of("test", "1.1") == key


async def test_reply_chain_finds_the_conversation_of_a_bot_message(harness: Harness) -> None:
    outcome, _ = await harness.ask("hello", thread="chain")
    key = await harness.engine.conversation_of("test", outcome.message_ids[0])
    assert key is not None and key.thread == "chain"
    assert await harness.engine.conversation_of("test", "unknown") is None


async def test_the_last_tool_round_forbids_calls_but_keeps_the_tools_declared(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"max_tool_rounds": 1})
    for _ in range(2):
        kimi.enqueue(Reply(tool_calls=[{"name": "current_time", "arguments": {}}]))
    outcome, surface = await h.ask("what time is it, twice over?")
    await h.engine.shutdown()
    await h.client.aclose()
    assert outcome.status == "complete"
    assert "limit of tool rounds" in surface.visible_text()
    first, last = kimi.requests[-2], kimi.requests[-1]
    assert last["tool_choice"] == "none" and "tool_choice" not in first
    assert last["tools"] == first["tools"]
