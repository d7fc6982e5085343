"""Installs in many workspaces through Slack's OAuth v2 flow, with slack_sdk's SQLAlchemy stores on kimibot's
database (tables from migration 0008) and Bolt's OAuth flow and authorization.

`/slack/install` sets a state cookie and links to Slack's consent page; Slack redirects back to
`/slack/oauth_redirect`, where Bolt exchanges the code (oauth.v2.access) and saves the installation. Every
event is then authorized by the workspace's stored bot token. Tokens revoked and apps uninstalled delete the
workspace's rows, so its events stop being answered at once, on every replica.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.listener.async_builtins import AsyncTokenRevocationListeners
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.slack.clients import SlackClients
from bot.config_platforms import SlackOAuthConfig

log = logging.getLogger(__name__)

UNAVAILABLE = """<!DOCTYPE html><html><head><title>kimibot</title></head><body>
<h2>The install could not be finished</h2>
<p>kimibot's database did not answer, so nothing was installed. <a href="{install}">Start again</a> in a minute.</p>
</body></html>"""


class SlackInstalls:
    def __init__(self, config: SlackOAuthConfig, engine: AsyncEngine, bolt_logger: logging.Logger) -> None:
        if not config.client_id or config.client_secret is None:
            raise ValueError("slack.oauth needs client_id and client_secret")
        self.config = config
        self.installations = AsyncSQLAlchemyInstallationStore(config.client_id, engine, logger=bolt_logger)
        self.states = AsyncSQLAlchemyOAuthStateStore(config.state_expiration_seconds, engine, logger=bolt_logger)
        self.settings = AsyncOAuthSettings(
            client_id=config.client_id, client_secret=config.client_secret.get_secret_value(),
            scopes=config.scopes, redirect_uri=config.redirect_uri, install_path=config.install_path,
            redirect_uri_path=config.redirect_path, authorization_url=config.authorize_url,
            installation_store=self.installations, installation_store_bot_only=True, state_store=self.states,
            state_expiration_seconds=config.state_expiration_seconds,
            callback_options=AsyncCallbackOptions(success=self._installed, failure=self._refused),
            logger=bolt_logger)
        # Bolt checks each stored token with auth.test; cached per token, so that is once per workspace and
        # process rather than once per event (the rows are still read per event: an uninstall counts at once).
        self.authorize = AsyncInstallationStoreAuthorize(logger=bolt_logger, installation_store=self.installations,
                                                         bot_only=True, cache_enabled=True)

    async def find_token(self, team: str) -> str | None:
        bot = await self.installations.async_find_bot(enterprise_id=None, team_id=team)
        return bot.bot_token if bot is not None else None

    @staticmethod
    async def _installed(args: AsyncSuccessArgs) -> BoltResponse:
        installation = args.installation
        log.info("slack workspace installed", extra={"team": installation.team_id,
                                                      "enterprise": installation.enterprise_id,
                                                      "scopes": ",".join(installation.bot_scopes or [])})
        return await args.default.success(args)

    @staticmethod
    async def _refused(args: AsyncFailureArgs) -> BoltResponse:
        log.warning("slack install refused", extra={"reason": args.reason, "status": args.suggested_status_code,
                                                     "error": type(args.error).__name__ if args.error else None})
        return await args.default.failure(args)

    def routes(self, app: AsyncApp) -> list[web.RouteDef]:
        """The two pages a browser visits (no Slack signature on these: the state cookie protects them)."""
        flow = app.oauth_flow
        assert flow is not None

        async def install(request: web.Request) -> web.StreamResponse:
            return await self._page("install", flow.handle_installation(_bolt_request(request)))

        async def redirect(request: web.Request) -> web.StreamResponse:
            return await self._page("redirect", flow.handle_callback(_bolt_request(request)))

        return [web.get(self.config.install_path, install), web.get(self.config.redirect_path, redirect)]

    async def _page(self, name: str, response: Awaitable[BoltResponse]) -> web.StreamResponse:
        """Bolt turns Slack's refusals into its failure page, but a database error saving the state or the
        installation would reach aiohttp as a 500 with a traceback: the person gets a page saying what to do."""
        try:
            return await to_aiohttp_response(await response)
        except Exception as error:
            log.warning("slack install page failed", extra={"page": name, "error": type(error).__name__})
            return web.Response(status=503, content_type="text/html",
                                text=UNAVAILABLE.format(install=self.config.install_path))

    def listen(self, app: AsyncApp, clients: SlackClients) -> None:
        """Bolt's revocation listeners delete the rows; this process also drops the workspace's clients."""
        revocation = AsyncTokenRevocationListeners(self.installations)

        async def tokens_revoked(event: dict[str, Any], context: Any) -> None:
            await revocation.handle_tokens_revoked_events(event, context)
            if event.get("tokens", {}).get("bot"):
                clients.forget(context.team_id or "")
                log.info("slack bot token revoked", extra={"team": context.team_id})

        async def app_uninstalled(context: Any) -> None:
            await revocation.handle_app_uninstalled_events(context)
            clients.forget(context.team_id or "")
            log.info("slack app uninstalled", extra={"team": context.team_id})

        app.event("tokens_revoked")(tokens_revoked)
        app.event("app_uninstalled")(app_uninstalled)


def _bolt_request(request: web.Request) -> AsyncBoltRequest:
    return AsyncBoltRequest(body="", query=request.query_string, headers=dict(request.headers))
