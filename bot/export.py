"""`kimibot export`: a conversation, a person's data or everything, as JSON Lines (one record per line, each with
a "type": conversation, message, attachment, usage or feedback)."""

from __future__ import annotations

import json
from typing import TextIO

from storage.store import Store

KINDS = ("conversation", "message", "usage", "feedback")


async def export_jsonl(store: Store, out: TextIO, *, conversation_id: int | None = None, user: str | None = None,
                       platform: str | None = None, workspace: str | None = None) -> int:
    """Write every record in scope; returns how many lines were written."""
    scope = {"conversation_id": conversation_id, "user": user, "platform": platform, "workspace": workspace}
    written = 0
    for kind in KINDS:
        if kind == "feedback" and conversation_id is not None:
            continue  # ratings belong to turns, not to a conversation export
        after = 0
        while page := await store.export_page(kind, after=after, **scope):
            for record in page:
                out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            written += len(page)
            after = page[-1]["id"]
    for record in await store.export_attachments(await store.attachment_ids(**scope)):
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        written += 1
    return written
