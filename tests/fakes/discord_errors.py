"""Discord's JSON error bodies and the message-size rules it enforces server-side (discord.py checks none)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.discord_payloads import Json, error_body, field_error

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
EMBED_FIELD_LIMITS = {"title": 256, "description": 4096}
MAX_FIELDS = 25


class DiscordHTTPError(Exception):
    """Raised by route handlers; the front door turns it into Discord's `{"code","message","errors"}` body."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> Json:
        return error_body(self.code, self.message, self.errors)


def unknown(kind: str, code: int) -> DiscordHTTPError:
    return DiscordHTTPError(404, code, f"Unknown {kind}")


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py compares Content-Type with ==; aiohttp's "; charset=utf-8" would make it treat JSON as text.
    response = web.Response(body=json.dumps(body).encode(), status=status, headers=headers)
    response.headers["Content-Type"] = "application/json"
    return response


def empty_response(headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=204, headers=headers)


ACTION_ROW, BUTTON, LINK_STYLE = 1, 2, 5
MAX_ROWS, MAX_BUTTONS, MAX_CUSTOM_ID, MAX_LABEL = 5, 5, 100, 80


def component_errors(components: Any) -> Json | None:
    """message.mdx / component-reference.mdx limits on a message's buttons, as Discord's 50035 errors."""
    def error(message: str) -> Json:
        return {"_errors": [{"code": "COMPONENT_INVALID", "message": message}]}

    if not isinstance(components, list) or len(components) > MAX_ROWS:
        return error(f"Must be a list of at most {MAX_ROWS} action rows.")
    seen: set[str] = set()
    for i, row in enumerate(components):
        buttons = row.get("components") if isinstance(row, dict) else None
        if not isinstance(row, dict) or row.get("type") != ACTION_ROW or not isinstance(buttons, list):
            return {str(i): error("Expected an action row.")}
        if not 1 <= len(buttons) <= MAX_BUTTONS:
            return {str(i): error(f"An action row holds 1 to {MAX_BUTTONS} buttons.")}
        for button in buttons:
            if not isinstance(button, dict) or button.get("type") != BUTTON:
                return {str(i): error("Only buttons are checked by this fake.")}
            if not button.get("label") and not button.get("emoji"):
                return {str(i): error("A button needs a label or an emoji.")}
            if len(str(button.get("label") or "")) > MAX_LABEL:
                return {str(i): error(f"A label is at most {MAX_LABEL} characters.")}
            if button.get("style") != LINK_STYLE:
                custom_id = button.get("custom_id")
                if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
                    return {str(i): error(f"custom_id must be 1 to {MAX_CUSTOM_ID} characters.")}
                if custom_id in seen:
                    return {str(i): error("Component custom id cannot be duplicated")}
                seen.add(custom_id)
    return None


def validate_message_body(body: Json, *, creating: bool, has_files: bool) -> None:
    """Raises 400/50035 (or 50006 for an empty create) exactly where Discord would reject the body."""
    errors: Json = {}
    content = body.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        errors["content"] = field_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    embeds = body.get("embeds")
    if embeds is None and body.get("embed") is not None:
        embeds = [body["embed"]]
    if isinstance(embeds, list):
        if len(embeds) > MAX_EMBEDS:
            errors["embeds"] = field_error(
                "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
            )
        else:
            embed_errors = {str(i): e for i, embed in enumerate(embeds) if (e := _embed_errors(embed))}
            if embed_errors:
                errors["embeds"] = embed_errors
            elif sum(embed_size(e) for e in embeds) > MAX_EMBED_TOTAL:
                # The 6000-character cap is across all embeds of one message (message.mdx "Embed Limits").
                errors["embeds"] = field_error(
                    "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}"
                )
    if body.get("components"):
        if (component_error := component_errors(body["components"])) is not None:
            errors["components"] = component_error
    if errors:
        raise DiscordHTTPError(400, 50035, "Invalid Form Body", errors)
    if (
        creating
        and not has_files
        and not content
        and not embeds
        and not body.get("components")
        and not body.get("sticker_ids")
        and not body.get("poll")
    ):
        raise DiscordHTTPError(400, 50006, "Cannot send an empty message")


def _embed_errors(embed: Json) -> Json:
    errors: Json = {}
    for key, limit in EMBED_FIELD_LIMITS.items():
        value = embed.get(key)
        if isinstance(value, str) and len(value) > limit:
            errors[key] = field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    fields = embed.get("fields") or []
    if len(fields) > MAX_FIELDS:
        errors["fields"] = field_error("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FIELDS} or fewer in length.")
    for i, fld in enumerate(fields[:MAX_FIELDS]):
        field_errs: Json = {}
        for key, limit in (("name", 256), ("value", 1024)):
            if len(str(fld.get(key, ""))) > limit:
                field_errs[key] = field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
        if field_errs:
            errors.setdefault("fields", {})[str(i)] = field_errs
    footer_text = (embed.get("footer") or {}).get("text", "")
    if len(footer_text) > 2048:
        errors["footer"] = {"text": field_error("BASE_TYPE_MAX_LENGTH", "Must be 2048 or fewer in length.")}
    author_name = (embed.get("author") or {}).get("name", "")
    if len(author_name) > 256:
        errors["author"] = {"name": field_error("BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")}
    return errors


def embed_size(embed: Json) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text", "")) + len(
        (embed.get("author") or {}).get("name", "")
    )
    for fld in embed.get("fields") or []:
        total += len(str(fld.get("name", ""))) + len(str(fld.get("value", "")))
    return total
