"""Prometheus metrics: one registry per process (passed around, never the library's global one), with the
figures an operator watches — answers and how long they take, Kimi calls, tokens, searches and cost, platform
writes and 429s, turns resumed, events rejected, questions waiting."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Chat answers take seconds to minutes: buckets for first text (fast) and final text (long).
FIRST_TEXT_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60)
FINAL_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.answers = Counter("kimibot_answers", "Answered questions by platform and outcome",
                               ["platform", "outcome"], registry=registry)
        self.first_text = Histogram("kimibot_answer_first_text_seconds",
                                    "From the question's arrival to the first text shown", ["platform"],
                                    buckets=FIRST_TEXT_BUCKETS, registry=registry)
        self.final_text = Histogram("kimibot_answer_final_seconds",
                                    "From the question's arrival to the complete answer shown", ["platform"],
                                    buckets=FINAL_BUCKETS, registry=registry)
        self.kimi_calls = Counter("kimibot_kimi_calls", "Kimi chat completions by model", ["model"],
                                  registry=registry)
        self.tokens = Counter("kimibot_kimi_tokens", "Kimi tokens by kind (prompt, cached, completion)", ["kind"],
                              registry=registry)
        self.searches = Counter("kimibot_search_calls", "Web searches (builtin and search tools)", registry=registry)
        self.cost = Counter("kimibot_cost_usd", "Cost of Kimi calls and searches, US dollars", registry=registry)
        self.writes = Counter("kimibot_platform_writes", "Writes to a platform by method", ["platform", "method"],
                              registry=registry)
        self.rate_limited = Counter("kimibot_platform_rate_limited", "429 answers from a platform by method",
                                    ["platform", "method"], registry=registry)
        self.resumed = Counter("kimibot_turns_resumed", "Unfinished turns taken over from another process",
                               registry=registry)
        self.rejected = Counter("kimibot_events_rejected", "Platform requests or events refused, by reason",
                                ["platform", "reason"], registry=registry)
        self.budget_fallbacks = Counter("kimibot_budget_fallbacks",
                                        "Times Redis became unreachable and write budgets fell back to this process",
                                        registry=registry)
        self.replicas = Gauge("kimibot_replicas", "Replicas sharing the platforms' limits, as last seen in Redis",
                              registry=registry)
        self.budget_waits = Histogram("kimibot_budget_wait_seconds",
                                      "How long writes queued for a platform limit, by limit (ids left out)",
                                      ["budget"], buckets=WAIT_BUCKETS, registry=registry)
        self.queued = Gauge("kimibot_questions_waiting", "Questions waiting behind an answer in their conversation",
                            registry=registry)

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queued.set_function(depth)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def budget_family(key: str) -> str:
    """A budget key without its ids: `slack:T012AB:chat.postMessage:C034CD` -> `slack:chat.postMessage`,
    `discord:channel:1234` -> `discord:channel`. Slack's and Discord's ids have no lower-case letters; the parts
    that name a platform, a method or a kind of limit do."""
    return ":".join(part for part in key.split(":") if part != part.upper())


def budget_wait(metrics: Metrics | None, key: str) -> Callable[[float], object] | None:
    """What a budget calls with each wait, for kimibot_budget_wait_seconds (None without metrics)."""
    return metrics.budget_waits.labels(budget_family(key)).observe if metrics is not None else None
