"""Slash-command interactions: INTERACTION_CREATE payloads, the callback endpoint and the interaction webhook.

Timing follows receiving-and-responding.mdx: the first callback must come within `ack_deadline` seconds of
the interaction (else 404 10062), a second one is 400 40060, and the token works for `token_ttl` seconds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord_errors import DiscordHTTPError, empty_response, json_response, validate_message_body
from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_messages import Messages
from tests.fakes.discord_payloads import (
    Json,
    channel_payload,
    interaction_member_payload,
    member_payload,
    user_payload,
)
from tests.fakes.discord_rest import BODY_KEY, FILES_KEY
from tests.fakes.discord_state import (
    CHANNEL_GROUP_DM,
    EVERYONE_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    MESSAGE_CHAT_INPUT_COMMAND,
    DiscordWorld,
    FakeFile,
    FakeUser,
    StoredMessage,
)

CALLBACK_MESSAGE, CALLBACK_DEFERRED = 4, 5
MAX_USER_INSTALL_FOLLOWUPS = 5


@dataclass(frozen=True)
class InteractionCall:
    kind: str  # "callback", "followup", "edit", "delete" or "get"
    body: Json | None
    at: float
    status: int
    message_id: int | None = None
    callback_type: int | None = None


@dataclass
class InteractionRecord:
    id: int
    token: str
    name: str
    options: dict[str, Any]
    guild_id: int | None
    channel_id: int
    user: FakeUser
    created_at: float
    payload: Json
    calls: list[InteractionCall] = field(default_factory=list)
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    acknowledged: bool = False
    original_loading: bool = False
    # Installed to the user only (the bot is not in this guild or group DM): followups are limited to five.
    user_install: bool = False

    @property
    def callbacks(self) -> list[InteractionCall]:
        return [c for c in self.calls if c.kind == "callback"]

    @property
    def edits(self) -> list[InteractionCall]:
        return [c for c in self.calls if c.kind == "edit"]

    @property
    def followups(self) -> list[InteractionCall]:
        return [c for c in self.calls if c.kind == "followup"]


@dataclass
class InteractionConfig:
    ack_deadline: float = 3.0
    token_ttl: float = 15 * 60.0
    attachment_size_limit: int = 10 * 1024 * 1024


class Interactions:
    def __init__(
        self,
        world: DiscordWorld,
        gateway: Gateway,
        messages: Messages,
        config: InteractionConfig,
        notify: Callable[[], None],
    ) -> None:
        self._world = world
        self._gateway = gateway
        self._messages = messages
        self.config = config
        self._notify = notify
        self.records: list[InteractionRecord] = []
        self._by_token: dict[str, InteractionRecord] = {}

    async def invoke_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        guild_id: int | None,
        channel_id: int,
        user: FakeUser,
        attachments: Mapping[str, FakeFile] | None = None,
        require_registered: bool = True,
        user_install: bool = False,
    ) -> InteractionRecord:
        world = self._world
        root, *path = name.split()
        command = self._registered(root, guild_id)
        if command is None and require_registered:
            raise LookupError(
                f"/{root} is not synced for guild {guild_id} or globally; call tree.sync() first"
            )
        self._check_offered(command, channel_id, user_install)
        leaf, resolved = self._options(dict(options or {}), dict(attachments or {}), channel_id, guild_id)
        for i, part in reversed(list(enumerate(path))):
            leaf = [{"type": 1 if i == len(path) - 1 else 2, "name": part, "options": leaf}]
        data: Json = {
            "id": command["id"] if command else str(world.ids.next()),
            "name": root,
            "type": 1,
            "options": leaf,
        }
        if resolved:
            data["resolved"] = resolved
        if command is not None and "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self.dispatch(2, data, name=name, options=dict(options or {}), guild_id=guild_id,
                                   channel_id=channel_id, user=user, user_install=user_install)

    async def invoke_message_command(self, name: str, message: StoredMessage, *, user: FakeUser,
                                     user_install: bool = False) -> InteractionRecord:
        """`user` picks Apps → `name` on `message` (a MESSAGE command, type 3, with the message resolved)."""
        command = next((c for c in [*self._world.guild_commands.get(message.guild_id or 0, []),
                                    *self._world.global_commands] if c["name"] == name and c.get("type") == 3), None)
        if command is None:
            raise LookupError(f"no message command {name!r} is synced")
        self._check_offered(command, message.channel_id, user_install)
        data: Json = {"id": command["id"], "name": name, "type": 3, "target_id": str(message.id),
                      "resolved": {"messages": {str(message.id): self._messages.payload(message)}}}
        return await self.dispatch(2, data, name=name, guild_id=message.guild_id, channel_id=message.channel_id,
                                   user=user, user_install=user_install)

    def _check_offered(self, command: Json | None, channel_id: int, user_install: bool) -> None:
        """Discord offers a command only where its installation types and contexts allow."""
        if command is None:
            return
        channel = self._world.channels[channel_id]
        context = 2 if channel.type == CHANNEL_GROUP_DM else (1 if channel.guild_id is None else 0)
        installs = command.get("integration_types") or [0]
        contexts = command.get("contexts") or [0, 1, 2]
        if (1 if user_install else 0) not in installs or context not in contexts:
            raise LookupError(f"{command['name']} is not offered here (integration_types {installs}, "
                              f"contexts {contexts}; this is a {'user' if user_install else 'guild'} install "
                              f"in context {context})")

    async def dispatch(self, kind: int, data: Json, *, name: str, guild_id: int | None, channel_id: int,
                       user: FakeUser, options: dict[str, Any] | None = None,
                       extra: Json | None = None, user_install: bool = False) -> InteractionRecord:
        """Send INTERACTION_CREATE of type `kind` (2 command, 3 component, 5 modal submit) with `data`."""
        world = self._world
        record = InteractionRecord(
            id=world.ids.next(),
            token=f"aW50ZXJhY3Rpb24{secrets.token_urlsafe(48)}",
            name=name,
            options=options or {},
            guild_id=guild_id,
            channel_id=channel_id,
            user=user,
            created_at=world.clock.now(),
            payload={},
            user_install=user_install,
        )
        record.payload = {**self._payload(record, data), "type": kind, **(extra or {})}
        self.records.append(record)
        self._by_token[record.token] = record
        await self._gateway.dispatch("INTERACTION_CREATE", record.payload, guild_id=guild_id)
        return record

    def _registered(self, root: str, guild_id: int | None) -> Json | None:
        scoped = self._world.guild_commands.get(guild_id, []) if guild_id is not None else []
        for command in [*scoped, *self._world.global_commands]:
            if command["name"] == root:
                return command
        return None

    def _options(
        self, options: dict[str, Any], files: dict[str, FakeFile], channel_id: int, guild_id: int | None
    ) -> tuple[list[Json], Json]:
        out: list[Json] = []
        resolved: Json = {}
        for key, value in options.items():
            if isinstance(value, FakeUser):
                resolved.setdefault("users", {})[str(value.id)] = user_payload(value)
                member = self._world.member(guild_id, value.id)
                if member is not None:
                    resolved.setdefault("members", {})[str(value.id)] = member_payload(
                        member, with_user=False, permissions=EVERYONE_PERMISSIONS
                    )
                out.append({"name": key, "type": 6, "value": str(value.id)})
                continue
            kind = (
                5
                if isinstance(value, bool)
                else 4
                if isinstance(value, int)
                else 10
                if isinstance(value, float)
                else 3
            )
            out.append({"name": key, "type": kind, "value": value})
        for key, file in files.items():
            attachment = self._messages.attachments_from(channel_id, [file])[0]
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            out.append({"name": key, "type": 11, "value": attachment["id"]})
        return out, resolved

    def _payload(self, record: InteractionRecord, data: Json) -> Json:
        world = self._world
        channel = world.channels[record.channel_id]
        payload: Json = {
            "id": str(record.id),
            "application_id": str(world.application_id),
            "type": 2,
            "token": record.token,
            "version": 1,
            "channel_id": str(channel.id),
            "channel": channel_payload(channel),
            "data": data,
            "app_permissions": EVERYONE_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.config.attachment_size_limit,
        }
        if record.guild_id is not None:
            member = world.member(record.guild_id, record.user.id)
            if member is None:
                raise LookupError(f"user {record.user.id} is not a member of guild {record.guild_id}")
            payload.update(
                guild_id=str(record.guild_id),
                guild_locale="en-US",
                context=0,
                member=interaction_member_payload(member),
                authorizing_integration_owners={"1": str(record.user.id)} if record.user_install
                else {"0": str(record.guild_id)},
            )
        else:
            payload.update(
                user=user_payload(record.user),
                context=2 if channel.type == CHANNEL_GROUP_DM else 1,
                authorizing_integration_owners={"1": str(record.user.id)},
            )
        return payload

    # --- HTTP side ---------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application, prefix: str) -> None:
        router = app.router
        router.add_post(f"{prefix}/interactions/{{webhook_id}}/{{webhook_token}}/callback", self.callback)
        hook = f"{prefix}/webhooks/{{webhook_id}}/{{webhook_token}}"
        router.add_post(hook, self.followup)
        router.add_get(f"{hook}/messages/{{message_id}}", self.get_message)
        router.add_patch(f"{hook}/messages/{{message_id}}", self.edit_message)
        router.add_delete(f"{hook}/messages/{{message_id}}", self.delete_message)

    async def callback(self, request: web.Request) -> web.Response:
        record = self._by_token.get(request.match_info["webhook_token"])
        now = self._world.clock.now()
        if record is None or str(record.id) != request.match_info["webhook_id"]:
            raise DiscordHTTPError(404, 10062, "Unknown interaction")
        body: Json = request[BODY_KEY] or {}
        kind = int(body.get("type", 0))
        try:
            if record.acknowledged:
                raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
            if now - record.created_at > self.config.ack_deadline:
                raise DiscordHTTPError(404, 10062, "Unknown interaction")
            message = await self._acknowledge(record, kind, body.get("data") or {}, request[FILES_KEY])
        except DiscordHTTPError as exc:
            record.calls.append(InteractionCall("callback", body, now, exc.status, callback_type=kind))
            raise
        record.calls.append(
            InteractionCall("callback", body, now, 200, message.id if message else None, kind)
        )
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return empty_response()
        interaction: Json = {
            "id": str(record.id),
            "type": 2,
            "response_message_loading": kind == CALLBACK_DEFERRED,
            "response_message_ephemeral": bool(message and message.flags & FLAG_EPHEMERAL),
        }
        result: Json = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            result["resource"] = {"type": kind, "message": self._messages.payload(message)}
        return json_response(result)

    async def _acknowledge(
        self, record: InteractionRecord, kind: int, data: Json, files: list[FakeFile]
    ) -> StoredMessage | None:
        if kind not in (CALLBACK_MESSAGE, CALLBACK_DEFERRED, 6, 7, 8, 9):
            err = {
                "type": {
                    "_errors": [
                        {"code": "BASE_TYPE_CHOICES", "message": "Value must be one of (4, 5, 8, 9)."}
                    ]
                }
            }
            raise DiscordHTTPError(400, 50035, "Invalid Form Body", err)
        message = None
        if kind == CALLBACK_MESSAGE:
            validate_message_body(data, creating=True, has_files=bool(files))
            message = await self._create(record, data, files)
        elif kind == CALLBACK_DEFERRED:
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = await self._create(record, {"content": "", "flags": flags}, [])
            record.original_loading = True
        record.acknowledged = True
        if message is not None:
            record.original_message_id = message.id
        return message

    async def _create(self, record: InteractionRecord, body: Json, files: list[FakeFile]) -> StoredMessage:
        channel = self._world.channels[record.channel_id]
        ephemeral = bool(int(body.get("flags") or 0) & FLAG_EPHEMERAL)
        message = await self._messages.create(
            channel,
            self._world.bot,
            body,
            files,
            webhook_id=self._world.application_id,
            source="interaction",
            dispatch=False,
        )
        message.type = MESSAGE_CHAT_INPUT_COMMAND
        if not ephemeral:  # ephemeral messages never reach the gateway
            await self._gateway.dispatch(
                "MESSAGE_CREATE", self._messages.payload(message), guild_id=message.guild_id
            )
        return message

    def _webhook_record(self, request: web.Request) -> InteractionRecord:
        record = self._by_token.get(request.match_info["webhook_token"])
        if record is None or request.match_info["webhook_id"] != str(self._world.application_id):
            raise DiscordHTTPError(404, 10015, "Unknown Webhook")
        if self._world.clock.now() - record.created_at > self.config.token_ttl:
            raise DiscordHTTPError(401, 50027, "Invalid Webhook Token")
        if not record.acknowledged:
            raise DiscordHTTPError(404, 10015, "Unknown Webhook")
        return record

    def _target(self, record: InteractionRecord, raw_id: str) -> StoredMessage:
        message_id = record.original_message_id if raw_id == "@original" else int(raw_id)
        if message_id is None or (
            message_id != record.original_message_id and message_id not in record.followup_message_ids
        ):
            raise DiscordHTTPError(404, 10008, "Unknown Message")
        return self._messages.message(record.channel_id, message_id)

    async def followup(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        body: Json = request[BODY_KEY] or {}
        files: list[FakeFile] = request[FILES_KEY]
        validate_message_body(body, creating=True, has_files=bool(files))
        now = self._world.clock.now()
        if record.original_loading and record.original_message_id is not None:
            # Documented (deprecated) quirk: the first followup after a defer edits the "thinking" message.
            message = self._messages.message(record.channel_id, record.original_message_id)
            await self._edit(record, message, body, files)
        else:
            if record.user_install and len(record.followup_message_ids) >= MAX_USER_INSTALL_FOLLOWUPS:
                # receiving-and-responding.mdx: followups of a user-installed app outside its servers: five.
                raise DiscordHTTPError(400, 40094, "This interaction has hit the maximum number of follow up messages")
            message = await self._create(record, body, files)
            record.followup_message_ids.append(message.id)
        record.calls.append(InteractionCall("followup", body, now, 200, message.id))
        if request.query.get("wait", "0").lower() not in ("1", "true"):
            return empty_response()
        return json_response(self._messages.payload(message))

    async def _edit(
        self, record: InteractionRecord, message: StoredMessage, body: Json, files: list[FakeFile]
    ) -> None:
        if message.id == record.original_message_id and record.original_loading:
            record.original_loading = False
            body = {**body, "flags": (message.flags | int(body.get("flags") or 0)) & ~FLAG_LOADING}
        await self._messages.edit(message, body, files)

    async def edit_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        message = self._target(record, request.match_info["message_id"])
        body: Json = request[BODY_KEY] or {}
        validate_message_body(body, creating=False, has_files=bool(request[FILES_KEY]))
        await self._edit(record, message, body, request[FILES_KEY])
        record.calls.append(InteractionCall("edit", body, self._world.clock.now(), 200, message.id))
        return json_response(self._messages.payload(message))

    async def get_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        message = self._target(record, request.match_info["message_id"])
        record.calls.append(InteractionCall("get", None, self._world.clock.now(), 200, message.id))
        return json_response(self._messages.payload(message))

    async def delete_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        message = self._target(record, request.match_info["message_id"])
        await self._messages.delete(message)
        record.calls.append(InteractionCall("delete", None, self._world.clock.now(), 204, message.id))
        return empty_response()
