"""chat.* and assistant.threads.setStatus with the limits reference/slack.md §1 and §5 call real.

* chat.postMessage: `text` is truncated past 40,000 chars with the `message_truncated` warning (a live probe
  posted 11,800 chars fine); chat.update: `text` over 4,000 chars is `msg_too_long`.
* `markdown_text` (12,000 chars) may not be combined with `text`/`blocks` (`markdown_text_conflict`).
* 50 blocks per message; a section's text is at most 3,000 chars; markdown blocks share 12,000 chars.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.fakes.slack_state import JSON, Message, StreamState
from tests.fakes.slack_web import ApiError, CallContext, WebApi

POST_TEXT_TRUNCATE = 40_000
UPDATE_TEXT_MAX = 4_000
MARKDOWN_TEXT_MAX = 12_000
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3_000
MARKDOWN_BLOCKS_MAX = 12_000
CHUNK_TYPES = {"markdown_text", "task_update", "plan_update", "blocks"}


def _validate_blocks(blocks: Any) -> list[JSON] | None:
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("type") for b in blocks):
        raise ApiError("invalid_blocks")
    if len(blocks) > MAX_BLOCKS:
        raise ApiError("msg_blocks_too_many")
    markdown_total = 0
    for block in blocks:
        if block["type"] == "section":
            text = block.get("text") or {}
            if isinstance(text, dict) and len(str(text.get("text", ""))) > SECTION_TEXT_MAX:
                raise ApiError(
                    "invalid_blocks", errors=["must be less than 3001 characters [json-pointer:/text]"]
                )
        elif block["type"] == "markdown":
            markdown_total += len(str(block.get("text", "")))
        elif block["type"] == "context_actions":
            _validate_context_actions(block)
    if markdown_total > MARKDOWN_BLOCKS_MAX:
        raise ApiError("invalid_blocks", errors=["markdown blocks exceed 12000 characters"])
    return blocks


def _validate_context_actions(block: JSON) -> None:
    """context_actions holds feedback_buttons and icon_button elements; feedback buttons need both buttons, each
    with plain_text text and a value (block kit reference, 2025-10-07 changelog)."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
        raise ApiError("invalid_blocks", errors=["context_actions needs 1-5 elements [json-pointer:/elements]"])
    for element in elements:
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in ("feedback_buttons", "icon_button"):
            raise ApiError("invalid_blocks", errors=[f"unsupported element {kind} in context_actions"])
        if kind == "feedback_buttons":
            for side in ("positive_button", "negative_button"):
                button = element.get(side)
                text = button.get("text") if isinstance(button, dict) else None
                if not isinstance(text, dict) or text.get("type") != "plain_text" or not text.get("text") \
                        or not isinstance(button.get("value"), str) or len(button["value"]) > 2000:
                    raise ApiError("invalid_blocks", errors=[f"{side} needs plain_text text and a value"])


def _chunks_text(chunks: Any) -> str:
    if chunks is None:
        return ""
    if not isinstance(chunks, list) or not all(
        isinstance(c, dict) and c.get("type") in CHUNK_TYPES for c in chunks
    ):
        raise ApiError("invalid_chunks")
    return "".join(str(c.get("text", "")) for c in chunks if c["type"] == "markdown_text")


class ChatMethods:
    def __init__(self, api: WebApi) -> None:
        self.api = api
        self.state = api.state
        # Ephemeral messages are seen by one user and never stored in the channel: (channel, user, text).
        self.ephemeral: list[tuple[str, str, str]] = []
        self.loading_messages: dict[tuple[str, str], list[str]] = {}  # (channel, thread) -> the newest list
        api.handlers.update(
            {
                "chat.postMessage": self.post_message,
                "chat.postEphemeral": self.post_ephemeral,
                "chat.update": self.update,
                "chat.delete": self.delete,
                "chat.startStream": self.start_stream,
                "chat.appendStream": self.append_stream,
                "chat.stopStream": self.stop_stream,
                "assistant.threads.setStatus": self.set_status,
            }
        )

    def _content(self, ctx: CallContext) -> tuple[str | None, list[JSON] | None, str | None]:
        text = ctx.params.get("text")
        text = None if text is None else str(text)
        blocks = _validate_blocks(ctx.json_param("blocks"))
        markdown = ctx.str_param("markdown_text")
        if markdown is not None:
            if text or blocks:
                raise ApiError("markdown_text_conflict")
            if len(markdown) > MARKDOWN_TEXT_MAX:
                raise ApiError("msg_too_long")
        if not text and not blocks and markdown is None and not ctx.json_param("attachments"):
            raise ApiError("no_text")
        return text, blocks, markdown

    def _own(self, ctx: CallContext, msg: Message, error: str) -> None:
        if msg.bot_id != ctx.ws.bot_id:
            raise ApiError(error)

    def _clear_status(self, channel: str, thread_ts: str | None) -> None:
        """Slack removes an assistant status as soon as the app replies in that thread."""
        history = self.state.statuses.get((channel, thread_ts or ""))
        if history and history[-1][0]:
            history.append(("", time.time()))

    def _bot_message(self, ctx: CallContext, channel: str, text: str, thread_ts: str | None) -> Message:
        ws = ctx.ws
        return Message(
            channel=channel,
            ts=self.state.new_ts(),
            team=ws.team_id,
            text=text,
            user=ws.bot_user_id,
            bot_id=ws.bot_id,
            app_id=ws.app_id,
            thread_ts=thread_ts,
        )

    async def post_message(self, ctx: CallContext) -> JSON:
        ctx.require_scope("chat:write")
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        if not ch.is_member and not (ch.channel_type == "channel" and "chat:write.public" in ctx.ws.scopes):
            raise ApiError("not_in_channel")
        text, blocks, markdown = self._content(ctx)
        body_text = markdown if markdown is not None else (text or "")
        warnings: list[str] = []
        if len(body_text) > POST_TEXT_TRUNCATE:
            body_text = body_text[:POST_TEXT_TRUNCATE]
            warnings.append("message_truncated")
        thread_ts = ctx.str_param("thread_ts")
        msg = self._bot_message(ctx, ch.id, body_text, thread_ts)
        msg.blocks = blocks
        msg.metadata = ctx.json_param("metadata")
        msg.username = ctx.str_param("username")
        self.state.insert(msg, "post")
        self._clear_status(ch.id, thread_ts)
        self.api.notify("post", msg)
        body: JSON = {
            "ok": True,
            "channel": ch.id,
            "ts": msg.ts,
            "message": self.state.message_json(msg, ctx.root),
        }
        if warnings:
            body["warning"] = ",".join(warnings)
            body["response_metadata"] = {"warnings": warnings}
        return body

    async def post_ephemeral(self, ctx: CallContext) -> JSON:
        ctx.require_scope("chat:write")
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        if not ch.is_member:
            raise ApiError("not_in_channel")
        user = ctx.required("user")
        text, _, markdown = self._content(ctx)
        self.ephemeral.append((ch.id, user, markdown if markdown is not None else (text or "")))
        return {"ok": True, "message_ts": self.state.new_ts()}

    async def update(self, ctx: CallContext) -> JSON:
        ctx.require_scope("chat:write")
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        msg = self.state.get(ch.id, ctx.required("ts"))
        if msg is None:
            raise ApiError("message_not_found")
        self._own(ctx, msg, "cant_update_message")
        if self._streaming(msg):
            raise ApiError("streaming_state_conflict")
        text, blocks, markdown = self._content(ctx)
        if text is not None and len(text) > UPDATE_TEXT_MAX:
            raise ApiError("msg_too_long")
        before = copy.deepcopy(msg)
        if markdown is not None:
            msg.text, msg.blocks = markdown, None
        else:
            if text is not None:
                msg.text = text
                # Slack drops the old blocks when new text comes without blocks.
                msg.blocks = blocks
            elif blocks is not None:
                msg.blocks = blocks
        if "metadata" in ctx.params:
            metadata = ctx.json_param("metadata")
            msg.metadata = metadata or None
        msg.record("update")
        self.api.notify("update", msg, before)
        return {
            "ok": True,
            "channel": ch.id,
            "ts": msg.ts,
            "text": msg.text,
            "message": self.state.message_json(msg, ctx.root),
        }

    async def delete(self, ctx: CallContext) -> JSON:
        ctx.require_scope("chat:write")
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        msg = self.state.get(ch.id, ctx.required("ts"))
        if msg is None:
            raise ApiError("message_not_found")
        self._own(ctx, msg, "cant_delete_message")
        before = copy.deepcopy(msg)
        msg.deleted = True
        self.api.notify("delete", msg, before)
        return {"ok": True, "channel": ch.id, "ts": msg.ts}

    def _streaming(self, msg: Message) -> bool:
        stream = msg.stream
        if stream is None or stream.state != "streaming":
            return False
        timeout = self.api.options.stream_idle_timeout
        if timeout is not None and time.monotonic() - stream.last_activity > timeout:
            stream.state = "expired"
            return False
        return True

    def _stream_message(self, ctx: CallContext) -> Message:
        ctx.require_scope("chat:write")
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        msg = self.state.get(ch.id, ctx.required("ts"))
        if msg is None:
            raise ApiError("message_not_found")
        self._own(ctx, msg, "message_not_owned_by_app")
        if msg.stream is not None and msg.stream.state == "stopped_by_user":
            raise ApiError("stopped_by_user")
        if not self._streaming(msg):
            raise ApiError("message_not_in_streaming_state")
        return msg

    def _stream_text(self, ctx: CallContext) -> tuple[str, list[JSON]]:
        markdown = ctx.str_param("markdown_text") or ""
        if len(markdown) > MARKDOWN_TEXT_MAX:
            raise ApiError("msg_too_long")
        chunks = ctx.json_param("chunks")
        text = markdown + _chunks_text(chunks)
        return text, list(chunks or [])

    async def start_stream(self, ctx: CallContext) -> JSON:
        ctx.require_scope("chat:write")
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        if not ch.is_member:
            raise ApiError("not_in_channel")
        thread_ts = ctx.str_param("thread_ts")
        if thread_ts is None and self.api.options.stream_requires_thread_ts:
            raise ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: thread_ts"]},
            )
        if not ch.is_im:
            if not ctx.str_param("recipient_user_id"):
                raise ApiError("missing_recipient_user_id")
            if not ctx.str_param("recipient_team_id"):
                raise ApiError("missing_recipient_team_id")
        text, chunks = self._stream_text(ctx)
        stoppable = ctx.bool_param("is_stoppable")
        if stoppable and not self.api.options.stream_stop_subscribed:
            raise ApiError("not_subscribed_to_message_stream_stopped")
        now = time.monotonic()
        msg = self._bot_message(ctx, ch.id, text, thread_ts)
        msg.stream = StreamState(
            "streaming",
            ctx.str_param("recipient_user_id"),
            ctx.str_param("recipient_team_id"),
            now,
            now,
            chunks,
            stoppable=stoppable,
        )
        self.state.insert(msg, "stream_start")
        self._clear_status(ch.id, thread_ts)
        self.api.notify("post", msg)
        return {"ok": True, "channel": ch.id, "ts": msg.ts}

    async def append_stream(self, ctx: CallContext) -> JSON:
        msg = self._stream_message(ctx)
        if ctx.str_param("markdown_text") is None and ctx.params.get("chunks") is None:
            raise ApiError("invalid_arguments")
        text, chunks = self._stream_text(ctx)
        assert msg.stream is not None
        msg.text += text
        msg.stream.chunks.extend(chunks)
        msg.stream.appends += 1
        msg.stream.last_activity = time.monotonic()
        msg.record("stream_append")
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    async def stop_stream(self, ctx: CallContext) -> JSON:
        msg = self._stream_message(ctx)
        text, chunks = self._stream_text(ctx)
        blocks = _validate_blocks(ctx.json_param("blocks"))
        assert msg.stream is not None
        before = copy.deepcopy(msg)
        msg.text += text
        msg.stream.chunks.extend(chunks)
        msg.stream.state = "stopped"
        msg.stream.last_activity = time.monotonic()
        if blocks is not None:
            msg.blocks = blocks
        metadata = ctx.json_param("metadata")
        if metadata:
            msg.metadata = metadata
        msg.record("stream_stop")
        self.api.notify("update", msg, before)
        return {
            "ok": True,
            "channel": msg.channel,
            "ts": msg.ts,
            "message": self.state.message_json(msg, ctx.root),
        }

    async def set_status(self, ctx: CallContext) -> JSON:
        # Since 2026-03-05 either scope is accepted.
        ctx.require_scope("chat:write", "assistant:write")
        channel_id = ctx.str_param("channel_id")
        ch = self.state.channels.get(channel_id or "")
        if ch is None or ch.team_id != ctx.ws.team_id:
            raise ApiError("channel_not_found", detail="Invalid channel_id")
        thread_ts = ctx.str_param("thread_ts")
        if thread_ts is None or self.state.get(ch.id, thread_ts) is None:
            raise ApiError("invalid_thread_ts")
        status = str(ctx.params.get("status") or "")
        loading = ctx.json_param("loading_messages")
        if loading is not None:
            if not isinstance(loading, list) or len(loading) > 10 or not all(isinstance(m, str) for m in loading):
                raise ApiError("invalid_arguments", response_metadata={"messages": ["loading_messages: up to 10"]})
            self.loading_messages[(ch.id, thread_ts)] = loading
        self.state.statuses.setdefault((ch.id, thread_ts), []).append((status, time.time()))
        return {"ok": True}
