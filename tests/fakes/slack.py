"""A wire-level fake of Slack for slack_sdk's AsyncWebClient and slack-bolt's AsyncApp in HTTP mode.

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
        ...
        await slack.send_event(app_url, slack.payloads.app_mention(slack.general, slack.alice, "hi"))

Responsibilities are split: slack_state (data), slack_rate (tiers), slack_web* (Web API, files, response_url),
slack_payloads (event shapes), slack_events (signed delivery and retries), slack_inspect (fault injection
and the helpers tests read state with). This module wires them together and seeds a default workspace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

from aiohttp import web

from tests.fakes.slack_events import Delivery, EventSender, SenderOptions
from tests.fakes.slack_inspect import SlackInspection
from tests.fakes.slack_interactive import Interactive, ViewMethods
from tests.fakes.slack_oauth import OAuthServer
from tests.fakes.slack_payloads import Payloads
from tests.fakes.slack_rate import RateConfig, RateLimiter
from tests.fakes.slack_socket import SocketAck, SocketDelivery, SocketModeServer, SocketOptions
from tests.fakes.slack_state import (
    JSON,
    Channel,
    Message,
    SlackFile,
    SlackState,
    User,
    Workspace,
)
from tests.fakes.slack_web import WebApi, WebOptions
from tests.fakes.slack_web_assistant import AssistantMethods
from tests.fakes.slack_web_chat import ChatMethods
from tests.fakes.slack_web_files import FileServer
from tests.fakes.slack_web_read import ReadMethods

DEFAULT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "chat:write",
    "commands",
    "files:read",
    "groups:history",
    "im:history",
    "im:write",
    "mpim:history",
    "reactions:write",
    "users:read",
)

__all__ = ["DEFAULT_SCOPES", "Delivery", "FakeSlack", "Message", "RateConfig", "SocketDelivery", "WebOptions"]


class FakeSlack(SlackInspection):
    team_id = "T0FAKE0001"
    bot_token = "xoxb-1111-2222-fakebottoken"
    app_token = "xapp-1-A0FAKEAPP1-3333-fakeapptoken"  # Socket Mode's app-level token
    bot_user_id = "U0FAKEBOT1"
    bot_id = "B0FAKEBOT1"
    app_id = "A0FAKEAPP1"
    client_id = "1111111111.2222222222"  # the app's OAuth credentials
    client_secret = "fake-client-secret"
    alice = "U0ALICE001"
    bob = "U0BOB00001"
    general = "C0GENERAL1"  # the bot is a member
    random = "C0RANDOM01"  # the bot is not a member
    dm_alice = "D0ALICE001"

    def __init__(
        self,
        *,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        rates: RateConfig | None = None,
        time_scale: float | None = None,
        options: WebOptions | None = None,
        signing_secret: str = "fake-signing-secret",
        auto_retry: bool = False,
        retry_delays: Sequence[float] = (0.0, 60.0, 300.0),
        ack_timeout: float = 3.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.state = SlackState()
        self.rates = rates or RateConfig()
        if time_scale is not None:
            self.rates.time_scale = time_scale
        self.limiter = RateLimiter(self.rates)
        self.options = options or WebOptions()
        self.web = WebApi(self.state, self.limiter, self.options)
        self.chat = ChatMethods(self.web)
        self.views = ViewMethods(self.web)
        self.assistant = AssistantMethods(self.web)
        ReadMethods(self.web)
        self.file_server = FileServer(self.state, self.options)
        self.oauth = OAuthServer(self.state, self.add_workspace, client_id=self.client_id,
                                 client_secret=self.client_secret)
        self.sender = EventSender(
            SenderOptions(
                signing_secret=signing_secret,
                ack_timeout=ack_timeout,
                retry_delays=tuple(retry_delays),
                auto_retry=auto_retry,
            )
        )
        self.payloads = Payloads(self.state, "", self.team_id)
        self.interactive = Interactive(self.state, self.sender, self.views, self.payloads)
        self.socket = SocketModeServer(SocketOptions({self.app_token: self.app_id}, ack_timeout=ack_timeout,
                                                     redeliver=auto_retry, retry_delays=tuple(retry_delays)))
        self._runner: web.AppRunner | None = None
        self._echo_url: str | None = None
        self.web.listeners.append(self._echo)
        self.port = 0
        self._seed(list(scopes))

    def _seed(self, scopes: list[str]) -> None:
        self.add_workspace(
            self.team_id,
            "Fake Workspace",
            bot_token=self.bot_token,
            scopes=scopes,
            bot_user_id=self.bot_user_id,
            bot_id=self.bot_id,
            app_id=self.app_id,
        )
        self.add_user("alice", user_id=self.alice, real_name="Alice Example")
        self.add_user("bob", user_id=self.bob, real_name="Bob Example")
        self.add_channel("general", channel_id=self.general)
        self.add_channel("random", channel_id=self.random, is_member=False)
        self.add_dm(self.alice, channel_id=self.dm_alice)

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([*self.socket.routes(), *self.oauth.routes(), web.route("*", "/api/{method}", self.web.handle),
                        *self.file_server.routes()])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        for part in (self.web, self.file_server, self.payloads, self.socket):
            part.root = self.root
        await self.sender.start()

    async def stop(self) -> None:
        await self.sender.close()
        await self.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def base_url(self) -> str:
        """What to pass as AsyncWebClient(base_url=...)."""
        return f"{self.root}api/"

    # --- seeding --------------------------------------------------------------------------------------

    def add_workspace(
        self,
        team_id: str,
        name: str,
        *,
        bot_token: str,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
        app_id: str | None = None,
    ) -> Workspace:
        ws = Workspace(
            team_id=team_id,
            name=name,
            domain=name.lower().replace(" ", "-"),
            bot_token=bot_token,
            scopes=list(scopes),
            bot_user_id=bot_user_id or self.state.new_id("U"),
            bot_id=bot_id or self.state.new_id("B"),
            app_id=app_id or self.app_id,
        )
        self.state.workspaces[team_id] = ws
        self.state.tokens[bot_token] = team_id
        self.state.users[ws.bot_user_id] = User(
            ws.bot_user_id, team_id, ws.bot_name, ws.bot_name, is_bot=True
        )
        return ws

    def set_scopes(self, scopes: Iterable[str], team_id: str | None = None) -> None:
        self.state.workspaces[team_id or self.team_id].scopes = list(scopes)

    def add_user(
        self,
        name: str,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        real_name: str | None = None,
        is_bot: bool = False,
        locale: str = "en-US",
    ) -> User:
        user = User(
            user_id or self.state.new_id("U"),
            team_id or self.team_id,
            name,
            real_name or name,
            is_bot=is_bot,
            locale=locale,
        )
        self.state.users[user.id] = user
        return user

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        team_id: str | None = None,
        is_private: bool = False,
        is_member: bool = True,
    ) -> Channel:
        ch = Channel(
            channel_id or self.state.new_id("G" if is_private else "C"),
            team_id or self.team_id,
            name,
            is_private=is_private,
            is_member=is_member,
        )
        self.state.channels[ch.id] = ch
        return ch

    def add_dm(self, user_id: str, *, channel_id: str | None = None) -> Channel:
        user = self.state.users[user_id]
        ch = Channel(channel_id or self.state.new_id("D"), user.team_id, "", is_im=True, user=user_id)
        self.state.channels[ch.id] = ch
        return ch

    def add_file(
        self,
        name: str,
        content: bytes,
        mimetype: str,
        *,
        user: str | None = None,
        team_id: str | None = None,
        bot_can_access: bool = True,
        thumbs: dict[int, bytes] | None = None,
    ) -> SlackFile:
        """A file the bot can (or with bot_can_access=False cannot) see; attach via seed_thread/payloads."""
        f = SlackFile(
            self.state.new_id("F"),
            team_id or self.team_id,
            name,
            mimetype,
            content,
            user or self.alice,
            bot_can_access=bot_can_access,
            thumbs=dict(thumbs or {}),
        )
        self.state.files[f.id] = f
        return f

    def seed_thread(
        self, channel: str, messages: Sequence[tuple[str, str] | tuple[str, str, Sequence[str]]]
    ) -> list[Message]:
        """Post (user, text[, file_ids]) messages; the first is the parent, the rest replies to it."""
        posted: list[Message] = []
        for item in messages:
            user, text = item[0], item[1]
            files: Sequence[str] = item[2] if len(item) > 2 else ()  # type: ignore[misc]
            thread_ts = posted[0].ts if posted else None
            posted.append(self.payloads.post_as_user(channel, user, text, thread_ts=thread_ts, files=files))
        return posted

    # --- events -------------------------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        return self.sender.deliveries

    def deliveries_for(self, event_id: str) -> list[Delivery]:
        return [d for d in self.sender.deliveries if d.event_id == event_id]

    async def send_event(
        self,
        url: str,
        event: JSON,
        *,
        team_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        event_id: str | None = None,
        bad_signature: bool = False,
        stale_timestamp: bool = False,
        auto_retry: bool | None = None,
    ) -> Delivery:
        """POST a signed event_callback envelope around `event`; unpacks as (status, body, elapsed)."""
        envelope = self.payloads.envelope(event, team_id, event_id)
        return await self.sender.send_event(
            url,
            envelope,
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            stale_timestamp=stale_timestamp,
            auto_retry=auto_retry,
        )

    async def send_url_verification(self, url: str) -> Delivery:
        body = {
            "token": self.payloads.verification_token,
            "challenge": self.state.new_id("challenge"),
            "type": "url_verification",
        }
        return await self.sender.send_event(url, body, auto_retry=False)

    async def send_slash_command(
        self,
        url: str,
        command: str,
        text: str = "",
        *,
        user: str | None = None,
        channel: str | None = None,
        team_id: str | None = None,
        response_url: str | None = None,
        bad_signature: bool = False,
        stale_timestamp: bool = False,
    ) -> Delivery:
        """POST a signed slash-command form; by default the response_url is served (and recorded) here."""
        form = self.slash_command_payload(command, text, user=user, channel=channel, team_id=team_id,
                                          response_url=response_url)
        return await self.sender.send_form(
            url, form, bad_signature=bad_signature, stale_timestamp=stale_timestamp
        )

    def slash_command_payload(self, command: str, text: str = "", *, user: str | None = None,
                              channel: str | None = None, team_id: str | None = None,
                              response_url: str | None = None) -> dict[str, str]:
        ws = self.state.workspaces[team_id or self.team_id]
        user_obj = self.state.users[user or self.alice]
        ch = self.state.channels[channel or self.general]
        form = {
            "token": self.payloads.verification_token,
            "team_id": ws.team_id,
            "team_domain": ws.domain,
            "channel_id": ch.id,
            "channel_name": "directmessage" if ch.is_im else ch.name,
            "user_id": user_obj.id,
            "user_name": user_obj.name,
            "command": command,
            "text": text,
            "api_app_id": ws.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self.file_server.new_response_url(ws.team_id),
            "trigger_id": self.sender.trigger_id(),
        }
        return form

    async def send_mention(
        self,
        url: str,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: Sequence[str] = (),
        message_event: bool = True,
    ) -> list[Delivery]:
        """A user @mentions the bot: Slack sends `app_mention` and, to apps subscribed to message.*,
        a `message` event for the same message with another event_id. In a DM only `message` exists."""
        if self.state.channels[channel].is_im:
            return [
                await self.send_event(
                    url, self.payloads.message(channel, user, text, thread_ts=thread_ts, files=files)
                )
            ]
        mention = self.payloads.app_mention(channel, user, text, thread_ts=thread_ts, files=files)
        sent = [await self.send_event(url, mention)]
        if message_event:
            sent.append(await self.send_event(url, self.payloads.message_for(channel, mention["ts"])))
        return sent

    def subscribe_message_events(self, url: str | None) -> None:
        """Echo the bot's own posts, edits and deletes to `url` as message events, as Slack does for apps
        subscribed to message.*; None stops. Deliveries run in the background: `await drain()`."""
        self._echo_url = url

    def _echo(self, kind: str, msg: Message, before: Message | None) -> None:
        if self._echo_url is None:
            return
        if kind == "post":
            event = self.payloads.render(msg)
        elif kind == "update":
            event = self.payloads.changed_event(msg, self.payloads.snapshot(before or msg))
        else:
            event = self.payloads.deleted_event(msg, self.payloads.snapshot(before or msg))
        envelope = self.payloads.envelope(event, msg.team)
        self.sender.spawn(self.sender.send_event(self._echo_url, envelope, auto_retry=False))

    async def drain(self) -> None:
        """Wait until background event retries have all been sent and answered."""
        await self.sender.drain()
        await self.socket.drain()

    # --- Socket Mode (tests/fakes/slack_socket.py) ----------------------------------------------------

    async def send_socket_event(
        self,
        event: JSON,
        *,
        team_id: str | None = None,
        event_id: str | None = None,
        envelope_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        redeliver: bool | None = None,
    ) -> SocketDelivery:
        """Deliver the event_callback `send_event` would POST as an events_api envelope over the websocket;
        waits for the ack (or ack_timeout). Pass envelope_id/retry_attempt to replay an envelope by hand."""
        return await self.socket.send("events_api", self.payloads.envelope(event, team_id, event_id),
                                      envelope_id=envelope_id, retry_attempt=retry_attempt,
                                      retry_reason=retry_reason, redeliver=redeliver)

    async def send_socket_slash_command(self, command: str, text: str = "", **form: str | None) -> SocketDelivery:
        """A slash command as a slash_commands envelope; `form` as for slash_command_payload."""
        payload = self.slash_command_payload(command, text, **form)
        return await self.socket.send("slash_commands", dict(payload), accepts_response_payload=True)

    @property
    def socket_acks(self) -> list[SocketAck]:
        return self.socket.acks
