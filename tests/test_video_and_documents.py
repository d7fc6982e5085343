"""Screen recordings and Office/ebook files through the engine, against the fake Kimi's chat and file APIs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from bot.types import IncomingAttachment
from storage.store import MediaKind, Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures import media
from tests.fixtures.engine import Harness, build_harness


def attachment(name: str, data: bytes, mime: str | None, *, size: int | None = None) -> IncomingAttachment:
    fetched: list[int] = []

    async def fetch() -> bytes:
        fetched.append(1)
        return data

    return IncomingAttachment(filename=name, mime=mime, size=len(data) if size is None else size, fetch=fetch,
                              source=f"test:{name}")


def video_parts(body: dict[str, Any]) -> list[str]:
    content = body["messages"][-1]["content"]
    return [part["video_url"]["url"] for part in content if isinstance(part, dict) and part["type"] == "video_url"] \
        if isinstance(content, list) else []


async def ask(harness: Harness, text: str, *files: IncomingAttachment) -> str:
    _, surface = await harness.ask(text, attachments=files)
    return surface.visible_text()


async def test_a_short_screen_recording_goes_inline_once(kimi: FakeKimi, harness: Harness) -> None:
    said = await ask(harness, "what goes wrong here?", attachment("bug.mp4", media.mp4(2_000_000), "video/mp4"))
    assert "I watched 1 video: 2,000,000 bytes of MP4" in said
    assert video_parts(kimi.requests[-1])[0].startswith("data:video/mp4;base64,")
    assert not kimi.files
    blobs_read: list[str] = []

    @event.listens_for(harness.store.engine.sync_engine, "before_cursor_execute")
    def watch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "attachments.data" in statement:
            blobs_read.append(statement)

    await ask(harness, "and what should I try next?")
    event.remove(harness.store.engine.sync_engine, "before_cursor_execute", watch)
    assert not blobs_read  # the old video is described, its megabytes are not read
    assert not video_parts(kimi.requests[-1])
    earlier = next(m for m in kimi.requests[-1]["messages"] if m["role"] == "user")
    assert "video bug.mp4 from an earlier message is not resent" in str(earlier["content"])


async def test_a_long_recording_is_uploaded_for_its_answer_then_deleted(kimi: FakeKimi, harness: Harness,
                                                                       store: Store) -> None:
    said = await ask(harness, "summarise this call", attachment("call.mov", media.mp4(20_000_000), "video/quicktime"))
    assert "I watched 1 video: 20,000,000 bytes of MP4" in said
    [upload] = kimi.files
    assert upload.purpose == "video" and upload.deleted
    assert video_parts(kimi.requests[-1]) == [f"ms://{upload.id}"]
    conversation = await store.get_or_create_conversation(harness.message("").key)
    question = next(m for m in await store.history(conversation.id) if m.role == "user")
    stored = await store.get_attachment(question.media_ids[0])
    assert stored is not None and stored.kind is MediaKind.VIDEO and stored.remote_id is None and not stored.data
    # The next turn does not point Kimi at the deleted upload.
    await ask(harness, "thanks, one more question")
    assert not video_parts(kimi.requests[-1])


async def test_videos_that_cannot_be_watched_get_a_clear_note(kimi: FakeKimi, harness: Harness) -> None:
    damaged = attachment("clip.mp4", b"\x00" * 50_000, "video/mp4")
    too_big = attachment("huge.webm", media.webm(1000), "video/webm", size=150_000_000)
    said = await ask(harness, "look at these", damaged, too_big)
    assert "`clip.mp4`: this doesn't look like a video I can read" in said
    assert "`huge.webm`: this video is 150.0 MB; the limit is 100 MB." in said
    assert not video_parts(kimi.requests[-1]) and not kimi.files


async def test_a_model_that_cannot_watch_video_says_so(store: Store) -> None:
    async with FakeKimi(blind_to_video=("kimi-k2.6",)) as kimi:
        harness = await build_harness(kimi, store)
        try:
            await harness.engine.models.refresh()
            said = await ask(harness, "what is this?", attachment("a.webm", media.webm(300_000), "video/webm"))
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()
    assert "cannot watch videos" in said
    assert kimi.requests and not video_parts(kimi.requests[-1])


async def test_office_and_ebook_files_are_read_through_file_extract(kimi: FakeKimi, harness: Harness) -> None:
    files = (
        attachment("plan.docx", media.docx("Launch on 3 March", "Owner: Ana"),
                   "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        attachment("budget.xlsx", media.xlsx("Q1 budget", "42,000 EUR"), None),
        attachment("novel.epub", media.epub("A Title", "It was a dark and stormy night."), "application/epub+zip"),
    )
    await ask(harness, "what do these say?", *files)
    question = kimi.requests[-1]["messages"][-1]["content"]
    for expected in ("Launch on 3 March", "Owner: Ana", "42,000 EUR", "It was a dark and stormy night."):
        assert expected in question
    assert [f.purpose for f in kimi.files] == ["file-extract"] * 3 and all(f.deleted for f in kimi.files)


async def test_a_damaged_document_gets_a_note_and_the_question_is_still_answered(kimi: FakeKimi,
                                                                                harness: Harness) -> None:
    broken = attachment("report.docx", b"PK\x03\x04 not really a zip", None)
    said = await ask(harness, "and this one?", broken)
    assert "`report.docx`: I could not read it" in said
    assert "Echo: and this one?" in said
