"""The Slack fake, driven by the real slack_sdk AsyncWebClient and a real slack-bolt AsyncApp."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack, WebOptions
from tests.fakes.slack_rate import Limit, RateConfig, RateLimiter
from tests.fixtures.slack import slack_fixture  # noqa: F401  (provides the `slack` fixture)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def client_for(fake: FakeSlack, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or fake.bot_token, base_url=fake.base_url)


async def started(fake: FakeSlack) -> FakeSlack:
    await fake.start()
    return fake


# --- Web API ---------------------------------------------------------------------------------------------


async def test_auth_test_reports_identity_and_scopes_header(slack: FakeSlack) -> None:
    slack.set_scopes(["chat:write", "files:read"])
    resp = await client_for(slack).auth_test()
    assert resp["user_id"] == slack.bot_user_id and resp["bot_id"] == slack.bot_id
    assert resp["team_id"] == slack.team_id
    assert resp.headers["x-oauth-scopes"].split(",") == ["chat:write", "files:read"]

    with pytest.raises(SlackApiError) as err:
        await client_for(slack, "xoxb-not-a-real-token").auth_test()
    assert err.value.response["error"] == "invalid_auth"
    assert [c.error for c in slack.calls] == [None, "invalid_auth"]


async def test_post_update_and_length_rules(slack: FakeSlack) -> None:
    client = client_for(slack)
    posted = await client.chat_postMessage(channel=slack.general, text="x" * 11_800)
    ts = posted["ts"]
    assert posted["message"]["bot_id"] == slack.bot_id and len(slack.final_text(slack.general, ts)) == 11_800

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=slack.general, ts=ts, text="y" * 4_001)
    assert err.value.response["error"] == "msg_too_long"
    await client.chat_update(channel=slack.general, ts=ts, text="y" * 4_000)
    await client.chat_update(channel=slack.general, ts=ts, text="final")
    assert slack.final_text(slack.general, ts) == "final"
    assert [v.source for v in slack.versions(slack.general, ts)] == ["post", "update", "update"]
    assert [len(v.text) for v in slack.versions(slack.general, ts)] == [11_800, 4_000, 5]

    huge = await client.chat_postMessage(channel=slack.general, text="z" * 40_010)
    assert huge["response_metadata"]["warnings"] == ["message_truncated"]
    assert len(slack.final_text(slack.general, huge["ts"])) == 40_000

    errors = {}
    for name, call in {
        "missing_channel": client.chat_postMessage(channel="C0NOPE", text="hi"),
        "not_member": client.chat_postMessage(channel=slack.random, text="hi"),
        "missing_message": client.chat_update(channel=slack.general, ts="1.000001", text="hi"),
        "conflict": client.chat_postMessage(channel=slack.general, text="a", markdown_text="**a**"),
    }.items():
        with pytest.raises(SlackApiError) as err:
            await call
        errors[name] = err.value.response["error"]
    assert errors == {
        "missing_channel": "channel_not_found",
        "not_member": "not_in_channel",
        "missing_message": "message_not_found",
        "conflict": "markdown_text_conflict",
    }


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_update_keeps_or_drops_blocks_like_slack(slack: FakeSlack) -> None:
    client = client_for(slack)
    blocks = [{"type": "markdown", "text": "**bold** " * 1000}]
    ts = (await client.chat_postMessage(channel=slack.general, text="fallback", blocks=blocks))["ts"]
    await client.chat_update(channel=slack.general, ts=ts, blocks=blocks[:1])
    assert slack.message(slack.general, ts).blocks == blocks
    await client.chat_update(channel=slack.general, ts=ts, text="plain now")
    assert slack.message(slack.general, ts).blocks is None
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=slack.general, ts=ts, text="t", blocks=[{"type": "divider"}] * 51)
    assert err.value.response["error"] == "msg_blocks_too_many"


async def test_default_tiers_answer_429_with_integer_retry_after(slack: FakeSlack) -> None:
    client = client_for(slack)
    # chat.postMessage: ~1 per second per channel (burst 3), so another channel is unaffected.
    for _ in range(3):
        await client.chat_postMessage(channel=slack.general, text="burst")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=slack.general, text="one too many")
    assert err.value.response.status_code == 429
    await client.chat_postMessage(channel=slack.dm_alice, text="other channel")

    parent = slack.seed_thread(slack.dm_alice, [(slack.alice, "q")])[0].ts
    for _ in range(3):  # Tier 2 (20/min) with a burst of 3
        await client.chat_startStream(channel=slack.dm_alice, thread_ts=parent)
    with pytest.raises(SlackApiError) as err:
        await client.chat_startStream(channel=slack.dm_alice, thread_ts=parent)
    resp = err.value.response
    assert resp.status_code == 429 and resp["error"] == "ratelimited"
    assert resp.headers["Retry-After"].isdigit() and int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["Content-Type"].startswith("application/json")
    assert slack.rate_limited_count == 2
    assert [c.status for c in slack.calls if c.status == 429] == [429, 429]


def test_token_buckets_refill_with_time_scale() -> None:
    now = [100.0]
    config = RateConfig(overrides={"chat.update": Limit(per_minute=50, burst=5)}, time_scale=60)
    limiter = RateLimiter(config, clock=lambda: now[0])
    assert [limiter.check("T1", "chat.update", None) for _ in range(5)] == [None] * 5
    assert limiter.check("T1", "chat.update", None) == 1  # whole seconds, never below 1
    assert limiter.check("T2", "chat.update", None) is None  # another workspace has its own bucket
    now[0] += 0.025  # at 60x, 50/min refills a token every 0.02 real seconds
    assert limiter.check("T1", "chat.update", None) is None
    config.time_scale = 1
    slow = RateLimiter(config, clock=lambda: now[0])
    for _ in range(5):
        slow.check("T1", "chat.update", None)
    assert slow.check("T1", "chat.update", None) == 2  # 1.2 s to the next token, rounded up


async def test_rate_limit_retry_handler_recovers() -> None:
    rates = RateConfig(overrides={"chat.update": Limit(per_minute=60, burst=2)})
    async with FakeSlack(rates=rates) as fake:
        client = client_for(fake)
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
        ts = (await client.chat_postMessage(channel=fake.general, text="0"))["ts"]
        for i in range(3):
            await client.chat_update(channel=fake.general, ts=ts, text=str(i + 1))
        assert fake.final_text(fake.general, ts) == "3"
        statuses = [c.status for c in fake.calls_to("chat.update")]
        assert statuses[:2] == [200, 200] and statuses[-1] == 200 and 429 in statuses
        assert fake.rate_limited_count == statuses.count(429)


async def test_fail_next_injects_errors(slack: FakeSlack) -> None:
    client = client_for(slack)
    slack.fail_next("chat.postMessage", status=500)
    slack.fail_next("chat.postMessage", "not_in_channel")
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    seen = []
    for _ in range(3):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=slack.general, text="hi")
        r = err.value.response
        seen.append((r.status_code, r["error"], r.headers.get("Retry-After")))
    assert seen == [(500, "internal_error", None), (200, "not_in_channel", None), (429, "ratelimited", "7")]
    assert (await client.chat_postMessage(channel=slack.general, text="hi"))["ok"]
    assert slack.rate_limited_count == 1 and [c.injected for c in slack.calls] == [True, True, True, False]


async def test_chat_stream_helper_and_stream_states(slack: FakeSlack) -> None:
    client = client_for(slack)
    parent = slack.seed_thread(slack.general, [(slack.alice, "explain")])[0].ts
    stream = await client.chat_stream(
        channel=slack.general,
        thread_ts=parent,
        buffer_size=10,
        recipient_team_id=slack.team_id,
        recipient_user_id=slack.alice,
    )
    assert await stream.append(markdown_text="Hello") is None  # still buffered by the helper
    await stream.append(markdown_text=" streaming ")
    await stream.append(markdown_text="world, again")
    assert stream.ts is not None
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=slack.general, ts=stream.ts, text="edit mid-stream")
    assert err.value.response["error"] == "streaming_state_conflict"
    final = await stream.stop(markdown_text="!", blocks=[{"type": "divider"}])
    assert final["message"]["text"] == "Hello streaming world, again!"
    assert slack.final_text(slack.general, stream.ts) == "Hello streaming world, again!"
    assert [m.ts for m in slack.messages_in_thread(slack.general, parent)] == [parent, stream.ts]
    st = slack.stream(slack.general, stream.ts)
    assert st is not None and st.state == "stopped" and st.recipient_user_id == slack.alice
    stream_calls = [c.method for c in slack.calls if "Stream" in c.method]
    assert stream_calls == ["chat.startStream", "chat.appendStream", "chat.stopStream"]

    with pytest.raises(SlackApiError) as err:
        await client.chat_appendStream(channel=slack.general, ts=stream.ts, markdown_text="late")
    assert err.value.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel=slack.general, ts=stream.ts, text="fallback edit after stop")
    with pytest.raises(SlackApiError) as err:
        await client.chat_startStream(channel=slack.general, thread_ts=parent)
    assert err.value.response["error"] == "missing_recipient_user_id"


async def test_idle_stream_expires() -> None:
    async with FakeSlack(options=WebOptions(stream_idle_timeout=0.0)) as fake:
        client = client_for(fake)
        parent = fake.seed_thread(fake.dm_alice, [(fake.alice, "hi")])[0].ts
        ts = (await client.chat_startStream(channel=fake.dm_alice, thread_ts=parent, markdown_text="a"))["ts"]
        with pytest.raises(SlackApiError) as err:
            await client.chat_appendStream(channel=fake.dm_alice, ts=ts, markdown_text="b")
        assert err.value.response["error"] == "message_not_in_streaming_state"


async def test_set_status_is_recorded_and_cleared_by_a_reply(slack: FakeSlack) -> None:
    client = client_for(slack)
    parent = slack.seed_thread(slack.general, [(slack.alice, "q")])[0].ts
    await client.assistant_threads_setStatus(channel_id=slack.general, thread_ts=parent, status="thinking…")
    assert slack.current_status(slack.general, parent) == "thinking…"
    await client.chat_postMessage(channel=slack.general, thread_ts=parent, text="answer")
    assert slack.status_history(slack.general, parent) == ["thinking…", ""]
    with pytest.raises(SlackApiError) as err:
        await client.assistant_threads_setStatus(channel_id=slack.general, thread_ts="1.2", status="x")
    assert err.value.response["error"] == "invalid_thread_ts"


async def test_conversations_replies_paginates(slack: FakeSlack) -> None:
    thread = slack.seed_thread(
        slack.general, [(slack.alice if i % 2 else slack.bob, f"m{i}") for i in range(7)]
    )
    client = client_for(slack)
    first = await client.conversations_replies(channel=slack.general, ts=thread[0].ts, limit=3)
    assert [m["text"] for m in first["messages"]] == ["m0", "m1", "m2"] and first["has_more"]
    assert first["messages"][0]["reply_count"] == 6
    texts = []
    async for page in await client.conversations_replies(channel=slack.general, ts=thread[0].ts, limit=3):
        texts.append([m["text"] for m in page["messages"]])
    assert texts == [["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"]]
    assert all(m["thread_ts"] == thread[0].ts for m in first["messages"])
    with pytest.raises(SlackApiError) as err:
        await client.conversations_replies(channel=slack.general, ts="9.000001")
    assert err.value.response["error"] == "thread_not_found"

    info = await client.conversations_info(channel=slack.dm_alice)
    assert info["channel"]["is_im"] and info["channel"]["user"] == slack.alice
    user = await client.users_info(user=slack.alice, include_locale=True)
    assert user["user"]["name"] == "alice" and user["user"]["locale"] == "en-US"


async def _download(url: str, token: str | None) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.read()


async def test_files_info_and_download_with_and_without_access(slack: FakeSlack) -> None:
    client = client_for(slack)
    shot = slack.add_file("screen.png", PNG, "image/png")
    hidden = slack.add_file("secret.png", PNG, "image/png", bot_can_access=False)
    info = (await client.files_info(file=shot.id))["file"]
    assert info["mimetype"] == "image/png" and info["size"] == len(PNG)
    assert await _download(info["url_private"], slack.bot_token) == (200, "image/png", PNG)
    assert (await _download(info["url_private_download"], slack.bot_token))[2] == PNG

    status, ctype, body = await _download(info["url_private"], None)
    assert (status, ctype) == (200, "text/html") and b"<!DOCTYPE html>" in body
    assert (await _download(hidden.url(slack.root), slack.bot_token))[1] == "text/html"
    with pytest.raises(SlackApiError) as err:
        await client.files_info(file=hidden.id)
    assert err.value.response["error"] == "file_not_found"

    slack.set_scopes(["chat:write"])
    assert (await _download(info["url_private"], slack.bot_token))[1] == "text/html"
    with pytest.raises(SlackApiError) as err:
        await client.files_info(file=shot.id)
    assert err.value.response["error"] == "missing_scope" and err.value.response["needed"] == "files:read"
    assert [d.authorized for d in slack.downloads] == [True, True, False, False, False]


# --- Events to a real Bolt app ------------------------------------------------------------------------


@dataclass
class BoltHarness:
    url: str
    app: AsyncApp
    seen: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


@pytest.fixture
async def bolt(slack: FakeSlack) -> AsyncIterator[BoltHarness]:
    app = AsyncApp(token=slack.bot_token, signing_secret="fake-signing-secret", client=client_for(slack))
    server = AsyncSlackAppServer(port=0, path="/slack/events", app=app)
    runner = web.AppRunner(server.web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    harness = BoltHarness(f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", app)

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], context: Any) -> None:
        await harness.seen.put({"body": body, "scopes": context.authorize_result.bot_scopes})

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        await harness.seen.put({"event": event})

    @app.command("/ask")
    async def on_ask(
        ack: Callable[..., Awaitable[None]], respond: Callable[..., Awaitable[Any]], command: dict[str, Any]
    ) -> None:
        await ack(f"working on: {command['text']}")
        await respond(text="done", response_type="in_channel")
        await harness.seen.put({"command": command})

    try:
        yield harness
    finally:
        await runner.cleanup()


async def test_signed_app_mention_reaches_bolt_listener(slack: FakeSlack, bolt: BoltHarness) -> None:
    event = slack.payloads.app_mention(slack.general, slack.alice, "what is up?")
    status, _body, _elapsed = await slack.send_event(bolt.url, event)
    assert status == 200
    got = await asyncio.wait_for(bolt.seen.get(), 5)
    assert got["body"]["event"]["text"] == f"<@{slack.bot_user_id}> what is up?"
    assert got["body"]["authorizations"][0]["user_id"] == slack.bot_user_id
    assert "files:read" in got["scopes"]  # Bolt read them from auth.test's x-oauth-scopes header
    assert slack.calls_to("auth.test") and slack.deliveries[-1].acked_in_time
    # The same message also exists for the Web API, as on real Slack.
    replies = await client_for(slack).conversations_replies(channel=slack.general, ts=event["ts"])
    assert replies["messages"][0]["text"] == event["text"]


async def test_file_share_message_reaches_bolt(slack: FakeSlack, bolt: BoltHarness) -> None:
    parent = slack.seed_thread(slack.general, [(slack.alice, "look")])[0].ts
    shot = slack.add_file("screen.png", PNG, "image/png")
    event = slack.payloads.message(slack.general, slack.alice, "see this", thread_ts=parent, files=[shot.id])
    assert (await slack.send_event(bolt.url, event)).status == 200
    got = (await asyncio.wait_for(bolt.seen.get(), 5))["event"]
    assert got["subtype"] == "file_share" and got["thread_ts"] == parent
    assert got["files"][0]["url_private"] == shot.url(slack.root)


async def test_mention_sends_app_mention_and_message_and_echoes_bot_writes(
    slack: FakeSlack, bolt: BoltHarness
) -> None:
    sent = await slack.send_mention(bolt.url, slack.general, slack.alice, "hello")
    assert [d.status for d in sent] == [200, 200] and sent[0].event_id != sent[1].event_id
    got = [await asyncio.wait_for(bolt.seen.get(), 5) for _ in range(2)]
    kinds = sorted("body" if "body" in g else g["event"]["type"] for g in got)
    assert kinds == ["body", "message"]

    slack.subscribe_message_events(bolt.url)
    client = client_for(slack)
    ts = (await client.chat_postMessage(channel=slack.general, text="answer"))["ts"]
    await client.chat_update(channel=slack.general, ts=ts, text="answer, edited")
    await client.chat_delete(channel=slack.general, ts=ts)
    await slack.drain()
    echoed = [d.payload["event"] for d in slack.deliveries[2:]]
    assert sorted(str(e.get("subtype")) for e in echoed) == ["None", "message_changed", "message_deleted"]
    post = next(e for e in echoed if "subtype" not in e)
    assert (post["bot_id"], post["user"], post["text"]) == (slack.bot_id, slack.bot_user_id, "answer")
    changed = next(e for e in echoed if e.get("subtype") == "message_changed")
    assert changed["hidden"] and changed["message"]["text"] == "answer, edited"
    assert changed["previous_message"]["text"] == "answer"
    assert all(d.status == 200 for d in slack.deliveries)
    assert slack.message(slack.general, ts).deleted


async def test_url_verification_and_second_workspace(slack: FakeSlack, bolt: BoltHarness) -> None:
    delivery = await slack.send_url_verification(bolt.url)
    assert delivery.status == 200 and json.loads(delivery.body) == {
        "challenge": delivery.payload["challenge"]
    }
    other = slack.add_workspace("T0OTHER001", "Other Co", bot_token="xoxb-other", scopes=["chat:write"])
    resp = await client_for(slack, "xoxb-other").auth_test()
    assert (resp["team_id"], resp["user_id"]) == ("T0OTHER001", other.bot_user_id)
    with pytest.raises(SlackApiError) as err:  # channels belong to their workspace
        await client_for(slack, "xoxb-other").chat_postMessage(channel=slack.general, text="hi")
    assert err.value.response["error"] == "channel_not_found"


async def test_bolt_rejects_forged_and_stale_requests(slack: FakeSlack, bolt: BoltHarness) -> None:
    event = slack.payloads.app_mention(slack.general, slack.alice, "hi")
    forged = await slack.send_event(bolt.url, event, bad_signature=True)
    stale = await slack.send_event(bolt.url, event, stale_timestamp=True)
    cmd = await slack.send_slash_command(bolt.url, "/ask", "x", bad_signature=True)
    assert (forged.status, stale.status, cmd.status) == (401, 401, 401)
    assert not forged.acked_in_time and bolt.seen.empty()


async def test_slash_command_is_acked_and_response_url_recorded(slack: FakeSlack, bolt: BoltHarness) -> None:
    delivery = await slack.send_slash_command(bolt.url, "/ask", "why is the sky blue", user=slack.bob)
    assert delivery.status == 200 and "working on: why is the sky blue" in delivery.body
    assert delivery.acked_in_time
    got = (await asyncio.wait_for(bolt.seen.get(), 5))["command"]
    assert got["user_id"] == slack.bob and got["channel_id"] == slack.general
    assert slack.response_url_posts(got["response_url"]) == [{"text": "done", "response_type": "in_channel"}]


# --- Event retries against a plain aiohttp endpoint --------------------------------------------------------


async def test_late_and_failed_acks_are_retried_with_the_same_event_id() -> None:
    fake = await started(FakeSlack(auto_retry=True, ack_timeout=0.2, retry_delays=(0.0, 0.0, 0.0)))
    verifier = SignatureVerifier("fake-signing-secret")
    retry_arrived = asyncio.Event()
    answers = iter([500, 200])

    async def endpoint(request: web.Request) -> web.Response:
        raw = await request.read()
        assert verifier.is_valid_request(raw, dict(request.headers))
        if "X-Slack-Retry-Num" not in request.headers:
            await retry_arrived.wait()  # acks only after Slack gave up waiting and retried
            return web.Response(text="late")
        retry_arrived.set()
        return web.Response(status=next(answers))

    app = web.Application()
    app.router.add_post("/events", endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/events"
        event = fake.payloads.message(fake.dm_alice, fake.alice, "hello")
        first = await fake.send_event(url, event)
        await fake.drain()
        assert first.status == 200 and not first.acked_in_time
        attempts = fake.deliveries_for(first.event_id or "")
        by_num = {d.retry_num: d for d in attempts}
        assert set(by_num) == {None, 1, 2}
        assert (by_num[1].retry_reason, by_num[1].status) == ("http_timeout", 500)
        assert (by_num[2].retry_reason, by_num[2].status) == ("http_error", 200)
        assert by_num[2].request_headers["X-Slack-Retry-Num"] == "2"
    finally:
        await runner.cleanup()
        await fake.stop()
