"""What a failed Slack call says, read defensively: the error body is not always JSON (a proxy's HTML page, an
empty body), and reading it must never raise in the code that is handling the failure."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError


def error_code(error: BaseException) -> str:
    """Slack's `error` field ("missing_scope", "ratelimited"), or the HTTP status, or the exception's type."""
    response = getattr(error, "response", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"http_{status}" if status else type(error).__name__


def retry_after_of(error: SlackApiError) -> float | None:
    """Retry-After seconds when `error` is a 429, else None."""
    response = error.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers = {k.lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
    try:
        return float(headers.get("retry-after", 1))
    except (TypeError, ValueError):
        return 1.0
