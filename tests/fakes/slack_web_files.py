"""files.slack.com and hooks.slack.com stand-ins: private file downloads and slash-command response_urls."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.slack_state import JSON, SlackFile, SlackState
from tests.fakes.slack_web import WebOptions

# Slack answers an unauthorised file URL with its sign-in page and HTTP 200, not an error status.
LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><meta charset="utf-8"><title>Slack</title></head>
<body class="signin"><div id="page"><h1>Sign in to {domain}.slack.com</h1>
<form id="signin_form" action="/" method="post"><input type="email" name="email">
<input type="password" name="password"><button type="submit">Sign in</button></form></div></body></html>
"""

RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL = 30 * 60.0


@dataclass(slots=True)
class Download:
    path: str
    file_id: str | None
    authorized: bool
    at: float


@dataclass(slots=True)
class ResponseUrl:
    url: str
    created: float
    posts: list[JSON] = field(default_factory=list)


class FileServer:
    def __init__(self, state: SlackState, options: WebOptions) -> None:
        self.state = state
        self.options = options
        # Every response_url answers this error (e.g. "expired_url": the command was answered too late).
        self.response_url_error: str | None = None
        self.downloads: list[Download] = []
        self.response_urls: dict[str, ResponseUrl] = {}
        self.root = ""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/files-pri/{key}/download/{name}", self.download),
            web.get("/files-pri/{key}/{name}", self.download),
            web.get("/files-tmb/{key}/thumb_{size}/{name}", self.download),
            web.get("/", self.login_page),
            web.post("/commands/{team}/{cmd}/{secret}", self.respond),
        ]

    def _file(self, key: str) -> SlackFile | None:
        team, _, file_id = key.partition("-")
        f = self.state.files.get(file_id)
        return f if f is not None and f.team_id == team else None

    def _allowed(self, request: web.Request, f: SlackFile | None) -> bool:
        auth = request.headers.get("Authorization", "")
        if f is None or not auth.startswith("Bearer "):
            return False
        ws = self.state.workspace_for_token(auth.removeprefix("Bearer ").strip())
        return ws is not None and ws.team_id == f.team_id and "files:read" in ws.scopes and f.bot_can_access

    async def download(self, request: web.Request) -> web.StreamResponse:
        f = self._file(request.match_info["key"])
        allowed = self._allowed(request, f)
        self.downloads.append(Download(request.path, f.id if f else None, allowed, time.time()))
        if not allowed or f is None:
            if self.options.file_denied_mode == "redirect":
                redir = urllib.parse.quote(request.path, safe="")
                raise web.HTTPFound(f"{self.root}?redir={redir}")
            return self._login()
        size = request.match_info.get("size")
        if size is not None:
            thumb = f.thumbs.get(int(size)) if size.isdigit() else None
            if thumb is None:
                raise web.HTTPNotFound()
            return await self._send(request, thumb, "image/png", {})
        return await self._send(request, f.content, f.mimetype,
                                {"Content-Disposition": f'attachment; filename="{f.name}"'})

    async def _send(self, request: web.Request, body: bytes, mimetype: str,
                    headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": mimetype, **headers})
        if self.options.file_transfer == "chunked":
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        step = max(1, self.options.file_chunk_bytes)
        try:
            for start in range(0, len(body), step):
                await response.write(body[start:start + step])
                await asyncio.sleep(self.options.file_chunk_delay)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client stopped reading (a size limit, or it went away), as real servers shrug off
        return response

    def _login(self) -> web.Response:
        ws = next(iter(self.state.workspaces.values()), None)
        domain = ws.domain if ws else "fake"
        return web.Response(text=LOGIN_PAGE.format(domain=domain), content_type="text/html")

    async def login_page(self, request: web.Request) -> web.Response:
        return self._login()

    def new_response_url(self, team_id: str) -> str:
        cmd = self.state.new_id("")
        secret = self.state.new_id("s")
        url = f"{self.root}commands/{team_id}/{cmd}/{secret}"
        self.response_urls[url] = ResponseUrl(url, time.monotonic())
        return url

    async def respond(self, request: web.Request) -> web.Response:
        url = f"{self.root}{request.path.lstrip('/')}"
        entry = self.response_urls.get(url)
        if entry is None:
            return web.Response(status=404, text="invalid_token")
        if self.response_url_error is not None:
            return web.Response(status=404, text=self.response_url_error)
        if time.monotonic() - entry.created > RESPONSE_URL_TTL:
            return web.Response(status=404, text="expired_url")
        if len(entry.posts) >= RESPONSE_URL_MAX_USES:
            return web.Response(status=404, text="used_url")
        raw = await request.text()
        try:
            payload = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        entry.posts.append(payload if isinstance(payload, dict) else {"raw": payload})
        return web.Response(text="ok")
