"""Append-only publishing: finished paragraphs are posted as they complete, nothing is ever edited."""

import asyncio

from bot.publisher import StreamPublisher
from bot.splitting import paragraph_boundary
from tests.surface_fake import FakeSurface, fences_balanced

ANSWER = (
    "First paragraph explains the idea in a few words that take some room on the screen.\n\n"
    "Second paragraph shows code:\n\n```python\ndef f():\n\n    return 1\n```\n\n"
    "Third paragraph wraps it up, and the last sentence has no blank line after it."
)


def test_boundary_is_the_last_blank_line_outside_code() -> None:
    inside = "intro text\n\n```\ncode\n\nmore code\n"
    assert paragraph_boundary(inside, 0, 1) == len("intro text\n\n")
    assert paragraph_boundary(inside, 0, 50) is None
    closed = inside + "```\n\nafter"
    assert paragraph_boundary(closed, 0, 1) == len(inside + "```\n\n")
    assert paragraph_boundary("no blank line yet", 0, 1) is None
    assert paragraph_boundary("a\n\nb\n\nc", 3, 1) == len("a\n\nb\n\n")


async def test_paragraphs_are_posted_as_they_finish_and_never_edited() -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=0.01, append_only=True, min_paragraph_chars=20,
                                placeholder="…")
    await publisher.start("Thinking…")
    first, rest = ANSWER.split("\n\n", 1)
    for piece in (first, "\n\n", rest[:40]):
        publisher.append(piece)
    await surface.wait_until(lambda: len(surface.writes) >= 1)
    # The first paragraph is out while the answer is still being written; no placeholder was posted.
    assert surface.visible_messages()[0].startswith("First paragraph")
    publisher.append(rest[40:])
    await publisher.finish()
    assert all(record.kind == "post" for record in surface.writes)
    assert "".join(surface.visible_messages()) == ANSWER
    assert all(fences_balanced(message) for message in surface.visible_messages())
    assert len(surface.visible_messages()) >= 2


async def test_short_answer_is_one_post() -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=0.01, append_only=True)
    await publisher.start()
    publisher.append("Just one line.")
    await asyncio.sleep(0.05)
    assert surface.writes == []
    await publisher.finish()
    assert surface.visible_messages() == ["Just one line."]
