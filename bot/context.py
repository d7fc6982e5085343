"""Builds the messages of a Kimi request from stored history, within the model's token budget."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from storage.store import MediaKind, StoredAttachment, StoredMessage

# Kimi's tokenizer is not available offline; these estimates err on the high side so a request never overflows.
ASCII_CHARS_PER_TOKEN = 3.5
IMAGE_PATCH = 28
MESSAGE_OVERHEAD = 8
# Kimi's token cost for a video is dynamic and not published; a generous flat guess that calibration does not use
# (answers with a video are not observed).
VIDEO_TOKENS = 16_384
SUMMARY_HEADER = "Summary of the earlier part of this conversation (older messages were compacted):\n"


def estimate_text_tokens(text: str) -> int:
    # Runs over the whole history every turn: the common all-ASCII case stays in C.
    ascii_count = len(text) if text.isascii() else sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_count / ASCII_CHARS_PER_TOKEN) + (len(text) - ascii_count)


def estimate_image_tokens(width: int, height: int) -> int:
    return math.ceil(width / IMAGE_PATCH) * math.ceil(height / IMAGE_PATCH) + 16


def render_system_prompt(template: str, now: datetime) -> str:
    # str.replace, not str.format: operators' prompts may contain braces.
    return template.replace("{date}", now.strftime("%A, %d %B %Y (UTC)"))


@dataclass(slots=True)
class Turn:
    """One user message and everything that answered it; trimming drops whole turns."""

    messages: list[StoredMessage]
    tokens: int = 0
    wire: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq


@dataclass(slots=True)
class BuiltContext:
    messages: list[dict[str, Any]]
    estimated_tokens: int  # the guess, tool definitions included
    dropped: list[StoredMessage]
    images_omitted: int
    tool_tokens: int = 0  # the guess for the tool definitions alone
    uploads: list[int] = field(default_factory=list)


AttachmentLoader = Callable[[int], Awaitable[StoredAttachment | None]]


def group_turns(history: Sequence[StoredMessage]) -> list[Turn]:
    turns: list[Turn] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append(Turn(messages=[message]))
        else:
            turns[-1].messages.append(message)
    return turns


def _complete_tool_groups(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """Drop tool-call rounds whose results are missing (a crash mid-tool): Kimi rejects them."""
    kept: list[StoredMessage] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        if message.role == "assistant" and message.tool_calls:
            wanted = {call.get("id") for call in message.tool_calls}
            results = []
            probe = index + 1
            while probe < len(messages) and messages[probe].role == "tool":
                results.append(messages[probe])
                probe += 1
            if wanted == {r.tool_call_id for r in results}:
                kept.append(message)
                kept.extend(results)
            elif message.text:
                kept.append(_without_tools(message))
            index = probe
            continue
        if message.role != "tool":
            kept.append(message)
        index += 1
    return kept


def _without_tools(message: StoredMessage) -> StoredMessage:
    return replace(message, tool_calls=None)


@dataclass(slots=True)
class Layout:
    """A conversation's history as it would be sent: the fixed head (system prompt, summary, tool definitions)
    and its turns, each with its wire messages and guessed tokens. Compaction chooses how many of the oldest
    turns to leave out."""

    system: list[dict[str, Any]]
    fixed_tokens: int
    tool_tokens: int
    turns: list[Turn]
    images_omitted: int
    uploads: list[int] = field(default_factory=list)  # videos sent by upload id with the current question

    @property
    def tokens(self) -> int:
        return self.fixed_tokens + sum(turn.tokens for turn in self.turns)

    def oldest_to_drop(self, limit: int, scale: Callable[[int], int] = lambda guess: guess) -> int:
        """How many of the oldest turns to leave out so the rest fits `limit` (guesses corrected by `scale`).
        The newest turn (the question being answered) always stays; the engine caps its size beforehand."""
        total = self.fixed_tokens
        kept = 0
        for index, turn in enumerate(reversed(self.turns)):
            if index > 0 and scale(total + turn.tokens) > limit:
                break
            total += turn.tokens
            kept += 1
        return len(self.turns) - kept

    def messages(self, drop: int = 0) -> list[dict[str, Any]]:
        return self.system + [wire for turn in self.turns[drop:] for wire in turn.wire]

    def context(self, drop: int = 0) -> BuiltContext:
        kept = self.turns[drop:]
        return BuiltContext(
            messages=self.messages(drop),
            estimated_tokens=self.fixed_tokens + sum(turn.tokens for turn in kept),
            dropped=[m for turn in self.turns[:drop] for m in turn.messages],
            images_omitted=self.images_omitted,
            tool_tokens=self.tool_tokens,
            uploads=self.uploads,
        )


class ContextBuilder:
    def __init__(self, load_attachment: AttachmentLoader, *, max_prompt_tokens: int, max_images: int) -> None:
        self._load = load_attachment
        self._max_prompt_tokens = max_prompt_tokens
        self._max_images = max_images

    async def build(self, history: Sequence[StoredMessage], *, system_prompt: str, summary: str | None,
                    tools: Sequence[dict[str, Any]], multi_author: bool) -> BuiltContext:
        """The newest turns that fit the prompt budget by the plain guess."""
        layout = await self.layout(history, system_prompt=system_prompt, summary=summary, tools=tools,
                                   multi_author=multi_author)
        return layout.context(layout.oldest_to_drop(self._max_prompt_tokens))

    async def layout(self, history: Sequence[StoredMessage], *, system_prompt: str, summary: str | None,
                     tools: Sequence[dict[str, Any]], multi_author: bool,
                     media: Mapping[int, tuple[MediaKind, str]] | None = None) -> Layout:
        """`media`: kind and name of the history's attachments, when known, so old videos are described
        without loading their bytes."""
        system = [{"role": "system", "content": system_prompt}]
        if summary:
            system.append({"role": "system", "content": SUMMARY_HEADER + summary})
        tool_tokens = estimate_text_tokens(json.dumps(list(tools))) if tools else 0
        fixed = sum(estimate_text_tokens(m["content"]) + MESSAGE_OVERHEAD for m in system) + tool_tokens
        turns = group_turns(_complete_tool_groups([m for m in history if _worth_sending(m)]))
        image_budget = self._max_images
        images_omitted = 0
        # Newest first: recent turns keep their images and are the last to be trimmed.
        uploads: list[int] = []
        for turn in reversed(turns):
            for message in turn.messages:
                wire, tokens, used, omitted = await self._wire(message, image_budget, multi_author,
                                                               current=turn is turns[-1], uploads=uploads,
                                                               media=media or {})
                image_budget -= used
                images_omitted += omitted
                turn.wire.append(wire)
                turn.tokens += tokens
        return Layout(system=system, fixed_tokens=fixed, tool_tokens=tool_tokens, turns=turns,
                      images_omitted=images_omitted, uploads=uploads)

    async def _wire(self, message: StoredMessage, image_budget: int, multi_author: bool, *, current: bool,
                    uploads: list[int], media: Mapping[int, tuple[MediaKind, str]]
                    ) -> tuple[dict[str, Any], int, int, int]:
        """The message as Kimi takes it. Videos go only with the question they came with (`current`); the ids of
        uploaded ones sent are added to `uploads`."""
        text = message.text
        if message.role == "user" and multi_author and message.author:
            text = f"[{message.author}] {text}"
        if message.role == "tool":
            wire = {"role": "tool", "tool_call_id": message.tool_call_id, "name": message.tool_name,
                    "content": text or "(no output)"}
            return wire, estimate_text_tokens(wire["content"]) + MESSAGE_OVERHEAD, 0, 0
        if message.role == "assistant":
            wire: dict[str, Any] = {"role": "assistant", "content": text}
            tokens = estimate_text_tokens(text) + MESSAGE_OVERHEAD
            if message.tool_calls:
                wire["tool_calls"] = message.tool_calls
                tokens += estimate_text_tokens(json.dumps(message.tool_calls))
                if message.reasoning is not None:
                    wire["reasoning_content"] = message.reasoning
                    tokens += estimate_text_tokens(message.reasoning)
            return wire, tokens, 0, 0
        if not message.media_ids:
            return {"role": message.role, "content": text}, estimate_text_tokens(text) + MESSAGE_OVERHEAD, 0, 0
        parts: list[dict[str, Any]] = []
        tokens = MESSAGE_OVERHEAD
        used = omitted = 0
        notes: list[str] = []
        for attachment_id in message.media_ids:
            known = media.get(attachment_id)
            if known is not None and known[0] is MediaKind.VIDEO and not current:
                notes.append(_earlier_video(known[1]))
                continue
            attachment = await self._load(attachment_id) if used < image_budget else None
            if attachment is None:
                omitted += 1
            elif attachment.kind is MediaKind.VIDEO:
                part = _video_part(attachment) if current else None
                if part is None:
                    notes.append(_earlier_video(attachment.filename))
                else:
                    parts.append(part)
                    tokens += VIDEO_TOKENS
                    if attachment.remote_id is not None:
                        uploads.append(attachment.id)
            else:
                used += 1
                encoded = base64.b64encode(attachment.data).decode("ascii")
                parts.append({"type": "image_url",
                              "image_url": {"url": f"data:{attachment.mime};base64,{encoded}"}})
                tokens += estimate_image_tokens(attachment.width, attachment.height)
        if omitted:
            notes.append(f"[{omitted} earlier attachment(s) not resent to save context]")
        text = "\n".join([text, *notes]).strip()
        if text:
            tokens += estimate_text_tokens(text)
        if not parts:
            return {"role": message.role, "content": text or "(attachment)"}, tokens, used, omitted
        if text:
            parts.append({"type": "text", "text": text})
        return {"role": message.role, "content": parts}, tokens, used, omitted


def _earlier_video(filename: str) -> str:
    return f"[video {filename} from an earlier message is not resent]"


def _video_part(attachment: StoredAttachment) -> dict[str, Any] | None:
    """Inline bytes, or the upload's `ms://` id while it lives (deleted once its answer ends)."""
    if attachment.remote_id is not None:
        return {"type": "video_url", "video_url": {"url": f"ms://{attachment.remote_id}"}}
    if not attachment.data:
        return None
    encoded = base64.b64encode(attachment.data).decode("ascii")
    return {"type": "video_url", "video_url": {"url": f"data:{attachment.mime};base64,{encoded}"}}


def _worth_sending(message: StoredMessage) -> bool:
    if message.role == "system":
        return False
    if message.role == "assistant" and not message.text and not message.tool_calls:
        return False  # a failed turn that showed nothing
    return not (message.role == "user" and not message.text and not message.media_ids)


def utc_now() -> datetime:
    return datetime.now(UTC)
