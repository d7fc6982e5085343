"""Read methods: auth.test, conversations.replies/history/info, users.info, files.info."""

from __future__ import annotations

import base64
import binascii

from tests.fakes.slack_state import JSON, Message
from tests.fakes.slack_web import ApiError, CallContext, WebApi

DEFAULT_LIMIT = 1000


def _encode_cursor(ts: str) -> str:
    # Real cursors are base64 of "next_ts:<digits>"; clients must treat them as opaque.
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError("invalid_cursor") from exc
    if not raw.startswith("next_ts:"):
        raise ApiError("invalid_cursor")
    return raw.removeprefix("next_ts:")


class ReadMethods:
    def __init__(self, api: WebApi) -> None:
        self.api = api
        self.state = api.state
        api.handlers.update(
            {
                "auth.test": self.auth_test,
                "conversations.replies": self.replies,
                "conversations.history": self.history,
                "conversations.info": self.info,
                "users.info": self.users_info,
                "files.info": self.files_info,
            }
        )

    async def auth_test(self, ctx: CallContext) -> JSON:
        ws = ctx.ws
        # Bolt builds authorize_result.bot_scopes from this header.
        ctx.response_headers["x-oauth-scopes"] = ",".join(ws.scopes)
        return {
            "ok": True,
            "url": f"https://{ws.domain}.slack.com/",
            "team": ws.name,
            "user": ws.bot_name,
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    def _limit(self, ctx: CallContext) -> int:
        raw = ctx.str_param("limit")
        try:
            limit = int(raw) if raw is not None else DEFAULT_LIMIT
        except ValueError as exc:
            raise ApiError("invalid_limit") from exc
        limit = max(1, min(limit, DEFAULT_LIMIT))
        cap = self.api.options.replies_limit_cap
        return min(limit, cap) if cap is not None else limit

    def _window(self, ctx: CallContext, messages: list[Message]) -> list[Message]:
        oldest = float(ctx.str_param("oldest") or 0)
        latest_raw = ctx.str_param("latest")
        latest = float(latest_raw) if latest_raw else float("inf")
        inclusive = ctx.bool_param("inclusive")

        def inside(m: Message) -> bool:
            t = float(m.ts)
            return oldest <= t <= latest if inclusive else oldest < t < latest

        return [m for m in messages if inside(m)]

    def _page(self, ctx: CallContext, messages: list[Message], key: str) -> JSON:
        """Paginate `messages` (already in answer order) by the ts the cursor points at."""
        cursor = ctx.str_param("cursor")
        if cursor:
            start_ts = _decode_cursor(cursor)
            idx = next((i for i, m in enumerate(messages) if m.ts == start_ts), None)
            if idx is None:
                raise ApiError("invalid_cursor")
            messages = messages[idx:]
        limit = self._limit(ctx)
        page, rest = messages[:limit], messages[limit:]
        body: JSON = {
            "ok": True,
            key: [self.state.message_json(m, ctx.root) for m in page],
            "has_more": bool(rest),
        }
        body["response_metadata"] = {"next_cursor": _encode_cursor(rest[0].ts) if rest else ""}
        return body

    async def replies(self, ctx: CallContext) -> JSON:
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        ctx.require_scope(ch.history_scope)
        ts = ctx.str_param("ts")
        if ts is None:
            raise ApiError("thread_not_found")
        target = self.state.get(ch.id, ts)
        if target is None:
            raise ApiError("thread_not_found")
        thread_ts = target.thread_ts or target.ts
        thread = self.state.thread(ch.id, thread_ts) if target.thread_ts else [target]
        parent, replies = thread[:1], self._window(ctx, thread[1:])
        return self._page(ctx, parent + replies, "messages")

    async def history(self, ctx: CallContext) -> JSON:
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        ctx.require_scope(ch.history_scope)
        top = [
            m
            for m in self.state.channel_messages(ch.id)
            if m.thread_ts is None or m.thread_ts == m.ts or m.subtype == "thread_broadcast"
        ]
        newest_first = list(reversed(self._window(ctx, top)))
        return self._page(ctx, newest_first, "messages")

    async def info(self, ctx: CallContext) -> JSON:
        ch = self.api.channel(ctx, ctx.str_param("channel"))
        return {"ok": True, "channel": ch.to_json()}

    async def users_info(self, ctx: CallContext) -> JSON:
        ctx.require_scope("users:read")
        user = self.state.users.get(ctx.str_param("user") or "")
        if user is None:
            raise ApiError("user_not_found")
        return {"ok": True, "user": user.to_json(ctx.bool_param("include_locale"))}

    async def files_info(self, ctx: CallContext) -> JSON:
        ctx.require_scope("files:read")
        f = self.state.files.get(ctx.str_param("file") or "")
        # A file the bot cannot see is indistinguishable from one that does not exist.
        if f is None or f.team_id != ctx.ws.team_id or not f.bot_can_access:
            raise ApiError("file_not_found")
        return {
            "ok": True,
            "file": f.to_json(ctx.root),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }
