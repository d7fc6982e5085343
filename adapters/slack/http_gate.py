"""The HTTP front door for Slack requests: every check Bolt would otherwise make *after* parsing, made before.

Bolt's aiohttp adapter decodes and parses the body before verifying its signature, so unsigned garbage (a
non-numeric timestamp, invalid UTF-8, broken JSON) became HTTP 500 with a traceback, and its verifier logs the
full body of every forged request at INFO. Here a request is refused with a 4xx and one log line without its
body unless it is small enough, signed, fresh, UTF-8 and parseable; only then does Bolt see it (and verify it
again). The body limit fits what Slack can send: a 40,000-character message with its blocks, escaped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from aiohttp import web

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
STALE_AFTER = 300  # seconds; Slack's own rule for the request timestamp


@dataclass(frozen=True, slots=True)
class Admitted:
    body: str


class RequestGate:
    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time,
                 on_refused: Callable[[int], object] | None = None) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock
        self._on_refused = on_refused
        self.rejected: Counter[str] = Counter()

    def _sign(self, timestamp: str, raw: bytes) -> bytes:
        """Slack's v0 signature over the raw bytes. (slack_sdk's verifier decodes the body as UTF-8 first, so
        an unsigned non-UTF-8 body would raise there instead of being refused.)"""
        digest = hmac.new(self._secret, b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
        return f"v0={digest}".encode()

    async def admit(self, request: web.Request) -> Admitted | web.Response:
        """The verified body as text, or the 4xx response to send instead."""
        declared = request.content_length
        if declared is not None and declared > MAX_BODY_BYTES:
            return self.refuse(request, 413, "body too large", level=logging.WARNING, size=declared)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self.refuse(request, 413, "body too large", level=logging.WARNING)
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or not signature:
            return self.refuse(request, 401, "missing or malformed signature headers")
        if abs(self._clock() - int(timestamp)) > STALE_AFTER:
            return self.refuse(request, 401, "stale timestamp")
        if not hmac.compare_digest(self._sign(timestamp, raw), signature.encode("ascii", "replace")):
            return self.refuse(request, 401, "bad signature")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self.refuse(request, 400, "body is not UTF-8")
        if not _parses(body, request.content_type):
            return self.refuse(request, 400, "body does not parse")
        return Admitted(body)

    def refuse(self, request: web.Request, status: int, reason: str, *, level: int = logging.INFO,
                size: int | None = None) -> web.Response:
        self.rejected[reason] += 1
        if self._on_refused is not None:
            self._on_refused(status)
        log.log(level, "slack request rejected", extra={
            "reason": reason, "status": status, "path": request.path, "remote": request.remote,
            "bytes": size if size is not None else request.content_length,
            "rejected_total": sum(self.rejected.values())})
        return web.json_response({"ok": False, "error": reason}, status=status)


def _parses(body: str, content_type: str) -> bool:
    """Events come as JSON; slash commands and interactivity as a form (with a JSON `payload` field)."""
    try:
        if content_type == "application/json":
            return isinstance(json.loads(body), dict)
        form = parse_qs(body, keep_blank_values=True, strict_parsing=bool(body))
        if "payload" in form:
            return isinstance(json.loads(form["payload"][0]), dict)
        return True
    except ValueError:
        return False
