"""The Web API clients of each workspace: one bot token for a single-workspace deployment, or the token each
workspace's OAuth install stored (adapters/slack/oauth.py).

Every request Bolt authorizes carries its workspace's token; `remember` keeps clients for it, so the rest of the
adapter asks for a workspace's clients synchronously. Work that starts without a request (an answer resumed
after a restart) loads the token first with `load`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

FindToken = Callable[[str], Awaitable[str | None]]


class NotInstalled(LookupError):
    """No bot token is known for this workspace (never installed, or uninstalled since)."""


@dataclass(frozen=True, slots=True)
class WorkspaceClients:
    token: str
    # Reads and one-off posts may wait out a 429 inside the SDK; streamed writes must not (stale text).
    client: AsyncWebClient
    write_client: AsyncWebClient


def make_clients(token: str, api_url: str) -> WorkspaceClients:
    client = AsyncWebClient(token=token, base_url=api_url)
    client.retry_handlers.extend([AsyncRateLimitErrorRetryHandler(max_retry_count=2),
                                  AsyncServerErrorRetryHandler(max_retry_count=1)])
    return WorkspaceClients(token, client, AsyncWebClient(token=token, base_url=api_url))


class SlackClients:
    """`fixed`: the one workspace's clients (single-token mode). `find_token`: a workspace's stored bot token
    (OAuth mode)."""

    def __init__(self, api_url: str, *, fixed: WorkspaceClients | None = None,
                 find_token: FindToken | None = None) -> None:
        if (fixed is None) == (find_token is None):
            raise ValueError("give either fixed clients or a way to find each workspace's token")
        self._api_url = api_url
        self._fixed = fixed
        self._find_token = find_token
        self._teams: dict[str, WorkspaceClients] = {}

    @classmethod
    def single(cls, token: str, api_url: str) -> SlackClients:
        return cls(api_url, fixed=make_clients(token, api_url))

    @property
    def app_client(self) -> AsyncWebClient:
        """The client Bolt is given: the one workspace's, or one without a token (Bolt passes each request's,
        and the OAuth flow its own credentials)."""
        return self._fixed.client if self._fixed is not None else AsyncWebClient(base_url=self._api_url)

    def remember(self, team: str, token: str) -> WorkspaceClients:
        if self._fixed is not None:
            return self._fixed
        known = self._teams.get(team)
        if known is None or known.token != token:  # a reinstall issues a new token
            known = self._teams[team] = make_clients(token, self._api_url)
        return known

    def __contains__(self, team: str) -> bool:
        """Whether this process holds clients for the workspace."""
        return self._fixed is not None or team in self._teams

    def forget(self, team: str) -> None:
        self._teams.pop(team, None)

    def get(self, team: str) -> WorkspaceClients:
        if self._fixed is not None:
            return self._fixed
        try:
            return self._teams[team]
        except KeyError:
            raise NotInstalled(team) from None

    async def load(self, team: str) -> WorkspaceClients:
        if self._fixed is not None or team in self._teams:
            return self.get(team)
        assert self._find_token is not None
        token = await self._find_token(team)
        if token is None:
            raise NotInstalled(team)
        return self.remember(team, token)
