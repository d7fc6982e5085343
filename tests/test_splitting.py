"""split_message: platform-sized chunks at natural boundaries that never break a code block."""

from __future__ import annotations

import itertools
import random

import pytest

from bot.splitting import split_message, split_spans
from tests.surface_fake import fences_balanced, long_markdown, unsplit


def check_invariants(text: str, chunks: list[str], limit: int) -> None:
    assert chunks, "non-blank text gives at least one chunk"
    for chunk in chunks:
        assert 0 < len(chunk) <= limit
        assert chunk.strip()
        assert fences_balanced(chunk), chunk


def test_short_text_is_one_chunk_unchanged() -> None:
    assert split_message("Hello **world**", 100) == ["Hello **world**"]


def test_blank_text_gives_no_chunks() -> None:
    assert split_message("", 100) == []
    assert split_message(" \n\n \t", 100) == []


def test_limit_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        split_message("x" * 100, 10)


def test_paragraph_boundaries_are_preferred() -> None:
    paragraphs = [f"Paragraph {i} has a line.\nAnd a second line here." for i in range(12)]
    text = "\n\n".join(paragraphs)
    chunks = split_message(text, 120)
    check_invariants(text, chunks, 120)
    assert "".join(chunks) == text
    for chunk in chunks[:-1]:
        assert chunk.endswith("\n\n")  # every cut falls after a blank line
    assert len(chunks) >= 5


def test_line_then_sentence_then_space_then_hard_cut() -> None:
    lines = "\n".join(f"Line number {i} of a list." for i in range(20))
    chunks = split_message(lines, 100)
    assert "".join(chunks) == lines
    assert all(chunk.endswith("\n") for chunk in chunks[:-1])

    sentences = " ".join(f"Sentence {i} is here, yes." for i in range(20))
    chunks = split_message(sentences, 100)
    assert "".join(chunks) == sentences
    assert all(chunk.endswith(". ") for chunk in chunks[:-1])

    words = " ".join(f"word{i}" for i in range(60))
    chunks = split_message(words, 50)
    assert "".join(chunks) == words
    assert all(chunk.endswith(" ") for chunk in chunks[:-1])

    blob = "x" * 130
    chunks = split_message(blob, 50)
    assert chunks == ["x" * 50, "x" * 50, "x" * 30]


def test_code_block_that_fits_is_moved_whole_to_the_next_chunk() -> None:
    block = "```python\n" + "\n".join(f"print({i})" for i in range(8)) + "\n```\n"
    text = "Intro line one.\nIntro line two.\n\n" + block + "\nAfter the code.\n"
    chunks = split_message(text, len(block) + 10)
    check_invariants(text, chunks, len(block) + 10)
    assert "".join(chunks) == text  # no fence was added: the block was never cut
    assert any(chunk.startswith(block) for chunk in chunks)


def test_oversized_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"let value_{i} = {i};" for i in range(60))
    text = f"Here is the code:\n\n```rust\n{code}\n```\n\nThat is all.\n"
    chunks = split_message(text, 200)
    check_invariants(text, chunks, 200)
    inside = [c for c in chunks if "let value_" in c]
    assert len(inside) > 3
    for chunk in inside[1:]:
        assert chunk.startswith("```rust\n")
    for chunk in inside[:-1]:
        assert chunk.endswith("\n```")
    assert unsplit(chunks) == text


def test_tilde_fences_and_longer_markers_are_respected() -> None:
    code = "\n".join(f"echo {i} ```not a fence```" for i in range(30))
    text = f"~~~~bash\n{code}\n~~~~\n"
    chunks = split_message(text, 150)
    check_invariants(text, chunks, 150)
    assert all(c.startswith("~~~~bash\n") for c in chunks[1:])
    assert unsplit(chunks) == text


def test_unclosed_fence_is_closed_in_the_last_chunk() -> None:
    text = "Start:\n\n```js\nconsole.log(1)\n"
    assert split_message(text, 100) == [text + "```"]


def test_very_long_code_line_is_cut_and_stays_fenced() -> None:
    text = "```\n" + " ".join(f"tok{i}" for i in range(100)) + "\n```\n"
    chunks = split_message(text, 120)
    check_invariants(text, chunks, 120)
    # A single line longer than a message must be cut; only the added newline before the closer differs.
    assert unsplit(chunks).replace("\n", "") == text.replace("\n", "")


def test_hard_cut_never_splits_an_emoji_sequence() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    thumbs = "👍🏽"
    accent = "e\u0301"
    text = (family + thumbs + accent) * 20
    for limit in range(40, 60):
        chunks = split_message(text, limit)
        assert "".join(chunks) == text
        for chunk in chunks:
            assert len(chunk) <= limit
            assert not chunk.startswith(("\u200d", "\U0001f3fd", "\u0301"))
            assert not chunk.endswith("\u200d")


def test_long_markdown_answer() -> None:
    text = long_markdown(10_000, max_chars=1000)
    chunks = split_message(text, 1000)
    check_invariants(text, chunks, 1000)
    assert unsplit(chunks) == text
    assert len(chunks) >= 10


def test_spans_partition_the_text() -> None:
    text = long_markdown(6000, max_chars=700)
    spans = split_spans(text, 700)
    assert spans[0].start == 0
    for before, after in itertools.pairwise(spans):
        assert before.end == after.start
        assert before.fence_out == after.fence_in
    assert spans[-1].end == len(text)
    # Splitting the rest from a chunk's end gives the same later chunks.
    assert split_spans(text, 700, start=spans[3].end) == spans[4:]


@pytest.mark.parametrize("seed", range(25))
def test_random_markdown_keeps_every_invariant(seed: int) -> None:
    rng = random.Random(seed)
    pieces = []
    for _ in range(rng.randint(3, 30)):
        roll = rng.random()
        if roll < 0.3:
            lang = rng.choice(["", "python", "js", "sh"])
            body = "\n".join("x" * rng.randint(0, 60) for _ in range(rng.randint(0, 40)))
            pieces.append(f"```{lang}\n{body}\n```")
        elif roll < 0.4:
            pieces.append("")
        else:
            words = [rng.choice(["alpha", "beta", "γάμμα", "дельта", "🙂", "x" * rng.randint(1, 30)])
                     for _ in range(rng.randint(1, 80))]
            pieces.append(" ".join(words) + rng.choice([".", "!", "", "?"]))
    text = rng.choice(["\n\n", "\n"]).join(pieces)
    if not text.strip():
        return
    limit = rng.choice([40, 64, 100, 200, 500])
    chunks = split_message(text, limit)
    check_invariants(text, chunks, limit)
    # Whitespace-only pieces may be dropped at boundaries; nothing else may change.
    assert "".join(unsplit(chunks).split()) == "".join(text.split())
