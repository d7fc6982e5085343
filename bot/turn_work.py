"""A turn in memory: its stored record, the question as the engine reads it, and where the answer goes.

The question is stored with the turn as a plain record (no file bytes, only what the adapter needs to fetch
them again), so a turn can be answered by a process other than the one that received it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from bot.types import IncomingAttachment, IncomingMessage, ReplySurface
from storage.store import StoredTurn


class Interruption(enum.Enum):
    STOP = "stop"  # the user's `stop`, or a newer message under busy_policy = "restart"
    SHUTDOWN = "shutdown"  # this process is going away: leave the turn for another process to finish


@dataclass(slots=True)
class TurnWork:
    turn: StoredTurn
    message: IncomingMessage
    surface: ReplySurface
    resumed: bool = False
    started: bool = False  # the answer began (it then closes the turn itself, whatever happens)
    command_prefix: str = "!"  # how this surface spells commands, for hints in the answer
    interruption: Interruption | None = None


def question_record(message: IncomingMessage) -> dict[str, Any]:
    return {
        "workspace": message.workspace, "channel": message.channel, "thread": message.thread,
        "message_id": message.message_id, "user": message.user, "user_name": message.user_name,
        "text": message.text, "mentioned": message.mentioned, "is_dm": message.is_dm,
        "roles": sorted(message.roles), "parent_channels": list(message.parent_channels),
        "notes": list(message.notes),
        "attachments": [{"filename": a.filename, "mime": a.mime, "size": a.size, "source": a.source,
                         "ref": a.ref} for a in message.attachments],
    }


def message_from_record(turn: StoredTurn, attachments: tuple[IncomingAttachment, ...]) -> IncomingMessage:
    q = turn.question
    return IncomingMessage(
        platform=turn.platform, workspace=str(q.get("workspace", "")), channel=str(q.get("channel", "")),
        thread=str(q.get("thread", "")), message_id=str(q.get("message_id", "")), user=str(q.get("user", "")),
        text=str(q.get("text", "")), attachments=attachments, mentioned=bool(q.get("mentioned")),
        is_dm=bool(q.get("is_dm")), user_name=str(q.get("user_name", "")),
        roles=frozenset(str(r) for r in q.get("roles") or ()),
        parent_channels=tuple(str(c) for c in q.get("parent_channels") or ()), reply=dict(turn.reply),
        notes=tuple(str(n) for n in q.get("notes") or ()),
    )
