"""`kimibot run` as a real process against the fakes (Slack in HTTP mode, Kimi), for faults about processes:
SIGKILL, SIGTERM, replicas. The fakes run in the test's event loop; the bot finds them through its environment,
as an operator would configure it. Holds no tests itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack, Message

REPO = Path(__file__).resolve().parent.parent
WAIT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(slack: FakeSlack, kimi: FakeKimi, db_url: str, port: int, **settings: Any) -> dict[str, str]:
    """The environment an operator would set: secrets and `KIMIBOT_<SECTION>__<KEY>` for everything else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIMIBOT_", "SLACK_", "DISCORD_"))}
    env.update({
        "MOONSHOT_API_KEY": "sk-test", "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": "fake-signing-secret", "DATABASE_URL": db_url,
        "KIMIBOT_KIMI__BASE_URL": kimi.base_url, "KIMIBOT_KIMI__MAX_RETRIES": "0",
        "KIMIBOT_SLACK__API_URL": slack.base_url, "KIMIBOT_SLACK__MODE": "http",
        "KIMIBOT_SLACK__HTTP_HOST": "127.0.0.1", "KIMIBOT_SLACK__HTTP_PORT": str(port),
        "KIMIBOT_BOT__EDIT_INTERVAL": "0.2", "KIMIBOT_LOGGING__FORMAT": "json",
        "KIMIBOT_TURNS__SWEEP_SECONDS": "0.5", "KIMIBOT_TURNS__LEASE_SECONDS": "3",
        "KIMIBOT_OPS__HOST": "127.0.0.1", "KIMIBOT_OPS__PORT": str(free_port()),
        "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
    })
    for key, value in settings.items():
        env[f"KIMIBOT_{key.upper()}"] = str(value)
    return env


@dataclass
class BotProcess:
    """One `kimibot run`; its JSON log lines are collected as they are written."""

    env: dict[str, str]
    port: int
    cwd: Path
    proc: asyncio.subprocess.Process | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def ops_url(self) -> str:
        """The operator's endpoint: /healthz, /readyz, /metrics."""
        return f"http://127.0.0.1:{self.env['KIMIBOT_OPS__PORT']}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", env=self.env, cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        await self.healthy()

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            self.raw.append(text)
            with contextlib.suppress(ValueError):
                record = json.loads(text)
                if isinstance(record, dict):
                    self.records.append(record)

    async def healthy(self) -> None:
        async with asyncio.timeout(WAIT), aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"kimibot exited {self.proc.returncode}:\n" + "\n".join(self.raw[-30:]))
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, within: float = WAIT) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), within)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, within)
        return code

    def logged(self, message: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("msg") == message]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


@contextlib.asynccontextmanager
async def bot_processes(slack: FakeSlack, kimi: FakeKimi, db_url: str, cwd: Path,
                        **settings: Any) -> AsyncIterator[Callable[[], BotProcess]]:
    """Yields a factory of (not yet started) processes sharing one database; every one is stopped after."""
    made: list[BotProcess] = []

    def new() -> BotProcess:
        port = free_port()
        bot = BotProcess(bot_environment(slack, kimi, db_url, port, **settings), port, cwd)
        made.append(bot)
        return bot

    try:
        yield new
    finally:
        for bot in made:
            if bot.alive:
                bot.kill()
                await bot.wait()


def bot_replies(slack: FakeSlack, channel: str, thread_ts: str) -> list[Message]:
    return [m for m in slack.messages_in_thread(channel, thread_ts) if m.bot_id == slack.bot_id and m.ts != thread_ts]


async def until(predicate: Callable[[], bool], within: float = WAIT, what: str = "",
                explain: Callable[[], str] | None = None) -> None:
    """Wait for `predicate`; on timeout, fail with `what` and whatever `explain` says about the state then."""
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 (the fakes change state from requests; there is no event)
                await asyncio.sleep(0.05)
    except TimeoutError:
        detail = explain() if explain is not None else ""
        raise AssertionError(f"not within {within} s: {what}\n{detail}") from None
