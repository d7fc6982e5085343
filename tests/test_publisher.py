"""StreamPublisher against FakeSurface: fast first text, paced interim edits, complete final text."""

from __future__ import annotations

import asyncio

import pytest

from bot.budget import TokenBucketBudget
from bot.publisher import StreamPublisher
from bot.types import AnswerControls
from tests.surface_fake import (
    FakeSurface,
    ManualClock,
    RateEnforcer,
    fences_balanced,
    long_markdown,
    unsplit,
)


class RecordingBudget(TokenBucketBudget):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.penalties: list[float] = []

    async def penalize(self, retry_after: float) -> None:
        self.penalties.append(retry_after)
        await super().penalize(retry_after)


class FlakySurface(FakeSurface):
    """Edits fail with a connection error a few times (not a 429)."""

    def __init__(self, failures: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.failures = failures

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("connection reset")
        await super().edit(message_id, text, controls)


async def stream(publisher: StreamPublisher, text: str, *, piece: int = 4, pause: float = 0.0) -> None:
    for i in range(0, len(text), piece):
        publisher.append(text[i:i + piece])
        await asyncio.sleep(pause)


def assert_clean(surface: FakeSurface) -> None:
    """No write the platform would refuse, and every message ever shown renders its code blocks."""
    assert surface.violations == []
    for record in surface.writes:
        assert record.text is not None and len(record.text) <= surface.max_chars
        assert fences_balanced(record.text), record.text


@pytest.mark.parametrize("placeholder", ["…", None])
async def test_first_text_is_written_while_the_stream_runs(placeholder: str | None) -> None:
    surface = FakeSurface(max_chars=500)
    publisher = StreamPublisher(surface, min_edit_interval=1000.0, placeholder=placeholder)
    await publisher.start()
    if placeholder:
        await surface.wait_until(lambda: surface.visible_text() == "…")
    publisher.append("Hello")
    # Despite an edit interval of 1000 s, the first text goes out at once.
    await surface.wait_until(lambda: "Hello" in surface.visible_text())
    assert [r.kind for r in surface.writes] == (["post", "edit"] if placeholder else ["post"])
    publisher.append(", world.")
    ids = await publisher.finish()
    assert surface.visible_text() == "Hello, world."
    assert ids == publisher.message_ids == surface.order
    assert_clean(surface)


TEXTS = {
    "short": ("A short answer with `code` and **bold**.", 4000),
    "long": (long_markdown(10_000, max_chars=1000), 1000),
    "unicode": (
        "Ünïcödé 東京 👨\u200d👩\u200d👧 résumé 🇯🇵 e\u0301 " * 40 + "\n\n```\n" + "λ → ∞ 🙂\n" * 30 + "```\n",
        200,
    ),
}


@pytest.mark.parametrize("placeholder", ["…", None])
@pytest.mark.parametrize("name", sorted(TEXTS))
async def test_final_visible_text_is_the_full_text(name: str, placeholder: str | None) -> None:
    text, limit = TEXTS[name]
    budget = TokenBucketBudget(rate=300, burst=20, reserve=2)
    surface = FakeSurface(max_chars=limit, budget=budget, enforce_rate=(300, 20))
    publisher = StreamPublisher(surface, min_edit_interval=0.01, placeholder=placeholder)
    await publisher.start("Thinking…")
    await stream(publisher, text, piece=7)
    ids = await publisher.finish()
    assert unsplit(surface.visible_messages()) == text
    assert publisher.text == publisher.shown_text == text
    assert ids == surface.order
    assert surface.rate_limited == []
    assert_clean(surface)
    if len(text) > limit:
        assert len(ids) > 1


async def test_twenty_concurrent_answers_share_one_budget_without_a_429() -> None:
    rate, burst = 150.0, 10
    budget = TokenBucketBudget(rate=rate, burst=burst, reserve=3)
    enforcer = RateEnforcer(rate, burst)  # the workspace's real limit, shared like the budget
    texts = [f"Answer {n}. " + " ".join(f"word{n}x{i}" for i in range(60 + n)) for n in range(20)]
    surfaces = [FakeSurface(max_chars=300, budget=budget, enforcer=enforcer, id_prefix=f"a{n}-")
                for n in range(20)]

    async def answer(n: int) -> None:
        publisher = StreamPublisher(surfaces[n], min_edit_interval=0.05, placeholder="…")
        await publisher.start()
        await stream(publisher, texts[n], piece=6, pause=0.002)
        await publisher.finish()

    await asyncio.wait_for(asyncio.gather(*(answer(n) for n in range(20))), 30)
    assert enforcer.rejected == 0
    for surface, text in zip(surfaces, texts, strict=True):
        assert unsplit(surface.visible_messages()) == text
        assert_clean(surface)


async def test_interim_edits_skip_stale_text_when_the_budget_is_dry() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=50, burst=2, clock=clock)
    surface = FakeSurface(max_chars=4000, budget=budget, clock=clock)
    publisher = StreamPublisher(surface, min_edit_interval=0.0, placeholder=None, clock=clock)
    await publisher.start()
    for i in range(300):
        publisher.append(f"t{i} ")
        await asyncio.sleep(0)
    # The clock has not moved: only the burst of 2 writes was possible, whatever the token rate.
    assert 1 <= len(surface.writes) <= 2
    clock.advance(1 / 50)  # one more token: the next edit carries the latest text, not a queued old one
    await surface.wait_until(lambda: surface.writes[-1].text == publisher.text)
    during = len(surface.writes)
    assert during <= 3
    for i in range(300, 600):
        publisher.append(f"t{i} ")
        await asyncio.sleep(0)
    assert len(surface.writes) == during
    clock.advance(10)
    await publisher.finish()
    assert len(surface.writes) == during + 1  # one final edit, no backlog of stale updates
    assert surface.visible_text() == publisher.text
    lengths = [len(record.text or "") for record in surface.writes]
    assert lengths == sorted(set(lengths))  # every write showed more than the one before


async def test_interim_edits_wait_for_min_edit_interval() -> None:
    clock = ManualClock()
    surface = FakeSurface(max_chars=4000, clock=clock)
    publisher = StreamPublisher(surface, min_edit_interval=0.05, placeholder=None, clock=clock)
    await publisher.start()
    for i in range(200):
        publisher.append(f"t{i} ")
        await asyncio.sleep(0)
    assert len(surface.writes) == 1  # the first text only: the interval has not passed on this clock
    clock.advance(0.05)
    await surface.wait_until(lambda: len(surface.writes) == 2)
    assert surface.writes[-1].text == publisher.text
    publisher.append("more")
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(surface.writes) == 2
    await publisher.finish()
    assert surface.visible_text() == publisher.text


async def test_reserve_keeps_room_for_the_final_write() -> None:
    clock = ManualClock()
    budget = TokenBucketBudget(rate=1, burst=2, reserve=1, clock=clock)
    surface = FakeSurface(max_chars=4000, budget=budget, clock=clock)
    publisher = StreamPublisher(surface, min_edit_interval=0.0, placeholder="…", clock=clock)
    await publisher.start()
    await surface.wait_until(lambda: len(surface.writes) == 1)  # the placeholder took the one interim token
    await stream(publisher, "The whole answer, written while only the reserve is left.")
    for _ in range(20):
        await asyncio.sleep(0)
    assert [r.text for r in surface.writes] == ["…"]
    assert not await budget.try_acquire()
    await publisher.finish()  # the final edit is granted from the reserve without the clock moving
    assert surface.visible_text() == "The whole answer, written while only the reserve is left."


async def test_platform_429_is_penalized_and_the_answer_recovers() -> None:
    budget = RecordingBudget(rate=1000, burst=100)  # looser than the platform: 429s will happen
    surface = FakeSurface(max_chars=500, budget=budget, enforce_rate=(40, 2))
    publisher = StreamPublisher(surface, min_edit_interval=0.0, placeholder=None)
    await publisher.start()
    text = long_markdown(2500, max_chars=500)
    await stream(publisher, text, piece=10, pause=0.001)
    await publisher.finish(footer="_done_")
    assert surface.rate_limited, "the test must provoke at least one 429"
    assert budget.penalties == [r.retry_after for r in surface.rate_limited]
    attempts = [r for r in surface.records if r.kind != "status"]
    for i, record in enumerate(attempts):
        if not record.accepted and i + 1 < len(attempts):
            assert record.retry_after is not None
            assert attempts[i + 1].at >= record.at + record.retry_after - 1e-9
    assert unsplit(surface.visible_messages()) == text + "\n\n_done_"
    assert_clean(surface)


async def test_final_write_retries_injected_429s() -> None:
    budget = RecordingBudget(rate=1000, burst=100)
    surface = FakeSurface(max_chars=4000, budget=budget)
    publisher = StreamPublisher(surface, min_edit_interval=1000.0, placeholder="…")
    await publisher.start()
    publisher.append("First words")
    await surface.wait_until(lambda: "First" in surface.visible_text())
    publisher.append(" and the rest of the answer.")
    surface.fail_next(2, retry_after=0.01)
    await publisher.finish()
    assert budget.penalties == [0.01, 0.01]
    assert surface.visible_text() == "First words and the rest of the answer."


async def test_connection_errors_are_retried_on_the_final_edit() -> None:
    surface = FlakySurface(1, max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=1000.0, placeholder="…")
    await publisher.start()
    await surface.wait_until(lambda: len(surface.writes) == 1)
    publisher.append("Survives a reset connection.")
    await publisher.finish()
    assert surface.visible_text() == "Survives a reset connection."


async def test_status_in_placeholder_then_as_trailing_line_never_in_final() -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=0.01, placeholder="…")
    await publisher.start("Thinking…")
    await surface.wait_until(lambda: surface.visible_text() == "_Thinking…_")
    publisher.set_status("Searching the web…")
    await surface.wait_until(lambda: surface.visible_text() == "_Searching the web…_")
    publisher.set_status(None)
    publisher.append("Here is what I found.")
    await surface.wait_until(lambda: surface.visible_text() == "Here is what I found.")
    publisher.set_status("Running current_time…")
    with_status = "Here is what I found.\n\n_Running current_time…_"
    await surface.wait_until(lambda: surface.visible_text() == with_status)
    assert publisher.shown_text == "Here is what I found."
    publisher.set_status(None)
    publisher.append(" It is noon.")
    await publisher.finish()
    assert surface.visible_text() == "Here is what I found. It is noon."
    assert surface.statuses == []  # placeholder mode shows status in the message, not via set_status


async def test_status_via_surface_before_the_first_message() -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=0.01, placeholder=None)
    await publisher.start("Thinking…")
    await surface.wait_until(lambda: surface.statuses == ["Thinking…"])
    publisher.set_status("Searching the web…")
    await surface.wait_until(lambda: surface.statuses[-1] == "Searching the web…")
    assert surface.order == []  # nothing posted before there is text
    publisher.set_status(None)
    publisher.append("Found it.")
    await publisher.finish()
    assert surface.visible_text() == "Found it."
    assert surface.statuses[-1] is None
    kinds = [r.kind for r in surface.records]
    assert kinds.index("post") > kinds.index("status")


async def test_fail_keeps_shown_text_and_appends_the_error() -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=0.01, placeholder="…")
    await publisher.start()
    publisher.append("Partial answer")
    await surface.wait_until(lambda: surface.visible_text() == "Partial answer")
    ids = await publisher.fail("⚠️ Kimi stopped answering: timeout")
    assert surface.visible_text() == "Partial answer\n\n⚠️ Kimi stopped answering: timeout"
    assert publisher.shown_text == "Partial answer"
    assert ids == surface.order and len(ids) == 1


@pytest.mark.parametrize("placeholder", ["…", None])
async def test_fail_before_any_text_shows_just_the_error(placeholder: str | None) -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, placeholder=placeholder)
    await publisher.start("Thinking…")
    await publisher.fail("⚠️ Kimi is unavailable.")
    assert surface.visible_messages() == ["⚠️ Kimi is unavailable."]
    assert publisher.shown_text == ""


async def test_footer_fits_even_when_the_last_message_is_full() -> None:
    footer = "_I left out 3 older messages to fit Kimi's context._"
    text = "\n".join(f"Line {i} of a long answer that fills messages." for i in range(30))
    surface = FakeSurface(max_chars=200)
    publisher = StreamPublisher(surface, min_edit_interval=0.0, placeholder=None)
    await publisher.start()
    await stream(publisher, text, piece=9)
    await publisher.finish(footer=footer)
    messages = surface.visible_messages()
    assert messages[-1].endswith("\n\n" + footer)
    assert unsplit(messages)[: -len(footer) - 2] == text
    assert_clean(surface)


async def test_finish_without_start_posts_everything() -> None:
    surface = FakeSurface(max_chars=100)
    publisher = StreamPublisher(surface)
    text = " ".join(f"word{i}" for i in range(60))
    publisher.append(text)
    ids = await publisher.finish()
    assert len(ids) > 2
    assert "".join(surface.visible_messages()) == text
    assert await publisher.finish() == ids  # idempotent
    assert_clean(surface)


async def test_empty_answer_never_writes_blank_text() -> None:
    surface = FakeSurface(max_chars=100)
    publisher = StreamPublisher(surface, placeholder=None)
    await publisher.start()
    publisher.append("   \n")
    await publisher.finish()
    assert surface.visible_messages() == ["_(no answer)_"]
    assert_clean(surface)
