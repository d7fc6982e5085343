"""The fake Kimi server, driven by the real openai SDK over 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from tests.fakes.kimi import DEFAULT_MAX_TOKENS, FakeKimi, Reply
from tests.fakes.kimi_samples import collect_stream, hand_pdf, image_data_url
from tests.fakes.kimi_tokens import IMAGE_TOKENS, message_tokens, prompt_tokens

MODEL = "kimi-k2.5"
NO_THINKING = {"thinking": {"type": "disabled"}}
WEB_SEARCH_TOOL = {"type": "builtin_function", "function": {"name": "$web_search"}}


def function_tool(name: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    params = {"type": "object", "properties": properties or {"x": {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "description": name, "parameters": params}}


@pytest_asyncio.fixture
async def client(kimi: FakeKimi) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(api_key="sk-test", base_url=kimi.base_url, max_retries=0) as c:
        yield c


async def test_stream_reasoning_then_content_with_usage_in_last_choice(
    kimi: FakeKimi, client: AsyncOpenAI
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there friend"}]
    stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    out = await collect_stream(stream)
    first = out.chunks[0]
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", first.id)
    assert re.fullmatch(r"fpv0_[0-9a-f]{8}", first.system_fingerprint)
    assert {c.id for c in out.chunks} == {first.id} and first.object == "chat.completion.chunk"
    assert out.reasoning == "Thinking about: hello there friend"
    assert out.content == "Echo: hello there friend"
    # Reasoning arrives strictly before content, each in several chunks.
    kinds = [
        ("r" if getattr(c.choices[0].delta, "reasoning_content", None) else "c") for c in out.chunks[1:-1]
    ]
    assert kinds == sorted(kinds, reverse=True) and kinds.count("r") > 1 and kinds.count("c") > 1
    assert out.finish == "stop"
    usage = out.usage
    assert usage["prompt_tokens"] == prompt_tokens(messages)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["cached_tokens"] == 0 and usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert out.extra_usage is None
    assert kimi.requests[-1]["messages"] == messages


async def test_include_usage_adds_choiceless_chunk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body=NO_THINKING,
    )
    out = await collect_stream(stream)
    assert out.reasoning == "" and out.content == "Echo: hi"
    assert out.chunks[-1].choices == []
    assert out.extra_usage.prompt_tokens == out.usage["prompt_tokens"]
    assert out.extra_usage.completion_tokens == out.usage["completion_tokens"]


async def test_non_stream_multi_turn_reports_prefix_cache_hits(client: AsyncOpenAI) -> None:
    turn1 = [
        {"role": "system", "content": "You are kimibot." * 10},
        {"role": "user", "content": "first question"},
    ]
    first = await client.chat.completions.create(model=MODEL, messages=turn1, extra_body=NO_THINKING)
    message = first.choices[0].message
    assert message.content == "Echo: first question" and getattr(message, "reasoning_content", None) is None
    assert first.usage.model_extra["cached_tokens"] == 0
    turn2 = [*turn1, {"role": "assistant", "content": message.content}, {"role": "user", "content": "second"}]
    second = await client.chat.completions.create(model=MODEL, messages=turn2, extra_body=NO_THINKING)
    expected = message_tokens(turn1[0]) + message_tokens(turn1[1])
    assert second.usage.model_extra["cached_tokens"] == expected
    assert second.usage.prompt_tokens_details.cached_tokens == expected
    assert second.usage.prompt_tokens == prompt_tokens(turn2)


async def test_headers_and_raw_body(client: AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["Msh-Request-Id"] and raw.headers["x-trace-id"]
    body = json.loads(raw.http_response.text)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["reasoning_content"]


# The SDK warns when it re-serialises a tool call whose type is "builtin_function"; the body is still right.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
async def test_web_search_round_trip(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Please SEARCH the news about cats"}]
    tools = [WEB_SEARCH_TOOL]
    first = await client.chat.completions.create(
        model=MODEL, messages=messages, tools=tools, extra_body=NO_THINKING
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "builtin_function" and call.function.name == "$web_search"
    arguments = json.loads(call.function.arguments)
    assert arguments["search_result"]["search_id"]
    search_tokens = arguments["usage"]["total_tokens"]
    messages.append(choice.message)
    echo = {"role": "tool", "tool_call_id": call.id, "name": "$web_search", "content": json.dumps(arguments)}
    second = await client.chat.completions.create(
        model=MODEL, messages=[*messages, echo], tools=tools, extra_body=NO_THINKING
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Web search result for: Please SEARCH the news about cats"
    sent = kimi.requests[-1]
    assert second.usage.prompt_tokens == prompt_tokens(sent["messages"], sent["tools"]) + search_tokens
    bad_echo = {**echo, "content": json.dumps({"search_result": {"search_id": "other"}})}
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=MODEL, messages=[*messages, bad_echo], tools=tools, extra_body=NO_THINKING
        )


async def test_parallel_function_calls_round_trip_with_thinking(client: AsyncOpenAI) -> None:
    tools = [function_tool("current_time", {"timezone": {"type": "string"}}), function_tool("get_weather")]
    text = 'call current_time {"timezone": "Asia/Tokyo"} and call get_weather {"x": "Paris"}; call nothing'
    messages: list[Any] = [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]
    stream = await client.chat.completions.create(model=MODEL, messages=messages, tools=tools, stream=True)
    out = await collect_stream(stream)
    assert out.finish == "tool_calls" and out.reasoning
    calls = out.ordered_calls()
    assert [(c["id"], c["type"], c["name"]) for c in calls] == [
        ("functions.current_time:0", "function", "current_time"),
        ("functions.get_weather:1", "function", "get_weather"),
    ]
    assert json.loads(calls[0]["arguments"]) == {"timezone": "Asia/Tokyo"}
    assert json.loads(calls[1]["arguments"]) == {"x": "Paris"}
    assistant = {
        "role": "assistant",
        "content": "",
        "reasoning_content": out.reasoning,
        "tool_calls": [
            {"id": c["id"], "type": c["type"], "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }
    results = [
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "12:00 JST"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "name": "get_weather", "content": "sunny " * 50},
    ]
    follow = await client.chat.completions.create(
        model=MODEL, messages=[*messages, assistant, *results], tools=tools
    )
    lines = follow.choices[0].message.content.split("\n")
    assert lines == [
        "Tool current_time returned: 12:00 JST",
        f"Tool get_weather returned: {('sunny ' * 50)[:200]}",
    ]
    without_reasoning = {k: v for k, v in assistant.items() if k != "reasoning_content"}
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model=MODEL, messages=[*messages, without_reasoning, *results], tools=tools
        )
    assert info.value.body["message"] == (
        "thinking is enabled but reasoning_content is missing in assistant tool call message at index 2"
    )


async def test_scripted_replies_are_fifo_then_default(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    kimi.enqueue(Reply(content="first scripted", reasoning="why", prompt_tokens=99, cached_tokens=5))
    kimi.enqueue(Reply(tool_calls=[{"name": "lookup", "arguments": {"q": 1}}]))
    messages = [{"role": "user", "content": "anything"}]
    one = await client.chat.completions.create(model=MODEL, messages=messages)
    assert one.choices[0].message.content == "first scripted"
    assert one.choices[0].message.reasoning_content == "why"
    assert (one.usage.prompt_tokens, one.usage.model_extra["cached_tokens"]) == (99, 5)
    two = await client.chat.completions.create(model=MODEL, messages=messages)
    call = two.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "functions.lookup:0",
        "lookup",
        {"q": 1},
    )
    assert two.choices[0].finish_reason == "tool_calls"
    three = await client.chat.completions.create(model=MODEL, messages=messages)
    assert three.choices[0].message.content == "Echo: anything"


# fmt: off
FAULTS = [
    ("auth", openai.AuthenticationError, 401, "invalid_authentication_error", "Invalid Authentication"),
    ("not_found", openai.NotFoundError, 404, "resource_not_found_error", "Not found the model kimi-k2.5"),
    ("rate_limit", openai.RateLimitError, 429, "rate_limit_reached_error", "try again after 7 seconds"),
    ("quota", openai.RateLimitError, 429, "exceeded_current_quota_error", "suspended"),
    ("overloaded", openai.RateLimitError, 429, "engine_overloaded_error", "overloaded"),
    ("server", openai.InternalServerError, 500, "server_error", ""),
    ("content_filter", openai.BadRequestError, 400, "content_filter", "considered high risk"),
    ("context", openai.BadRequestError, 400, "invalid_request_error", "exceeded model token limit: 262144"),
]
# fmt: on


@pytest.mark.parametrize(("kind", "exc_type", "status", "error_type", "text"), FAULTS)
async def test_fault_injection(
    kimi: FakeKimi,
    client: AsyncOpenAI,
    kind: str,
    exc_type: type[Exception],
    status: int,
    error_type: str,
    text: str,
) -> None:
    kimi.fail_next(kind, count=2, retry_after=7)
    messages = [{"role": "user", "content": "hi"}]
    for stream in (False, True):
        with pytest.raises(exc_type) as info:
            await client.chat.completions.create(model=MODEL, messages=messages, stream=stream)
        assert info.value.status_code == status
        assert info.value.body["type"] == error_type and text in info.value.body["message"]
    ok = await client.chat.completions.create(model=MODEL, messages=messages)
    assert ok.choices[0].message.content == "Echo: hi"
    assert len(kimi.requests) == 3


async def test_cut_stream_raises_connection_error_after_partial_content(
    kimi: FakeKimi, client: AsyncOpenAI
) -> None:
    kimi.fail_next("cut", after_chunks=3)
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a fairly long question here"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Echo: a "
    kimi.enqueue(Reply(content="whole answer here", cut_after_chunks=99))
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


async def test_hang_times_out(kimi: FakeKimi) -> None:
    kimi.fail_next("hang")
    async with AsyncOpenAI(api_key="sk-test", base_url=kimi.base_url, max_retries=0, timeout=0.3) as c:
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


USER_X = {"role": "user", "content": "x"}
TOOL_CALL = {"id": "functions.f:0", "type": "function", "function": {"name": "fff", "arguments": "{}"}}
ASSISTANT_CALL = {"role": "assistant", "content": "", "reasoning_content": "", "tool_calls": [TOOL_CALL]}
STRANGER = {"role": "tool", "tool_call_id": "functions.other:9", "content": "r"}
EMPTY_TEXT = {"type": "text", "text": ""}
HTTP_IMAGE = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
FORCED = {"type": "function", "function": {"name": "fff"}}
ARRAY_ROOT = {"type": "function", "function": {"name": "fff", "parameters": {"type": "array"}}}
# fmt: off
VALIDATION = [
    ({"temperature": 0}, "invalid temperature: only 1 is allowed for this model"),
    ({"temperature": 1.0, **NO_THINKING}, "invalid temperature: only 0.6 is allowed for this model"),
    ({"top_p": 0.5}, "invalid top_p: only 0.95 is allowed for this model"),
    ({"n": 2}, "invalid n: only 1 is allowed for this model"),
    ({"presence_penalty": 0.5}, "invalid presence_penalty: only 0 is allowed for this model"),
    ({"frequency_penalty": -1}, "invalid frequency_penalty: only 0 is allowed for this model"),
    ({"thinking": {"type": "auto"}}, "thinking.type must be one of"),
    ({"tools": [function_tool("fff")], "tool_choice": "required"}, "tool_choice 'required' is incompatible"),
    ({"tools": [function_tool("fff")], "tool_choice": FORCED},
     "tool_choice 'specified' is incompatible with thinking enabled"),
    ({"tools": [function_tool(f"tool_{i}") for i in range(129)]}, "cannot exceed 128"),
    ({"tools": [function_tool("1abc")]}, "function name is invalid"),
    ({"tools": [function_tool("a$b")]}, "function name is invalid"),
    ({"tools": [ARRAY_ROOT]}, "not a valid moonshot flavored json schema"),
    ({"tools": [function_tool("fff", {"a": {"description": "no type"}})]}, "At path 'root.properties.a'"),
    ({"messages": []}, "messages must not be empty"),
    ({"messages": [{"role": "user", "content": ""}]}, "must not be empty"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [EMPTY_TEXT]}]},
     "text content is empty"),
    ({"messages": [{"role": "user", "content": [HTTP_IMAGE]}]}, "unsupported image url"),
    ({"messages": [USER_X, ASSISTANT_CALL]}, "has no matching tool message"),
    ({"messages": [USER_X, ASSISTANT_CALL, STRANGER]}, "tool_call_id not found"),
    ({"max_tokens": 262144},
     "Invalid request: Your request exceeded model token limit: 262144 (requested: 262149)"),
]
# fmt: on


@pytest.mark.parametrize(("extra", "message"), VALIDATION)
async def test_validation_errors(
    kimi: FakeKimi, client: AsyncOpenAI, extra: dict[str, Any], message: str
) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], **extra}
    thinking = body.pop("thinking", None)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model=MODEL, **body, extra_body={"thinking": thinking} if thinking else None
        )
    assert info.value.body["type"] == "invalid_request_error"
    assert message in info.value.body["message"]
    assert kimi.requests[-1]["messages"] == body["messages"]


async def test_fixed_values_accepted_and_context_uses_max_completion_tokens(client: AsyncOpenAI) -> None:
    messages = [{"role": "user", "content": "x"}]
    ok = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        temperature=1,
        top_p=0.95,
        n=1,
        presence_penalty=0,
        frequency_penalty=0,
    )
    assert ok.choices[0].message.content == "Echo: x"
    limit = 262144 - prompt_tokens(messages)
    fits = await client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=limit)
    assert fits.choices[0].finish_reason == "stop"
    assert prompt_tokens(messages) + DEFAULT_MAX_TOKENS < 262144


async def test_max_tokens_truncates_with_length(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "[[len=400]]"}],
        max_tokens=20,
        extra_body=NO_THINKING,
    )
    assert result.choices[0].finish_reason == "length"
    assert len(result.choices[0].message.content) == 80


async def test_auth_model_and_retired_model(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    async with AsyncOpenAI(api_key="sk-wrong", base_url=kimi.base_url, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as auth:
            await bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert auth.value.body == {"message": "Invalid Authentication", "type": "invalid_authentication_error"}
    for model in ("kimi-k2-thinking", "gpt-4o"):
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert info.value.body["message"] == f"Not found the model {model} or Permission denied"
    ok = await client.chat.completions.create(model="kimi-k2.6", messages=[{"role": "user", "content": "x"}])
    assert ok.model == "kimi-k2.6"


@pytest.mark.parametrize("length", [1, 37, 200, 1000, 4321])
async def test_len_marker_gives_exact_length_with_closed_fences(client: AsyncOpenAI, length: int) -> None:
    result = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"write [[len={length}]] please"}],
        extra_body=NO_THINKING,
    )
    text = result.choices[0].message.content
    assert len(text) == length
    assert text.count("```") % 2 == 0
    if length >= 1000:
        assert "```python\n" in text and "\n\n" in text


async def test_images_are_described_and_cost_fixed_tokens(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": image_data_url((640, 480), "PNG")}},
        {"type": "image_url", "image_url": {"url": image_data_url((2048, 1024), "JPEG")}},
    ]
    messages = [{"role": "user", "content": content}]
    result = await client.chat.completions.create(model=MODEL, messages=messages, extra_body=NO_THINKING)
    assert result.choices[0].message.content == "I see 2 images: 640x480 PNG, 2048x1024 JPEG."
    assert (
        result.usage.prompt_tokens == prompt_tokens(messages) and prompt_tokens(messages) > 2 * IMAGE_TOKENS
    )
    broken = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": broken}])


async def test_files_upload_content_and_delete(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    text_file = await client.files.create(
        file=("notes.txt", "héllo notes".encode(), "text/plain"), purpose="file-extract"
    )
    assert text_file.filename == "notes.txt" and text_file.bytes == len("héllo notes".encode())
    content = json.loads((await client.files.content(text_file.id)).text)
    assert content == {
        "content": "héllo notes",
        "file_type": "text/plain",
        "filename": "notes.txt",
        "title": "",
        "type": "file",
    }
    pdf = await client.files.create(
        file=("report.pdf", hand_pdf(["Quarterly report", "Revenue \\(up\\) 5%"]), "application/pdf"),
        purpose="file-extract",
    )
    extracted = json.loads((await client.files.content(pdf.id)).text)
    assert extracted["content"] == "Quarterly report\nRevenue (up) 5%"
    assert extracted["file_type"] == "application/pdf"
    raw = b"%PDF-1.1\nstream\nBT [(Split) -20 (Word)] TJ (a\\\\b\\051) Tj ET\nendstream\n"
    tj = await client.files.create(file=("tj.pdf", raw, "application/pdf"), purpose="file-extract")
    assert json.loads((await client.files.content(tj.id)).text)["content"] == "SplitWord\na\\b)"
    assert (await client.files.retrieve(pdf.id)).id == pdf.id
    assert (await client.files.delete(pdf.id)).deleted is True
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(pdf.id)
    with pytest.raises(openai.BadRequestError) as empty:
        await client.files.create(file=("empty.txt", b"", "text/plain"), purpose="file-extract")
    assert "File size is zero" in empty.value.body["message"]
    assert [(f.filename, f.deleted) for f in kimi.files] == [
        ("notes.txt", False),
        ("report.pdf", True),
        ("tj.pdf", False),
    ]


async def test_file_size_cap() -> None:
    async with FakeKimi(max_file_bytes=1024) as small:
        async with AsyncOpenAI(api_key="sk-test", base_url=small.base_url, max_retries=0) as c:
            with pytest.raises(openai.BadRequestError) as info:
                await c.files.create(file=("big.txt", b"a" * 2048, "text/plain"), purpose="file-extract")
            assert "File size is too large" in info.value.body["message"]
            assert small.files == []


async def test_models_estimate_and_balance(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    models = await client.models.list()
    listed = {m.id: m.model_extra for m in models.data}
    assert set(listed) == {"kimi-k2.5", "kimi-k2.6"}
    assert listed["kimi-k2.5"]["context_length"] == 262144
    messages = [{"role": "user", "content": "count these tokens please"}]
    headers = {"Authorization": "Bearer sk-test"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{kimi.base_url}/tokenizers/estimate-token-count"
        async with http.post(url, json={"model": MODEL, "messages": messages}) as resp:
            assert (await resp.json()) == {"data": {"total_tokens": prompt_tokens(messages)}}
        async with http.get(f"{kimi.base_url}/users/me/balance") as resp:
            balance = await resp.json()
            assert balance["status"] is True and balance["data"]["available_balance"] == kimi.balance
        async with http.get(f"{kimi.base_url}/models", headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401


async def test_paced_stream_still_complete(kimi: FakeKimi, client: AsyncOpenAI) -> None:
    kimi.ttft, kimi.tokens_per_second = 0.01, 2000.0
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "paced"}], stream=True, extra_body=NO_THINKING
    )
    out = await collect_stream(stream)
    assert out.content == "Echo: paced" and out.finish == "stop"
