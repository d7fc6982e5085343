"""The "Ask Kimi about this" message shortcut: a form asks for the question, and the answer comes in the
message's thread as a conversation that quotes the message (its files included).

The form carries what the answer needs in its private_metadata (the message's place, author, text and file
ids: Slack limits it to 3,000 characters), so whichever replica receives the submission can answer. The question
is posted in the thread first, visibly, as `/kimi` does; where the bot cannot post (it is not in the channel),
the conversation moves to the user's DM with the bot and says so.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack.errors import error_code
from adapters.slack.events import PLATFORM
from adapters.slack.render import escape
from bot.types import IncomingMessage

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger(__name__)

SHORTCUT = "kimi_ask_about"
FORM = "kimi_ask_about_form"
QUESTION = "question"
QUOTE_MAX = 2000  # of the message's text kept in the form (private_metadata holds 3,000 characters)
Ack = Any


def quoted(text: str, lines: int = 20) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines()[:lines]) or "> (no text)"


class AskAbout:
    def __init__(self, adapter: SlackAdapter) -> None:
        self._adapter = adapter
        adapter.app.shortcut(SHORTCUT)(self._on_shortcut)
        adapter.app.view(FORM)(self._on_form)

    async def _on_shortcut(self, ack: Ack, body: dict[str, Any]) -> None:
        await ack()
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        channel = (body.get("channel") or {}).get("id")
        trigger, team = body.get("trigger_id"), (body.get("team") or {}).get("id")
        ts = message.get("ts") or body.get("message_ts")
        if not all(isinstance(v, str) for v in (channel, trigger, team, ts)):
            log.info("message shortcut of an unexpected shape ignored")
            return
        place = {"team": team, "channel": channel, "ts": ts, "thread_ts": message.get("thread_ts"),
                 "author": message.get("user") or message.get("bot_id") or "",
                 "files": [f["id"] for f in message.get("files") or [] if isinstance(f, dict) and f.get("id")][:10],
                 "text": str(message.get("text") or "")[:QUOTE_MAX]}
        metadata = json.dumps(place, separators=(",", ":"))
        while len(metadata) > 3000:  # escapes can lengthen the text past the limit
            place["text"] = place["text"][: len(place["text"]) * 3 // 4]
            metadata = json.dumps(place, separators=(",", ":"))
        form = {
            "type": "modal", "callback_id": FORM, "private_metadata": metadata,
            "title": {"type": "plain_text", "text": "Ask Kimi"}, "submit": {"type": "plain_text", "text": "Ask"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [
                {"type": "context", "elements": [{"type": "mrkdwn", "text": quoted(place["text"], 5)[:1900]}]},
                {"type": "input", "block_id": QUESTION, "label": {"type": "plain_text", "text": "Your question"},
                 "element": {"type": "plain_text_input", "action_id": QUESTION, "multiline": True,
                             "max_length": 3000, "placeholder": {"type": "plain_text",
                                                                 "text": "What would you like to know about it?"}}},
            ],
        }
        await self._adapter.allowances.for_team(team).views.acquire(final=True)
        try:
            await self._adapter.client(team).views_open(trigger_id=trigger, view=form)
        except SlackApiError as error:
            log.info("ask-about form not opened", extra={"error": error_code(error)})

    async def _on_form(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        user = (body.get("user") or {}).get("id")
        try:
            place = json.loads(str(view.get("private_metadata") or ""))
        except ValueError:
            place = None
        values = ((view.get("state") or {}).get("values") or {}).get(QUESTION) or {}
        question = str((values.get(QUESTION) or {}).get("value") or "").strip()
        if not isinstance(place, dict) or not isinstance(user, str) or not question:
            log.info("ask-about form of an unexpected shape ignored")
            return
        self._adapter.deliveries += 1
        self._adapter.spawn(self._answer(place, user, question, str(view.get("id") or "")), name="slack-ask-about")

    async def _answer(self, place: dict[str, Any], user: str, question: str, view_id: str) -> None:
        adapter = self._adapter
        team, channel = str(place.get("team") or ""), str(place.get("channel") or "")
        thread = str(place.get("thread_ts") or place.get("ts") or "")
        author = await adapter.names.user(team, str(place.get("author") or "")) if place.get("author") else "someone"
        about = await adapter.names.readable(team, str(place.get("text") or ""))
        text = f"About this message from {author}:\n{quoted(about)}\n\n{question}"
        probe = IncomingMessage(platform=PLATFORM, workspace=team, channel=channel, thread=thread, message_id="",
                                user=user, text=text, mentioned=True, is_dm=channel.startswith("D"))
        decision = adapter.access.check(probe)
        if not decision.allowed:
            await self._tell(team, user, decision.reason)
            return
        posted = await self._post_question(team, channel, thread, user, question)
        if posted is None:  # not in that channel: the user's DM with the bot instead
            posted = await self._post_question(team, user, None, user, question, moved_from=channel)
            if posted is None:
                return
            channel, thread = posted
        else:
            channel, thread = posted[0], thread
        files = [{"id": f, "file_access": "check_file_info"} for f in place.get("files") or [] if isinstance(f, str)]
        attachments = await adapter.files(team).attachments(files, None) if files else ()
        message = IncomingMessage(platform=PLATFORM, workspace=team, channel=channel, thread=thread,
                                  message_id=posted[1], user=user, text=text, attachments=attachments,
                                  mentioned=True, is_dm=channel.startswith("D"),
                                  user_name=await adapter.names.user(team, user),
                                  dedupe_keys=(f"ask-about:{view_id}",) if view_id else (),
                                  reply=adapter.reply_address(team, channel, thread, user))
        surface = adapter.surface(team, channel, thread, user)
        try:
            await adapter.services.engine.handle(message, surface, access=adapter.access,
                                                 command_prefix=f"{adapter.config.slash_command} ")
        finally:
            surface.release()

    async def _post_question(self, team: str, channel: str, thread: str | None, user: str, question: str,
                             moved_from: str | None = None) -> tuple[str, str] | None:
        """Post the user's question where the answer goes; (channel, ts) of the post, None if not allowed."""
        adapter = self._adapter
        where = f" (I'm not in <#{moved_from}>, so I answer here)" if moved_from else ""
        text = f"<@{user}> asked Kimi about this message{where}:\n{quoted(escape(question))}"
        await adapter.allowances.for_team(team).post(channel).acquire(final=True)
        try:
            response = await adapter.client(team).chat_postMessage(channel=channel, text=text,
                                                              **({"thread_ts": thread} if thread else {}))
        except SlackApiError as error:
            log.info("ask-about question not posted", extra={"error": error_code(error)})
            return None
        return str(response["channel"]), str(response["ts"])

    async def _tell(self, team: str, user: str, text: str) -> None:
        try:
            await self._adapter.client(team).chat_postMessage(channel=user, text=text)
        except SlackApiError as error:
            log.info("ask-about refusal not delivered", extra={"error": error_code(error)})
