"""Kimi's search and fetch REST tools (`/v1/tools/search`, `/search_pro`, `/fetch`, reference §1.6).

They replace the built-in `$web_search` (marked as going offline), work with thinking on, and return URLs, so
answers can cite their sources. Called through the openai SDK's client for undocumented endpoints, so auth,
base URL and timeouts are the chat client's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import openai

from bot.kimi.errors import KimiError, classify


@dataclass(frozen=True, slots=True)
class SearchHit:
    title: str
    url: str
    snippet: str
    site: str = ""
    date: str = ""


@dataclass(frozen=True, slots=True)
class FetchedPage:
    url: str
    title: str
    markdown: str


class KimiSearchApi:
    def __init__(self, sdk: openai.AsyncOpenAI) -> None:
        self._sdk = sdk

    async def search(self, query: str, *, limit: int = 5, sites: list[str] | None = None,
                     since: str | None = None, until: str | None = None) -> list[SearchHit]:
        """`search_pro` when the question names sites or a time window, plain `search` otherwise."""
        body: dict[str, Any] = {"text_query": query, "limit": max(1, min(limit, 20))}
        path = "/tools/search"
        if sites or since or until:
            path = "/tools/search_pro"
            if sites:
                body["sites"] = sites[:5]
            if since or until:
                body["time_window"] = {k: v for k, v in (("start", since), ("end", until)) if v}
        data = await self._post(path, body)
        hits = data.get("search_results") if isinstance(data, dict) else None
        return [SearchHit(title=str(h.get("title") or h.get("url") or ""), url=str(h.get("url") or ""),
                          snippet=str(h.get("snippet") or h.get("text") or "")[:600],
                          site=str(h.get("site_name") or ""), date=str(h.get("date") or ""))
                for h in hits or () if isinstance(h, dict) and h.get("url")]

    async def fetch(self, url: str) -> FetchedPage:
        data = await self._post("/tools/fetch", {"url": url})
        return FetchedPage(url=str(data.get("url") or url), title=str(data.get("title") or url),
                           markdown=str(data.get("markdown") or ""))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._sdk.post(path, body=body, cast_to=httpx.Response)
        except openai.OpenAIError as exc:
            raise classify(exc, model="search", endpoint="tools") from exc
        try:
            data = response.json()
        except ValueError as exc:
            raise KimiError("bad_request", detail=f"{path} answered something that is not JSON") from exc
        return data if isinstance(data, dict) else {}
