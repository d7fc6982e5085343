"""Files downloaded over HTTP as platforms really serve them: in many small reads, chunked or without a
Content-Length, read to the end and bounded by a size limit, so a 4 MB screenshot arrives whole and a 2 GB one is
refused early. (aiohttp's `content.read(n)` returns what happens to be buffered, not n bytes: the bug that made
every real Slack screenshot "damaged".)"""

from __future__ import annotations

import aiohttp

from bot.attachments import AttachmentError

# The largest file Kimi takes (a video for upload); the attachment processor refuses anything larger than its
# kind allows by the declared size, before a byte is downloaded.
MAX_DOWNLOAD_BYTES = 100_000_000
READ_CHUNK_BYTES = 64 * 1024


async def read_body(response: aiohttp.ClientResponse, limit: int, *, source: str) -> bytes:
    """The whole body, however many reads it arrives in; refused past `limit` before or while reading."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise AttachmentError(f"it is larger than {limit // 1_000_000} MB.")
    data = bytearray()
    try:
        async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
            data += chunk
            if len(data) > limit:
                raise AttachmentError(f"it is larger than {limit // 1_000_000} MB.")
    except aiohttp.ClientPayloadError as error:
        raise AttachmentError(f"the download from {source} ended early; please try again.") from error
    if declared is not None and len(data) != declared:
        raise AttachmentError(f"the download from {source} ended early; please try again.")
    # A bytearray, not copied into bytes: Pillow and base64 read it as it is (an 8 MB copy per screenshot buys
    # nothing); the one reader that needs bytes, the SDK's multipart upload, converts it itself.
    return data  # type: ignore[return-value]


class Downloads:
    """One session for a platform's file downloads (no credentials: for signed or public links)."""

    def __init__(self, *, source: str, max_bytes: int = MAX_DOWNLOAD_BYTES, timeout: float = 60.0) -> None:
        self._source = source
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise AttachmentError(f"{self._source} answered HTTP {response.status} when I downloaded it.")
                return await read_body(response, self._max_bytes, source=self._source)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise AttachmentError(f"I could not download it from {self._source}; please try again.") from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
