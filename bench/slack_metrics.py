"""Figures for one Slack benchmark run, read from the fake Slack's message versions and the fake Kimi's marks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.slack import FakeSlack

MESSAGE_CHARS = 3900
WRITE_METHODS = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream",
                 "assistant.threads.setStatus")


@dataclass
class Sent:
    channel: str
    ts: str
    expected: str
    sent_at: float  # monotonic


@dataclass
class Figures:
    answers: int = 0
    complete: int = 0
    rate_limited: int = 0
    rate_limited_by_method: dict[str, int] = field(default_factory=dict)
    event_to_first_text: list[float] = field(default_factory=list)
    token_to_visible: list[float] = field(default_factory=list)
    last_token_to_final: list[float] = field(default_factory=list)
    writes: dict[str, int] = field(default_factory=dict)
    # Messages each answer became, less the continuations its length needs (3,900 characters per message).
    messages: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    wall_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        total_writes = sum(self.writes.values())
        return {
            "answers": self.answers,
            "rate_limited_calls": self.rate_limited,
            "rate_limited_by_method": dict(sorted(self.rate_limited_by_method.items())),
            "complete_pct": round(100 * self.complete / self.answers, 1) if self.answers else 0.0,
            "event_to_first_text_p50": pct(self.event_to_first_text, 0.5),
            "event_to_first_text_p95": pct(self.event_to_first_text, 0.95),
            "first_token_to_visible_p50": pct(self.token_to_visible, 0.5),
            "first_token_to_visible_p95": pct(self.token_to_visible, 0.95),
            "last_token_to_final_p50": pct(self.last_token_to_final, 0.5),
            "last_token_to_final_p95": pct(self.last_token_to_final, 0.95),
            "last_token_to_final_max": round(max(self.last_token_to_final), 3) if self.last_token_to_final else None,
            "writes_per_answer": round(total_writes / self.answers, 2) if self.answers else 0.0,
            "messages_per_answer_mean": round(sum(self.messages) / len(self.messages), 2) if self.messages else None,
            "messages_per_answer_max": max(self.messages) if self.messages else None,
            "writes_by_method": dict(sorted(self.writes.items())),
            "bot_cpu_seconds": round(self.cpu_seconds, 2),
            "bot_peak_rss_mb": round(self.peak_rss_mb, 1),
            "wall_seconds": round(self.wall_seconds, 1),
        }


def _replies(fake: FakeSlack, sent: Sent) -> list[Any]:
    return [m for m in fake.messages_in_thread(sent.channel, sent.ts) if m.bot_id == fake.bot_id and m.ts != sent.ts]


def visible_text(fake: FakeSlack, sent: Sent) -> str:
    return "".join(m.text for m in _replies(fake, sent))


def is_complete(fake: FakeSlack, sent: Sent) -> bool:
    replies = _replies(fake, sent)
    if not replies or any(m.stream is not None and m.stream.state == "streaming" for m in replies):
        return False
    return "".join(m.text for m in replies) == sent.expected


def measure(fake: FakeSlack, sent: list[Sent], marks: dict[str, dict[str, float]]) -> Figures:
    """`marks`: Kimi's first/last content times (monotonic) per answer text."""
    offset = time.time() - time.monotonic()  # fake Slack stamps versions with wall time
    figures = Figures(answers=len(sent), rate_limited=fake.rate_limited_count)
    for call in fake.web.calls:
        if call.status == 429:
            figures.rate_limited_by_method[call.method] = figures.rate_limited_by_method.get(call.method, 0) + 1
    for item in sent:
        replies = _replies(fake, item)
        if is_complete(fake, item):
            figures.complete += 1
        continuations = max(0, -(-len(item.expected) // MESSAGE_CHARS) - 1)
        figures.messages.append(max(0, len(replies) - continuations))
        head = item.expected[:4]  # one Kimi token
        firsts = [v.at - offset for m in replies for v in m.versions if v.text.startswith(head)]
        if firsts:
            first = min(firsts)
            figures.event_to_first_text.append(first - item.sent_at)
            mark = marks.get(item.expected, {})
            if "first_content" in mark:
                figures.token_to_visible.append(first - mark["first_content"])
        finals = []
        for m in replies:
            done = [v.at - offset for v in m.versions if v.text == m.text]
            if done:
                finals.append(min(done))
        mark = marks.get(item.expected, {})
        if finals and "last_content" in mark and is_complete(fake, item):
            figures.last_token_to_final.append(max(0.0, max(finals) - mark["last_content"]))
    for call in fake.calls:
        if call.method in WRITE_METHODS:
            figures.writes[call.method] = figures.writes.get(call.method, 0) + 1
    return figures
