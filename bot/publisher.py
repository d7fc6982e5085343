"""The stream publisher: tokens in, as few platform writes as the user needs out.

The token loop only appends to a buffer; one background writer per answer owns every platform write. It
shows the first text at once, then at most one interim edit per `min_edit_interval`, and only when the shared
edit budget grants a non-final token, always with the latest text (updates never queue up). Once a message is
full, its chunk is frozen (see bot/splitting.py) and a continuation message carries on. `finish`/`fail` stop
the writer and make final writes, with final budget tokens, until every message shows its complete chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.splitting import Chunk, paragraph_boundary, split_spans
from bot.types import AnswerControls, RateLimited, ReplySurface, WriteBudget

log = logging.getLogger(__name__)

EMPTY_ANSWER = "_(no answer)_"
# An adopted message (a resumed answer's earlier reply) the new answer no longer needs.
SUPERSEDED = "_(this part of the answer was rewritten above)_"
_FINAL_ATTEMPTS = 6
_MAX_WRITE_FAILURES = 3
_MAX_STATUS = 200
_DEFAULT_POLL = 0.1
_MIN_POLL = 0.01
# Append-only answers post at most this many pieces (plus continuations of a piece longer than a message): each
# post is a thread notification, and under load each one also waits for the channel's allowance.
MAX_PIECES = 3
# After the first paragraph, the next piece waits until the new text is this many times what is already shown.
_PIECE_GROWTH = 1.5


class _Result(enum.Enum):
    OK = "ok"
    LIMITED = "limited"
    FAILED = "failed"


@dataclass(slots=True)
class _Message:
    id: str
    shown: str | None
    upto: int  # this message shows the text up to here (0 for a placeholder)


@dataclass(frozen=True, slots=True)
class _View:
    text: str
    upto: int


@dataclass(frozen=True, slots=True)
class _Action:
    kind: Literal["post", "edit", "status"]
    index: int = 0
    view: _View = _View("", 0)
    status: str | None = None
    controls: AnswerControls | None = None


MessagesCallback = Callable[[list[str]], Awaitable[None]]


class StreamPublisher:
    def __init__(self, surface: ReplySurface, *, min_edit_interval: float = 1.0,
                 placeholder: str | None = "…", decorate: bool = True, append_only: bool = False,
                 min_paragraph_chars: int = 200, clock: Callable[[], float] = time.monotonic,
                 adopt: Sequence[str] = (), on_messages: MessagesCallback | None = None) -> None:
        # append_only: every write is a post of finished paragraphs, nothing is ever edited, so it needs no edit
        # allowance at all. The first paragraph (at least min_paragraph_chars) goes out as soon as it is done,
        # then larger pieces, MAX_PIECES in all with the rest of the answer as the last.
        # adopt: messages an interrupted attempt of this answer already posted; they are edited, not re-posted,
        # so a resumed answer ends up in the same place (which rules out append_only).
        # on_messages: told the ids every time a message is posted, so they can be stored as they appear.
        self._append_only = append_only and not adopt
        self._min_paragraph = min_paragraph_chars
        if append_only:
            placeholder = None
        # decorate=False: interim writes carry only raw text (no status line, no closing fence), so each one
        # extends the last; status goes to surface.set_status. The terminal chat streams that way.
        self._decorate = decorate
        self._surface = surface
        self._limit = surface.max_chars
        self._interval = max(0.0, min_edit_interval)
        self._placeholder = placeholder[:self._limit] if placeholder and placeholder.strip() else None
        self._clock = clock
        self._parts: list[str] = []
        self._status: str | None = None
        self._surface_status: str | None = None
        # shown=None: what an adopted message shows is unknown, so its first view is always written.
        self._messages: list[_Message] = [_Message(i, None, 0) for i in adopt]
        self._adopted = len(self._messages)
        self._on_messages = on_messages
        self._committed: list[Chunk] = []
        self._committed_end = 0
        self._pieces = 0  # append-only: interim posts decided so far (a piece may span several messages)
        self._last_write = float("-inf")
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._done = False
        self.first_text_at: float | None = None  # time.monotonic() of the first write that showed answer text

    # -- the token loop's side: never blocks ----------------------------------------------------------

    async def start(self, status: str | None = None) -> None:
        if self._task is not None or self._done:
            raise RuntimeError("publisher already started")
        self.set_status(status)
        self._task = asyncio.create_task(self._run(), name="stream-publisher")

    def append(self, text: str) -> None:
        if not text or self._done:
            return
        self._parts.append(text)
        self._dirty.set()

    def set_status(self, status: str | None) -> None:
        cleaned = " ".join(status.split())[:_MAX_STATUS] if status else ""
        new = cleaned or None
        if new != self._status and not self._done:
            self._status = new
            self._dirty.set()

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def message_ids(self) -> list[str]:
        return [message.id for message in self._messages]

    @property
    def shown_text(self) -> str:
        """The prefix of `text` users can see now (without status line or added fence lines)."""
        return self.text[:max((message.upto for message in self._messages), default=0)]

    # -- final writes ---------------------------------------------------------------------------------

    async def finish(self, *, footer: str | None = None, controls: AnswerControls | None = None) -> list[str]:
        """Show the complete text (+ footer line) in every message, `controls` under the last; returns the
        messages' ids."""
        return await self._close(footer, footer or EMPTY_ANSWER, controls)

    async def fail(self, error_text: str) -> list[str]:
        """Like finish, with `error_text` as the last line (alone when there is no text).

        Everything received so far is kept, which includes everything that was shown.
        """
        error = error_text.strip() or "⚠️ Something went wrong."
        return await self._close(error, error)

    async def suspend(self, note: str, *, limit: float) -> list[str]:
        """This process is going away mid-answer: stop writing, add `note` to the last message shown, and post
        nothing new (a post cut off by the exit could land unrecorded, and the resumed answer rewrites these
        messages anyway). Returns the ids of the messages shown. Bounded by `limit` seconds."""
        if self._done:
            return self.message_ids
        self._done = True
        self._closing.set()
        self._dirty.set()
        if self._task is not None:
            # The write in flight completes (and its id is recorded); it is never cut off half-way.
            await asyncio.wait({self._task}, timeout=limit)
        last = self._messages[-1] if self._messages else None
        if last is not None and last.shown is not None:
            text = f"{last.shown}\n\n{note}" if last.shown.strip() else note
            if len(text) <= self._limit:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(limit):
                        await self._perform(_Action("edit", len(self._messages) - 1, _View(text, last.upto)))
        return self.message_ids

    async def _close(self, trailer: str | None, empty: str, controls: AnswerControls | None = None) -> list[str]:
        if self._done:
            return self.message_ids
        self._done = True
        await self._stop_writer()
        views = self._final_views(trailer, empty)
        for index, view in enumerate(views):
            # The controls ride on the last message's final write, which they force if the text is unchanged.
            attach = controls if index == len(views) - 1 else None
            if index < len(self._messages):
                if self._messages[index].shown != view.text or attach is not None:
                    await self._final_write(_Action("edit", index, view, controls=attach))
            elif not await self._final_write(_Action("post", index, view, controls=attach)):
                break  # later chunks would land out of order
        for index in range(len(views), self._adopted):
            if self._messages[index].shown != SUPERSEDED:
                await self._final_write(_Action("edit", index, _View(SUPERSEDED, self._messages[index].upto)))
        if self._surface_status is not None:
            await self._perform(_Action("status", status=None))
        # Optional surface hook: this answer makes no more writes (a Slack native stream can be stopped).
        finished = getattr(self._surface, "answer_finished", None)
        if callable(finished):
            try:
                await finished(self.message_ids)
            except Exception:
                log.warning("surface answer_finished hook failed", exc_info=True)
        return self.message_ids

    async def _stop_writer(self) -> None:
        self._closing.set()
        self._dirty.set()
        if self._task is None:
            return
        # The writer completes a write in flight (its outcome is unknown until then) and exits.
        with contextlib.suppress(Exception):
            await self._task

    async def _final_write(self, action: _Action) -> bool:
        budget = self._budget(action)
        failed_once = False
        for attempt in range(1, _FINAL_ATTEMPTS + 1):
            await budget.acquire(final=True)
            result = await self._perform(action)
            if result is _Result.OK:
                return True
            if result is _Result.FAILED:
                # A failed post may still have landed; an edit is safe to repeat once.
                if action.kind == "post" or failed_once:
                    break
                failed_once = True
            log.info("retrying final reply write", extra={"write": action.kind, "attempt": attempt})
        log.error("final reply write failed; the answer is incomplete on the platform",
                  extra={"write": action.kind, "message_index": action.index})
        return False

    def _final_views(self, trailer: str | None, empty: str) -> list[_View]:
        text = self.text
        if not text.strip():
            return [_View(empty[:self._limit], 0)]
        trailer = trailer.strip()[:self._limit // 2] if trailer else None
        chunks = split_spans(text, self._limit, start=self._committed_end)
        if trailer and chunks and len(chunks[-1].render(text)) + len(trailer) + 2 > self._limit:
            # Re-cut only the unfrozen rest so the last message has room for the trailer line.
            chunks = split_spans(text, max(self._limit - len(trailer) - 2, 40), start=self._committed_end)
        views = [_View(chunk.render(text), chunk.end) for chunk in [*self._committed, *chunks]]
        if trailer:
            last = views[-1]
            if len(last.text) + len(trailer) + 2 <= self._limit:
                views[-1] = _View(f"{last.text}\n\n{trailer}", last.upto)
            else:
                views.append(_View(trailer, last.upto))
        return views

    # -- the writer -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        try:
            while not self._closing.is_set():
                action = self._next_action()
                if action is None:
                    self._dirty.clear()
                    await self._dirty.wait()
                    continue
                wait = await self._gate(action)
                if wait > 0:
                    await self._sleep(wait)
                    continue
                result = await self._perform(action)
                if result is _Result.FAILED:
                    failures += 1
                    if failures >= _MAX_WRITE_FAILURES:
                        log.error("giving up interim reply writes", extra={"failures": failures})
                        return
                    await self._sleep(max(self._interval, _DEFAULT_POLL) * failures)
                elif result is _Result.OK:
                    failures = 0
        except Exception:
            log.exception("stream publisher writer crashed; the final write will still be attempted")

    def _next_action(self) -> _Action | None:
        views = self._stream_views()
        for index, view in enumerate(views):
            if index == len(self._messages):
                return _Action("post", index, view)
            if self._messages[index].shown != view.text:
                return _Action("edit", index, view)
        wanted = self._status if not views or not self._decorate else None
        return _Action("status", status=wanted) if wanted != self._surface_status else None

    def _stream_views(self) -> list[_View]:
        text = self.text
        if self._append_only:
            return self._paragraph_views(text)
        if not text.strip():
            if self._placeholder is None and not self._adopted:
                return []
            placeholder = self._placeholder or "…"
            return [_View(f"_{self._status}_"[:self._limit] if self._status else placeholder, 0)]
        chunks = split_spans(text, self._limit, start=self._committed_end)
        if len(chunks) > 1:
            # Once a continuation exists, a chunk's boundary must never move again.
            self._committed.extend(chunks[:-1])
            self._committed_end = chunks[-2].end
            chunks = chunks[-1:]
        views = [_View(chunk.render(text), chunk.end) for chunk in self._committed]
        if chunks and not self._decorate:
            # A continuation reopens its code fence up front so every later write only extends it (streams).
            last = chunks[-1]
            head = last.fence_in.opener + "\n" if last.fence_in else ""
            views.append(_View(head + text[last.start:last.end], last.end))
        elif chunks:
            body = chunks[-1].render(text)
            line = f"\n\n_{self._status}_" if self._status else ""
            if len(body) + len(line) > self._limit:
                line = ""
            views.append(_View(body + line, chunks[-1].end))
        return views

    def _paragraph_views(self, text: str) -> list[_View]:
        """Append-only: finished paragraphs become frozen chunks, each posted once; the rest waits."""
        # Only once every frozen chunk is out: while posts wait for the allowance, paragraphs gather into one
        # bigger post instead of queueing as many small ones.
        caught_up = len(self._messages) == len(self._committed)
        boundary = None
        if caught_up and self._pieces < MAX_PIECES - 1:  # the last piece is the rest, at the end
            wanted = max(self._min_paragraph, int(self._committed_end * _PIECE_GROWTH))
            boundary = paragraph_boundary(text, self._committed_end, wanted)
        if boundary is not None and text[self._committed_end:boundary].strip():
            self._committed.extend(split_spans(text[:boundary], self._limit, start=self._committed_end))
            self._committed_end = boundary
            self._pieces += 1
        return [_View(chunk.render(text), chunk.end) for chunk in self._committed]

    async def _gate(self, action: _Action) -> float:
        """0 when the action may go now (its budget token is taken), else how long to wait and re-plan."""
        if action.kind == "status":
            return 0.0
        first_text = action.kind == "edit" and self._messages[action.index].upto == 0 and action.view.upto > 0
        paced = action.kind == "edit" or (self._append_only and bool(self._messages))
        if paced and not first_text:
            remaining = self._last_write + self._interval - self._clock()
            if remaining > 0:
                return remaining
        budget = self._budget(action)
        if await budget.try_acquire(final=False):
            return 0.0
        # Interim updates need no millisecond precision; a floor keeps re-planning cheap while finals queue.
        return max(budget.next_available_in(final=False), _MIN_POLL)

    async def _perform(self, action: _Action) -> _Result:
        surface = self._surface
        try:
            if action.kind == "status":
                self._surface_status = action.status  # cosmetic: recorded up front so it is never retried
                await surface.set_status(action.status)
                return _Result.OK
            if action.kind == "post":
                message_id = await surface.post(action.view.text, action.controls)
                self._messages.append(_Message(message_id, action.view.text, action.view.upto))
                await self._report_messages()
            else:
                message = self._messages[action.index]
                await surface.edit(message.id, action.view.text, action.controls)
                message.shown, message.upto = action.view.text, action.view.upto
        except RateLimited as limited:
            log.info("reply write rate limited",
                     extra={"write": action.kind, "retry_after": limited.retry_after})
            if action.kind != "status":
                await self._budget(action).penalize(limited.retry_after)
            return _Result.LIMITED
        except Exception as error:
            log.warning("reply write failed", extra={"write": action.kind, "error": type(error).__name__})
            log.debug("reply write failure detail", exc_info=True)
            return _Result.FAILED
        self._last_write = self._clock()
        if self.first_text_at is None and action.kind != "status" and action.view.upto > 0:
            self.first_text_at = time.monotonic()  # for metrics: real time, whatever clock paces the writes
        return _Result.OK

    async def _report_messages(self) -> None:
        if self._on_messages is None:
            return
        try:
            await self._on_messages(self.message_ids)
        except Exception:  # bookkeeping: the message is on screen whatever happens to the record
            log.exception("recording posted message ids failed")

    def _budget(self, action: _Action) -> WriteBudget:
        return self._surface.post_budget if action.kind == "post" else self._surface.edit_budget

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._closing.wait()
