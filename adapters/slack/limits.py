"""Per-workspace write allowances and the lane decision that spreads answers across them.

Slack limits writes per method per workspace (chat.update Tier 3 ~50/min; chat.startStream and chat.stopStream
Tier 2 ~20/min; chat.appendStream Tier 4 ~100/min) and chat.postMessage per channel (~1/s). Every answer in a
workspace draws from the same `Allowances`, so concurrent answers never exceed a limit between them.

Arithmetic that shapes the design (see docs/slack.md): with answers of ~12 s, 8 answers at once already need
every chat.update of a minute for their final writes. An answer whose message shows partial text owes the
platform at least one more write (its final one); that debt is a *commitment*. An answer may start showing
partial text only while the allowance it will finish on can pay all commitments within `final_horizon`
seconds. Answers that cannot stream show the assistant status and post their complete text at once, which
costs one chat.postMessage and nothing from the workspace-wide buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.types import Budgets, Tally, WriteBudget

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Allowance:
    per_minute: float
    burst: int
    reserve: int = 0


@dataclass(frozen=True, slots=True)
class SlackLimits:
    """Slack's documented floors. `margin` keeps our rate below Slack's so clock jitter never trips a 429."""

    update: Allowance = Allowance(50, 5, reserve=2)
    stream_start: Allowance = Allowance(20, 3)
    stream_stop: Allowance = Allowance(20, 3)
    stream_append: Allowance = Allowance(100, 10, reserve=3)
    post_per_channel: Allowance = Allowance(60, 3, reserve=1)
    status: Allowance = Allowance(50, 5)
    # Reads the adapter makes per event: users.info (Tier 4) and conversations.info (Tier 3) for names.
    user_lookup: Allowance = Allowance(100, 10)
    channel_lookup: Allowance = Allowance(50, 5)
    # conversations.replies (Tier 3) when the bot is first mentioned in a thread.
    replies: Allowance = Allowance(50, 5)
    # views.open and views.publish (Tier 4): feedback forms and App Home pages.
    views: Allowance = Allowance(100, 10)
    # assistant.threads.setSuggestedPrompts and setTitle (Tier 4).
    assistant: Allowance = Allowance(100, 10)
    margin: float = 0.9
    # 60 makes one real second count as one Slack minute (tests and benchmarks against a time-scaled fake).
    time_scale: float = 1.0
    # An answer may start streaming only if all answers already streaming can get their final write this soon.
    final_horizon: float = 2.0

    def budget(self, budgets: Budgets, key: str, allowance: Allowance) -> WriteBudget:
        rate = allowance.per_minute / 60.0 * self.time_scale * self.margin
        # One token less than Slack's burst absorbs requests that arrive closer together than they left.
        burst = max(1, allowance.burst - 1)
        return budgets.bucket(key, rate=rate, burst=burst, reserve=min(allowance.reserve, burst - 1))

    def capacity(self, allowance: Allowance) -> int:
        """How many final writes one allowance can make within `final_horizon` when interim writes have
        drained it to its reserve (they may never take the reserve)."""
        rate = allowance.per_minute / 60.0 * self.time_scale * self.margin
        reserve = min(allowance.reserve, max(1, allowance.burst - 1) - 1)
        return max(1, int(reserve + rate * self.final_horizon))


class Allowances:
    """One workspace's buckets, commitments and deferred stream stops; shared by all of its answers (and, when
    the budgets live in Redis, its buckets by every replica: keys name the workspace and Slack method)."""

    def __init__(self, limits: SlackLimits, budgets: Budgets, team: str) -> None:
        self.limits = limits
        self._budgets = budgets
        self._team = team
        self.update = self._bucket("chat.update", limits.update)
        self.start = self._bucket("chat.startStream", limits.stream_start)
        self.stop = self._bucket("chat.stopStream", limits.stream_stop)
        self.append = self._bucket("chat.appendStream", limits.stream_append)
        self.status = self._bucket("assistant.threads.setStatus", limits.status)
        self.user_lookup = self._bucket("users.info", limits.user_lookup)
        self.channel_lookup = self._bucket("conversations.info", limits.channel_lookup)
        self.replies = self._bucket("conversations.replies", limits.replies)
        self.views = self._bucket("views", limits.views)
        self.assistant = self._bucket("assistant.threads", limits.assistant)
        self._posts: dict[str, WriteBudget] = {}
        # Answers showing partial text that will finish with chat.update / chat.appendStream: commitments, counted
        # over every replica when the budgets are shared.
        self.edit_streams: Tally = budgets.tally(f"slack:{team}:edit-streams")
        self.native_streams: Tally = budgets.tally(f"slack:{team}:native-streams")
        self.pending_starts = 0  # native answers admitted but not yet started
        # Edit-lane answers still showing only their placeholder (over every replica, like the commitments).
        self.hungry_edits: Tally = budgets.tally(f"slack:{team}:hungry-edits")
        self._stops: set[asyncio.Task[None]] = set()

    def hungry_posts(self, channel: str) -> Tally:
        """Paragraph answers in `channel` still waiting for their first post."""
        return self._budgets.tally(f"slack:{self._team}:hungry-posts:{channel}")

    def _bucket(self, method: str, allowance: Allowance) -> WriteBudget:
        return self.limits.budget(self._budgets, f"slack:{self._team}:{method}", allowance)

    def post(self, channel: str) -> WriteBudget:
        budget = self._posts.get(channel)
        if budget is None:
            if len(self._posts) > 5000:  # idle channels' buckets are full again; forget them
                full = max(1, self.limits.post_per_channel.burst - 1)
                self._posts = {k: v for k, v in self._posts.items() if v.waiting() or v.available() < full}
            budget = self._posts[channel] = self._bucket(f"chat.postMessage:{channel}", self.limits.post_per_channel)
        return budget

    # -- lane decisions ---------------------------------------------------------------------------------

    def can_stream_edit(self) -> bool:
        """Another answer may stream by edits only if the update bucket, as it is now, can still pay every
        streaming answer's final write within the horizon; a static cap alone let answers join just after
        a wave of finals had emptied the bucket, and their own finals then queued for seconds."""
        streams = self.edit_streams.total
        if streams >= self.limits.capacity(self.limits.update):
            return False
        rate = self.limits.update.per_minute / 60.0 * self.limits.time_scale * self.limits.margin
        payable = self.update.available() + rate * self.limits.final_horizon - self.update.waiting()
        return streams + 1 <= payable

    def can_stream_native(self) -> bool:
        """A native stream costs a start now and a stop later (both Tier 2); both must keep up."""
        if self.native_streams.total + self.pending_starts >= self.limits.capacity(self.limits.stream_append):
            return False
        if len(self._stops) >= 2 * self.limits.stream_stop.burst:
            return False
        return self.start.available() - self.pending_starts >= 1.0

    # -- deferred stream stops ----------------------------------------------------------------------------

    def stop_later(self, stop: Callable[[], Awaitable[None]]) -> None:
        """Run `stop` (chat.stopStream) when the Tier-2 budget allows; the text is already complete."""
        async def run() -> None:
            await self.stop.acquire(final=True)
            await stop()

        task = asyncio.create_task(run(), name="slack-stop-stream")
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    @property
    def stops_pending(self) -> int:
        return len(self._stops)

    async def drain(self, grace: float) -> None:
        """Let deferred stops finish (shutdown); cancel what is left after `grace` seconds."""
        if not self._stops:
            return
        tasks = set(self._stops)
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)


class AllowanceRegistry:
    """Allowances per workspace, created on first use."""

    def __init__(self, limits: SlackLimits, budgets: Budgets) -> None:
        self.limits = limits
        self._budgets = budgets
        self._by_team: dict[str, Allowances] = {}

    def for_team(self, team_id: str) -> Allowances:
        allowances = self._by_team.get(team_id)
        if allowances is None:
            allowances = self._by_team[team_id] = Allowances(self.limits, self._budgets, team_id)
        return allowances

    async def drain(self, grace: float) -> None:
        await asyncio.gather(*(a.drain(grace) for a in self._by_team.values()))
