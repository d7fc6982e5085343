"""Structured logs: one JSON object (or one readable line) per record, with the `extra` fields included."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request lines and bodies at INFO/DEBUG; message content must not reach the log.
    # Levels are set explicitly on each library's top logger; Bolt's per-class loggers copy theirs from the
    # "slack_bolt" logger the Slack adapter hands to Bolt (adapters/slack/app.py).
    quiet = max(logging.WARNING, logging.getLevelName(level))
    for library in LIBRARIES:
        logging.getLogger(library).setLevel(quiet)


# Every library kimibot runs on that logs: HTTP clients (the openai SDK ships its own httpx as httpx2), the
# database stack, both platform SDKs, the HTTP server.
LIBRARIES = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiosqlite", "asyncpg", "sqlalchemy", "alembic",
             "asyncio", "aiohttp", "slack_bolt", "slack_sdk", "discord", "websockets", "urllib3", "PIL")
