"""Kimi that goes quiet: a dead endpoint fails within its timeouts, a slow one shows it is still working."""

from __future__ import annotations

import asyncio
import time

from bot.kimi.errors import KINDS
from bot.runner import STILL_WORKING
from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fixtures.engine import build_harness

TIMEOUT_TEXT = KINDS["timeout"].text
CUT_TEXT = KINDS["stream_cut"].text


async def test_kimi_silent_after_connect_fails_within_the_first_token_timeouts(kimi: FakeKimi,
                                                                                 store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"first_token_timeout": 0.4, "max_retries": 1})
    kimi.fail_next("hang", count=2)
    try:
        started = time.monotonic()
        outcome, surface = await h.ask("are you there?")
        elapsed = time.monotonic() - started
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    assert outcome.status == "failed" and outcome.error == "timeout"
    assert surface.visible_text() == TIMEOUT_TEXT
    assert len(kimi.requests) == 2  # one retry, as for any failure before output
    assert elapsed < 5  # two first-token timeouts and a backoff, not 3 x the 300 s read timeout


async def test_a_stream_that_pauses_shows_kimi_is_still_working_then_completes(kimi: FakeKimi,
                                                                               store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"still_working_after": 0.2, "idle_timeout": 5})
    kimi.enqueue(Reply(content="one two three four five six seven eight"))
    kimi.fail_next("stall", after_chunks=3, seconds=1.0)
    try:
        outcome, surface = await h.ask("take your time")
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    shown = [r.text or "" for r in surface.writes]
    assert any("one two" in text and STILL_WORKING in text for text in shown)  # partial text, then the notice
    assert outcome.status == "complete"
    assert surface.visible_text() == "one two three four five six seven eight"


async def test_a_stream_that_dies_mid_answer_ends_with_the_cut_off_notice(kimi: FakeKimi, store: Store) -> None:
    h = await build_harness(kimi, store, kimi={"still_working_after": 0.2, "idle_timeout": 0.8})
    kimi.enqueue(Reply(content="the first words and then nothing more ever"))
    kimi.fail_next("stall", after_chunks=3)
    try:
        outcome, surface = await asyncio.wait_for(h.ask("hello?"), 10)
    finally:
        await h.engine.shutdown()
        await h.client.aclose()
    assert outcome.status == "failed" and outcome.error == "stream_cut"
    text = surface.visible_text()
    assert text.startswith("the first") and text.endswith(CUT_TEXT)
    assert len(kimi.requests) == 1  # text was shown: never retried into a duplicate
