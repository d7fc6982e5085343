"""ReplySurface for one Slack answer: picks the answer's lane and maps the publisher's writes onto Slack.

Lanes (decided when the answer starts, from the workspace's `Allowances`):

* native: chat.startStream with the first text, chat.appendStream for every later write (Tier 4), and
  chat.stopStream deferred until the Tier-2 budget allows (the text is complete before the stop). Any stream
  error switches the answer to the edit lane and rewrites the message with chat.update.
* edit: a placeholder, then chat.update (Tier 3, shared by the workspace) as text arrives.
* deferred: when the workspace cannot pay another stream's final write promptly, the answer makes no
  chat.update at all: it posts each finished paragraph as a thread message (overflow = "paragraphs") or its
  whole text once complete ("whole"), from the channel's own chat.postMessage allowance.

Writes use a client without slack_sdk's rate-limit retry handler: a 429 becomes `RateLimited`, the budget
is penalised for Retry-After, and the publisher re-plans with the newest text instead of a stale one sleeping
inside the SDK.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.errors import error_code, retry_after_of

if TYPE_CHECKING:
    from adapters.slack.assistant import StopButtons
    from bot.metrics import Metrics
from adapters.slack.limits import Allowances
from adapters.slack.render import feedback_block, message_fields
from bot.types import AnswerControls, PublishOptions, RateLimited, WriteBudget

log = logging.getLogger(__name__)

_POLL = 0.25


class _PostGate:
    """The surface's post budget: which bucket a post draws from depends on the lane and on finality."""

    def __init__(self, surface: SlackSurface) -> None:
        self._s = surface

    async def try_acquire(self, *, final: bool = False) -> bool:
        s = self._s
        channel = s.allowances.post(s.channel)
        if final:
            if await channel.try_acquire(final=True):
                s.next_post = "plain"
                return True
            return False
        if s.lane == "native":
            if await s.allowances.start.try_acquire(final=False):
                s.next_post = "stream"
                return True
            return False
        if s.lane == "deferred" and s.overflow == "paragraphs":
            # Paragraph posts are final text already: they owe no chat.update, so no edit slot is taken.
            # An answer that shows nothing yet goes before answers that already show text in this channel.
            hungry = s.allowances.hungry_posts(s.channel)
            if s.posted and hungry.total > 0:
                return False
            if await channel.try_acquire(final=False):
                s.fed()
                s.next_post = "plain"
                return True
            if not s.posted and not s.hungry:
                s.hungry = True
                hungry.add(1)
            return False
        if not s.reserved and not s.allowances.can_stream_edit():
            return False
        if not await channel.try_acquire(final=False):
            return False
        s.reserve_edit()
        s.next_post = "plain"
        return True

    async def acquire(self, *, final: bool = False) -> None:
        s = self._s
        if final:
            await s.allowances.post(s.channel).acquire(final=True)
            s.next_post = "plain"
            return
        while not await self.try_acquire(final=False):  # noqa: ASYNC110 (the gate spans several buckets)
            await asyncio.sleep(max(self.next_available_in(final=False), 0.01))

    async def penalize(self, retry_after: float) -> None:
        """The surface already penalised the bucket that answered 429."""

    def next_available_in(self, *, final: bool = False) -> float:
        s = self._s
        channel = s.allowances.post(s.channel)
        if final:
            return channel.next_available_in(final=True)
        if s.lane == "native":
            return s.allowances.start.next_available_in(final=False)
        if s.lane == "deferred" and s.overflow == "paragraphs":
            return channel.next_available_in(final=False)
        if not s.reserved and not s.allowances.can_stream_edit():
            return _POLL
        return channel.next_available_in(final=False)


class _EditGate:
    """The surface's edit budget. Interim chat.updates go first to answers that still show only their
    placeholder: without this, answers already streaming could win every token until their finals."""

    def __init__(self, surface: SlackSurface) -> None:
        self._s = surface

    def _bucket(self) -> WriteBudget:
        s = self._s
        return s.allowances.append if s.lane == "native" else s.allowances.update

    async def try_acquire(self, *, final: bool = False) -> bool:
        s, bucket = self._s, self._bucket()
        if final or s.lane == "native":
            return await bucket.try_acquire(final=final)
        if s.edited and s.allowances.hungry_edits.total > 0:
            return False
        if await bucket.try_acquire(final=False):
            s.edit_fed()
            return True
        if not s.edited and not s.hungry_edit:
            s.hungry_edit = True
            s.allowances.hungry_edits.add(1)
        return False

    async def acquire(self, *, final: bool = False) -> None:
        if final:
            await self._bucket().acquire(final=True)
            return
        while not await self.try_acquire(final=False):  # noqa: ASYNC110 (fairness spans several answers)
            await asyncio.sleep(max(self.next_available_in(final=False), 0.01))

    async def penalize(self, retry_after: float) -> None:
        await self._bucket().penalize(retry_after)

    def next_available_in(self, *, final: bool = False) -> float:
        return self._bucket().next_available_in(final=final)


class SlackSurface:
    def __init__(self, *, client: AsyncWebClient, allowances: Allowances, channel: str, thread_ts: str | None,
                 team_id: str, recipient: str | None, streaming: str = "edit", text_format: str = "markdown",
                 max_chars: int = 3900, placeholder: str = "…", overflow: str = "paragraphs",
                 assistant: bool = False, loading_messages: Sequence[str] = (), stops: StopButtons | None = None,
                 stop_turn: Callable[[], object] | None = None, metrics: Metrics | None = None) -> None:
        self.client = client
        self.allowances = allowances
        self.channel = channel
        self.thread_ts = thread_ts
        self.team_id = team_id
        self.recipient = recipient
        self.streaming = streaming
        self.text_format = text_format
        self.max_chars = max_chars
        self.placeholder = placeholder
        self.overflow = overflow
        # An assistant conversation (a DM thread): the status with loading messages shows until the first text,
        # and native streams carry Slack's Stop button, which ends the answer through `stop_turn`.
        self.assistant = assistant
        self.loading_messages = list(loading_messages)
        self._stops = stops if assistant else None
        self._stop_turn = stop_turn
        self._metrics = metrics
        self.lane: str | None = None
        self.next_post = "plain"
        self.reserved = False
        self.posted = 0
        self.hungry = False  # waiting for this answer's first paragraph post
        self._native_counted = False
        self._pending_start = False
        self._streams: dict[str, str] = {}  # ts -> text appended so far, while the stream is open
        self._stop_blocks: dict[str, list[dict[str, Any]]] = {}  # ts -> blocks its chat.stopStream adds
        self._task: tuple[str, str] | None = None  # the step shown in progress in the stream: (id, title)
        self._steps: list[str] = []
        self._status: str | None = None
        self._released = False
        self.post_budget = _PostGate(self)
        self.edit_budget = _EditGate(self)
        self.edited = False  # a chat.update has shown real text (not just the placeholder)
        self.hungry_edit = False
        self.writes: dict[str, int] = {}

    # -- lane -------------------------------------------------------------------------------------------

    @property
    def publish_options(self) -> PublishOptions:
        if self.lane is None:
            self._choose_lane()
        if self.lane == "native":
            return PublishOptions(placeholder=None, decorate=False)
        if self.lane == "edit":
            return PublishOptions(placeholder=None if self.assistant else self.placeholder)
        # Deferred: no edits at all; paragraphs (or the whole answer) go out as posts from the channel's allowance.
        return PublishOptions(placeholder=None, append_only=self.overflow == "paragraphs")

    def _choose_lane(self) -> None:
        a = self.allowances
        if self.streaming == "native" and self.thread_ts and a.can_stream_native():
            self.lane, self._pending_start = "native", True
            a.pending_starts += 1
        elif a.can_stream_edit():
            # Reserve the slot now: deciding the lane and taking the slot later let other answers take every
            # slot in between, and this answer then never got to post its placeholder.
            self.lane = "edit"
            self.reserve_edit()
        else:
            self.lane = "deferred"

    def reserve_edit(self) -> None:
        if not self.reserved:
            self.reserved = True
            self.allowances.edit_streams.add(1)

    def edit_fed(self) -> None:
        if self.hungry_edit:
            self.hungry_edit = False
            self.allowances.hungry_edits.add(-1)

    # -- writes -----------------------------------------------------------------------------------------

    def _count(self, method: str) -> None:
        self.writes[method] = self.writes.get(method, 0) + 1
        if self._metrics is not None:
            self._metrics.writes.labels("slack", method).inc()

    async def _call(self, method: str, budget: WriteBudget, **kwargs: Any) -> Any:
        self._count(method)
        try:
            return await self.client.api_call(method, json=kwargs)
        except SlackApiError as error:
            retry_after = retry_after_of(error)
            if retry_after is not None:
                if self._metrics is not None:
                    self._metrics.rate_limited.labels("slack", method).inc()
                await budget.penalize(retry_after)
                raise RateLimited(retry_after) from None
            raise

    def _thread(self) -> dict[str, Any]:
        return {"thread_ts": self.thread_ts} if self.thread_ts else {}

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        kind, self.next_post = self.next_post, "plain"
        if kind == "stream":
            try:
                return await self._start(text)
            except RateLimited:
                raise
            except SlackApiError as error:
                log.info("native stream unavailable; falling back to edits", extra={"error": error_code(error)})
                self._to_edit_lane()
                await self.allowances.post(self.channel).acquire(final=True)
        response = await self._call("chat.postMessage", self.allowances.post(self.channel), channel=self.channel,
                                    **self._thread(), **self._fields(text, controls))
        self.posted += 1
        return str(response["ts"])

    def fed(self) -> None:
        if self.hungry:
            self.hungry = False
            self.allowances.hungry_posts(self.channel).add(-1)

    async def _start(self, text: str) -> str:
        recipient: dict[str, Any] = {}
        if not self.channel.startswith("D") and self.recipient:
            recipient = {"recipient_user_id": self.recipient, "recipient_team_id": self.team_id}
        stoppable = {"is_stoppable": True} if self._stops is not None and self._stop_turn is not None else {}
        response = await self._call("chat.startStream", self.allowances.start, channel=self.channel,
                                    thread_ts=self.thread_ts, markdown_text=text, **recipient, **stoppable)
        ts = str(response["ts"])
        if stoppable and self._stops is not None:
            self._stops.register(self.channel, ts, self.user_stopped)
        self._streams[ts] = text
        if self._pending_start:
            self._pending_start = False
            self.allowances.pending_starts -= 1
        if not self._native_counted:
            self._native_counted = True
            self.allowances.native_streams.add(1)
        return ts

    def _to_edit_lane(self) -> None:
        if self._pending_start:
            self._pending_start = False
            self.allowances.pending_starts -= 1
        self.lane = "edit"
        self.reserve_edit()

    def _fields(self, text: str, controls: AnswerControls | None) -> dict[str, Any]:
        return message_fields(text, self.text_format, turn_id=controls.turn_id if controls else None)

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        sent = self._streams.get(message_id)
        if sent is not None:
            if controls is not None:  # a native stream shows its closing blocks when it is stopped
                self._stop_blocks[message_id] = [feedback_block(controls.turn_id)]
            if text.startswith(sent):
                delta = text[len(sent):]
                if not delta:
                    return
                try:
                    await self._call("chat.appendStream", self.allowances.append, channel=self.channel,
                                     ts=message_id, markdown_text=delta)
                    self._streams[message_id] = text
                    return
                except SlackApiError as error:
                    if error_code(error) == "stopped_by_user":
                        self.user_stopped()
                    else:
                        log.info("stream append failed; falling back to edits", extra={"error": error_code(error)})
            # Close whatever Slack still holds open (errors ignored) so chat.update is not a streaming conflict.
            await self._stop_now(message_id)
            self._streams.pop(message_id, None)
            self._to_edit_lane()
            # A one-off switch: take a final token so the message is right promptly.
            await self.allowances.update.acquire(final=True)
        await self._call("chat.update", self.allowances.update, channel=self.channel, ts=message_id,
                         **self._fields(text, controls))
        self.edited = True

    def user_stopped(self) -> None:
        """The user pressed Slack's Stop (reported by an event, a refused append, or both): end the answer once."""
        stop, self._stop_turn = self._stop_turn, None
        if stop is not None:
            log.info("answer stopped with Slack's Stop button")
            stop()

    async def _stop_now(self, ts: str) -> None:
        await self.allowances.stop.acquire(final=True)
        await self._stop(ts)

    async def _stop(self, ts: str, attempt: int = 1) -> None:
        try:
            blocks = self._stop_blocks.get(ts)
            done = [{"type": "task_update", "id": self._task[0], "title": self._task[1], "status": "complete"}] \
                if self._task else []
            await self._call("chat.stopStream", self.allowances.stop, channel=self.channel, ts=ts,
                             **({"blocks": blocks} if blocks else {}), **({"chunks": done} if done else {}))
        except RateLimited:
            if attempt < 3:
                self.allowances.stop_later(lambda: self._stop(ts, attempt + 1))
        except SlackApiError as error:
            # An expired or already stopped stream shows its text; nothing left to do.
            log.info("stream stop failed", extra={"error": error_code(error)})

    async def set_status(self, status: str | None) -> None:
        if self._streams:
            await self._task_step(status)  # once a native stream shows text, steps appear inside it
            return
        # Slack clears the status when the app replies in the thread, so clearing costs no call.
        if status is None or status == self._status or not self.thread_ts:
            return
        if not await self.allowances.status.try_acquire():
            return  # cosmetic; never worth waiting for
        first, self._status = self._status is None, status
        # Loading messages rotate under the app's name until the first text; later statuses (a search, a tool)
        # replace them with what is happening.
        loading = {"loading_messages": self.loading_messages} if first and self.loading_messages else {}
        try:
            await self._call("assistant.threads.setStatus", self.allowances.status, channel_id=self.channel,
                             thread_ts=self.thread_ts, status=status, **loading)
        except (SlackApiError, RateLimited) as error:
            log.debug("status not shown", extra={"error": str(error)})

    async def _task_step(self, status: str | None) -> None:
        """A search or tool call after the answer began: a task_update chunk in the stream (in progress, then
        complete when the next step or the text comes). Cosmetic: skipped when the append allowance is short."""
        title = status.replace("`", "").strip() if status else ""
        if (self._task[1] if self._task else "") == title:
            return
        chunks = [{"type": "task_update", "id": self._task[0], "title": self._task[1], "status": "complete"}] \
            if self._task else []
        self._task = None
        if title:
            self._task = (f"step-{len(self._steps) + 1}", title)
            self._steps.append(title)
            chunks.append({"type": "task_update", "id": self._task[0], "title": title, "status": "in_progress"})
        if not chunks or not await self.allowances.append.try_acquire():
            return
        try:
            await self._call("chat.appendStream", self.allowances.append, channel=self.channel,
                             ts=next(reversed(self._streams)), chunks=chunks)
        except (SlackApiError, RateLimited) as error:
            log.debug("task step not shown", extra={"error": str(error)})

    # -- end of the answer --------------------------------------------------------------------------------

    async def answer_finished(self, message_ids: list[str]) -> None:
        self.release()

    def release(self) -> None:
        """Give back commitments and schedule deferred stream stops; idempotent."""
        if self._released:
            return
        self._released = True
        self.fed()
        self.edit_fed()
        a = self.allowances
        if self.reserved:
            a.edit_streams.add(-1)
        if self._native_counted:
            a.native_streams.add(-1)
        if self._pending_start:
            self._pending_start = False
            a.pending_starts -= 1
        for ts in list(self._streams):
            if self._stops is not None:
                self._stops.unregister(self.channel, ts)
            a.stop_later(lambda ts=ts: self._stop(ts))  # type: ignore[misc]
        self._streams.clear()
