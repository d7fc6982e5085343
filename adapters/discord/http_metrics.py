"""Discord's REST writes and 429s, counted from discord.py's own HTTP session (its `http_trace` hook).

discord.py sleeps through most 429s and retries by itself, so the adapter never sees them; the trace sees every
response, including those. Routes are counted by template (`PATCH /channels/{id}/messages/{id}`): ids and
interaction tokens never become label values.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import aiohttp

from bot.metrics import Metrics

PLATFORM = "discord"
_API_PREFIX = re.compile(r"^/api(/v\d+)?")
# Interaction and webhook tokens follow the application or webhook id in these paths.
_TOKEN_AFTER = {"webhooks", "interactions"}


def route_template(method: str, path: str) -> str:
    parts = _API_PREFIX.sub("", path).strip("/").split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        if part.isdigit():
            out.append("{id}")
        elif i >= 2 and parts[i - 2] in _TOKEN_AFTER and parts[i - 1].isdigit():
            out.append("{token}")
        else:
            out.append(part)
    return f"{method} /{'/'.join(out)}"


def http_trace(metrics: Metrics) -> aiohttp.TraceConfig:
    async def on_end(session: aiohttp.ClientSession, context: SimpleNamespace,
                     params: aiohttp.TraceRequestEndParams) -> None:
        method = params.method.upper()
        write, limited = method != "GET", params.response.status == 429
        if not (write or limited):
            return  # a read that went through: nothing to count
        route = route_template(method, params.url.path)
        if write:
            metrics.writes.labels(PLATFORM, route).inc()
        if limited:
            metrics.rate_limited.labels(PLATFORM, route).inc()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return trace
