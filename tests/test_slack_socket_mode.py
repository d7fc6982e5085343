"""The Slack adapter in Socket Mode, started as `kimibot run` starts it, against the fake's Socket Mode server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from adapters.slack.runner import serve
from bot.app import Services
from bot.config import ConfigError
from bot.engine import Engine
from bot.kimi import KimiClient
from bot.tools.registry import ToolRegistry
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack, Message
from tests.fixtures.engine import make_config


@dataclass
class SocketBot:
    fake: FakeSlack
    kimi: FakeKimi
    services: Services
    client: KimiClient
    task: asyncio.Task[None]
    stopping: asyncio.Event
    loop_errors: list[dict[str, Any]] = field(default_factory=list)

    def bot_replies(self, channel: str, thread_ts: str) -> list[Message]:
        return [m for m in self.fake.messages_in_thread(channel, thread_ts)
                if m.bot_id == self.fake.bot_id and m.ts != thread_ts]

    async def until(self, predicate: Callable[[], bool], limit: float = 10.0) -> None:
        """Wait until the fake's messages satisfy `predicate`, woken by every post, edit and delete."""
        changed = asyncio.Event()

        def wake(*_: object) -> None:
            changed.set()

        self.fake.web.listeners.append(wake)
        try:
            async with asyncio.timeout(limit):
                while not predicate():
                    changed.clear()
                    await changed.wait()
        finally:
            self.fake.web.listeners.remove(wake)

    async def stop(self) -> None:
        """Stop `serve` the way SIGTERM does: it closes the websocket, drains the answers and returns."""
        self.stopping.set()
        await asyncio.wait_for(self.task, 10)


async def start(fake: FakeSlack, kimi: FakeKimi, store: Store, **slack: Any) -> SocketBot:
    settings = {"mode": "socket", "api_url": fake.base_url, "bot_token": fake.bot_token,
                "app_token": fake.app_token, **slack}
    config = make_config(kimi, slack=settings)
    client = KimiClient(api_key="sk-test", base_url=kimi.base_url, timeout=10, max_retries=0)
    tools = ToolRegistry.from_specs([])
    engine = Engine(config=config, store=store, kimi=client, tools=tools)
    services = Services(config=config, store=store, kimi=client, tools=tools, engine=engine)
    stopping = asyncio.Event()
    task = asyncio.create_task(serve(services, stopping), name="slack-serve")
    return SocketBot(fake, kimi, services, client, task, stopping)


@contextlib.asynccontextmanager
async def running(fake: FakeSlack, kimi: FakeKimi, store: Store, **slack: Any) -> AsyncIterator[SocketBot]:
    """`serve` in a task; on exit it is cancelled and must leave no task running and no loop error behind."""
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks()
    errors: list[dict[str, Any]] = []
    old_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    harness = await start(fake, kimi, store, **slack)
    harness.loop_errors = errors
    try:
        yield harness
    finally:
        try:
            await harness.stop()
            await harness.services.engine.shutdown()
            await harness.client.aclose()
            # slack_sdk cancels its receiver, monitor and queue tasks without awaiting them; they end now.
            leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
            if leftover:
                _, pending = await asyncio.wait(leftover, timeout=2)
                assert not pending, f"tasks still running after serve stopped: {pending}"
        finally:
            loop.set_exception_handler(old_handler)


@pytest.fixture
async def sbot(slack: FakeSlack, kimi: FakeKimi, store: Store) -> AsyncIterator[SocketBot]:
    async with running(slack, kimi, store) as harness:
        await slack.socket.wait_connected()
        yield harness


def sdk_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_mention_over_the_socket_is_acked_and_answered_in_a_thread(
    sbot: SocketBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake = sbot.fake
    conn = fake.socket.connections[0]
    # One URL for the start-up check of the app token, one for the connection.
    assert fake.socket.opened == [fake.app_id, fake.app_id]
    event = fake.payloads.app_mention(fake.general, fake.alice, "hello over the socket")
    delivery = await fake.send_socket_event(event)
    assert delivery.acked_in_time and delivery.ack is not None and delivery.ack.payload is None
    assert [a.envelope_id for a in fake.socket_acks] == [delivery.envelope_id]
    await sbot.until(lambda: [m.text for m in sbot.bot_replies(fake.general, event["ts"])]
                     == ["Echo: hello over the socket"])
    assert len(sbot.kimi.requests) == 1 and fake.socket.unknown_acks == []
    assert conn.close_code is None and not sdk_errors(caplog)


async def test_redelivered_envelope_is_answered_once(sbot: SocketBot) -> None:
    fake = sbot.fake
    event = fake.payloads.app_mention(fake.general, fake.bob, "exactly once please")
    first = await fake.send_socket_event(event, event_id="EvSOCKETDUP1")
    again = await fake.send_socket_event(event, event_id="EvSOCKETDUP1", envelope_id=first.envelope_id,
                                         retry_attempt=1, retry_reason="timeout")
    assert first.acked_in_time and again.acked_in_time
    assert again.envelope["retry_attempt"] == 1 and again.payload["event_id"] == first.payload["event_id"]
    await sbot.until(lambda: [m.text for m in sbot.bot_replies(fake.general, event["ts"])]
                     == ["Echo: exactly once please"])
    await sbot.stop()  # waits for every answer in flight, the duplicate's included
    assert [m.text for m in sbot.bot_replies(fake.general, event["ts"])] == ["Echo: exactly once please"]
    assert len(sbot.kimi.requests) == 1


async def test_slash_command_over_the_socket_is_acked_and_answered(sbot: SocketBot) -> None:
    fake = sbot.fake
    delivery = await fake.send_socket_slash_command("/kimi", "why is the sky blue?")
    assert delivery.envelope["type"] == "slash_commands" and delivery.envelope["accepts_response_payload"]
    assert delivery.acked_in_time

    def parents() -> list[Message]:
        return [m for m in fake.bot_messages(fake.general) if m.thread_ts in (None, m.ts)]

    await sbot.until(lambda: len(parents()) == 1 and [m.text for m in sbot.bot_replies(fake.general, parents()[0].ts)]
                     == ["Echo: why is the sky blue?"])
    assert "why is the sky blue?" in parents()[0].text

    help_cmd = await fake.send_socket_slash_command("/kimi", "help")
    assert help_cmd.acked_in_time
    url = help_cmd.payload["response_url"]
    await sbot.stop()
    posts = fake.response_url_posts(url)
    assert len(posts) == 1 and "/kimi reset" in posts[0]["text"]


async def test_disconnect_frame_moves_the_app_to_a_new_connection(sbot: SocketBot) -> None:
    fake = sbot.fake
    first = fake.socket.connections[0]
    await fake.socket.disconnect("refresh_requested")
    second = await fake.socket.wait_connected(2)
    await fake.socket.wait_closed(first)
    assert fake.socket.opened == [fake.app_id] * 3 and second.number == 2
    event = fake.payloads.app_mention(fake.general, fake.alice, "still there?")
    delivery = await fake.send_socket_event(event)
    assert delivery.connection == 2 and delivery.acked_in_time
    await sbot.until(lambda: [m.text for m in sbot.bot_replies(fake.general, event["ts"])] == ["Echo: still there?"])


async def test_stopping_serve_closes_the_websocket_cleanly(
    sbot: SocketBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake = sbot.fake
    conn = fake.socket.connections[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await sbot.stop()
        await fake.socket.wait_closed(conn)
        gc.collect()  # an unclosed aiohttp session would warn from its finalizer
    assert conn.close_code == aiohttp.WSCloseCode.OK
    assert fake.socket.live() == [] and len(fake.socket.connections) == 1  # closed, not reconnected
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert sbot.loop_errors == [] and not sdk_errors(caplog)


async def test_unacked_envelope_is_redelivered_with_retry_fields() -> None:
    """The fake itself: an app that never acks gets the event again, marked as a retry."""
    async with FakeSlack(auto_retry=True, retry_delays=(0.0,), ack_timeout=0.05) as fake, \
            aiohttp.ClientSession() as http:
        opened = await http.post(f"{fake.base_url}apps.connections.open",
                                 headers={"Authorization": f"Bearer {fake.app_token}"})
        url = (await opened.json())["url"]
        refused = await http.post(f"{fake.base_url}apps.connections.open",
                                  headers={"Authorization": f"Bearer {fake.bot_token}"})
        assert (await refused.json()) == {"ok": False, "error": "not_allowed_token_type"}
        async with http.ws_connect(url) as ws:
            hello = await ws.receive_json()
            assert hello["type"] == "hello" and hello["connection_info"]["app_id"] == fake.app_id
            event = fake.payloads.app_mention(fake.general, fake.alice, "anyone?")
            first = await fake.send_socket_event(event)
            assert not first.acked_in_time
            original = await ws.receive_json()
            retry = await ws.receive_json()
            assert original["envelope_id"] == first.envelope_id and "retry_attempt" not in original
            assert retry["retry_attempt"] == 1 and retry["retry_reason"] == "timeout"
            assert retry["payload"]["event_id"] == original["payload"]["event_id"]
            await ws.send_json({"envelope_id": retry["envelope_id"]})
            await fake.socket.wait_ack(retry["envelope_id"])
            await fake.drain()
            assert [a.envelope_id for a in fake.socket_acks] == [retry["envelope_id"]]


@pytest.mark.parametrize(("token", "key"), [("app_token", "slack.app_token"), ("bot_token", "slack.bot_token")])
async def test_a_refused_token_stops_the_start_with_the_key_named(slack: FakeSlack, kimi: FakeKimi, store: Store,
                                                                  token: str, key: str) -> None:
    bad = {"app_token": "xapp-1-A0FAKEAPP1-9999-revoked", "bot_token": "xoxb-revoked"}[token]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bot = await start(slack, kimi, store, **{token: bad})
        with pytest.raises(ConfigError) as info:
            await bot.task
        await bot.client.aclose()
        gc.collect()
    assert str(info.value).startswith(key) and "refused" in str(info.value)
    assert slack.socket.connections == []
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
