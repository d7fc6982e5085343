"""Faults about processes, with real `kimibot run` processes: SIGKILL mid-answer, a rolling deploy (SIGTERM
with answers in flight), replicas sharing PostgreSQL while one dies. Each checks what users see in Slack:
every question answered completely exactly once (or told), nothing duplicated, the surviving process alive.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.answer import RESTARTED_NOTE
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fakes.slack import FakeSlack
from tests.process_support import bot_processes, bot_replies, until

LONG = 1200  # characters (about 390 tokens): at 60 tokens/s the answer streams for 6 s
ANSWER = long_text(LONG)


@pytest.fixture
async def slack() -> FakeSlack:  # real Slack tiers: the process plans with the documented limits
    async with FakeSlack() as fake:
        yield fake


def complete(slack: FakeSlack, thread: str, *, note: str | None = None) -> bool:
    """The whole answer, once. Where the edit allowance ran out it may span several messages (one per
    paragraph), which read as the answer when joined; anything repeated or missing fails."""
    replies = bot_replies(slack, slack.general, thread)
    want = ANSWER if note is None else f"{ANSWER}\n\n_{note}_"
    return bool(replies) and "\n\n".join(reply.text.strip() for reply in replies) == want.strip()


def showing_text(slack: FakeSlack, thread: str) -> bool:
    replies = bot_replies(slack, slack.general, thread)
    return len(replies) == 1 and "Paragraph 1" in replies[0].text


@pytest.mark.timeout(90)
async def test_sigkill_mid_answer_then_restart_then_redelivery(slack: FakeSlack, kimi: FakeKimi, db_url: str,
                                                                tmp_path: Path) -> None:
    kimi.tokens_per_second = 60
    async with bot_processes(slack, kimi, db_url, tmp_path) as new_process:
        first = new_process()
        await first.start()
        event = slack.payloads.app_mention(slack.general, slack.alice, f"[[len={LONG}]] explain")
        delivery = await slack.send_event(first.events_url, event)
        assert delivery.ok
        thread = event["ts"]
        await until(lambda: showing_text(slack, thread))
        first.kill()  # SIGKILL: no handler runs, nothing is written on the way out
        await first.wait()

        kimi.tokens_per_second = None
        second = new_process()
        await second.start()
        # Slack never got an answer in time for its liking and delivers the event again: still one answer.
        retry = await slack.send_event(second.events_url, event, retry_num=1, retry_reason="http_timeout",
                                       event_id=delivery.event_id)
        assert retry.ok
        await until(lambda: complete(slack, thread, note=RESTARTED_NOTE))
        assert second.alive
        assert second.logged("duplicate delivery ignored")
        assert second.logged("resuming an unfinished turn")
        asked = [r for r in kimi.requests if "explain" in str(r["messages"][-1])]
        assert len(asked) == 2  # the killed attempt and the resumed one; the redelivery asked nothing
        second.terminate()
        assert await second.wait() == 0


@pytest.mark.timeout(90)
async def test_a_rolling_deploy_completes_every_answer_in_flight(slack: FakeSlack, kimi: FakeKimi, db_url: str,
                                                                  tmp_path: Path) -> None:
    kimi.tokens_per_second = 60
    async with bot_processes(slack, kimi, db_url, tmp_path, turns__shutdown_grace_seconds=0.5) as new_process:
        old = new_process()
        await old.start()
        threads = []
        for i in range(3):
            event = slack.payloads.app_mention(slack.general, slack.bob, f"[[len={LONG}]] question {i}")
            assert (await slack.send_event(old.events_url, event)).ok
            threads.append(event["ts"])
        for thread in threads:
            await until(lambda thread=thread: showing_text(slack, thread))
        new = new_process()  # the new version is up before the old one is told to stop
        await new.start()
        old.terminate()
        assert await old.wait() == 0
        # Each answer was either finished within the grace period or marked and handed over (the new process
        # may already have rewritten the mark by now).
        left = old.logged("answer left for resumption")
        assert len(left) + len(old.logged("answer complete")) == 3 and left
        await until(lambda: all(complete(slack, t) or complete(slack, t, note=RESTARTED_NOTE) for t in threads))
        assert old.logged("drained") and new.alive
        new.terminate()
        assert await new.wait() == 0


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.environ.get("KIMIBOT_TEST_POSTGRES_URL"), reason="replicas share PostgreSQL")
async def test_two_replicas_receiving_every_event_while_one_is_killed(slack: FakeSlack, kimi: FakeKimi,
                                                                      db_url: str, tmp_path: Path) -> None:
    kimi.tokens_per_second = 60
    async with bot_processes(slack, kimi, db_url, tmp_path) as new_process:
        a, b = new_process(), new_process()
        await a.start()
        await b.start()
        threads = []
        for i in range(6):
            event = slack.payloads.app_mention(slack.general, slack.alice, f"[[len={LONG}]] replica {i}")
            first = await slack.send_event(a.events_url, event)
            # At-least-once: the same event reaches the other replica too (a retry routed elsewhere).
            await slack.send_event(b.events_url, event, retry_num=1, retry_reason="http_timeout",
                                   event_id=first.event_id)
            threads.append(event["ts"])
        await until(lambda: all(bot_replies(slack, slack.general, t) for t in threads))
        a.kill()
        await a.wait()
        def state() -> str:
            replies = {t: [m.text[-80:] for m in bot_replies(slack, slack.general, t)] for t in threads}
            return f"replies: {replies}\nsurvivor's log:\n" + "\n".join(b.raw[-60:])

        await until(lambda: all(complete(slack, t) or complete(slack, t, note=RESTARTED_NOTE) for t in threads),
                    within=60, what="every answer complete after the kill", explain=state)
        assert b.alive
        await asyncio.sleep(1.0)  # nothing more arrives: no answer written twice
        assert all(complete(slack, t) or complete(slack, t, note=RESTARTED_NOTE) for t in threads), state()
        b.terminate()
        assert await b.wait() == 0
