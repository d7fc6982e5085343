"""Slack files → IncomingAttachment: stubs resolved with files.info, bytes downloaded with the bot token.

Slack answers a download it refuses with HTTP 200 and its HTML sign-in page (or a redirect to it), not an
error status, so the download checks the content type and never follows redirects (which would also drop the
Authorization header). The bot token goes only to Slack's own file hosts: a `url_private` elsewhere is refused.
Bodies are read to the end in chunks (adapters/downloads.py), bounded by the size limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.downloads import MAX_DOWNLOAD_BYTES, read_body
from adapters.slack.errors import error_code
from bot.attachments import AttachmentError
from bot.types import IncomingAttachment

log = logging.getLogger(__name__)

# Where Slack serves `url_private` besides the API's own host (GovSlack's files live under slack-gov.com).
SLACK_FILE_HOSTS = frozenset({"files.slack.com", "files.slack-gov.com"})

NO_SCOPE = ("Slack sent its sign-in page instead of the file: this app lacks the `files:read` scope. "
            "An admin can add it under OAuth & Permissions and reinstall the app.")
NOT_VISIBLE = ("Slack sent its sign-in page instead of the file: I am not allowed to see it (for example it "
               "was shared from a channel or workspace I'm not in). Share it in this conversation, or paste "
               "its content.")


def is_stub(file: dict[str, Any]) -> bool:
    return file.get("file_access") == "check_file_info" or not (file.get("url_private_download")
                                                                or file.get("url_private"))


def token_may_go_to(url: str, api_url: str) -> bool:
    """Whether `url` is one of Slack's file hosts: the API's own origin, a subdomain of its domain over the
    same scheme, or a documented file host. Anything else would receive the bot token."""
    target, api = urlsplit(url), urlsplit(api_url)
    host, api_host = (target.hostname or "").lower(), (api.hostname or "").lower()
    if not host or target.scheme not in ("https", api.scheme):
        return False
    if host == api_host:
        return target.port == api.port
    if target.scheme != "https" or target.port not in (None, 443):
        return False
    return host in SLACK_FILE_HOSTS or (api_host.count(".") >= 1 and host.endswith("." + api_host))


class SlackFiles:
    def __init__(self, *, client: AsyncWebClient, session: aiohttp.ClientSession, token: str,
                 api_url: str, max_bytes: int = MAX_DOWNLOAD_BYTES) -> None:
        self._client = client
        self._session = session
        self._token = token
        self._api_url = api_url
        self._max_bytes = max_bytes

    async def attachments(self, files: Iterable[dict[str, Any]],
                          scopes: Iterable[str] | None) -> tuple[IncomingAttachment, ...]:
        scope_set = frozenset(scopes) if scopes is not None else None
        result: list[IncomingAttachment] = []
        for file in files:
            if is_stub(file):
                file = await self._info(file)
            result.append(self._attachment(file, scope_set))
        return tuple(result)

    async def _info(self, stub: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.files_info(file=str(stub.get("id", "")))
            full = response.get("file")
            return full if isinstance(full, dict) else stub
        except SlackApiError as error:
            log.info("files.info failed", extra={"error": error_code(error)})
            return {**stub, "_error": error_code(error)}

    def _attachment(self, file: dict[str, Any], scopes: frozenset[str] | None) -> IncomingAttachment:
        name = str(file.get("name") or file.get("title") or file.get("id") or "file")
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        error = file.get("_error")
        fetch: Callable[[], Awaitable[bytes]]
        if error or not url:
            reason = NO_SCOPE if error == "missing_scope" else (
                "I can't open this file: Slack says it doesn't exist or I can't see it "
                f"(`{error or 'no download link'}`).")

            async def refuse() -> bytes:
                raise AttachmentError(reason)

            fetch = refuse
        else:
            mime = str(file.get("mimetype") or "")

            async def download() -> bytes:
                return await self.download(url, scopes, expected_mime=mime)

            fetch = download
        size = file.get("size")
        return IncomingAttachment(filename=name, mime=file.get("mimetype") or None,
                                  size=int(size) if isinstance(size, int | float) else None,
                                  fetch=fetch, source=f"slack:{file.get('id', '')}", ref=url)

    def again(self, filename: str, mime: str | None, size: int | None, source: str, ref: str,
              scopes: Iterable[str] | None = None) -> IncomingAttachment:
        """A file of a stored question, downloadable again from its stored `ref` (its url_private)."""
        file: dict[str, Any] = {"name": filename, "mimetype": mime or "", "size": size,
                                "id": source.removeprefix("slack:"), "url_private": ref}
        return self._attachment(file, frozenset(scopes) if scopes is not None else None)

    async def download(self, url: str, scopes: frozenset[str] | None, *, expected_mime: str = "") -> bytes:
        if not token_may_go_to(url, self._api_url):
            log.warning("file on a host that is not Slack's refused", extra={"host": urlsplit(url).hostname})
            raise AttachmentError("this file's link does not point at Slack's file servers, so I did not "
                                  "download it (I only send my Slack credentials to Slack).")
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._session.get(url, headers=headers, allow_redirects=False) as response:
            content_type = response.headers.get("Content-Type", "").lower()
            # An uploaded HTML file is legitimately text/html; anything else arriving as HTML is the login page.
            html = content_type.startswith("text/html") and not expected_mime.startswith("text/html")
            denied = 300 <= response.status < 400 or html
            if denied:
                log.info("file download refused by Slack", extra={"status": response.status})
                raise AttachmentError(NO_SCOPE if scopes is not None and "files:read" not in scopes
                                      else NOT_VISIBLE)
            if response.status != 200:
                raise AttachmentError(f"Slack answered HTTP {response.status} when I downloaded it.")
            return await read_body(response, self._max_bytes, source="Slack")
