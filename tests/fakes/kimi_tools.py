"""Kimi's search and fetch REST tools (reference §1.6): `/v1/tools/search`, `/search_pro`, `/fetch`.

Deterministic results for a query (stable URLs under example sites), the documented validation errors, the
`X-Msh-Track-Id` header, and calls recorded for tests. `fail_next(path, status, type)` injects an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@dataclass
class ToolCall:
    path: str
    body: dict[str, Any]


@dataclass
class ToolsApi:
    calls: list[ToolCall] = field(default_factory=list)
    faults: deque[tuple[str, int, str]] = field(default_factory=deque)
    # url -> markdown, for pages a test wants /fetch to return
    pages: dict[str, str] = field(default_factory=dict)
    # Seconds each call takes (real searches take one to a few seconds).
    latency: float = 0.0

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/tools/search", self.search), web.post("/v1/tools/search_pro", self.search),
                web.post("/v1/tools/fetch", self.fetch)]

    def fail_next(self, path: str, status: int, error_type: str) -> None:
        self.faults.append((path, status, error_type))

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        track = secrets.token_hex(8)
        headers = {"X-Msh-Track-Id": track, "X-Msh-Chat-Id": f"toolgw-{track}"}
        if self.faults and self.faults[0][0] == request.path:
            _, status, error_type = self.faults.popleft()
            return _error(status, error_type, error_type.replace("_", " "), headers)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request", "body is not JSON", headers)
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "body must be an object", headers)
        self.calls.append(ToolCall(request.path, body))
        await asyncio.sleep(self.latency)
        return body

    async def search(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        query = body.get("text_query")
        limit = body.get("limit", 5)
        if not isinstance(query, str) or not query.strip():
            return _error(400, "invalid_request", "text_query is required")
        if not isinstance(limit, int) or not 1 <= limit <= 20:
            return _error(400, "invalid_request", "limit must be between 1 and 20")
        pro = request.path.endswith("search_pro")
        sites = body.get("sites") if pro else None
        if sites is not None and (not isinstance(sites, list) or len(sites) > 5):
            return _error(400, "invalid_request", "sites must contain at most 5 entries")
        window = body.get("time_window") if pro else None
        if window is not None:
            start, end = (window or {}).get("start"), (window or {}).get("end")
            for value in (start, end):
                if value is not None and (not isinstance(value, str) or not DATE.match(value)):
                    return _error(400, "invalid_request", "time_window dates must be YYYY[-MM[-DD]]")
            if start and end and start > end:
                return _error(400, "invalid_request", "time_window.start must not be after time_window.end")
        return web.json_response({"search_results": results(query, limit, sites, pro)})

    async def fetch(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _error(400, "invalid_request", "url must be an http(s) URL")
        markdown = self.pages.get(url, f"# Page at {url}\n\nThe text of {url}, as Markdown.")
        return web.json_response({"url": url, "title": f"Title of {url}", "markdown": markdown})


def results(query: str, limit: int, sites: list[str] | None, pro: bool) -> list[dict[str, Any]]:
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40] or "q"
    digest = hashlib.sha256(query.encode()).hexdigest()[:6]
    hosts = sites or ["docs.example.com", "blog.example.org", "news.example.net"]
    found = []
    for i in range(1, min(limit, 8) + 1):
        host = hosts[(i - 1) % len(hosts)]
        item: dict[str, Any] = {
            "title": f"{query} ({i})", "url": f"https://{host}/{slug}/{digest}-{i}", "snippet": f"About {query}.",
            "site_name": host, "date": "2026-11-01", "authority": "S", "icon": "", "mime": "text/html"}
        if pro:
            item["chunks"] = [{"text": f"Part of a page about {query}.", "score": 1.0 / i}]
        found.append(item)
    return found


def _error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": error_type, "code": status}}, status=status,
                             headers=headers)
