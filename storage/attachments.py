"""Content-addressed media: image bytes (Kimi is stateless, so images are re-sent on later turns) and videos,
kept as bytes when small enough to send inline, else as the id of their upload to Kimi until their answer ends."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from sqlalchemy import select, update

from storage.base import StoreBase
from storage.models import AttachmentRow, utcnow
from storage.records import MediaKind, StoredAttachment, attachment_from_row

# Hashing megabytes would stall the event loop; small payloads are cheaper to hash inline.
_INLINE_HASH_LIMIT = 256 * 1024


class AttachmentOps(StoreBase):
    async def put_attachment(
        self, data: bytes, *, mime: str, width: int = 0, height: int = 0, source: str = "",
        kind: MediaKind = MediaKind.IMAGE, filename: str = "", remote_id: str | None = None,
    ) -> int:
        """Store media once per content; the same bytes always return the same id. With `remote_id` (an upload
        to Kimi) the bytes are not kept, and a stored copy of the same content takes the new upload's id."""
        if len(data) > _INLINE_HASH_LIMIT:
            sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        else:
            sha256 = hashlib.sha256(data).hexdigest()
        existing = await self._attachment_id(sha256)
        if existing is not None:
            if remote_id is not None:
                await self.set_remote_id(existing, remote_id)
            return existing
        values = {
            "sha256": sha256,
            "mime": mime,
            "width": width,
            "height": height,
            "size": len(data),
            "data": b"" if remote_id is not None else data,
            "source": source,
            "kind": kind.value,
            "filename": filename,
            "remote_id": remote_id,
            "created_at": utcnow(),
        }
        async with self._sessions() as session:
            await session.execute(self._insert_ignoring(AttachmentRow, ("sha256",), values))
            await session.commit()
        stored = await self._attachment_id(sha256)
        if stored is None:
            raise RuntimeError("attachment vanished right after it was stored")
        return stored

    async def _attachment_id(self, sha256: str) -> int | None:
        async with self._sessions() as session:
            return await session.scalar(select(AttachmentRow.id).where(AttachmentRow.sha256 == sha256))

    async def get_attachment(self, attachment_id: int) -> StoredAttachment | None:
        async with self._sessions() as session:
            row = await session.get(AttachmentRow, attachment_id)
            return attachment_from_row(row) if row is not None else None

    async def media_kinds(self, attachment_ids: Sequence[int]) -> dict[int, tuple[MediaKind, str]]:
        """Kind and file name of each attachment, without its bytes: a history's old videos are described, not
        sent, and reading megabytes to write one line of text would be waste."""
        if not attachment_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(select(AttachmentRow.id, AttachmentRow.kind, AttachmentRow.filename)
                                         .where(AttachmentRow.id.in_(set(attachment_ids))))
            return {row.id: (MediaKind(row.kind), row.filename) for row in rows}

    async def set_remote_id(self, attachment_id: int, remote_id: str | None) -> None:
        """Record a new upload of the attachment to Kimi, or (None) that its upload was deleted."""
        async with self._sessions() as session:
            await session.execute(update(AttachmentRow).where(AttachmentRow.id == attachment_id)
                                  .values(remote_id=remote_id))
            await session.commit()
