"""Kimi's error envelope and the canned failures the fake can inject (reference §7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ORG = "org-fake0000000000000000"
AK = "ak-fake0000000000000000"

IMMEDIATE_FAULTS = frozenset(
    {"auth", "not_found", "rate_limit", "quota", "overloaded", "server", "content_filter", "context"}
)
FAULT_KINDS = IMMEDIATE_FAULTS | {"cut", "hang", "stall"}


class KimiError(Exception):
    """Raised anywhere while handling a request; turned into Kimi's JSON error body."""

    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type

    def response(self) -> web.Response:
        body = {"error": {"message": self.message, "type": self.error_type}}
        return web.json_response(body, status=self.status)


def invalid(message: str) -> KimiError:
    return KimiError(400, message)


def auth_error() -> KimiError:
    return KimiError(401, "Invalid Authentication", "invalid_authentication_error")


def model_not_found(model: str) -> KimiError:
    return KimiError(404, f"Not found the model {model} or Permission denied", "resource_not_found_error")


def context_overflow(window: int, requested: int) -> KimiError:
    return invalid(
        f"Invalid request: Your request exceeded model token limit: {window} (requested: {requested})"
    )


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass
class Fault:
    """One injected failure, consumed by one /chat/completions request."""

    kind: str
    kw: dict[str, Any] = field(default_factory=dict)
    when: Callable[[dict[str, Any]], bool] | None = None

    def error(self, *, model: str, window: int, requested: int) -> KimiError:
        custom = self.kw.get("message")
        kind = self.kind
        if kind == "auth":
            err = auth_error()
        elif kind == "not_found":
            err = model_not_found(model)
        elif kind == "rate_limit":
            retry_after = _num(float(self.kw.get("retry_after", 1)))
            err = KimiError(
                429,
                f"Your account {ORG}<{AK}> request reached organization max RPM: 3, "
                f"please try again after {retry_after} seconds",
                "rate_limit_reached_error",
            )
        elif kind == "quota":
            err = KimiError(
                429,
                f"Your account {ORG}<{AK}> is suspended, please check your plan and billing details",
                "exceeded_current_quota_error",
            )
        elif kind == "overloaded":
            err = KimiError(
                429, "The engine is currently overloaded, please try again later", "engine_overloaded_error"
            )
        elif kind == "server":
            err = KimiError(500, "Internal server error: unexpected output", "server_error")
        elif kind == "content_filter":
            err = KimiError(
                400, "The request was rejected because it was considered high risk", "content_filter"
            )
        elif kind == "context":
            err = context_overflow(window, max(requested, window + 1))
        else:  # pragma: no cover - guarded by fail_next
            raise ValueError(kind)
        if custom:
            err.message = str(custom)
        return err
