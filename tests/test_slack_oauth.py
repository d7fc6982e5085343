"""Multi-workspace Slack: a person installs kimibot through OAuth in a browser (kimibot's /slack/install, Slack's
consent page, the redirect back), then each workspace is answered with its own stored token; uninstalls and
revoked tokens stop it at once, on every replica sharing the database."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore

from adapters.slack.clients import NotInstalled
from adapters.slack.runner import check_config
from bot.config import ConfigError
from bot.config_platforms import DEFAULT_BOT_SCOPES
from storage.store import Store
from tests.fakes.kimi import FakeKimi, Reply
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_oauth import Approval
from tests.fixtures.db import sqlite_locked
from tests.fixtures.engine import make_config
from tests.fixtures.slack_bot import SlackBot, start_bot
from tests.test_slack_socket_mode import running

SECOND = "T0SECOND01"
CAROL = "U0CAROL001"
STATE_COOKIE = "slack-app-oauth-state"


def oauth_settings(fake: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {"bot_token": None, "oauth": {"client_id": fake.client_id, "client_secret": fake.client_secret,
                                         "authorize_url": f"{fake.root}oauth/v2/authorize", **extra}}


@pytest.fixture
async def oauth_bot(fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> AsyncIterator[SlackBot]:
    harness = await start_bot(fast_slack, kimi, store, **oauth_settings(fast_slack))
    fast_slack.oauth.redirect_urls = [harness.url.replace("/slack/events", "/slack/oauth_redirect")]
    yield harness
    await harness.close()


async def install(bot: SlackBot, approval: Approval, *, cookie: bool = True) -> tuple[int, str]:
    return await visit(bot.fake, bot.url.removesuffix("/slack/events"), approval, cookie=cookie)


async def visit(fake: FakeSlack, base: str, approval: Approval, *, cookie: bool = True) -> tuple[int, str]:
    """What a person's browser does: open the install page, follow its link to Slack, approve, come back."""
    fake.oauth.next_approval = approval
    async with aiohttp.ClientSession() as browser:
        page = await browser.get(f"{base}/slack/install", allow_redirects=False)
        assert page.status == 200
        link = re.search(r'href="([^"]*/oauth/v2/authorize\?[^"]*)"', await page.text())
        assert link is not None
        state = page.cookies[STATE_COOKIE].value
        consent = await browser.get(html.unescape(link.group(1)), allow_redirects=False)
        assert consent.status == 302
        back = await browser.get(consent.headers["Location"], allow_redirects=False,
                                 headers={"Cookie": f"{STATE_COOKIE}={state}"} if cookie else {})
        return back.status, await back.text()


def second_workspace(fake: FakeSlack) -> str:
    """Carol's workspace: her and a channel there (the workspace itself appears when she installs)."""
    fake.add_user("carol", user_id=CAROL, team_id=SECOND, real_name="Carol Example")
    return fake.add_channel("team-two", team_id=SECOND).id


async def ask(bot: SlackBot, channel: str, team: str, text: str) -> str:
    mention = bot.fake.payloads.app_mention(channel, CAROL if team == SECOND else bot.fake.alice, text)
    await bot.fake.send_event(bot.url, mention, team_id=team)
    return str(mention["ts"])


async def replies_by(bot: SlackBot, channel: str, ts: str, team: str, *, wait: float = 5.0) -> list[str]:
    """Texts of the bot's replies in the thread, by the bot user of `team`'s install."""
    bot_id = bot.fake.state.workspaces[team].bot_id
    async with asyncio.timeout(max(wait, 5.0)):
        while True:
            await bot.adapter.idle()
            replies = [m.text for m in bot.thread(channel, ts) if m.bot_id == bot_id and m.ts != ts]
            if replies or wait == 0:
                return replies
            await asyncio.sleep(0.05)


async def gone(store: Store, client_id: str, team: str) -> None:
    """Until the workspace's bot is no longer stored (Bolt runs event listeners after its HTTP ack)."""
    installations = AsyncSQLAlchemyInstallationStore(client_id, store.engine)
    async with asyncio.timeout(5):
        while await installations.async_find_bot(enterprise_id=None, team_id=team) is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_a_workspace_installed_through_oauth_is_answered_with_its_own_token(
        oauth_bot: SlackBot, kimi: FakeKimi, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    channel = second_workspace(oauth_bot.fake)
    kimi.enqueue(Reply(content="Hello from Kimi, team two."))
    with caplog.at_level(logging.INFO, logger="adapters.slack.oauth"):
        status, page = await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL))
    assert status == 200 and "Thank you!" in page, page
    assert [e["outcome"] for e in oauth_bot.fake.oauth.exchanges] == ["ok"]
    installed = [r for r in caplog.records if r.getMessage() == "slack workspace installed"]
    assert [getattr(r, "team", None) for r in installed] == [SECOND]
    token = oauth_bot.fake.state.workspaces[SECOND].bot_token
    assert token not in caplog.text  # tokens never reach the log

    ts = await ask(oauth_bot, channel, SECOND, "hi there")
    assert await replies_by(oauth_bot, channel, ts, SECOND) == ["Hello from Kimi, team two."]
    writes = [c for c in oauth_bot.fake.calls if c.method.startswith("chat.")]
    assert writes and {c.team_id for c in writes} == {SECOND}

    # The first workspace never installed this app: its events are not authorized, nothing is answered there.
    ts_first = await ask(oauth_bot, oauth_bot.fake.general, oauth_bot.fake.team_id, "and me?")
    await asyncio.sleep(0.3)
    assert await replies_by(oauth_bot, oauth_bot.fake.general, ts_first, oauth_bot.fake.team_id, wait=0) == []


async def test_another_replica_on_the_same_database_answers_the_installed_workspace(
        oauth_bot: SlackBot, fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> None:
    channel = second_workspace(fast_slack)
    assert (await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL)))[0] == 200
    other = await start_bot(fast_slack, kimi, store, **oauth_settings(fast_slack))
    try:
        # What a resumed answer does first, with no request to bring the token: read it from the database.
        assert (await other.adapter.clients.load(SECOND)).token == fast_slack.state.workspaces[SECOND].bot_token
        with pytest.raises(NotInstalled):
            await other.adapter.clients.load("T0NOBODY01")
        kimi.enqueue(Reply(content="Answered by the other replica."))
        ts = await ask(other, channel, SECOND, "who answers?")
        assert await replies_by(other, channel, ts, SECOND) == ["Answered by the other replica."]
    finally:
        await other.close()


async def test_an_install_started_on_one_replica_finishes_on_another(
        oauth_bot: SlackBot, fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> None:
    """Behind a load balancer the browser's two visits may reach two replicas: the state is in the database."""
    second_workspace(fast_slack)
    other = await start_bot(fast_slack, kimi, store, **oauth_settings(fast_slack))
    try:
        fast_slack.oauth.redirect_urls = [other.url.replace("/slack/events", "/slack/oauth_redirect")]
        status, page = await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL))
        assert status == 200 and "Thank you!" in page
        assert (await oauth_bot.adapter.clients.load(SECOND)).token == fast_slack.state.workspaces[SECOND].bot_token
    finally:
        await other.close()


@pytest.mark.skipif(bool(os.environ.get("KIMIBOT_TEST_POSTGRES_URL")), reason="a SQLite file's lock")
async def test_a_database_that_cannot_save_the_install_gets_a_page_saying_so(
        oauth_bot: SlackBot, store: Store, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Slack has exchanged the code when another process takes the SQLite write lock, past the busy timeout."""
    second_workspace(oauth_bot.fake)
    async with contextlib.AsyncExitStack() as lock:
        async def lock_the_database() -> None:
            await lock.enter_async_context(sqlite_locked(db_url, 7.0))

        oauth_bot.fake.oauth.before_answer = lock_the_database
        with caplog.at_level(logging.WARNING, logger="adapters.slack.oauth"):
            status, text = await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL))
        oauth_bot.fake.oauth.before_answer = None
    assert status == 503 and "nothing was installed" in text and 'href="/slack/install"' in text
    failures = [r for r in caplog.records if r.getMessage() == "slack install page failed"]
    assert len(failures) == 1 and getattr(failures[0], "page", None) == "redirect"
    installations = AsyncSQLAlchemyInstallationStore(oauth_bot.fake.client_id, store.engine)
    assert await installations.async_find_bot(enterprise_id=None, team_id=SECOND) is None
    # The database is back: the same person starts again and it works.
    status, page_text = await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL))
    assert status == 200 and "Thank you!" in page_text


async def test_uninstall_deletes_the_workspace_and_its_events_go_unanswered(
        oauth_bot: SlackBot, kimi: FakeKimi, store: Store) -> None:
    fake = oauth_bot.fake
    channel = second_workspace(fake)
    assert (await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL)))[0] == 200
    kimi.enqueue(Reply(content="Still here."))
    ts = await ask(oauth_bot, channel, SECOND, "before")
    assert await replies_by(oauth_bot, channel, ts, SECOND) == ["Still here."]

    fake.oauth.revoke(SECOND)
    delivery = await fake.send_event(oauth_bot.url, {"type": "app_uninstalled", "event_ts": "1.0"},
                                     team_id=SECOND)
    assert delivery.status == 200
    await gone(store, fake.client_id, SECOND)
    async with asyncio.timeout(5):
        while SECOND in oauth_bot.adapter.clients:  # noqa: ASYNC110  (the listener's last step)
            await asyncio.sleep(0.02)

    ts = await ask(oauth_bot, channel, SECOND, "after")
    await asyncio.sleep(0.3)
    assert await replies_by(oauth_bot, channel, ts, SECOND, wait=0) == []
    assert not [c for c in fake.calls if c.error == "invalid_auth"]  # no call was tried with the dead token


async def test_revoked_bot_token_deletes_the_bot(oauth_bot: SlackBot, store: Store) -> None:
    fake = oauth_bot.fake
    second_workspace(fake)
    assert (await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL)))[0] == 200
    bot_user = fake.state.workspaces[SECOND].bot_user_id
    fake.oauth.revoke(SECOND)
    event = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [bot_user]}, "event_ts": "1.0"}
    assert (await fake.send_event(oauth_bot.url, event, team_id=SECOND)).status == 200
    await gone(store, fake.client_id, SECOND)


async def test_a_redirect_without_the_browsers_state_cookie_installs_nothing(oauth_bot: SlackBot,
                                                                             store: Store) -> None:
    """A link forged for someone else's browser: the state is not this browser's, so no code is exchanged."""
    second_workspace(oauth_bot.fake)
    status, _ = await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL), cookie=False)
    assert status >= 400
    assert oauth_bot.fake.oauth.exchanges == []
    installations = AsyncSQLAlchemyInstallationStore(oauth_bot.fake.client_id, store.engine)
    assert await installations.async_find_bot(enterprise_id=None, team_id=SECOND) is None


async def test_a_cancelled_consent_installs_nothing(oauth_bot: SlackBot, store: Store) -> None:
    second_workspace(oauth_bot.fake)
    status, page = await install(oauth_bot, Approval(SECOND, "Second Workspace", CAROL, cancel=True))
    assert status == 200 and "Something Went Wrong" in page  # Bolt answers a cancel with its failure page
    assert oauth_bot.fake.oauth.exchanges == []
    installations = AsyncSQLAlchemyInstallationStore(oauth_bot.fake.client_id, store.engine)
    assert await installations.async_find_bot(enterprise_id=None, team_id=SECOND) is None


async def test_a_wrong_client_secret_is_refused_by_slack_and_installs_nothing(
        fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> None:
    settings = oauth_settings(fast_slack)
    settings["oauth"]["client_secret"] = "not-the-secret"
    harness = await start_bot(fast_slack, kimi, store, **settings)
    fast_slack.oauth.redirect_urls = [harness.url.replace("/slack/events", "/slack/oauth_redirect")]
    try:
        second_workspace(fast_slack)
        status, _ = await install(harness, Approval(SECOND, "Second Workspace", CAROL))
    finally:
        await harness.close()
    assert status >= 400
    assert [e["outcome"] for e in fast_slack.oauth.exchanges] == ["bad_client_secret"]


def test_oauth_needs_its_client_secret_and_replaces_the_bot_token(kimi: FakeKimi) -> None:
    from bot.app import Services  # noqa: F401  (check_config reads only services.config)

    class Only:
        def __init__(self, **slack: Any) -> None:
            self.config = make_config(kimi, slack={"signing_secret": "s", "mode": "http", **slack})

    with pytest.raises(ConfigError, match=r"^slack\.oauth\.client_secret: "):
        check_config(Only(oauth={"client_id": "1.2"}))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^slack\.bot_token: not set.*\[slack\.oauth\] client_id"):
        check_config(Only())  # type: ignore[arg-type]
    check_config(Only(oauth={"client_id": "1.2", "client_secret": "x"}))  # type: ignore[arg-type]


async def test_socket_mode_serves_the_install_pages_and_answers_the_installed_workspace(
        fast_slack: FakeSlack, kimi: FakeKimi, store: Store) -> None:
    """Socket Mode takes events over the websocket; the install pages still need an HTTP listener."""
    port = free_port()
    fast_slack.oauth.redirect_urls = [f"http://127.0.0.1:{port}/slack/oauth_redirect"]
    channel = second_workspace(fast_slack)
    kimi.enqueue(Reply(content="Over the socket, for team two."))
    settings = {**oauth_settings(fast_slack), "signing_secret": None, "http_host": "127.0.0.1", "http_port": port}
    async with running(fast_slack, kimi, store, **settings) as bot:
        async with asyncio.timeout(10):
            while not fast_slack.socket.connections:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        status, page = await visit(fast_slack, f"http://127.0.0.1:{port}", Approval(SECOND, "Second", CAROL))
        assert status == 200 and "Thank you!" in page
        mention = fast_slack.payloads.app_mention(channel, CAROL, "hello over the socket")
        await fast_slack.send_socket_event(mention, team_id=SECOND)
        bot_id = fast_slack.state.workspaces[SECOND].bot_id
        await bot.until(lambda: any(m.bot_id == bot_id and m.text == "Over the socket, for team two."
                                    for m in fast_slack.messages_in_thread(channel, mention["ts"])))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_oauth_install_asks_for_the_manifests_bot_scopes() -> None:
    """[slack.oauth] scopes defaults to the manifest's bot scopes, written out in the config; they must not drift."""
    manifest = (Path(__file__).resolve().parent.parent / "adapters" / "slack" / "manifest.yaml").read_text()
    bot = manifest[manifest.index("    bot:\n"):manifest.index("settings:")]
    assert re.findall(r"^      - ([\w:.]+)", bot, re.MULTILINE) == DEFAULT_BOT_SCOPES
