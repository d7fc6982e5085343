"""Property-based fuzzing of what the platforms send: real payload shapes with fields dropped, renamed and
replaced by junk (wrong types, huge or broken strings, lone surrogates), delivered through the real paths (signed
HTTP to the Slack adapter; the gateway to discord.py). Whatever arrives: no 5xx, the bot keeps running and
keeps answering, and it never writes in a channel nobody asked it in.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.store import Store
from tests.discord_support import make_services, running_bot, texts, turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack_events import signature
from tests.fixtures.discord import discord_fake
from tests.fixtures.slack_bot import SlackBot

__all__ = ["discord_fake"]

DROP, RENAME = object(), object()
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**64), st.floats(allow_nan=True),
    st.text(max_size=40), st.sampled_from(["\ud800", "\udfff" * 3, "<@U0FAKEBOT1>", "<#C0RANDOM01>", "x" * 70_000,
                                           "0", "-1", "1e309", "null", "[]", "D0ALICE001", "C0RANDOM01"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(DROP), st.just(RENAME),
)
SLACK_PATHS = [("event", k) for k in ("type", "subtype", "text", "user", "channel", "ts", "thread_ts", "files",
                                      "blocks", "bot_id", "channel_type", "team", "hidden")] + [
    ("team_id",), ("event_id",), ("type",), ("authorizations",), ("event",)]
DISCORD_MESSAGE_PATHS = [(k,) for k in ("id", "channel_id", "guild_id", "author", "content", "mentions",
                                         "mention_roles", "attachments", "type", "message_reference",
                                         "referenced_message", "member", "timestamp", "flags", "embeds")] + [
    ("author", "id"), ("author", "bot"), ("member", "roles")]
# Fields discord.py parses leniently: mutating them gives messages that arrive, with odd values, and are answered.
DISCORD_SOFT_PATHS = [(k,) for k in ("content", "embeds", "flags", "mention_roles", "message_reference", "tts",
                                      "pinned", "nonce", "components", "sticker_items")]
DISCORD_INTERACTION_PATHS = [(k,) for k in ("id", "type", "token", "data", "guild_id", "channel_id", "member",
                                             "user", "channel", "app_permissions", "locale")] + [
    ("data", "name"), ("data", "options"), ("data", "resolved"), ("member", "user")]


# What an error nobody handled looks like: an asyncio task's, or an adapter's last-resort log line.
UNHANDLED = {"Task exception was never retrieved", "slack handler failed", "Unhandled exception in event loop"}


def mutate(payload: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    result = copy.deepcopy(payload)
    for path, value in changes:
        node: Any = result
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        last = path[-1]
        if value is DROP:
            node.pop(last, None)
        elif value is RENAME:
            if last in node:
                node[last.upper() + "_"] = node.pop(last)
        else:
            node[last] = value
    return result


def changes_of(paths: list[tuple[str, ...]]) -> st.SearchStrategy[list[tuple[tuple[str, ...], Any]]]:
    return st.lists(st.tuples(st.sampled_from(paths), JUNK), min_size=1, max_size=4)


async def post_signed(url: str, body: bytes, content_type: str) -> int:
    ts = str(int(time.time()))
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": signature("fake-signing-secret", ts, body)}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
        return response.status


def examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` examples drawn by Hypothesis (reproducibly). They are replayed by async tests below, since
    Hypothesis cannot drive a coroutine inside a running event loop."""
    drawn: list[Any] = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


SLACK_CASES = examples(st.tuples(st.sampled_from(["mention", "thread", "dm", "files", "command"]),
                                 changes_of(SLACK_PATHS)), 80)
DISCORD_CASES = examples(st.one_of(
    st.tuples(st.just("message"), changes_of(DISCORD_MESSAGE_PATHS)),
    st.tuples(st.just("message"), changes_of(DISCORD_SOFT_PATHS)),
    st.tuples(st.just("interaction"), changes_of(DISCORD_INTERACTION_PATHS))), 60)


async def send_slack(bot: SlackBot, kind: str, changes: list[tuple[tuple[str, ...], Any]]) -> int:
    fake = bot.fake
    if kind == "command":
        form = dict(fake.slash_command_payload("/kimi", "hello"))
        for path, value in changes:
            key = path[-1]
            if value is DROP:
                form.pop(key, None)
            elif value is not RENAME:
                form[key] = value if isinstance(value, str) else json.dumps(value)
        body = urlencode(form).encode("utf-8", "surrogatepass")
        return await post_signed(bot.url, body, "application/x-www-form-urlencoded")
    event = {
        "mention": lambda: fake.payloads.app_mention(fake.general, fake.alice, "fuzz"),
        "thread": lambda: fake.payloads.message(fake.general, fake.alice, "fuzz", thread_ts="1.000001"),
        "dm": lambda: fake.payloads.message(fake.dm_alice, fake.alice, "fuzz"),
        "files": lambda: fake.payloads.app_mention(fake.general, fake.alice, "fuzz", files=[
            fake.add_file("f.png", b"\x89PNG not really", "image/png").id]),
    }[kind]()
    body = json.dumps(mutate(fake.payloads.envelope(event), changes)).encode("utf-8", "surrogatepass")
    return await post_signed(bot.url, body, "application/json")


async def test_mutated_slack_deliveries(bot: SlackBot, caplog: pytest.LogCaptureFixture) -> None:
    fake = bot.fake
    for kind, changes in SLACK_CASES:
        status = await send_slack(bot, kind, changes)
        assert status < 500, (kind, changes)
        await bot.adapter.idle()
        # Written only where a (possibly mutated) delivery came from: #general or Alice's DM, never #random.
        assert {m.channel for m in fake.bot_messages()} <= {fake.general, fake.dm_alice}, (kind, changes)
    event = fake.payloads.app_mention(fake.general, fake.bob, "still with us?")
    before = bot.adapter.deliveries
    assert (await fake.send_event(bot.url, event)).ok
    await bot.settle(before + 1)
    assert [m.text for m in bot.bot_replies(fake.general, event["ts"])] == ["Echo: still with us?"]
    assert not [r for r in caplog.records if r.getMessage() in UNHANDLED]


async def test_mutated_discord_gateway_events(discord_fake: FakeDiscord, kimi: FakeKimi, store: Store,
                                              caplog: pytest.LogCaptureFixture) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store, message_rate_window=0.1)  # many answers share #general's bucket
    fake.rate_limits.config.message_per = 0.1
    quiet = fake.add_text_channel("quiet")
    async with running_bot(services, fake) as client:
        good = fake.world.messages[(await fake.dispatch_message(content="seed")).id]
        await turns(client, 1)
        message = {**fake.payload_of(good), "content": f"{fake.bot_user.mention} fuzz",
                   "mentions": [{"id": str(fake.bot_user.id), "username": "kimi", "discriminator": "0"}]}
        interaction = (await fake.invoke_command("kimi help")).payload
        for which, changes in DISCORD_CASES:
            if which == "message":
                fresh = {**message, "id": str(fake.world.ids.next())}  # else every case is a replay of one
                payload, event = mutate(fresh, changes), "MESSAGE_CREATE"
            else:
                payload, event = mutate(interaction, changes), "INTERACTION_CREATE"
            await fake.gateway.dispatch(event, payload, guild_id=fake.guild_id)
            assert not client.is_closed(), (which, changes)
        await fake.dispatch_message(content=f"{fake.bot_user.mention} still with us?")
        await fake.wait_for(lambda: any(texts(fake.bot_messages(t.thread_id)) == ["Echo: still with us?"]
                                        for t in fake.threads_created), 20)
        assert not client.is_closed()
        # Both outcomes were exercised: events discord.py could not parse, and mutated mentions it answered.
        await fake.wait_for(lambda: len(fake.bot_messages(fake.channel_id)) > 2, 20)
        assert client.skipped_events > 0
    assert fake.bot_messages(quiet.id) == []
    assert not [r for r in caplog.records if r.getMessage() in UNHANDLED]
