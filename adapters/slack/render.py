"""Kimi's Markdown → what Slack renders.

Default (`text_format = "markdown"`): send the Markdown unchanged as `markdown_text` (chat.postMessage,
chat.update and the native stream methods all accept it, up to 12,000 characters). Slack renders standard
Markdown itself: bold, italics, links, lists, headings, code fences with their language. Nothing is lost in a
lossy conversion, the native-stream lane and the edit lane look identical (so a fallback mid-answer does not
change the look), and the length the publisher measures is the length Slack checks.

`text_format = "mrkdwn"` converts to classic mrkdwn in `text` for workspaces that want it. Conversion can
lengthen text (`&`, `<`, `>` become entities), so a write whose rendered text would exceed chat.update's
4,000 characters goes out as `markdown_text` instead of failing.
"""

from __future__ import annotations

import re
from typing import Any

UPDATE_TEXT_MAX = 4000
_FENCE = re.compile(r"^(\s*)(```|~~~)[^\n]*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_HR = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")


def escape(text: str) -> str:
    """Slack's three control characters; nothing else may be entity-encoded."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Incoming message text carries the three escapes; Kimi should read the characters."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _inline(line: str) -> str:
    spans: list[str] = []

    def keep(replacement: str) -> str:
        spans.append(replacement)
        return f"\x00{len(spans) - 1}\x00"

    line = _INLINE_CODE.sub(lambda m: keep(f"`{escape(m.group(2))}`"), line)
    line = _LINK.sub(lambda m: keep(f"<{m.group(2)}|{escape(m.group(1))}>"), line)
    line = escape(line)
    heading = _HEADING.match(line)
    if heading:
        line = f"\x01{heading.group(1)}\x01"
    elif _HR.match(line):
        return "──────────"
    else:
        line = _BULLET.sub(lambda m: f"{m.group(1)}• ", line)
    line = _BOLD.sub(lambda m: f"\x01{m.group(2)}\x01", line)
    line = _ITALIC.sub(lambda m: f"_{m.group(1)}_", line)
    line = _STRIKE.sub(lambda m: f"~{m.group(1)}~", line)
    line = line.replace("\x01", "*")
    return re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], line)


def to_mrkdwn(markdown: str) -> str:
    """Convert Markdown to Slack mrkdwn; code blocks keep their content (fence language tags are dropped)."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        match = _FENCE.match(line)
        if match and (fence is None or line.strip().startswith(fence)):
            if fence is None:
                fence = match.group(2)
                out.append(match.group(1) + "```")
            else:
                fence = None
                out.append(match.group(1) + "```")
            continue
        out.append(escape(line) if fence is not None else _inline(line))
    return "\n".join(out)


FEEDBACK_ACTION = "kimi_feedback"
SECTION_TEXT_MAX = 3000


def feedback_block(turn_id: int) -> dict[str, Any]:
    """Slack's native rating buttons under an answer; each value names the turn it rates."""
    def button(label: str, value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": label}, "accessibility_label": f"{label} answer",
                "value": f"{value}:{turn_id}"}
    return {"type": "context_actions", "elements": [{
        "type": "feedback_buttons", "action_id": FEEDBACK_ACTION,
        "positive_button": button("Good", "up"), "negative_button": button("Bad", "down")}]}


def message_fields(text: str, text_format: str, *, turn_id: int | None = None) -> dict[str, Any]:
    """The content arguments of chat.postMessage / chat.update for `text`, with rating buttons for `turn_id`
    (blocks then carry the text: Slack takes `markdown_text` only alone)."""
    if turn_id is not None:
        return {"text": text[:UPDATE_TEXT_MAX], "blocks": [*_text_blocks(text, text_format), feedback_block(turn_id)]}
    if text_format == "mrkdwn":
        rendered = to_mrkdwn(text)
        if len(rendered) <= UPDATE_TEXT_MAX:
            return {"text": rendered}
    return {"markdown_text": text}


def _text_blocks(text: str, text_format: str) -> list[dict[str, Any]]:
    if text_format != "mrkdwn":
        return [{"type": "markdown", "text": text}]
    rendered, blocks = to_mrkdwn(text), []
    while rendered:  # a section holds at most 3,000 characters: cut at a line break where one is near
        cut = len(rendered) if len(rendered) <= SECTION_TEXT_MAX else (
            rendered.rfind("\n", SECTION_TEXT_MAX // 2, SECTION_TEXT_MAX) + 1 or SECTION_TEXT_MAX)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": rendered[:cut]}})
        rendered = rendered[cut:]
    return blocks
