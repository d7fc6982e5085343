"""Screenshots the size people really send, through `kimibot run` as its own process (Slack HTTP mode).

* one mention with a 4.3 MB PNG screenshot (2880×1800): time from the event to Kimi receiving the request
  (download in 16 KB pieces, decode, downscale to 2048 px, re-encode, base64), several runs;
* ten mentions at once, each with an 8 MB PNG screenshot: the bot's peak RSS, and the time until every request
  reached Kimi.

    python -m bench.files_bench
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.slack_bench import _proc_stats
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack
from tests.fixtures.screenshots import ScreenshotBox
from tests.process_support import bot_processes, until

RUNS = 5


async def main() -> None:
    shots = ScreenshotBox()
    medium, large = shots("png-4.3m"), shots("png-8m")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with FakeSlack() as slack, FakeKimi() as kimi, \
                bot_processes(slack, kimi, f"sqlite:///{workdir / 'files.db'}", workdir) as new_process:
            bot = new_process()
            await bot.start()
            assert bot.proc is not None
            _, rss_idle = _proc_stats(bot.proc.pid)
            latencies = []
            for i in range(RUNS):
                upload = slack.add_file(f"Screenshot {i}.png", medium.data, medium.mime)
                before = len(kimi.requests)
                started = time.monotonic()
                await slack.send_mention(bot.events_url, slack.general, slack.alice, "what is wrong?",
                                         files=[upload.id])
                await until(lambda before=before: len(kimi.requests) > before, within=60)
                latencies.append(time.monotonic() - started)
            print(f"4.3 MB PNG: event → Kimi request p50 {statistics.median(latencies):.2f} s, "
                  f"max {max(latencies):.2f} s over {RUNS} runs (download {len(medium.data) / 1e6:.1f} MB)")
            uploads = [slack.add_file(f"Big {i}.png", large.data, large.mime) for i in range(10)]
            before = len(kimi.requests)
            started = time.monotonic()
            await asyncio.gather(*(slack.send_mention(bot.events_url, slack.general, slack.bob, f"and this {i}?",
                                                      files=[u.id]) for i, u in enumerate(uploads)))
            await until(lambda: len(kimi.requests) >= before + 10, within=120)
            all_sent = time.monotonic() - started
            _, rss_peak = _proc_stats(bot.proc.pid)
            print(f"ten 8 MB PNGs at once: bot peak RSS {rss_peak:.0f} MB (idle {rss_idle:.0f} MB), every request "
                  f"at Kimi after {all_sent:.2f} s")
            bot.terminate()
            await bot.wait()


if __name__ == "__main__":
    asyncio.run(main())
