"""Web search through Kimi's /v1/tools endpoints: works while thinking, and answers end with what they cite."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config
from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fixtures.engine import Harness, build_harness


async def searching_harness(kimi: FakeKimi, store: Store, **kimi_settings: object) -> Harness:
    return await build_harness(kimi, store, kimi={"model": "kimi-k2.5", "thinking": True, **kimi_settings})


async def test_search_works_while_thinking_and_the_answer_lists_the_pages_it_cites(kimi: FakeKimi,
                                                                                   store: Store) -> None:
    h = await searching_harness(kimi, store)
    try:
        _, surface = await h.ask("search the web for the kimibot release")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    first = kimi.requests[0]
    assert first["thinking"] == {"type": "enabled"}
    assert {t["function"]["name"] for t in first["tools"]} >= {"web_search", "open_url"}
    assert [c.path for c in kimi.tools.calls] == ["/v1/tools/search"]
    assert kimi.tools.calls[0].body["text_query"] == "search the web for the kimibot release"
    text = surface.visible_text()
    answer, _, sources = text.partition("\n\n**Sources**\n")
    assert answer.endswith("says so [3].") and "[1]" in answer
    lines = sources.splitlines()
    assert len(lines) == 2  # [2] was shown to Kimi but not cited, so it is not listed
    assert lines[0].startswith("1. [search the web for the kimibot release (1)](https://docs.example.com/")
    assert lines[1].startswith("3. [search the web for the kimibot release (3)](https://news.example.net/")
    usage = await store.usage_summary(platform="test")
    assert usage.web_search_calls == 1 and usage.cost_usd >= 0.002


async def test_sites_and_time_windows_use_search_pro_and_pages_are_read_with_fetch(kimi: FakeKimi,
                                                                                    store: Store) -> None:
    h = await searching_harness(kimi, store)
    kimi.enqueue(Reply(tool_calls=[{"name": "web_search", "arguments": {
        "query": "release notes", "sites": ["docs.python.org"], "since": "2026-01", "until": "2026-11-30"}}]))
    kimi.enqueue(Reply(tool_calls=[{"name": "open_url", "arguments": {"url": "https://docs.python.org/x"}}]))
    kimi.enqueue(Reply(content="The notes say so [1], and the page agrees [6]. Nothing else [9]."))
    try:
        _, surface = await h.ask("what changed this year?")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    search, fetch = kimi.tools.calls
    assert search.path == "/v1/tools/search_pro" and search.body["sites"] == ["docs.python.org"]
    assert search.body["time_window"] == {"start": "2026-01", "end": "2026-11-30"}
    assert fetch.path == "/v1/tools/fetch" and fetch.body == {"url": "https://docs.python.org/x"}
    sources = surface.visible_text().partition("**Sources**\n")[2].splitlines()
    assert sources[0].startswith("1. [release notes (1)](https://docs.python.org/release-notes/")
    # Five results were [1] to [5]; the page read next is [6]. Uncited ([2]-[5]) or unknown ([9]) numbers list
    # nothing.
    assert sources[1:] == ["6. [Title of https://docs.python.org/x](https://docs.python.org/x)"]
    tool_results = [m for m in kimi.requests[-1]["messages"] if m["role"] == "tool"]
    assert '"n": 1' in tool_results[0]["content"] and tool_results[1]["content"].startswith("[6] Title of")


async def test_the_same_page_keeps_its_number_across_searches(kimi: FakeKimi, store: Store) -> None:
    h = await searching_harness(kimi, store)
    kimi.enqueue(Reply(tool_calls=[{"name": "web_search", "arguments": {"query": "same"}}]))
    kimi.enqueue(Reply(tool_calls=[{"name": "web_search", "arguments": {"query": "same"}}]))
    kimi.enqueue(Reply(content="Twice found [1][4]."))
    try:
        _, surface = await h.ask("look it up twice")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    second = [m for m in kimi.requests[-1]["messages"] if m["role"] == "tool"][1]["content"]
    assert '"n": 5' in second and '"n": 6' not in second  # the same URLs keep their numbers 1 to 5
    listed = surface.visible_text().partition("**Sources**\n")[2].splitlines()
    assert [line[:2] for line in listed] == ["1.", "4."]


async def test_a_failing_search_endpoint_leaves_an_answer(kimi: FakeKimi, store: Store) -> None:
    h = await searching_harness(kimi, store)
    kimi.tools.fail_next("/v1/tools/search", 429, "rate_limited")
    try:
        outcome, surface = await h.ask("search for something")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    assert outcome.status == "complete"
    result = next(m for m in kimi.requests[-1]["messages"] if m["role"] == "tool")["content"]
    assert result.startswith("Error: web_search failed (rate_limited)")
    assert "**Sources**" not in surface.visible_text()


async def test_search_off_offers_no_search_tools(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"search": "off"})
    try:
        await h.ask("search the web")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    names = {t["function"]["name"] for t in kimi.requests[0].get("tools", [])}
    assert not names & {"web_search", "open_url", "$web_search"}


def test_the_old_web_search_switch_says_what_replaced_it(tmp_path: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"KIMIBOT_KIMI__WEB_SEARCH": "true"})
    assert "kimi.search" in str(info.value)
