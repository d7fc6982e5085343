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


async def test_a_long_answer_is_at_most_three_posts_first_paragraph_first() -> None:
    surface = FakeSurface(max_chars=4000)
    publisher = StreamPublisher(surface, min_edit_interval=0.0, append_only=True, min_paragraph_chars=50)
    await publisher.start()
    paragraphs = [f"Paragraph {i} says something useful about the question, at some length. " * 2 for i in range(20)]
    answer = "\n\n".join(paragraphs)
    posted_at: list[int] = []  # how much of the answer had arrived when each post went out
    pos = 0
    for paragraph in paragraphs:
        piece = paragraph + "\n\n" if pos + len(paragraph) < len(answer) else paragraph
        publisher.append(piece)
        pos += len(piece)
        for _ in range(5):
            await asyncio.sleep(0)
        while len(posted_at) < len(surface.writes):
            posted_at.append(pos)
    await publisher.finish()
    messages = surface.visible_messages()
    assert "".join(messages) == answer and all(record.kind == "post" for record in surface.writes)
    assert len(messages) == 3
    assert messages[0] == paragraphs[0] + "\n\n"  # shown as soon as it was complete
    assert posted_at[0] <= len(paragraphs[0]) + len(paragraphs[1]) + 4
    assert len(messages[1]) > len(messages[0])  # then larger pieces


async def test_a_piece_longer_than_a_message_continues_in_more_messages() -> None:
    surface = FakeSurface(max_chars=500)
    publisher = StreamPublisher(surface, min_edit_interval=0.0, append_only=True, min_paragraph_chars=50)
    await publisher.start()
    answer = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(12))
    publisher.append(answer)
    await publisher.finish()
    messages = surface.visible_messages()
    assert "".join(messages) == answer
    assert all(len(message) <= 500 for message in messages)
    assert len(messages) > 3  # continuations only: the text needs them
