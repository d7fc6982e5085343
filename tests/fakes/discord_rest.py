"""The REST front door (auth, call log, injected faults, rate limits) and the small REST routes.

The front door is an aiohttp middleware that runs before every `/api/v10` handler, in Discord's order:
authenticate, rate-limit, then handle. It parses JSON and multipart bodies once, for the handler and the log.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord_errors import DiscordHTTPError, json_response
from tests.fakes.discord_payloads import Json, app_info_payload, channel_payload, user_payload
from tests.fakes.discord_ratelimit import RateLimiter
from tests.fakes.discord_state import DiscordWorld, FakeClock, FakeFile

API_PREFIX = "/api/v10"
# How the fake CDN sends files: many small writes with pauses, as a real CDN's TCP stream arrives.
CDN_CHUNK_BYTES = 16 * 1024
CDN_CHUNK_DELAY = 0.0005
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id", "webhook_token")
# The parsed request body and uploads, stored on the request by the front door for the handlers.
BODY_KEY: web.RequestKey[Any] = web.RequestKey("discord_body", object)
FILES_KEY: web.RequestKey[list[FakeFile]] = web.RequestKey("discord_files", list)


@dataclass(frozen=True)
class CallRecord:
    method: str
    path: str
    route_key: str  # discord.py's Route.key, e.g. "PATCH /channels/{channel_id}/messages/{message_id}"
    major: str
    query: dict[str, str]
    body: Any
    files: list[str]
    status: int
    at: float


@dataclass
class InjectedFault:
    route_key: str
    status: int
    code: int
    message: str
    errors: Json | None
    retry_after: float
    is_global: bool
    major: str | None
    times: int


@dataclass
class FrontDoor:
    token: str
    limiter: RateLimiter
    clock: FakeClock
    notify: Callable[[], None]
    calls: list[CallRecord] = field(default_factory=list)
    faults: list[InjectedFault] = field(default_factory=list)

    def fail_next(
        self,
        route_key: str,
        status: int,
        code: int = 0,
        message: str | None = None,
        *,
        errors: Json | None = None,
        times: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
        major: str | None = None,
    ) -> None:
        """Answers the next `times` requests on `route_key` (optionally one major parameter) with an error."""
        text = message or {429: "You are being rate limited.", 500: "Internal Server Error"}.get(
            status, "Error"
        )
        self.faults.append(
            InjectedFault(route_key, status, code, text, errors, retry_after, is_global, major, times)
        )

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        if not canonical.startswith(API_PREFIX):
            return await handler(request)
        route_key = f"{request.method} {canonical[len(API_PREFIX) :]}"
        major = "+".join(request.match_info[k] for k in MAJOR_PARAMETERS if k in request.match_info)
        await _parse_body(request)
        response = await self._respond(request, handler, route_key, major)
        self.calls.append(
            CallRecord(
                method=request.method,
                path=request.path,
                route_key=route_key,
                major=major,
                query=dict(request.query),
                body=request[BODY_KEY],
                files=[f.filename for f in request[FILES_KEY]],
                status=response.status,
                at=self.clock.now(),
            )
        )
        self.notify()
        return response

    async def _respond(
        self, request: web.Request, handler: Callable[[web.Request], Any], route_key: str, major: str
    ) -> web.StreamResponse:
        # Interaction callbacks and webhook-token routes authenticate with the token in the URL.
        if "{webhook_token}" not in route_key and request.headers.get("Authorization") != f"Bot {self.token}":
            return json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        fault = self._find_fault(route_key, major)
        if fault is not None and fault.status == 429:
            self._consume(fault)
            decision = self.limiter.injected_429(
                route_key, major, fault.retry_after, is_global=fault.is_global
            )
            return json_response(decision.body, status=429, headers=decision.headers)
        decision = self.limiter.check(route_key, major)
        if not decision.allowed:
            return json_response(decision.body, status=429, headers=decision.headers)
        if fault is not None:  # an injected failure still counts against the bucket, as on Discord
            self._consume(fault)
            body = DiscordHTTPError(fault.status, fault.code, fault.message, fault.errors).body()
            return json_response(body, status=fault.status, headers=decision.headers)
        try:
            response = await handler(request)
        except DiscordHTTPError as exc:
            response = json_response(exc.body(), status=exc.status)
        response.headers.update(decision.headers)
        return response

    def _find_fault(self, route_key: str, major: str) -> InjectedFault | None:
        return next((f for f in self.faults if f.route_key == route_key and f.major in (None, major)), None)

    def _consume(self, fault: InjectedFault) -> None:
        fault.times -= 1
        if fault.times <= 0:
            self.faults.remove(fault)


async def _parse_body(request: web.Request) -> None:
    body: Any = None
    files: list[FakeFile] = []
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            data = bytes(await part.read())
            if part.name == "payload_json":
                body = json.loads(data)
            elif part.filename:
                content_type = part.headers.get("Content-Type")
                if content_type == "application/octet-stream":
                    content_type = None  # Discord sniffs the type from the name; the fake guesses it later
                files.append(FakeFile(part.filename, data, content_type))
    elif request.can_read_body:
        raw = await request.read()
        body = json.loads(raw) if raw else None
    request[BODY_KEY] = body
    request[FILES_KEY] = files


class MiscRoutes:
    """Login, gateway discovery, application commands, DMs and the attachment CDN."""

    def __init__(
        self,
        world: DiscordWorld,
        owner_id: int,
        gateway_url: Callable[[], str],
        shards: Callable[[], int],
        session_limit: Callable[[], Json],
    ) -> None:
        self._world = world
        self._owner_id = owner_id
        self._gateway_url = gateway_url
        self._shards = shards
        self._session_limit = session_limit
        self._versions = 0

    def add_routes(self, app: web.Application, prefix: str) -> None:
        router = app.router
        router.add_get(f"{prefix}/users/@me", self.me)
        router.add_post(f"{prefix}/users/@me/channels", self.create_dm)
        router.add_get(f"{prefix}/oauth2/applications/@me", self.application)
        router.add_get(f"{prefix}/gateway", self.gateway)
        router.add_get(f"{prefix}/gateway/bot", self.gateway_bot)
        router.add_put(f"{prefix}/applications/{{application_id}}/commands", self.put_commands)
        router.add_get(f"{prefix}/applications/{{application_id}}/commands", self.get_commands)
        router.add_put(
            f"{prefix}/applications/{{application_id}}/guilds/{{guild_id}}/commands", self.put_commands
        )
        router.add_get(
            f"{prefix}/applications/{{application_id}}/guilds/{{guild_id}}/commands", self.get_commands
        )
        router.add_get("/cdn/attachments/{channel_id}/{attachment_id}/{filename}", self.cdn)

    async def me(self, request: web.Request) -> web.Response:
        return json_response(
            {
                **user_payload(self._world.bot),
                "verified": True,
                "mfa_enabled": False,
                "flags": 0,
                "locale": "en-US",
            }
        )

    async def application(self, request: web.Request) -> web.Response:
        return json_response(app_info_payload(self._world.bot, self._world.users[self._owner_id]))

    async def gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self._gateway_url()})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self._gateway_url(),
                "shards": self._shards(),
                "session_start_limit": self._session_limit(),
            }
        )

    async def create_dm(self, request: web.Request) -> web.Response:
        body = request[BODY_KEY] or {}
        user = self._world.users.get(int(body.get("recipient_id", 0)))
        if user is None:
            raise DiscordHTTPError(404, 10013, "Unknown User")
        return json_response(channel_payload(self._world.add_dm_channel(user)))

    async def put_commands(self, request: web.Request) -> web.Response:
        if int(request.match_info["application_id"]) != self._world.application_id:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        commands = request[BODY_KEY] or []
        errors: Json = {}
        for i, command in enumerate(commands):
            problems: Json = {}
            name = str(command.get("name", ""))
            # Slash commands: lower-case words; user and message commands (types 2, 3): any 1-32 characters.
            chat_input = command.get("type", 1) == 1
            if (
                (not COMMAND_NAME.match(name) or name != name.lower()) if chat_input else not 1 <= len(name) <= 32
            ):
                problems["name"] = {
                    "_errors": [
                        {"code": "APPLICATION_COMMAND_INVALID_NAME", "message": "Command name is invalid"}
                    ]
                }
            if command.get("type", 1) == 1 and not 1 <= len(command.get("description") or "") <= 100:
                problems["description"] = {
                    "_errors": [
                        {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 100 in length."}
                    ]
                }
            if problems:
                errors[str(i)] = problems
        if errors:
            raise DiscordHTTPError(400, 50035, "Invalid Form Body", errors)
        self._versions += 1
        stored = [self._stored_command(c, guild_id) for c in commands]
        if guild_id is None:
            self._world.global_commands = stored
        else:
            self._world.guild_commands[int(guild_id)] = stored
        return json_response(stored)

    def _stored_command(self, command: Json, guild_id: str | None) -> Json:
        stored = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **command,
            "id": str(self._world.ids.next()),
            "application_id": str(self._world.application_id),
            "version": str(self._world.ids.next()),
        }
        if guild_id is not None:
            stored["guild_id"] = guild_id
        return stored

    async def get_commands(self, request: web.Request) -> web.Response:
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return json_response(self._world.global_commands)
        return json_response(self._world.guild_commands.get(int(guild_id), []))

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        """Files the way a CDN sends them: chunked, in many small writes with pauses in between."""
        try:
            obj = self._world.cdn[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        response = web.StreamResponse(headers={"Content-Type": obj.content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for start in range(0, len(obj.data), CDN_CHUNK_BYTES):
                await response.write(obj.data[start:start + CDN_CHUNK_BYTES])
                await asyncio.sleep(CDN_CHUNK_DELAY)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client stopped reading
        return response
