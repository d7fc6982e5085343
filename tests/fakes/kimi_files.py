"""The fake Files API (reference §5): upload, retrieve, list, delete and extracted content."""

from __future__ import annotations

import asyncio
import html
import io
import mimetypes
import re
import secrets
import time
import zipfile
import zlib
from dataclasses import dataclass

from aiohttp import BodyPartReader, web

from tests.fakes.kimi_errors import KimiError, invalid

MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_FILE_COUNT = 1000
PURPOSES = frozenset({"file-extract", "image", "video", "batch"})
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_TEXT_OP = re.compile(rb"(\((?:\\.|[^\\)])*\))\s*Tj|\[((?:\\.|[^\\\]])*)\]\s*TJ", re.S)
_LITERAL = re.compile(rb"\(((?:\\.|[^\\)])*)\)", re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    content_type: str
    created_at: int
    deleted: bool = False

    def body(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "ok",
            "status_details": "",
        }


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i : i + 1]
        if byte != b"\\" or i + 1 >= len(raw):
            out += byte
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        octal = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        else:
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def pdf_text(data: bytes) -> str:
    """Text of the `(..) Tj` and `[..] TJ` operators, one line per operator, in file order.

    Enough for PDFs that tests write by hand (optionally Flate-compressed); not a real PDF parser.
    """
    sources = []
    for match in _STREAM.finditer(data):
        raw = match.group(1)
        try:
            sources.append(zlib.decompress(raw))
        except zlib.error:
            sources.append(raw)
    lines = []
    for source in sources:
        for match in _TEXT_OP.finditer(source):
            if match.group(1) is not None:
                strings = [match.group(1)[1:-1]]
            else:
                strings = _LITERAL.findall(match.group(2))
            lines.append(b"".join(_unescape(s) for s in strings).decode("latin-1"))
    return "\n".join(lines)


# Office Open XML, OpenDocument and EPUB files are zip archives of XML; where each keeps its text.
_ZIPPED_TEXT = re.compile(r"^(word/document\.xml|xl/sharedStrings\.xml|ppt/slides/slide\d+\.xml|content\.xml|"
                          r".*\.x?html?)$")
ZIPPED_SUFFIXES = frozenset({".docx", ".xlsx", ".pptx", ".epub", ".odt", ".ods", ".odp"})
_TAG = re.compile(r"<[^>]+>")


def zipped_text(data: bytes) -> str:
    """Text of the document parts of an Office, OpenDocument or EPUB archive, in archive order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()
                 if _ZIPPED_TEXT.match(name)]
    texts = [" ".join(html.unescape(_TAG.sub(" ", part)).split()) for part in parts]
    return "\n".join(text for text in texts if text)


def extract(file: FakeFile) -> tuple[str, str]:
    """(content, file_type) as the content endpoint reports them."""
    file_type = mimetypes.guess_type(file.filename)[0] or file.content_type or "application/octet-stream"
    if file.data.startswith(b"%PDF") or file_type == "application/pdf":
        return pdf_text(file.data), "application/pdf"
    if any(file.filename.lower().endswith(suffix) for suffix in ZIPPED_SUFFIXES):
        try:
            return zipped_text(file.data), file_type
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise KimiError(500, f"Failed to extract file: {exc}", "server_error") from exc
    try:
        return file.data.decode("utf-8"), file_type
    except UnicodeDecodeError as exc:
        raise KimiError(
            500, f"Failed to extract file: unsupported file type {file_type}", "server_error"
        ) from exc


class FileStore:
    """Uploaded files by id. Deleted files stay in `uploads` (flagged) so tests can see what was sent."""

    def __init__(self, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.uploads: list[FakeFile] = []
        self._by_id: dict[str, FakeFile] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/files", self.upload),
            web.get("/v1/files", self.list_files),
            web.get("/v1/files/{file_id}", self.retrieve),
            web.delete("/v1/files/{file_id}", self.delete),
            web.get("/v1/files/{file_id}/content", self.content),
        ]

    def data(self, file_id: str) -> bytes | None:
        file = self._by_id.get(file_id)
        return file.data if file else None

    def _get(self, request: web.Request) -> FakeFile:
        file = self._by_id.get(request.match_info["file_id"])
        if file is None:
            raise KimiError(
                404, f"file {request.match_info['file_id']} not found", "resource_not_found_error"
            )
        return file

    async def _read_file_part(self, part: BodyPartReader) -> bytes:
        data = bytearray()
        while chunk := await part.read_chunk(1 << 16):
            data += chunk
            if len(data) > self.max_bytes:
                raise invalid(
                    f"File size is too large, max file size is {self.max_bytes // (1024 * 1024)}MB, "
                    "please confirm and re-upload the file"
                )
        return bytes(data)

    async def upload(self, request: web.Request) -> web.Response:
        purpose, filename, content_type, data = "", "", "", b""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename = part.filename or "upload"
                content_type = part.headers.get("Content-Type", "")
                data = await self._read_file_part(part)
        if purpose not in PURPOSES:
            raise invalid(f"Invalid purpose: only {', '.join(sorted(PURPOSES))} accepted")
        if not data:
            raise invalid("File size is zero, please confirm and re-upload the file")
        if len(self._by_id) >= MAX_FILE_COUNT:
            raise invalid(
                f"The number of files you have uploaded exceeded the max file count {MAX_FILE_COUNT}, "
                "please delete previous uploaded files"
            )
        file = FakeFile(secrets.token_hex(10), filename, purpose, data, content_type, int(time.time()))
        self.uploads.append(file)
        self._by_id[file.id] = file
        return web.json_response(file.body())

    async def list_files(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [f.body() for f in self._by_id.values()]})

    async def retrieve(self, request: web.Request) -> web.Response:
        return web.json_response(self._get(request).body())

    async def delete(self, request: web.Request) -> web.Response:
        file = self._get(request)
        file.deleted = True
        del self._by_id[file.id]
        return web.json_response({"id": file.id, "object": "file", "deleted": True})

    async def content(self, request: web.Request) -> web.Response:
        file = self._get(request)
        text, file_type = await asyncio.to_thread(extract, file)
        body = {
            "content": text,
            "file_type": file_type,
            "filename": file.filename,
            "title": "",
            "type": "file",
        }
        return web.json_response(body)
