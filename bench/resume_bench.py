"""Answers that survive their process: restart and deploy figures with real `kimibot run` processes.

* crash: one answer streaming; SIGKILL; a new process starts. Measured: restart → new process healthy, restart
  → the resumed answer's final text (in the same Slack message).
* deploy: N answers streaming; the new version starts, the old one gets SIGTERM (Kubernetes' rolling update).
  Measured: answers complete, answers duplicated (a thread with more than one bot reply), SIGTERM → every
  answer final; with the default 25 s grace and with a 1 s grace (answers handed over mid-stream).

Slack in HTTP mode against the fake Slack (real tiers), the fake Kimi at 0.5 s to first token and 60 tokens/s,
answers of 1,200 characters (≈ 6.5 s of streaming), SQLite.

    python -m bench.resume_bench --answers 10
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bot.answer import RESTARTED_NOTE
from bot.publisher import SUPERSEDED
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fakes.slack import FakeSlack
from tests.process_support import bot_processes, bot_replies, until

LENGTH = 1200
WHOLE = " ".join(long_text(LENGTH).split())
UNIQUE = "def step_3("  # appears once in the answer


def shown(slack: FakeSlack, thread: str) -> str:
    """What the thread shows of the answer, whitespace normalised: under load an answer is posted as several
    paragraph messages, and a resumed one may leave messages marked as superseded."""
    texts = [m.text for m in bot_replies(slack, slack.general, thread) if m.text != SUPERSEDED]
    return " ".join(" ".join(texts).split())


def final(slack: FakeSlack, thread: str) -> bool:
    """The thread shows the whole answer once (a resumed one followed by its note), and nothing else."""
    text = shown(slack, thread)
    return text == WHOLE or text == f"{WHOLE} _{RESTARTED_NOTE}_"


def duplicated(slack: FakeSlack, thread: str) -> bool:
    return shown(slack, thread).count(UNIQUE) > 1


def streaming(slack: FakeSlack, thread: str) -> bool:
    replies = bot_replies(slack, slack.general, thread)
    return bool(replies) and "Paragraph 1" in replies[0].text


async def crash(workdir: Path) -> dict[str, float]:
    async with FakeSlack() as slack, FakeKimi(ttft=0.5, tokens_per_second=60) as kimi, \
            bot_processes(slack, kimi, f"sqlite:///{workdir / 'crash.db'}", workdir) as new_process:
        first = new_process()
        await first.start()
        event = slack.payloads.app_mention(slack.general, slack.alice, f"[[len={LENGTH}]] crash")
        await slack.send_event(first.events_url, event)
        await until(lambda: streaming(slack, event["ts"]))
        first.kill()
        await first.wait()
        frozen = bot_replies(slack, slack.general, event["ts"])[0].text
        started = time.monotonic()
        second = new_process()
        await second.start()
        healthy = time.monotonic() - started
        await until(lambda: bot_replies(slack, slack.general, event["ts"])[0].text != frozen, within=60)
        moving = time.monotonic() - started
        await until(lambda: final(slack, event["ts"]), within=60)
        done = time.monotonic() - started
        second.terminate()
        await second.wait()
        return {"healthy_s": healthy, "moving_s": moving, "final_s": done}


async def deploy(workdir: Path, answers: int, grace: float) -> dict[str, float]:
    db = f"sqlite:///{workdir / f'deploy-{grace:g}.db'}"
    async with FakeSlack() as slack, FakeKimi(ttft=0.5, tokens_per_second=60) as kimi, \
            bot_processes(slack, kimi, db, workdir, turns__shutdown_grace_seconds=grace,
                          turns__lease_seconds=30) as new_process:
        old = new_process()
        await old.start()
        threads = []
        for i in range(answers):
            event = slack.payloads.app_mention(slack.general, slack.bob, f"[[len={LENGTH}]] deploy {i}")
            await slack.send_event(old.events_url, event)
            threads.append(event["ts"])
        await until(lambda: all(streaming(slack, t) for t in threads), within=60)
        new = new_process()
        await new.start()
        signalled = time.monotonic()
        old.terminate()
        exit_code = await old.wait(within=60)
        exited = time.monotonic() - signalled
        try:
            await until(lambda: all(final(slack, t) for t in threads), within=90)
        except TimeoutError:
            pass
        all_final = time.monotonic() - signalled
        complete = sum(final(slack, t) for t in threads)
        doubled = sum(duplicated(slack, t) for t in threads)
        handed_over = len(old.logged("answer left for resumption"))
        new.terminate()
        await new.wait()
        return {"answers": answers, "complete": complete, "duplicated": doubled, "handed_over": handed_over,
                "old_exit": exit_code, "old_exit_s": exited, "all_final_s": all_final}


async def main(answers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        result = await crash(workdir)
        print(f"crash: restart → healthy {result['healthy_s']:.2f} s, → the frozen reply moves again "
              f"{result['moving_s']:.2f} s, → resumed final text {result['final_s']:.2f} s")
        for grace in (25.0, 1.0):
            row = await deploy(workdir, answers, grace)
            print(f"deploy, grace {grace:g} s: {row['complete']}/{row['answers']} complete, "
                  f"{row['duplicated']} duplicated, {row['handed_over']} handed over, old process exit "
                  f"{row['old_exit']} after {row['old_exit_s']:.2f} s, every answer final "
                  f"{row['all_final_s']:.2f} s after SIGTERM")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=10)
    asyncio.run(main(parser.parse_args().answers))
