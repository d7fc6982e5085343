"""Messages: storing, editing and mirroring them over the gateway, plus channel/message/thread REST routes."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Sequence

from aiohttp import web

from tests.fakes.discord_errors import (
    DiscordHTTPError,
    empty_response,
    json_response,
    unknown,
    validate_message_body,
)
from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_payloads import (
    Json,
    attachment_payload,
    channel_payload,
    message_payload,
    thread_payload,
)
from tests.fakes.discord_rest import BODY_KEY, FILES_KEY
from tests.fakes.discord_state import (
    CHANNEL_GROUP_DM,
    CHANNEL_TEXT,
    FLAG_HAS_THREAD,
    MESSAGE_DEFAULT,
    MESSAGE_REPLY,
    CdnObject,
    DiscordWorld,
    FakeChannel,
    FakeFile,
    FakeUser,
    StoredMessage,
    ThreadRecord,
    TypingRecord,
)

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
EDITABLE_FIELDS = ("content", "embeds", "flags", "components")


class Messages:
    def __init__(self, world: DiscordWorld, gateway: Gateway, base_url: Callable[[], str]) -> None:
        self._world = world
        self._gateway = gateway
        self._base_url = base_url

    # --- model operations shared by REST, interactions and test injection ------------------------------
    def channel(self, channel_id: int) -> FakeChannel:
        channel = self._world.channels.get(channel_id)
        if channel is None:
            raise unknown("Channel", 10003)
        return channel

    def reachable(self, channel_id: int) -> FakeChannel:
        """A channel the bot may use over REST: not a group DM it is not in (a user-installed app is invited to
        the interaction, not to the channel)."""
        channel = self.channel(channel_id)
        if channel.type == CHANNEL_GROUP_DM and self._world.bot.id not in {u.id for u in channel.recipients}:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        return channel

    def message(self, channel_id: int, message_id: int) -> StoredMessage:
        msg = self._world.messages.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel_id:
            raise unknown("Message", 10008)
        return msg

    def payload(self, msg: StoredMessage) -> Json:
        world = self._world
        referenced = None
        if msg.reference is not None:
            ref = world.messages.get(int(str(msg.reference["message_id"])))
            referenced = ref if ref is not None and not ref.deleted else None
        thread = world.channels.get(msg.thread_id) if msg.thread_id else None
        return message_payload(
            msg, users=world.users, member_of=world.member, referenced=referenced, thread=thread
        )

    def attachments_from(self, channel_id: int, files: Sequence[FakeFile]) -> list[Json]:
        found = []
        for file in files:
            attachment_id = self._world.ids.next()
            content_type = (
                file.content_type or mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
            )
            self._world.cdn[attachment_id] = CdnObject(file.data, content_type)
            typed = FakeFile(
                file.filename, file.data, content_type, file.width, file.height, file.description
            )
            found.append(
                attachment_payload(attachment_id, self._base_url(), channel_id, typed, len(file.data))
            )
        return found

    def mention_ids(self, content: str, guild_id: int | None) -> list[int]:
        ids: list[int] = []
        for raw in USER_MENTION.findall(content):
            uid = int(raw)
            if uid in self._world.users and uid not in ids:
                ids.append(uid)
        return ids

    async def create(
        self,
        channel: FakeChannel,
        author: FakeUser,
        body: Json,
        files: Sequence[FakeFile] = (),
        *,
        webhook_id: int | None = None,
        source: str = "create",
        dispatch: bool = True,
    ) -> StoredMessage:
        content = body.get("content") or ""
        reference = self._reference(channel, body.get("message_reference"))
        mentions = self.mention_ids(content, channel.guild_id)
        allowed = body.get("allowed_mentions") or {}
        if reference is not None and allowed.get("replied_user", True):
            replied = self._world.messages[int(reference["message_id"])].author.id
            if replied not in mentions and replied != author.id:
                mentions.append(replied)
        msg = StoredMessage(
            id=self._world.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=content,
            timestamp=self._world.clock.utcnow(),
            embeds=list(body.get("embeds") or ([body["embed"]] if body.get("embed") else [])),
            attachments=self.attachments_from(channel.id, files),
            mention_ids=mentions,
            mention_role_ids=[int(r) for r in ROLE_MENTION.findall(content)],
            type=MESSAGE_REPLY if reference is not None else MESSAGE_DEFAULT,
            flags=int(body.get("flags") or 0),
            tts=bool(body.get("tts")),
            components=list(body.get("components") or []),
            reference=reference,
            nonce=body.get("nonce"),
            webhook_id=webhook_id,
            application_id=self._world.application_id if webhook_id else None,
        )
        self._world.store_message(msg, source=source)
        if dispatch:
            await self._gateway.dispatch("MESSAGE_CREATE", self.payload(msg), guild_id=msg.guild_id)
        return msg

    def _reference(self, channel: FakeChannel, raw: Json | None) -> Json | None:
        if not raw or raw.get("message_id") is None:
            return None
        target = self._world.messages.get(int(raw["message_id"]))
        if target is None or target.deleted:
            if raw.get("fail_if_not_exists", True):
                err = {
                    "_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "message": "Unknown message"}]
                }
                raise DiscordHTTPError(400, 50035, "Invalid Form Body", {"message_reference": err})
            return None
        ref: Json = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
        if target.guild_id is not None:
            ref["guild_id"] = str(target.guild_id)
        return ref

    async def edit(
        self, msg: StoredMessage, body: Json, files: Sequence[FakeFile] = (), *, source: str = "edit"
    ) -> None:
        if "content" in body:
            msg.content = body["content"] or ""
            msg.mention_ids = self.mention_ids(msg.content, msg.guild_id)
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        if "flags" in body and body["flags"] is not None:
            msg.flags = int(body["flags"])
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "attachments" in body:
            # v10: the array lists every attachment to keep; new uploads are referenced by files[n] index.
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            msg.attachments = [a for a in msg.attachments if a["id"] in keep]
        msg.attachments.extend(self.attachments_from(msg.channel_id, files))
        msg.edited_timestamp = self._world.clock.utcnow()
        msg.record_version(msg.edited_timestamp, source)
        await self._gateway.dispatch("MESSAGE_UPDATE", self.payload(msg), guild_id=msg.guild_id)

    async def delete(self, msg: StoredMessage) -> None:
        msg.deleted = True
        data: Json = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        await self._gateway.dispatch("MESSAGE_DELETE", data, guild_id=msg.guild_id)

    # --- REST routes ---------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application, prefix: str) -> None:
        base = f"{prefix}/channels/{{channel_id}}"
        app.router.add_get(base, self.get_channel)
        app.router.add_post(f"{base}/typing", self.trigger_typing)
        app.router.add_get(f"{base}/messages", self.history)
        app.router.add_post(f"{base}/messages", self.create_message)
        app.router.add_get(f"{base}/messages/{{message_id}}", self.get_message)
        app.router.add_patch(f"{base}/messages/{{message_id}}", self.edit_message)
        app.router.add_delete(f"{base}/messages/{{message_id}}", self.delete_message)
        app.router.add_post(f"{base}/messages/{{message_id}}/threads", self.create_thread)

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self.reachable(_id(request, "channel_id"))
        if channel.is_thread:
            return json_response(
                thread_payload(channel, message_count=len(self._world.messages_in(channel.id)))
            )
        return json_response(channel_payload(channel))

    async def trigger_typing(self, request: web.Request) -> web.Response:
        channel = self.reachable(_id(request, "channel_id"))
        self._world.typing_calls.append(TypingRecord(channel.id, self._world.clock.utcnow()))
        return empty_response()

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self.reachable(_id(request, "channel_id"))
        body: Json = request[BODY_KEY] or {}
        files: list[FakeFile] = request[FILES_KEY]
        validate_message_body(body, creating=True, has_files=bool(files))
        if channel.locked:
            raise DiscordHTTPError(400, 160005, "Thread is locked")
        channel.archived = False  # sending into an archived, unlocked thread unarchives it
        msg = await self.create(channel, self._world.bot, body, files)
        return json_response(self.payload(msg))

    async def get_message(self, request: web.Request) -> web.Response:
        msg = self.message(self.reachable(_id(request, "channel_id")).id, _id(request, "message_id"))
        return json_response(self.payload(msg))

    async def edit_message(self, request: web.Request) -> web.Response:
        msg = self.message(self.reachable(_id(request, "channel_id")).id, _id(request, "message_id"))
        body: Json = request[BODY_KEY] or {}
        validate_message_body(body, creating=False, has_files=bool(request[FILES_KEY]))
        if msg.author.id != self._world.bot.id and any(k in body for k in EDITABLE_FIELDS[:2]):
            raise DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")
        await self.edit(msg, body, request[FILES_KEY])
        return json_response(self.payload(msg))

    async def delete_message(self, request: web.Request) -> web.Response:
        await self.delete(self.message(self.reachable(_id(request, "channel_id")).id, _id(request, "message_id")))
        return empty_response()

    async def history(self, request: web.Request) -> web.Response:
        channel = self.reachable(_id(request, "channel_id"))
        limit = min(max(int(request.query.get("limit", "50")), 1), 100)
        found = sorted(self._world.messages_in(channel.id), key=lambda m: m.id, reverse=True)
        if "before" in request.query:
            found = [m for m in found if m.id < int(request.query["before"])][:limit]
        elif "after" in request.query:
            found = [m for m in found if m.id > int(request.query["after"])][-limit:]
        elif "around" in request.query:
            pivot = int(request.query["around"])
            older = [m for m in found if m.id <= pivot][: (limit + 1) // 2]
            newer = [m for m in found if m.id > pivot][-(limit // 2) :] if limit > 1 else []
            found = newer + older
        else:
            found = found[:limit]
        return json_response([self.payload(m) for m in found])

    async def create_thread(self, request: web.Request) -> web.Response:
        channel = self.reachable(_id(request, "channel_id"))
        msg = self.message(channel.id, _id(request, "message_id"))
        body: Json = request[BODY_KEY] or {}
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            err = {
                "name": {
                    "_errors": [
                        {"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 100 in length."}
                    ]
                }
            }
            raise DiscordHTTPError(400, 50035, "Invalid Form Body", err)
        if channel.type != CHANNEL_TEXT:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        if msg.thread_id is not None:
            raise DiscordHTTPError(400, 160004, "A thread has already been created for this message")
        # "Start Thread from Message": the thread's id is the starter message's id.
        thread = self._world.add_thread(channel.id, name, owner=self._world.bot, thread_id=msg.id)
        thread.auto_archive_duration = int(body.get("auto_archive_duration") or 1440)
        msg.thread_id = thread.id
        msg.flags |= FLAG_HAS_THREAD
        self._world.threads_created.append(
            ThreadRecord(
                thread.id, channel.id, name, msg.id, thread.auto_archive_duration, self._world.clock.utcnow()
            )
        )
        created = {**thread_payload(thread), "newly_created": True}
        await self._gateway.dispatch("THREAD_CREATE", created, guild_id=thread.guild_id)
        await self._gateway.dispatch("MESSAGE_UPDATE", self.payload(msg), guild_id=msg.guild_id)
        return json_response(thread_payload(thread), status=201)


def _id(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        kind = "Message" if name == "message_id" else "Channel"
        raise unknown(kind, 10008 if kind == "Message" else 10003) from None
