"""Kimi's errors, mapped to what the chat user should read and whether retrying can help."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import openai

_RETRY_AFTER = re.compile(r"try again after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Kind:
    retryable: bool
    text: str


KINDS: dict[str, _Kind] = {
    "auth": _Kind(False, "Kimi rejected this bot's API key. An admin needs to check MOONSHOT_API_KEY "
                  "(keys from platform.kimi.com and platform.kimi.ai are not interchangeable)."),
    "permission": _Kind(False, "Kimi refused access for this bot's account ({detail}). An admin needs to check it."),
    "not_found": _Kind(False, "Kimi's {model} service could not find what I asked it for (HTTP 404; an upload may "
                       "have expired). Please try again."),
    "model_not_found": _Kind(False, "The model `{model}` is not available to this Kimi account (it may be retired). "
                             "An admin can switch with `{prefix}model <id>`, e.g. `{prefix}model kimi-k2.6`."),
    "rate_limited": _Kind(True, "Kimi is rate-limiting this bot right now. Please try again{when}."),
    "quota": _Kind(False, "The Kimi account behind this bot is out of balance or quota. "
                   "An admin needs to top it up; answers resume once it is recharged."),
    "overloaded": _Kind(True, "Kimi is overloaded right now. Please try again in a minute."),
    "content_filter": _Kind(False, "Kimi declined this request: its content filter considered it high risk."),
    "context_too_long": _Kind(False, "This conversation is too long for the model even after trimming. "
                              "Use `reset` to start a fresh conversation."),
    "bad_request": _Kind(False, "Kimi rejected the request ({detail})."),
    "server": _Kind(True, "Kimi had a server error. Please try again."),
    "connection": _Kind(True, "I could not reach Kimi (network error). Please try again."),
    "timeout": _Kind(True, "Kimi took too long to answer. Please try again."),
    "stream_cut": _Kind(False, "Kimi's answer was cut off before it finished."),
}


class KimiError(Exception):
    def __init__(self, kind: str, *, detail: str = "", model: str = "", retry_after: float | None = None,
                 status: int | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.model = model
        self.retry_after = retry_after
        self.status = status
        super().__init__(f"{kind} ({status}): {detail}")

    @property
    def retryable(self) -> bool:
        return KINDS[self.kind].retryable

    @property
    def user_message(self) -> str:
        return self.message_for("!")

    def message_for(self, prefix: str) -> str:
        """The sentence for the chat, naming commands as the user's surface spells them (`!model`, `/model`)."""
        when = f" in {round(self.retry_after)} s" if self.retry_after else " in a moment"
        return KINDS[self.kind].text.format(model=self.model, detail=self.detail[:200], when=when, prefix=prefix)


def _body_error(exc: openai.APIStatusError) -> tuple[str, str]:
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("type") or ""), str(inner.get("message") or "")
    return "", str(exc.message)


def _retry_after(exc: openai.APIStatusError, message: str) -> float | None:
    header = exc.response.headers.get("retry-after") if exc.response is not None else None
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    match = _RETRY_AFTER.search(message)
    return float(match.group(1)) if match else None


def classify(exc: BaseException, *, model: str, endpoint: str = "chat") -> KimiError:
    """Turn an openai SDK exception into a KimiError. For `endpoint`s other than chat (files, tools), `model`
    names the service, and a 404 is a missing resource, not a missing model."""
    if isinstance(exc, KimiError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return KimiError("timeout", detail=str(exc), model=model)
    if isinstance(exc, openai.APIConnectionError):
        return KimiError("connection", detail=str(exc), model=model)
    if not isinstance(exc, openai.APIStatusError):
        return KimiError("stream_cut", detail=f"{type(exc).__name__}: {exc}", model=model)
    status = exc.status_code
    err_type, message = _body_error(exc)
    lowered = message.lower()
    kind: str
    if status == 401:
        kind = "auth"
    elif status == 403:
        kind = "permission"
    elif status == 404:
        kind = "model_not_found" if endpoint == "chat" else "not_found"
    elif status == 429:
        if err_type == "exceeded_current_quota_error" or "quota" in lowered or "suspended" in lowered:
            kind = "quota"
        elif err_type == "engine_overloaded_error":
            kind = "overloaded"
        else:
            kind = "rate_limited"
    elif err_type == "content_filter" or "high risk" in lowered:
        kind = "content_filter"
    elif status == 400 and ("token limit" in lowered or "token length too long" in lowered):
        kind = "context_too_long"
    elif status >= 500:
        kind = "server"
    else:
        kind = "bad_request"
    return KimiError(kind, detail=message, model=model, retry_after=_retry_after(exc, message), status=status)
