"""FakeSlack's fault injection and inspection helpers (a mixin, to keep the facade small)."""

from __future__ import annotations

import time

from tests.fakes.slack_state import JSON, Message, SlackState, StreamState, Version
from tests.fakes.slack_web import Call, WebApi, WebOptions
from tests.fakes.slack_web_files import Download, FileServer


class SlackInspection:
    """Reads the fake's state the way tests ask questions: "what did the bot write, and how often?"."""

    state: SlackState
    web: WebApi
    options: WebOptions
    file_server: FileServer
    bot_id: str

    # --- faults and rate limits ---------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: str | None = None,
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        raw_body: str | None = None,
    ) -> None:
        """Fail the next `times` calls to `method` (status 429 defaults to ratelimited, Retry-After 1);
        `raw_body` answers with that text (HTML) instead of Slack's JSON."""
        if status == 429:
            error = error or "ratelimited"
            retry_after = 1 if retry_after is None else retry_after
        self.web.fail_next(method, error or "internal_error", status, retry_after, times, raw_body)

    @property
    def rate_limited_count(self) -> int:
        """Every HTTP 429 the fake answered, injected or earned."""
        return self.web.rate_limited_count

    @property
    def calls(self) -> list[Call]:
        return self.web.calls

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.web.calls if c.method == method]

    # --- inspection ---------------------------------------------------------------------------------

    def message(self, channel: str, ts: str) -> Message:
        """A message by ts, deleted ones included (check `.deleted`)."""
        return self.state.messages[channel][ts]

    def messages(self, channel: str) -> list[Message]:
        return self.state.channel_messages(channel)

    def messages_in_thread(self, channel: str, thread_ts: str) -> list[Message]:
        return self.state.thread(channel, thread_ts)

    def bot_messages(self, channel: str | None = None) -> list[Message]:
        channels = [channel] if channel else list(self.state.messages)
        return [m for c in channels for m in self.state.channel_messages(c) if m.bot_id == self.bot_id]

    def final_text(self, channel: str, ts: str) -> str:
        return self.message(channel, ts).text

    def versions(self, channel: str, ts: str) -> list[Version]:
        return self.message(channel, ts).versions

    def stream(self, channel: str, ts: str) -> StreamState | None:
        return self.message(channel, ts).stream

    def status_history(self, channel: str, thread_ts: str) -> list[str]:
        return [s for s, _ in self.state.statuses.get((channel, thread_ts), [])]

    def current_status(self, channel: str, thread_ts: str) -> str:
        history = self.state.statuses.get((channel, thread_ts))
        if not history:
            return ""
        status, at = history[-1]
        return status if time.time() - at <= self.options.status_timeout else ""

    @property
    def downloads(self) -> list[Download]:
        return self.file_server.downloads

    def response_url_posts(self, response_url: str) -> list[JSON]:
        entry = self.file_server.response_urls.get(response_url)
        return list(entry.posts) if entry else []
