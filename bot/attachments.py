"""Turns incoming files into what Kimi can read: normalized images, videos (inline or uploaded), extracted text
(plain text directly; PDF, Office and ebook files through Kimi's file-extract), or a clear refusal."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import PurePath

from bot import videos
from bot.config import ContextConfig, ImageConfig, VideoConfig
from bot.images import ImageRejected, is_image_type, normalize_image
from bot.kimi import KimiClient, KimiError
from bot.types import IncomingAttachment
from storage.store import MediaKind, Store

log = logging.getLogger(__name__)

SUPPORTED = (f"images (PNG, JPEG, WebP, GIF), videos ({videos.SUPPORTED}), text files, PDFs, Word, Excel and "
             "PowerPoint files, and EPUB or MOBI ebooks")
TEXT_SUFFIXES = frozenset({
    ".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".log", ".yaml", ".yml", ".toml", ".ini", ".xml", ".html",
    ".py", ".js", ".ts", ".go", ".rs", ".java", ".c", ".h", ".cpp", ".cs", ".rb", ".php", ".sh", ".sql", ".kt",
    ".swift", ".css", ".scss", ".diff", ".patch", ".env.example", ".cfg",
})
# What Kimi's file-extract reads (reference §5.1) beyond plain text.
EXTRACT_SUFFIXES = frozenset({".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".epub", ".mobi"})
EXTRACT_MIMES = frozenset({
    "application/pdf", "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/epub+zip", "application/x-mobipocket-ebook",
})
MAX_FILE_BYTES = 20_000_000


@dataclass(slots=True)
class ProcessedAttachments:
    media_ids: list[int] = field(default_factory=list)
    uploads: list[int] = field(default_factory=list)  # media living on Kimi's file store until the answer ends
    video_count: int = 0
    file_texts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.media_ids or self.file_texts)


def _is_text(filename: str, mime: str | None) -> bool:
    return (mime or "").startswith("text/") or PurePath(filename.lower()).suffix in TEXT_SUFFIXES


def _is_extractable(filename: str, mime: str | None) -> bool:
    return (mime or "").split(";", 1)[0].strip().lower() in EXTRACT_MIMES or \
        PurePath(filename.lower()).suffix in EXTRACT_SUFFIXES


class AttachmentProcessor:
    def __init__(self, *, store: Store, kimi: KimiClient, images: ImageConfig, video: VideoConfig,
                 context: ContextConfig) -> None:
        self._store = store
        self._kimi = kimi
        self._images = images
        self._video = video
        self._context = context
        self._heavy = asyncio.Semaphore(images.parallel)

    async def process(self, attachments: tuple[IncomingAttachment, ...], *,
                      model_watches_video: bool = True, model: str = "") -> ProcessedAttachments:
        result = ProcessedAttachments()
        for attachment in attachments:
            name = attachment.filename or "file"
            try:
                if videos.is_video_type(name, attachment.mime):
                    if not model_watches_video:
                        raise AttachmentError(f"this conversation's model (`{model}`) cannot watch videos.")
                    await self._video_file(attachment, name, result)
                else:
                    await self._one(attachment, name, result)
            except ImageRejected as exc:
                result.notes.append(f"`{name}`: {exc.user_message}")
            except KimiError as exc:
                result.notes.append(f"`{name}`: I could not read it ({exc.user_message})")
            except AttachmentError as exc:
                result.notes.append(f"`{name}`: {exc}")
        return result

    async def _one(self, attachment: IncomingAttachment, name: str, result: ProcessedAttachments) -> None:
        mime = attachment.mime
        if is_image_type(name, mime):
            if len(result.media_ids) - result.video_count >= self._context.max_images_per_message:
                raise AttachmentError(f"skipped: I read at most {self._context.max_images_per_message} images "
                                      "per message.")
            if attachment.size is not None and attachment.size > self._images.max_input_bytes:
                raise AttachmentError(f"this image is {attachment.size / 1e6:.1f} MB; the limit is "
                                      f"{self._images.max_input_bytes / 1e6:.0f} MB.")
            # A few at a time: an 8 MB screenshot is ~40 MB while it is decoded and re-encoded, and ten arriving
            # together would otherwise all be in memory at once (and compete for the same cores).
            async with self._heavy:
                data = await _download(attachment)
                image = await normalize_image(
                    data, max_side=self._images.max_side, max_input_bytes=self._images.max_input_bytes,
                    max_output_bytes=self._images.max_output_bytes, max_pixels=self._images.max_pixels,
                )
                del data
            attachment_id = await self._store.put_attachment(
                image.data, mime=image.mime, width=image.width, height=image.height, source=attachment.source)
            result.media_ids.append(attachment_id)
            return
        if not (_is_text(name, mime) or _is_extractable(name, mime)):
            raise AttachmentError(f"I can't read this kind of file ({mime or 'unknown type'}). "
                                  f"I can read {SUPPORTED}.")
        if attachment.size is not None and attachment.size > MAX_FILE_BYTES:
            raise AttachmentError(f"this file is {attachment.size / 1e6:.1f} MB; the limit is "
                                  f"{MAX_FILE_BYTES / 1e6:.0f} MB.")
        data = await _download(attachment)
        text: str | None = None
        if _is_text(name, mime):
            # Plain UTF-8 text needs no upload; anything else goes through Kimi's extractor.
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            text = await self._kimi.extract_file(name, data)
        if not text.strip():
            raise AttachmentError("I found no text in this file.")
        cap = self._context.max_file_chars
        if len(text) > cap:
            result.notes.append(f"`{name}`: only the first {cap:,} of {len(text):,} characters were read.")
            text = text[:cap]
        result.file_texts.append((name, text))


    async def _video_file(self, attachment: IncomingAttachment, name: str, result: ProcessedAttachments) -> None:
        limit = self._video.max_bytes
        if result.video_count >= self._video.max_per_message:
            raise AttachmentError(f"skipped: I watch at most {self._video.max_per_message} videos per message.")
        if attachment.size is not None and attachment.size > limit:
            raise AttachmentError(f"this video is {attachment.size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.")
        async with self._heavy:
            data = await _download(attachment)
            if len(data) > limit:
                raise AttachmentError(f"this video is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.")
            if not videos.looks_like_video(data):
                raise AttachmentError(f"this doesn't look like a video I can read (it may be damaged). I can watch "
                                      f"{videos.SUPPORTED} videos.")
            mime = videos.video_mime(name, attachment.mime)
            remote_id = None
            if len(data) > self._video.inline_max_bytes:
                remote_id = await self._kimi.upload_file(name, data, purpose="video")
            attachment_id = await self._store.put_attachment(
                data, mime=mime, kind=MediaKind.VIDEO, filename=name, source=attachment.source, remote_id=remote_id)
            del data
        result.media_ids.append(attachment_id)
        result.video_count += 1
        if remote_id is not None:
            result.uploads.append(attachment_id)


class AttachmentError(Exception):
    """A file that will not be read, with the sentence that tells the user why."""


async def _download(attachment: IncomingAttachment) -> bytes:
    try:
        data = await attachment.fetch()
    except AttachmentError:
        raise
    except Exception as exc:  # adapters' downloaders fail in platform-specific ways
        log.warning("attachment download failed", extra={"error": type(exc).__name__, "source": attachment.source})
        raise AttachmentError(f"I could not download it ({exc}).") from exc
    return data


def with_file_texts(text: str, files: list[tuple[str, str]]) -> str:
    parts = [text] if text else []
    for name, content in files:
        parts.append(f"[Attached file: {name}]\n{content}\n[End of {name}]")
    return "\n\n".join(parts)
