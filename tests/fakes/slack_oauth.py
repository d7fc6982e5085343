"""Slack's OAuth v2 install flow: the consent page a person approves in a browser, and oauth.v2.access.

The consent page (`GET /oauth/v2/authorize`) checks what Slack checks (a known client id, scopes, a redirect
URL the app registered) and redirects to the app with a one-time code, or with `error=access_denied` when the
person cancels. oauth.v2.access takes the client's credentials as HTTP Basic auth or form fields, refuses a
wrong secret, an unknown, reused or expired code and a redirect_uri other than the one the code was issued for,
and answers with the fields Slack documents (bot token, scopes, team, authed user, enterprise null).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.slack_state import SlackState, Workspace

CODE_LIFETIME = 600.0  # Slack's codes expire after ten minutes


@dataclass(slots=True)
class Approval:
    """Who approves the next install, and in which workspace (created when new)."""

    team_id: str
    team_name: str
    user_id: str
    cancel: bool = False


@dataclass(slots=True)
class Grant:
    team_id: str
    user_id: str
    scopes: list[str]
    redirect_uri: str | None
    issued: float = field(default_factory=time.monotonic)


class OAuthServer:
    def __init__(self, state: SlackState, add_workspace: Callable[..., Workspace], *, client_id: str,
                 client_secret: str) -> None:
        self.state = state
        self._add_workspace = add_workspace
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_urls: list[str] = []  # the app's registered Redirect URLs; the first is the default
        self.next_approval: Approval | None = None
        self._grants: dict[str, Grant] = {}
        self.exchanges: list[dict[str, str]] = []  # every oauth.v2.access call's outcome, for assertions
        # Awaited before a successful exchange is answered: what else happens meanwhile (a test's fault).
        self.before_answer: Callable[[], Awaitable[object]] | None = None

    def routes(self) -> list[web.RouteDef]:
        # Registered before the generic /api/{method} route: this method is authenticated by the client's
        # credentials, not a token.
        return [web.get("/oauth/v2/authorize", self.authorize), web.post("/api/oauth.v2.access", self.access)]

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="Invalid client_id parameter", content_type="text/html")
        scopes = [s for s in query.get("scope", "").split(",") if s]
        if not scopes:
            return web.Response(status=400, text="Invalid permissions requested", content_type="text/html")
        redirect = query.get("redirect_uri")
        if redirect is not None and redirect not in self.redirect_urls:
            return web.Response(status=400, text="redirect_uri did not match any configured URIs",
                                content_type="text/html")
        target = redirect or (self.redirect_urls[0] if self.redirect_urls else None)
        approval = self.next_approval
        if target is None or approval is None:
            return web.Response(status=400, text="nobody is here to approve", content_type="text/html")
        state = query.get("state", "")
        if approval.cancel:
            raise web.HTTPFound(f"{target}?{urlencode({'error': 'access_denied', 'state': state})}")
        code = f"{int(time.time())}.{secrets.token_hex(16)}"
        self._grants[code] = Grant(approval.team_id, approval.user_id, scopes, redirect)
        raise web.HTTPFound(f"{target}?{urlencode({'code': code, 'state': state})}")

    def _credentials(self, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user, password
        return form.get("client_id", ""), form.get("client_secret", "")

    async def access(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        client_id, client_secret = self._credentials(request, form)
        error: str | None = None
        grant = self._grants.pop(form.get("code", ""), None)  # one use only, whatever the outcome
        if client_id != self.client_id:
            error = "invalid_client_id"
        elif client_secret != self.client_secret:
            error = "bad_client_secret"
        elif grant is None or time.monotonic() - grant.issued > CODE_LIFETIME:
            error = "invalid_code"
        elif form.get("redirect_uri") != grant.redirect_uri:
            error = "bad_redirect_uri"
        self.exchanges.append({"outcome": error or "ok", "team": grant.team_id if grant else ""})
        if error is not None or grant is None:
            return web.json_response({"ok": False, "error": error or "invalid_code"})
        if self.before_answer is not None:
            await self.before_answer()
        ws = self._install(grant)
        return web.json_response({
            "ok": True, "app_id": ws.app_id, "authed_user": {"id": grant.user_id},
            "scope": ",".join(ws.scopes), "token_type": "bot", "access_token": ws.bot_token,
            "bot_user_id": ws.bot_user_id, "team": {"id": ws.team_id, "name": ws.name},
            "enterprise": None, "is_enterprise_install": False,
        })

    def _install(self, grant: Grant) -> Workspace:
        """A new bot token each time, as Slack issues on a reinstall; the old one stops working."""
        token = f"xoxb-{grant.team_id}-{secrets.token_hex(8)}"
        ws = self.state.workspaces.get(grant.team_id)
        if ws is None:
            approval = self.next_approval
            name = approval.team_name if approval and approval.team_id == grant.team_id else grant.team_id
            ws = self._add_workspace(grant.team_id, name, bot_token=token, scopes=grant.scopes)
        else:
            self.state.tokens.pop(ws.bot_token, None)
            ws.bot_token, ws.scopes = token, list(grant.scopes)
            self.state.tokens[token] = ws.team_id
        return ws

    def revoke(self, team_id: str) -> None:
        """The workspace's bot token stops working (an uninstall, or tokens revoked by an admin)."""
        ws = self.state.workspaces[team_id]
        self.state.tokens.pop(ws.bot_token, None)
