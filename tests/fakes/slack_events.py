"""Delivers signed Events API envelopes and slash commands to an app over HTTP, the way Slack does.

Slack wants a 2xx within 3 seconds. When it does not get one it retries the same event_id with
X-Slack-Retry-Num 1..3 (the first retry immediately, even while the first request is still running),
unless a non-2xx answer carried `X-Slack-No-Retry: 1`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

STALE_SECONDS = 600  # Bolt rejects timestamps more than 5 minutes away from now


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class Delivery:
    """One HTTP attempt. Unpacks as `(status, body, elapsed)`; status 0 means no HTTP answer at all."""

    kind: str
    url: str
    status: int
    body: str
    elapsed: float
    acked_in_time: bool
    event_id: str | None = None
    retry_num: int | None = None
    retry_reason: str | None = None
    no_retry: bool = False
    request_headers: dict[str, str] = field(default_factory=dict)
    payload: Any = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.body, self.elapsed))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class SenderOptions:
    signing_secret: str = "fake-signing-secret"
    ack_timeout: float = 3.0
    # Reported schedule: immediately, after ~1 minute, after ~5 minutes.
    retry_delays: Sequence[float] = (0.0, 60.0, 300.0)
    request_timeout: float = 30.0
    auto_retry: bool = False


class EventSender:
    def __init__(self, options: SenderOptions) -> None:
        self.options = options
        self.deliveries: list[Delivery] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.options.request_timeout),
            headers={"User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"},
        )

    async def drain(self) -> None:
        """Wait for background retries and late requests to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _headers(self, raw: bytes, content_type: str, bad_signature: bool, stale: bool) -> dict[str, str]:
        now = int(time.time()) - (STALE_SECONDS if stale else 0)
        secret = self.options.signing_secret
        if bad_signature:
            secret = secret + "-forged"
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": signature(secret, str(now), raw),
        }

    async def _attempt(
        self,
        kind: str,
        url: str,
        raw: bytes,
        content_type: str,
        *,
        event_id: str | None,
        retry_num: int | None,
        retry_reason: str | None,
        bad_signature: bool,
        stale: bool,
        payload: Any,
    ) -> Delivery:
        assert self._session is not None, "fake not started"
        headers = self._headers(raw, content_type, bad_signature, stale)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        start = time.monotonic()
        status, body, no_retry = 0, "", False
        try:
            async with self._session.post(url, data=raw, headers=headers) as resp:
                status = resp.status
                body = await resp.text()
                no_retry = resp.headers.get("X-Slack-No-Retry") == "1"
        except (aiohttp.ClientError, TimeoutError) as exc:
            body = f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - start
        delivery = Delivery(
            kind,
            url,
            status,
            body,
            elapsed,
            acked_in_time=200 <= status < 300 and elapsed <= self.options.ack_timeout,
            event_id=event_id,
            retry_num=retry_num,
            retry_reason=retry_reason,
            no_retry=no_retry,
            request_headers=headers,
            payload=payload,
        )
        self.deliveries.append(delivery)
        log.debug(
            "fake slack delivery",
            extra={"kind": kind, "status": status, "event_id": event_id, "retry_num": retry_num},
        )
        return delivery

    async def send_event(
        self,
        url: str,
        envelope: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        stale_timestamp: bool = False,
        auto_retry: bool | None = None,
    ) -> Delivery:
        raw = json.dumps(envelope).encode()
        event_id = envelope.get("event_id")
        kwargs: dict[str, Any] = {
            "event_id": event_id,
            "bad_signature": bad_signature,
            "stale": stale_timestamp,
            "payload": envelope,
        }
        first = self.spawn(
            self._attempt(
                "event",
                url,
                raw,
                "application/json",
                retry_num=retry_num,
                retry_reason=retry_reason,
                **kwargs,
            )
        )
        retry = self.options.auto_retry if auto_retry is None else auto_retry
        if retry and retry_num is None:
            self.spawn(self._retry_chain(url, raw, first, kwargs))
        return await asyncio.shield(first)

    async def _retry_chain(
        self, url: str, raw: bytes, first: asyncio.Future[Delivery], kwargs: dict[str, Any]
    ) -> None:
        previous = first
        for num, delay in enumerate(self.options.retry_delays, start=1):
            done, _ = await asyncio.wait({previous}, timeout=self.options.ack_timeout)
            if previous in done:
                result = previous.result()
                if result.acked_in_time or result.ok:
                    return
                if result.no_retry:
                    return
                reason = "http_error" if result.status else "connection_failed"
            else:
                reason = "http_timeout"
            await asyncio.sleep(delay)
            previous = self.spawn(
                self._attempt(
                    "event", url, raw, "application/json", retry_num=num, retry_reason=reason, **kwargs
                )
            )
        await asyncio.wait({previous})

    async def send_form(
        self, url: str, form: dict[str, str], *, bad_signature: bool = False, stale_timestamp: bool = False
    ) -> Delivery:
        """Slash commands are form-encoded and never retried: a late ack is an error the user sees."""
        raw = urllib.parse.urlencode(form).encode()
        return await self._attempt(
            "command",
            url,
            raw,
            "application/x-www-form-urlencoded",
            event_id=None,
            retry_num=None,
            retry_reason=None,
            bad_signature=bad_signature,
            stale=stale_timestamp,
            payload=form,
        )

    async def send_interactive(self, url: str, payload: Any) -> Delivery:
        """Interactive requests (button presses, modal submits) are `payload=<json>` forms, never retried."""
        raw = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return await self._attempt("interactive", url, raw, "application/x-www-form-urlencoded", event_id=None,
                                   retry_num=None, retry_reason=None, bad_signature=False, stale=False,
                                   payload=payload)

    @staticmethod
    def trigger_id() -> str:
        return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
