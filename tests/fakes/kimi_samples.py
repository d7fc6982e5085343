"""Test-side helpers for talking to the fake Kimi: sample inputs and a stream reassembler."""

from __future__ import annotations

import base64
import io
import zlib
from dataclasses import dataclass, field
from typing import Any

from PIL import Image


def image_data_url(size: tuple[int, int], fmt: str = "PNG") -> str:
    """A solid-colour image as a base64 data URL (synchronous: meant for small test images)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def hand_pdf(lines: list[str], *, compress: bool = True) -> bytes:
    """A minimal PDF whose text the fake's Files API extracts as `lines` (one `Tj` per line).

    Lines must already be PDF-escaped (`\\(`, `\\)`, `\\\\`).
    """
    ops = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({line}) Tj 0 -14 Td" for line in lines) + " ET"
    stream = zlib.compress(ops.encode("latin-1")) if compress else ops.encode("latin-1")
    flate = b" /Filter /FlateDecode" if compress else b""
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n4 0 obj << /Length "
        + str(len(stream)).encode()
        + flate
        + b" >>\nstream\n"
        + stream
        + b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


@dataclass
class StreamResult:
    """A streamed answer put back together the way a client would."""

    reasoning: str = ""
    content: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    chunks: list[Any] = field(default_factory=list)
    finish: str | None = None
    usage: dict[str, Any] | None = None
    extra_usage: Any = None

    def ordered_calls(self) -> list[dict[str, Any]]:
        return [self.calls[i] for i in sorted(self.calls)]


async def collect_stream(stream: Any) -> StreamResult:
    out = StreamResult()
    async for chunk in stream:
        out.chunks.append(chunk)
        if not chunk.choices:
            out.extra_usage = chunk.usage
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        out.reasoning += getattr(delta, "reasoning_content", None) or ""
        out.content += delta.content or ""
        for call in delta.tool_calls or []:
            entry = out.calls.setdefault(call.index, {"id": None, "type": None, "name": "", "arguments": ""})
            entry["id"] = call.id or entry["id"]
            entry["type"] = call.type or entry["type"]
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
        if choice.finish_reason:
            out.finish = choice.finish_reason
            # Kimi puts usage on the final choice, which the SDK keeps as an extra field.
            out.usage = getattr(choice, "usage", None)
    return out
