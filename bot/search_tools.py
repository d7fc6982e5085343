"""Web search as ordinary function tools (`[kimi] search = "tools"`), with the sources an answer cites.

Kimi gets `web_search` and `open_url`, backed by Kimi's own search and fetch endpoints. Every result page gets a
number for the whole answer ([1], [2], … across searches, one number per URL); the model is asked to cite pages
as [n], and the answer ends with the pages it actually cited, as links.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bot.kimi import KimiError, ToolCall
from bot.kimi.search import KimiSearchApi
from bot.tools.registry import ToolResult

log = logging.getLogger(__name__)

SEARCH = "web_search"
OPEN = "open_url"
NAMES = frozenset({SEARCH, OPEN})
CITATION = re.compile(r"\[(\d{1,3})\]")
MAX_PAGE_CHARS = 20_000

DEFINITIONS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": SEARCH,
        "description": ("Search the web. Results are numbered [n] for this whole answer; cite the results you use "
                        "as [n] right after the sentence that relies on them."),
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "What to search for"},
            "sites": {"type": "array", "items": {"type": "string"},
                      "description": "Only these domains (at most 5), e.g. [\"docs.python.org\"]"},
            "since": {"type": "string", "description": "Only pages from this date on: YYYY, YYYY-MM or YYYY-MM-DD"},
            "until": {"type": "string", "description": "Only pages up to this date: YYYY, YYYY-MM or YYYY-MM-DD"},
            "limit": {"type": "integer", "description": "How many results, 1 to 10 (default 5)"},
        }, "required": ["query"]},
    }},
    {"type": "function", "function": {
        "name": OPEN,
        "description": "Read a web page (for example a search result) as text. Cite it as [n] like a result.",
        "parameters": {"type": "object", "properties": {
            "url": {"type": "string", "description": "The page's http(s) URL"},
        }, "required": ["url"]},
    }},
]


@dataclass(frozen=True, slots=True)
class Source:
    number: int
    title: str
    url: str


@dataclass
class Sources:
    """The pages one answer was shown, numbered once per URL."""

    by_url: dict[str, Source] = field(default_factory=dict)
    calls: int = 0

    def number(self, url: str, title: str) -> int:
        found = self.by_url.get(url)
        if found is None:
            found = self.by_url[url] = Source(len(self.by_url) + 1, title or url, url)
        return found.number

    def cited(self, text: str) -> list[Source]:
        """The pages the answer cites as [n], in number order; numbers it was never given are ignored."""
        wanted = {int(n) for n in CITATION.findall(text)}
        return sorted((s for s in self.by_url.values() if s.number in wanted), key=lambda s: s.number)


def sources_block(cited: list[Source]) -> str | None:
    if not cited:
        return None
    lines = [f"{s.number}. [{_link_text(s.title)}]({s.url})" for s in cited]
    return "**Sources**\n" + "\n".join(lines)


def _link_text(title: str) -> str:
    return title.replace("[", "(").replace("]", ")").strip()[:120] or "link"


class SearchTools:
    def __init__(self, api: KimiSearchApi) -> None:
        self._api = api

    @staticmethod
    def definitions() -> list[dict[str, Any]]:
        return DEFINITIONS

    async def run(self, call: ToolCall, sources: Sources) -> ToolResult:
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments are not an object")
        except ValueError:
            return ToolResult(ok=False, content="Error: the arguments were not a JSON object.")
        try:
            if call.name == SEARCH:
                return await self._search(arguments, sources)
            return await self._open(arguments, sources)
        except KimiError as error:
            log.warning("search tool failed", extra={"tool": call.name, "kind": error.kind, "status": error.status})
            return ToolResult(ok=False, content=f"Error: {call.name} failed ({error.kind}). Answer without it, "
                                                "or try again with other arguments.")

    async def _search(self, arguments: dict[str, Any], sources: Sources) -> ToolResult:
        query = str(arguments.get("query") or "").strip()
        if not query:
            return ToolResult(ok=False, content="Error: web_search needs a query.")
        sites = [str(s) for s in arguments.get("sites") or [] if str(s).strip()] or None
        limit = arguments.get("limit")
        hits = await self._api.search(query, limit=int(limit) if isinstance(limit, int) else 5, sites=sites,
                                      since=_text_or_none(arguments.get("since")),
                                      until=_text_or_none(arguments.get("until")))
        sources.calls += 1
        if not hits:
            return ToolResult(ok=True, content="No results.")
        results = [{"n": sources.number(h.url, h.title), "title": h.title, "url": h.url, "snippet": h.snippet,
                    **({"date": h.date} if h.date else {})} for h in hits]
        return ToolResult(ok=True, content=json.dumps({"results": results}, ensure_ascii=False))

    async def _open(self, arguments: dict[str, Any], sources: Sources) -> ToolResult:
        url = str(arguments.get("url") or "").strip()
        if not url.startswith(("http://", "https://")):
            return ToolResult(ok=False, content="Error: open_url needs an http(s) URL.")
        page = await self._api.fetch(url)
        sources.calls += 1
        number = sources.number(page.url, page.title)
        text = page.markdown[:MAX_PAGE_CHARS]
        more = " (cut)" if len(page.markdown) > MAX_PAGE_CHARS else ""
        return ToolResult(ok=True, content=f"[{number}] {page.title}\n{page.url}\n\n{text}{more}")


def _text_or_none(value: Any) -> str | None:
    return str(value).strip() or None if value else None
