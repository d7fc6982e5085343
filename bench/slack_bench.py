"""Slack benchmark: N concurrent conversations through the fake Slack (real tiers) and the fake Kimi.

The bot runs as its own process (`python -m bot.cli run`, HTTP mode), so its CPU time and peak memory are its
own; the fakes run here. Examples:

    python -m bench.slack_bench --n 1
    python -m bench.slack_bench --n 50 --streaming native
    python -m bench.slack_bench --sustained 180 --concurrency 20
    python -m bench.slack_bench --n 50 --replicas 3 --database postgresql://postgres@127.0.0.1:5432/test \
        --redis redis://127.0.0.1:6379/0 --same-channel 10 [--cut-redis-at 6]

With --replicas, each bot is its own process and questions are sent to them in turn (a load balancer). The
bench reaches Redis through a TCP proxy, so --cut-redis-at can make it unreachable halfway without touching it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.slack_metrics import Sent, is_complete, measure
from tests.fakes.kimi import FakeKimi
from tests.fakes.kimi_responder import long_text
from tests.fakes.slack import FakeSlack
from tests.fakes.tcp_proxy import TcpProxy
from tests.fixtures.db import fresh_database


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host or "127.0.0.1", int(port or 6379)


def _proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS in MB of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fake = FakeSlack()
        self.kimi = FakeKimi(ttft=args.ttft, tokens_per_second=args.tps)
        self.sent: list[Sent] = []
        self.channels: list[str] = []
        self.urls: list[str] = []
        self.processes: list[asyncio.subprocess.Process] = []
        self.proxy: TcpProxy | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="kimibot-bench-")
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Bench:
        await self.fake.start()
        await self.kimi.start()
        self.channels = [self.fake.general] + [self.fake.add_channel(f"bench-{i}").id
                                               for i in range(self.args.channels - 1)]
        database = await self._stack.enter_async_context(
            fresh_database(self.args.database, Path(self.tmp.name) / "bench.db"))
        redis = ""
        if self.args.redis:
            host, port = _host_port(self.args.redis)
            self.proxy = await self._stack.enter_async_context(TcpProxy(host, port))
            redis = f"redis://127.0.0.1:{self.proxy.port}/0"
        prefix = f"kimibot-bench-{os.getpid()}-{int(time.time())}"
        for index in range(self.args.replicas):
            await self._start_bot(index, database, redis, prefix)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 10)
        await self._stack.aclose()
        await self.fake.stop()
        await self.kimi.stop()
        self.tmp.cleanup()

    async def _start_bot(self, index: int, database: str, redis: str, prefix: str) -> None:
        port = _free_port()
        config = Path(self.tmp.name) / f"kimibot-{index}.toml"
        shared = f'[redis]\nurl = "{redis}"\nkey_prefix = "{prefix}"\n' if redis else ""
        config.write_text(
            f'[kimi]\nbase_url = "{self.kimi.base_url}"\nmax_retries = 0\n'
            f'[storage]\nurl = "{database}"\n'
            f'[logging]\nlevel = "WARNING"\n'
            f'[slack]\nmode = "http"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\napi_url = "{self.fake.base_url}"\n'
            f'streaming = "{self.args.streaming}"\n'
            f'[discord]\nenabled = false\n[ops]\nport = 0\n' + shared)
        env = {**os.environ, "SLACK_BOT_TOKEN": self.fake.bot_token, "SLACK_SIGNING_SECRET": "fake-signing-secret",
               "MOONSHOT_API_KEY": "sk-test"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "--config", str(config), "run", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=None)
        self.processes.append(process)
        self.urls.append(f"http://127.0.0.1:{port}/slack/events")
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError("the bot did not come up")

    async def ask(self, index: int) -> None:
        length = self.args.answer_chars + index  # distinct texts so Kimi's marks map to answers
        if index < self.args.same_channel:
            channel = self.channels[0]
        else:
            channel = self.channels[1 + index % (len(self.channels) - 1)] if len(self.channels) > 1 \
                else self.channels[0]
        url = self.urls[index % len(self.urls)]
        started = time.monotonic()
        deliveries = await self.fake.send_mention(url, channel, self.fake.alice, f"q{index} [[len={length}]]")
        event = deliveries[0].payload["event"]
        self.sent.append(Sent(channel, event["ts"], long_text(length), started))

    async def wait_complete(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(is_complete(self.fake, s) for s in self.sent):
                return
            await asyncio.sleep(0.25)

    async def run(self) -> dict[str, Any]:
        args = self.args
        cpu0 = sum(_proc_stats(p.pid)[0] for p in self.processes)
        begin = time.monotonic()
        cut = asyncio.create_task(self._cut_redis(args.cut_redis_at)) if args.cut_redis_at is not None else None
        if args.sustained:
            await self._sustained(args.sustained, args.concurrency)
        else:
            await asyncio.gather(*(self.ask(i) for i in range(args.n)))
        await self.wait_complete(args.timeout)
        wall = time.monotonic() - begin
        if cut is not None:
            cut.cancel()
        await asyncio.sleep(2.0)  # let deferred stream stops land before counting writes
        stats = [_proc_stats(p.pid) for p in self.processes]
        marks = {content: marks for content, marks in self.kimi.stream_marks}
        figures = measure(self.fake, self.sent, marks)
        figures.cpu_seconds = sum(cpu for cpu, _ in stats) - cpu0
        figures.peak_rss_mb = max(peak for _, peak in stats)
        figures.wall_seconds = wall
        return {"scenario": self.scenario(), **figures.as_dict()}

    async def _cut_redis(self, after: float) -> None:
        await asyncio.sleep(after)
        if self.proxy is not None:
            self.proxy.cut()
            print(f"bench: Redis cut at {after:.1f} s", file=sys.stderr)

    async def _sustained(self, seconds: float, concurrency: int) -> None:
        """Keep `concurrency` answers running: a new question arrives whenever one finishes."""
        deadline = time.monotonic() + seconds
        index = 0
        running: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            await self.ask(i)
            item = self.sent[-1] if self.sent else None
            while item is not None and not is_complete(self.fake, item) and time.monotonic() < deadline + 60:  # noqa: ASYNC110
                await asyncio.sleep(0.2)

        while time.monotonic() < deadline:
            while len(running) < concurrency:
                task = asyncio.create_task(one(index))
                running.add(task)
                task.add_done_callback(running.discard)
                index += 1
                await asyncio.sleep(random.uniform(0.0, 0.05))
            await asyncio.sleep(0.1)
        await asyncio.gather(*running)

    def scenario(self) -> str:
        a = self.args
        load = f"sustained {a.sustained:.0f}s x{a.concurrency}" if a.sustained else f"N={a.n} burst"
        scale = f", {a.replicas} replicas" + (", Redis" if a.redis else ", no Redis") if a.replicas > 1 else ""
        cut = f", Redis cut at {a.cut_redis_at:g}s" if a.cut_redis_at is not None else ""
        same = f", {a.same_channel} in one channel" if a.same_channel else ""
        return (f"{load}{scale}{cut}{same}, streaming={a.streaming}, {a.channels} channels, {a.answer_chars} chars"
                f" at {a.tps} tok/s (ttft {a.ttft}s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1, help="answers started together (burst mode)")
    parser.add_argument("--sustained", type=float, default=0.0, help="seconds of continuous load (0 = burst)")
    parser.add_argument("--concurrency", type=int, default=20, help="answers kept running in sustained mode")
    parser.add_argument("--streaming", choices=["edit", "native"], default="edit")
    parser.add_argument("--channels", type=int, default=10, help="channels the conversations are spread over")
    parser.add_argument("--answer-chars", type=int, default=2400, help="answer length (2400 at 50 tok/s ≈ 12 s)")
    parser.add_argument("--tps", type=float, default=50.0, help="Kimi tokens per second (4 chars per token)")
    parser.add_argument("--ttft", type=float, default=0.5, help="Kimi time to first token")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for every final text")
    parser.add_argument("--replicas", type=int, default=1, help="bot processes; questions go to them in turn")
    parser.add_argument("--database", default="", help="postgresql://… (a fresh database is made); default SQLite")
    parser.add_argument("--redis", default="", help="redis://host:port/0 shared by the replicas")
    parser.add_argument("--cut-redis-at", type=float, default=None, help="seconds in: make Redis unreachable")
    parser.add_argument("--same-channel", type=int, default=0, help="this many questions go to one channel")
    parser.add_argument("--out", type=Path, default=None, help="append the figures as a JSON line here")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    async with Bench(args) as bench:
        return await bench.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(_main(args))
    print(json.dumps(result, indent=2))
    if args.out is not None:
        with args.out.open("a", encoding="utf-8") as out:
            out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
