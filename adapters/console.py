"""The terminal chat: the same engine, storage and tools as the platforms, streaming into a terminal.

Interactive use streams answers as they are written. When standard input is not a terminal it reads one message
per line and prints each complete answer, so it can be scripted.
"""

from __future__ import annotations

import asyncio
import getpass
import mimetypes
import sys
import uuid
from pathlib import Path
from typing import TextIO

from bot.app import Services, build_services
from bot.budget import UnlimitedBudget
from bot.config import Config
from bot.types import AnswerControls, IncomingAttachment, IncomingMessage, PublishOptions

HELP = """Commands: /file PATH [question] attaches a picture, video, text, PDF, Office or ebook file (/image does
the same); /reset, /model [id], /think on|off, /system [text], /usage, /help; /quit leaves. Anything else is sent
to Kimi."""
FILE_COMMANDS = ("/file", "/image")


class ConsoleSurface:
    """A reply surface on a text stream. Interim edits extend what is already printed; the rest waits for the end."""

    max_chars = 1_000_000
    publish_options = PublishOptions(placeholder=None, min_edit_interval=0.05, decorate=False)

    def __init__(self, out: TextIO, *, streaming: bool) -> None:
        self.edit_budget = UnlimitedBudget()
        self.post_budget = UnlimitedBudget()
        self._out = out
        self._streaming = streaming
        self._texts: dict[str, str] = {}
        self._printed = ""
        self._status_shown = False

    async def post(self, text: str, controls: AnswerControls | None = None) -> str:
        message_id = f"console-{len(self._texts) + 1}"
        self._texts[message_id] = text
        self._stream(text)
        return message_id

    async def edit(self, message_id: str, text: str, controls: AnswerControls | None = None) -> None:
        self._texts[message_id] = text
        self._stream(text)

    async def set_status(self, status: str | None) -> None:
        if self._streaming and status and not self._printed:
            self._out.write(f"\r\x1b[2m{status}\x1b[0m\x1b[K")
            self._out.flush()
            self._status_shown = True

    def _stream(self, text: str) -> None:
        if not self._streaming or not text.startswith(self._printed):
            return
        self._clear_status()
        self._out.write(text[len(self._printed):])
        self._out.flush()
        self._printed = text

    def _clear_status(self) -> None:
        if self._status_shown:
            self._out.write("\r\x1b[K")
            self._status_shown = False

    def finish(self, message_ids: list[str]) -> None:
        """Print what the answer finally says, whatever part of it streaming already showed."""
        final = "\n".join(self._texts.get(i, "") for i in message_ids)
        self._clear_status()
        if self._streaming and final.startswith(self._printed):
            self._out.write(final[len(self._printed):] + "\n")
        elif self._streaming:
            self._out.write("\n" + final + "\n")
        else:
            self._out.write(final + "\n")
        self._out.flush()


def attachment_from_path(path: Path) -> IncomingAttachment:
    mime = mimetypes.guess_type(path.name)[0]
    size = path.stat().st_size
    return IncomingAttachment(filename=path.name, mime=mime, size=size,
                              fetch=lambda: asyncio.to_thread(path.read_bytes), source=f"file:{path.name}")


class ConsoleChat:
    def __init__(self, services: Services, *, session: str, user: str, out: TextIO, streaming: bool) -> None:
        self._services = services
        self._session = session
        self._user = user
        self._out = out
        self._streaming = streaming

    def _message(self, text: str, attachments: tuple[IncomingAttachment, ...] = ()) -> IncomingMessage:
        return IncomingMessage(
            platform="console", workspace="local", channel=self._user, thread=self._session,
            message_id=uuid.uuid4().hex, user=self._user, user_name=self._user, text=text,
            attachments=attachments, is_dm=True, mentioned=True,
        )

    async def say(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        attachments: tuple[IncomingAttachment, ...] = ()
        command, _, rest = line.partition(" ")
        if command in FILE_COMMANDS:
            path_text, _, question = rest.strip().partition(" ")
            path = await asyncio.to_thread(lambda: Path(path_text).expanduser())
            if not path_text or not await asyncio.to_thread(path.is_file):
                self._out.write(f"No such file: {path_text or '(none given)'}\n")
                return
            attachments = (await asyncio.to_thread(attachment_from_path, path),)
            line = question.strip()
        surface = ConsoleSurface(self._out, streaming=self._streaming)
        # Commands are typed as /reset, /model …: hints in answers spell them that way too.
        outcome = await self._services.engine.handle(self._message(line, attachments), surface, command_prefix="/")
        if outcome is not None:
            surface.finish(outcome.message_ids)


async def _lines(stdin: TextIO, interactive: bool) -> str | None:
    if interactive:
        try:
            return await asyncio.to_thread(input, "you> ")
        except EOFError:
            return None
    line = await asyncio.to_thread(stdin.readline)
    return line if line else None


async def run_console(config: Config, *, session: str, stdin: TextIO, stdout: TextIO) -> int:
    interactive = stdin.isatty() and stdout.isatty()
    services = await build_services(config)
    chat = ConsoleChat(services, session=session, user=getpass.getuser(), out=stdout, streaming=interactive)
    if interactive:
        stdout.write(f"kimibot chat, session '{session}', model {services.engine.models.default}. {HELP}\n")
    try:
        while (line := await _lines(stdin, interactive)) is not None:
            if line.strip() in ("/quit", "/exit"):
                break
            if line.strip() == "/help":
                stdout.write(HELP + "\n")
                continue
            if interactive:
                stdout.write("kimi> ")
            await chat.say(line)
    except KeyboardInterrupt:
        pass
    finally:
        await services.aclose()
    return 0


if __name__ == "__main__":  # pragma: no cover - convenience for `python -m adapters.console`
    from bot.cli import main

    sys.exit(main(["chat", *sys.argv[1:]]))
