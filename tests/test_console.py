"""`kimibot chat` as a user runs it: a real process, the real openai SDK, the fake Kimi over HTTP."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import shutil
import sys
from pathlib import Path

from PIL import Image

from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures import media


def kimibot_command() -> list[str]:
    script = shutil.which("kimibot", path=str(Path(sys.executable).parent)) or shutil.which("kimibot")
    return [script] if script else [sys.executable, "-m", "bot.cli"]


def environment(kimi: FakeKimi, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIMIBOT_", "SLACK_", "DISCORD_"))}
    env.update({
        "MOONSHOT_API_KEY": "sk-test",
        "KIMIBOT_KIMI__BASE_URL": kimi.base_url,
        "KIMIBOT_STORAGE__URL": f"sqlite:///{db}",
        "KIMIBOT_BOT__EDIT_INTERVAL": "0.1",
    })
    env.pop("DATABASE_URL", None)
    return env


async def chat(kimi: FakeKimi, tmp_path: Path, lines: list[str], *args: str) -> tuple[str, str, int]:
    process = await asyncio.create_subprocess_exec(
        *kimibot_command(), "chat", *args, cwd=tmp_path, env=environment(kimi, tmp_path / "kimibot.db"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate("\n".join(lines).encode() + b"\n"), timeout=60)
    return out.decode(), err.decode(), process.returncode or 0


async def test_scripted_chat_with_image_tool_and_web_search_survives_a_restart(kimi: FakeKimi,
                                                                               tmp_path: Path) -> None:
    picture = tmp_path / "screenshot.png"
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 1500), "navy").save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())
    out, err, code = await chat(kimi, tmp_path, [
        "hello there",
        f"/image {picture} what is in this picture?",
        'call current_time {"timezone": "Asia/Tokyo"}',
        "please search the web for kimibot",
    ], "--session", "demo")
    assert code == 0, err
    answers = out.strip().splitlines()
    assert answers[0] == "Echo: hello there"
    assert answers[1] == "I see 1 image: 2048x1024 PNG."
    assert answers[2].startswith("Tool current_time returned: ") and "Asia/Tokyo" in answers[2]
    # Search through Kimi's search tool: the answer cites results, and its sources follow as links.
    assert answers[3] == ("please search the web for kimibot (1) says so [1]. "
                          "please search the web for kimibot (3) says so [3].")
    assert answers[4:6] == ["", "**Sources**"]
    assert answers[6].startswith("1. [please search the web for kimibot (1)](https://docs.example.com/")
    assert answers[7].startswith("3. [please search the web for kimibot (3)](https://news.example.net/")
    assert "Traceback" not in err

    # A new process: the conversation is read back from the SQLite file.
    out, err, code = await chat(kimi, tmp_path, ["what did I say first?"], "--session", "demo")
    assert code == 0, err
    assert out.strip() == "Echo: what did I say first?"
    sent = kimi.requests[-1]["messages"]
    roles = [m["role"] for m in sent]
    assert roles.count("tool") == 2 and roles[-1] == "user"
    assert sent[1]["content"] == "hello there"
    assert any(isinstance(m["content"], list) and m["content"][0]["type"] == "image_url" for m in sent)

    # Another session is another conversation.
    out, _, _ = await chat(kimi, tmp_path, ["fresh start"], "--session", "other")
    assert [m["role"] for m in kimi.requests[-1]["messages"]] == ["system", "user"]

    store = await Store.open(f"sqlite:///{tmp_path / 'kimibot.db'}")
    usage = await store.usage_summary(platform="console")
    await store.close()
    # Eight Kimi calls, and one usage row for the search tool's call.
    assert usage.calls == 9 and usage.web_search_calls == 1


async def test_commands_and_errors_in_the_terminal(kimi: FakeKimi, tmp_path: Path) -> None:
    kimi.fail_next("quota")
    out, err, code = await chat(kimi, tmp_path, [
        "first question", "/think on", "/model kimi-k2.6", "second question", "/usage", "/image /nonexistent.png",
        "/reset", "after reset",
    ])
    assert code == 0, err
    assert "out of balance or quota" in out
    assert "Thinking is now on" in out and "web search is unavailable" not in out  # search tools work while thinking
    assert "now uses `kimi-k2.6`" in out
    assert "This conversation:" in out and "call" in out
    assert "No such file: /nonexistent.png" in out
    assert "Started a fresh conversation" in out
    last = kimi.requests[-1]
    assert last["model"] == "kimi-k2.6" and last["thinking"] == {"type": "enabled"}
    assert [m["content"] for m in last["messages"][1:]] == ["after reset"]


async def test_file_attaches_a_recording_or_a_document_and_image_is_its_alias(kimi: FakeKimi,
                                                                             tmp_path: Path) -> None:
    (tmp_path / "demo.webm").write_bytes(media.webm(300_000))
    (tmp_path / "notes.docx").write_bytes(media.docx("The release is on Friday."))
    out, err, code = await chat(kimi, tmp_path, [
        f"/file {tmp_path / 'demo.webm'} what happens in it?",
        f"/image {tmp_path / 'notes.docx'} when is the release?",
        "/file",
    ])
    assert code == 0, err
    answers = out.strip().splitlines()
    assert answers[0] == "I watched 1 video: 300,000 bytes of WebM."
    assert answers[1] == "Echo: when is the release?" and "The release is on Friday." in out
    assert answers[-1] == "No such file: (none given)"


async def test_interactive_chat_streams_into_a_terminal(kimi: FakeKimi, tmp_path: Path) -> None:
    kimi.tokens_per_second = 200
    main_fd, child_fd = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *kimibot_command(), "chat", cwd=tmp_path, env=environment(kimi, tmp_path / "kimibot.db"),
        stdin=child_fd, stdout=child_fd, stderr=child_fd)
    os.close(child_fd)
    loop = asyncio.get_running_loop()
    screen = bytearray()
    reads: list[int] = []

    async def read_until(marker: bytes, after: int = 0) -> None:
        while marker not in screen[after:]:
            chunk = await asyncio.wait_for(loop.run_in_executor(None, os.read, main_fd, 4096), timeout=30)
            assert chunk, "terminal closed"
            screen.extend(chunk)
            reads.append(len(screen))

    try:
        await read_until(b"you> ")
        mark = len(screen)
        os.write(main_fd, b"[[len=600]] stream please\n")
        await read_until(b"you> ", after=mark)
        answer_reads = [n for n in reads if n > mark]
        os.write(main_fd, b"/quit\n")
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
        os.close(main_fd)
    text = screen.decode(errors="replace")
    assert "kimibot chat" in text and "kimi> " in text
    answer = text.split("kimi> ", 1)[1].split("you> ")[0]
    assert len(answer.replace("\r", "").strip()) >= 550
    # Streamed: the answer reached the terminal in several pieces, not in one write at the end.
    assert len(answer_reads) >= 3
    kimi.tokens_per_second = None
