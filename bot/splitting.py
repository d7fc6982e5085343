"""Cut long Markdown answers into platform-sized messages without breaking code blocks.

Chunks are spans of the original text; a chunk that ends inside a fenced code block gets a closing fence, and
the next one reopens it with the same fence and language, so each message renders on its own. The cut for a
chunk depends only on the text up to the chunk's window (plus the extent of a code block that straddles it),
which is what lets the stream publisher freeze finished chunks while the answer keeps growing.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

# Below this, fences, reopen lines and the reserve for closers no longer leave room for content.
MIN_MAX_CHARS = 40
_MAX_INFO = 30
_MAX_CLUSTER = 32

_OPEN_RE = re.compile(r" {0,3}(?P<marker>`{3,}|~{3,})(?P<info>.*)")
_CLOSE_RE = re.compile(r" {0,3}(?P<marker>`{3,}|~{3,})[ \t]*")
_SENTENCE_RE = re.compile(r"[.!?…][\"'”’)\]]*[ \t]+|[。！？]")
_SPACE_RE = re.compile(r"[ \t]+")

# Candidate cut kinds, best first.
_PARAGRAPH, _LINE, _CODE_LINE, _SENTENCE, _SPACE = range(5)
_TEXT, _OPEN, _CODE, _CLOSE = range(4)


@dataclass(frozen=True, slots=True)
class Fence:
    marker: str
    info: str

    @property
    def opener(self) -> str:
        # Only the language is repeated: a long info string would eat the next chunk's room.
        language = self.info.strip().split(" ", 1)[0][:_MAX_INFO] if self.info.strip() else ""
        return self.marker + language


@dataclass(frozen=True, slots=True)
class Chunk:
    """text[start:end], reopened with `fence_in` and closed with `fence_out` when they are set."""

    start: int
    end: int
    fence_in: Fence | None = None
    fence_out: Fence | None = None

    def render(self, text: str) -> str:
        body = text[self.start:self.end]
        head = self.fence_in.opener + "\n" if self.fence_in else ""
        return head + body + closer(body, self.fence_out)


def closer(body: str, fence: Fence | None) -> str:
    """The fence line that closes `fence` after `body` ("" when no fence is open)."""
    if fence is None:
        return ""
    return fence.marker if body.endswith("\n") else "\n" + fence.marker


def split_message(text: str, max_chars: int) -> list[str]:
    """Split `text` into messages of at most `max_chars`, each rendering on its own.

    Boundaries are preferred in this order: paragraph, line, line inside an oversized code block, sentence,
    space, and only then a hard cut (never inside a grapheme's combining marks). Whitespace-only pieces are
    dropped; removing the added fence lines and joining the chunks gives back the text.
    """
    return [chunk.render(text) for chunk in split_spans(text, max_chars)]


def paragraph_boundary(text: str, start: int, min_chars: int) -> int | None:
    """The end of the last complete paragraph of text[start:] outside any code block, if it leaves at least
    `min_chars` behind `start`; None otherwise. A paragraph ends at a blank line, so later text cannot move it."""
    layout = _Layout(text)
    pos = len(text)
    while True:
        found = text.rfind("\n\n", start, pos)
        if found < 0 or found + 2 - start < min_chars:
            return None
        # The blank line is outside a code block when no fence is open after the line it ends.
        if layout.after[layout.line_at(found)] is None:
            return found + 2
        pos = found


def split_spans(text: str, max_chars: int, *, start: int = 0) -> list[Chunk]:
    """The chunks of text[start:], where `start` is a previous chunk's end (or 0)."""
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}")
    layout = _Layout(text)
    chunks: list[Chunk] = []
    pos = start
    while pos < len(text):
        chunk = layout.next_chunk(pos, max_chars)
        if text[chunk.start:chunk.end].strip():
            chunks.append(chunk)
        pos = chunk.end
    return chunks


@dataclass(frozen=True, slots=True)
class _Block:
    start: int
    end: int
    fence: Fence
    closed: bool


class _Layout:
    """Lines of the text with their code-block role, computed once per split."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.kinds: list[int] = []
        self.after: list[Fence | None] = []  # the fence still open after each line
        self.block_of: list[int] = []  # index into self.blocks for code lines, -1 otherwise
        self.blocks: list[_Block] = []
        self._scan()

    def _scan(self) -> None:
        text, pos, fence = self.text, 0, None
        block_start = 0
        while pos < len(text):
            newline = text.find("\n", pos)
            end = len(text) if newline < 0 else newline + 1
            line = text[pos:end].rstrip("\n")
            if fence is None:
                opened = _OPEN_RE.fullmatch(line)
                if opened and not (opened["marker"][0] == "`" and "`" in opened["info"]):
                    fence, kind, block_start = Fence(opened["marker"], opened["info"]), _OPEN, pos
                    self.blocks.append(_Block(pos, len(text), fence, closed=False))
                else:
                    kind = _TEXT
            else:
                shut = _CLOSE_RE.fullmatch(line)
                if shut and shut["marker"][0] == fence.marker[0] and len(shut["marker"]) >= len(fence.marker):
                    kind = _CLOSE
                    self.blocks[-1] = _Block(block_start, end, fence, closed=True)
                else:
                    kind = _CODE
            self.starts.append(pos)
            self.ends.append(end)
            self.kinds.append(kind)
            self.block_of.append(len(self.blocks) - 1 if kind != _TEXT else -1)
            fence = None if kind == _CLOSE else fence
            self.after.append(fence)
            pos = end

    def line_at(self, pos: int) -> int:
        return bisect_right(self.starts, pos) - 1

    def fence_at(self, pos: int) -> Fence | None:
        """The fence open at a cut before text[pos]."""
        if pos <= 0:
            return None
        i = self.line_at(pos - 1)
        if pos == self.ends[i]:
            return self.after[i]
        return self.blocks[self.block_of[i]].fence if self.kinds[i] == _CODE else None

    def size(self, pos: int, cut: int, fence_in: Fence | None) -> int:
        """Rendered length of the chunk text[pos:cut] (see `Chunk.render`), without building it."""
        head = len(fence_in.opener) + 1 if fence_in else 0
        fence = self.fence_at(cut)
        tail = 0 if fence is None else len(fence.marker) + (self.text[cut - 1] != "\n")
        return head + (cut - pos) + tail

    def next_chunk(self, pos: int, max_chars: int) -> Chunk:
        fence_in = self.fence_at(pos)
        cut = self._cut(pos, max_chars, fence_in)
        if cut is None:
            # Pathological fences (huge markers): give up on fences for this chunk rather than overflow.
            cut = min(len(self.text), pos + max_chars)
            return Chunk(pos, cut)
        return Chunk(pos, cut, fence_in, self.fence_at(cut))

    def _cut(self, pos: int, max_chars: int, fence_in: Fence | None) -> int | None:
        text = self.text
        avail = max_chars - (len(fence_in.opener) + 1 if fence_in else 0)
        hi = min(len(text), pos + avail)
        if hi <= pos:
            return None
        if hi == len(text) and self.size(pos, hi, fence_in) <= max_chars:
            return hi
        kinds = (_PARAGRAPH, _LINE, _CODE_LINE, _SENTENCE, _SPACE)
        block = self._straddling_block(hi)
        if block is not None and block.start > pos:
            whole = block.end - block.start + (0 if block.closed else len(block.fence.marker) + 1)
            if whole <= max_chars:
                # The block fits in a message of its own: end this chunk before it instead of cutting it.
                hi, kinds = block.start, (_PARAGRAPH, _LINE)
        candidates = self._candidates(pos, hi)
        for floor in (pos + avail // 2, pos + 1):
            for kind in kinds:
                for cut in candidates[kind]:
                    if cut >= floor and self.size(pos, cut, fence_in) <= max_chars:
                        return cut
        return self._hard_cut(pos, hi, max_chars, fence_in)

    def _straddling_block(self, hi: int) -> _Block | None:
        i = self.line_at(hi - 1)
        if self.kinds[i] == _TEXT:
            return None
        block = self.blocks[self.block_of[i]]
        return block if block.end > hi else None

    def _candidates(self, pos: int, hi: int) -> list[list[int]]:
        """Cut positions in (pos, hi] by kind, each list descending."""
        found: list[list[int]] = [[] for _ in range(5)]
        first, last = self.line_at(pos), self.line_at(hi - 1)
        for i in range(last, first - 1, -1):
            cut = self.ends[i]
            if not pos < cut <= hi or not self.text.endswith("\n", 0, cut):
                continue
            if self.after[i] is None:
                blank = self.kinds[i] == _TEXT and not self.text[self.starts[i]:cut].strip()
                found[_PARAGRAPH if blank else _LINE].append(cut)
            elif self.kinds[i] == _CODE and not (i + 1 < len(self.kinds) and self.kinds[i + 1] == _CLOSE):
                found[_CODE_LINE].append(cut)
        window = self.text[pos:hi]
        inline = ((_SENTENCE, _SENTENCE_RE, (_TEXT,)), (_SPACE, _SPACE_RE, (_TEXT, _CODE)))
        for kind, pattern, allowed in inline:
            for match in pattern.finditer(window):
                cut = pos + match.end()
                i = self.line_at(cut - 1)
                if cut < self.ends[i] and self.kinds[i] in allowed:
                    found[kind].append(cut)
            found[kind].reverse()
        return found

    def _hard_cut(self, pos: int, hi: int, max_chars: int, fence_in: Fence | None) -> int | None:
        fitting = None
        for cut in range(hi, pos, -1):
            if self.size(pos, cut, fence_in) > max_chars:
                continue
            fitting = fitting or cut
            # Long runs of combining marks are not worth a long walk back: cut them.
            if self._clean_cut(cut) or fitting - cut > _MAX_CLUSTER:
                return cut
        return fitting

    def _clean_cut(self, cut: int) -> bool:
        text = self.text
        if cut >= len(text):
            return True
        i = self.line_at(cut)
        if self.kinds[i] in (_OPEN, _CLOSE) and cut > self.starts[i]:
            return False
        before, after = text[cut - 1], text[cut]
        if before == "\u200d" or (before == "\r" and after == "\n"):
            return False
        if "\ufe00" <= after <= "\ufe0f" or after == "\u200d" or "\U0001f3fb" <= after <= "\U0001f3ff":
            return False
        return not unicodedata.combining(after)
