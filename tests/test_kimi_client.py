"""The Kimi client against the wire-level fake Kimi, through the real openai SDK."""

from typing import Any

import openai
import pytest

from bot.kimi import (
    ChatRequest,
    Completion,
    KimiClient,
    KimiError,
    ReasoningDelta,
    TextDelta,
    ToolCallStarted,
)
from bot.kimi.errors import classify
from tests.fakes.kimi import FakeKimi, Reply

CLOCK_TOOL = {"type": "function", "function": {
    "name": "current_time", "description": "Current time.",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}


def client_for(kimi: FakeKimi, **kw: Any) -> KimiClient:
    return KimiClient(api_key="sk-test", base_url=kimi.base_url, timeout=kw.pop("timeout", 10), **kw)


async def collect(client: KimiClient, request: ChatRequest) -> tuple[list[Any], Completion]:
    events = [event async for event in client.stream(request)]
    assert isinstance(events[-1], Completion)
    return events, events[-1]


def ask(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", "kimi-k2.5"),
                       messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": text}], **kw)


async def test_streams_text_and_reads_usage_from_the_last_chunk(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    events, done = await collect(client, ask("hello there"))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Echo: hello there" == done.content
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    assert done.finish_reason == "stop"
    assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    body = kimi.requests[-1]
    assert body["thinking"] == {"type": "disabled"}
    for fixed in ("temperature", "top_p", "n", "presence_penalty", "frequency_penalty"):
        assert fixed not in body
    await client.aclose()


async def test_reasoning_is_kept_apart_from_content(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    events, done = await collect(client, ask("why is the sky blue", thinking=True))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning and done.reasoning == reasoning
    assert reasoning not in done.content
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(not isinstance(e, ReasoningDelta) for e in events[first_text:])
    assert kimi.requests[-1]["thinking"] == {"type": "enabled"}
    await client.aclose()


async def test_cached_tokens_are_read(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    kimi.enqueue(Reply(content="ok", prompt_tokens=100, cached_tokens=60))
    _, done = await collect(client, ask("x"))
    assert (done.usage.prompt_tokens, done.usage.cached_tokens) == (100, 60)
    await client.aclose()


async def test_web_search_round_trip(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    request = ask("please search the web for kimibot", web_search=True)
    events, first = await collect(client, request)
    assert any(isinstance(e, ToolCallStarted) and e.name == "$web_search" for e in events)
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert call.name == "$web_search" and call.is_builtin
    tools = kimi.requests[-1]["tools"]
    assert {"type": "builtin_function", "function": {"name": "$web_search"}} in tools
    follow = ChatRequest(model="kimi-k2.5", web_search=True, messages=[
        *request.messages, first.assistant_message(),
        {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": call.arguments}])
    _, answer = await collect(client, follow)
    assert answer.content.startswith("Web search result for:")
    assert answer.usage.prompt_tokens > first.usage.prompt_tokens
    await client.aclose()


async def test_thinking_tool_calls_keep_reasoning_content(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    request = ask('call current_time {"timezone": "Asia/Tokyo"}', tools=[CLOCK_TOOL], thinking=True)
    _, first = await collect(client, request)
    [call] = first.tool_calls
    assert call.id.startswith("functions.current_time")
    assistant = first.assistant_message()
    assert "reasoning_content" in assistant
    follow = ChatRequest(model="kimi-k2.5", thinking=True, tools=[CLOCK_TOOL], messages=[
        *request.messages, assistant, {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "9am"}])
    _, answer = await collect(client, follow)
    assert answer.content.startswith("Tool current_time returned: 9am")


async def test_history_tool_calls_without_reasoning_get_a_placeholder(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    history = [
        {"role": "system", "content": "s"}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "current_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "current_time", "content": "noon"},
        {"role": "assistant", "content": "It is noon.", "reasoning_content": "dropped when not a tool call"},
        {"role": "user", "content": "thanks"},
    ]
    _, done = await collect(client, ChatRequest(model="kimi-k2.5", messages=history, thinking=True,
                                                tools=[CLOCK_TOOL]))
    assert done.content == "Echo: thanks"
    sent = kimi.requests[-1]["messages"]
    assert "reasoning_content" in sent[2]
    assert "reasoning_content" not in sent[4]


def test_web_search_and_thinking_plan() -> None:
    client = KimiClient(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert client.plan("kimi-k2.5", thinking=True, web_search=True).web_search is False
    assert client.plan("kimi-k2.5", thinking=True, web_search=True).note
    assert client.plan("kimi-k2.5", thinking=False, web_search=True).web_search is True
    assert client.plan("kimi-k2.6", thinking=True, web_search=True) == client.plan(
        "kimi-k2.6", thinking=True, web_search=True)
    assert client.plan("kimi-k2.6", thinking=True, web_search=True).web_search is True


@pytest.mark.parametrize(("fault", "kind", "retryable"), [
    ("auth", "auth", False),
    ("not_found", "model_not_found", False),
    ("quota", "quota", False),
    ("content_filter", "content_filter", False),
    ("context", "context_too_long", False),
])
async def test_errors_map_to_clear_kinds_without_retry(kimi: FakeKimi, fault: str, kind: str,
                                                       retryable: bool) -> None:
    client = client_for(kimi, max_retries=2)
    kimi.fail_next(fault, count=3)
    with pytest.raises(KimiError) as info:
        await collect(client, ask("x"))
    assert info.value.kind == kind and info.value.retryable is retryable
    assert info.value.user_message and "{" not in info.value.user_message
    assert len(kimi.requests) <= 1  # not retried
    await client.aclose()


async def test_retired_model_names_the_model(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    with pytest.raises(KimiError) as info:
        await collect(client, ask("x", model="kimi-k2-thinking"))
    assert info.value.kind == "model_not_found"
    assert "kimi-k2-thinking" in info.value.user_message
    await client.aclose()


@pytest.mark.parametrize("fault", ["server", "overloaded", "rate_limit"])
async def test_transient_errors_are_retried(kimi: FakeKimi, fault: str) -> None:
    client = client_for(kimi, max_retries=2)
    kimi.fail_next(fault, count=1, **({"retry_after": 0} if fault == "rate_limit" else {}))
    _, done = await collect(client, ask("again"))
    assert done.content == "Echo: again"
    await client.aclose()


async def test_rate_limit_says_when_to_retry(kimi: FakeKimi) -> None:
    client = client_for(kimi, max_retries=0)
    kimi.fail_next("rate_limit", retry_after=7)
    with pytest.raises(KimiError) as info:
        await collect(client, ask("x"))
    assert info.value.kind == "rate_limited" and info.value.retry_after == 7
    assert "7 s" in info.value.user_message
    await client.aclose()


async def test_stream_cut_mid_answer_is_an_error_not_a_short_answer(kimi: FakeKimi) -> None:
    client = client_for(kimi, max_retries=2)
    kimi.enqueue(Reply(content="This answer will be cut somewhere in the middle of it.", cut_after_chunks=4))
    seen: list[str] = []
    with pytest.raises(KimiError) as info:
        async for event in client.stream(ask("x")):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert info.value.kind == "stream_cut"
    assert seen  # part of the answer arrived before the cut
    assert len(kimi.requests) == 1  # never replayed once text was shown
    await client.aclose()


async def test_unreachable_kimi_is_a_connection_error() -> None:
    client = KimiClient(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(KimiError) as info:
        await collect(client, ask("x"))
    assert info.value.kind == "connection"
    await client.aclose()


async def test_file_extract(kimi: FakeKimi) -> None:
    client = client_for(kimi)
    text = await client.extract_file("notes.txt", b"meeting at noon")
    assert "meeting at noon" in text
    await client.aclose()


async def test_a_missing_file_is_not_reported_as_a_missing_model(kimi: FakeKimi) -> None:
    sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=kimi.base_url, max_retries=0)
    try:
        with pytest.raises(openai.NotFoundError) as info:
            await sdk.files.content("file-that-expired")
    finally:
        await sdk.close()
    error = classify(info.value, model="file", endpoint="files")
    assert error.kind == "not_found"
    assert "file service could not find" in error.user_message and "model" not in error.user_message
